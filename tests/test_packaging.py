"""The wheel's package list covers every subpackage of the source tree (a package left
out installs nowhere, and only a non-editable install notices)."""
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_every_subpackage_is_listed_in_pyproject():
    path = os.path.join(ROOT, "pyproject.toml")
    if not os.path.exists(path):
        pytest.skip("not run from a source checkout")
    text = open(path).read()
    block = text[text.index("[tool.setuptools]"):]
    block = block[block.index("packages = ["):]
    listed = set(re.findall(r'"(fastconv[\w.]*)"', block[:block.index("]")]))
    found = set()
    for dirpath, _, files in os.walk(os.path.join(ROOT, "fastconv")):
        if "__init__.py" in files:
            found.add(os.path.relpath(dirpath, ROOT).replace(os.sep, "."))
    assert found == listed, (f"missing from pyproject: {sorted(found - listed)}; "
                             f"listed but absent: {sorted(listed - found)}")
