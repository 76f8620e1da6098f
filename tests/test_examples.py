"""Every example runs from the installed package and checks its own numbers."""
import glob
import os
import subprocess
import sys

import pytest

import fastconv

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")
SCRIPTS = sorted(p for p in glob.glob(os.path.join(EXAMPLES, "*.py"))
                 if not os.path.basename(p).startswith("_"))


@pytest.mark.parametrize("script", SCRIPTS, ids=[os.path.basename(p) for p in SCRIPTS])
def test_example_runs(script, tmp_path):
    root = os.path.dirname(os.path.dirname(os.path.abspath(fastconv.__file__)))
    env = dict(os.environ, FASTCONV_EXAMPLES_OUT=str(tmp_path),
               PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    r = subprocess.run([sys.executable, script], capture_output=True, text=True, env=env,
                       cwd=str(tmp_path), timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
