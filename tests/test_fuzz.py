"""Runs the hypothesis fuzzer (tests/fuzz/fuzz_layers.py) in a subprocess, so a crash
fails this test instead of killing the test run.  A short run here; the release
check runs more cases (see tests/fuzz/fuzz_layers.py --help)."""
import os
import re
import subprocess
import sys

import pytest

import fastconv

pytest.importorskip("hypothesis")
pytest.importorskip("torch")

FUZZER = os.path.join(os.path.dirname(__file__), "fuzz", "fuzz_layers.py")


def test_fuzz_layers_against_torch():
    root = os.path.dirname(os.path.dirname(os.path.abspath(fastconv.__file__)))
    env = dict(os.environ, OMP_NUM_THREADS="2",
               PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    p = subprocess.run([sys.executable, FUZZER, "--examples", "60", "--seed", "1"],
                       capture_output=True, text=True, timeout=600, env=env)
    assert p.returncode == 0, f"fuzzer failed (rc {p.returncode}):\n{p.stdout}\n{p.stderr}"
    m = re.search(r"fuzz: (\d+) cases tried", p.stdout)
    assert m and int(m.group(1)) == 240, p.stdout
    assert "matched torch" in p.stdout and "rejected" in p.stdout
