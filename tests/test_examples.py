"""Every example runs from the installed package and checks its own numbers."""
import glob
import os
import re
import subprocess
import sys

import pytest

import fastconv

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")
SCRIPTS = sorted(p for p in glob.glob(os.path.join(EXAMPLES, "*.py"))
                 if not os.path.basename(p).startswith("_"))


def _segment_persons(stdout, out_dir):
    """The U-Net learned: the loss fell and the held-out person IoU beats labelling
    every pixel a person by half again."""
    m = re.search(r"final held-out person IoU ([\d.]+) \(all background 0, all person "
                  r"([\d.]+)\).*loss ([\d.]+) -> ([\d.]+)", stdout)
    assert m, stdout[-2000:]
    iou, all_person, first, last = map(float, m.groups())
    assert iou > 1.5 * all_person and last < 0.9 * first, stdout[-2000:]
    if "matplotlib not installed" not in stdout:
        assert os.path.getsize(os.path.join(out_dir, "segment_persons.png")) > 0


# scripts whose default run trains for minutes run their quick mode here, and what
# their output must show beyond their own asserts
ARGS = {"segment_persons.py": ["--quick"]}
CHECKS = {"segment_persons.py": _segment_persons}


@pytest.mark.parametrize("script", SCRIPTS, ids=[os.path.basename(p) for p in SCRIPTS])
def test_example_runs(script, tmp_path):
    root = os.path.dirname(os.path.dirname(os.path.abspath(fastconv.__file__)))
    env = dict(os.environ, FASTCONV_EXAMPLES_OUT=str(tmp_path),
               PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    name = os.path.basename(script)
    r = subprocess.run([sys.executable, script, *ARGS.get(name, [])], capture_output=True,
                       text=True, env=env, cwd=str(tmp_path), timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    if name in CHECKS:
        CHECKS[name](r.stdout, str(tmp_path))
