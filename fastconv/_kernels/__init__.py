"""Compiled kernels (Cython + C, OpenMP).  Private: use fastconv.functional."""
import importlib.util as _util
import os as _os

if _util.find_spec(__name__ + "._cpu") is None:       # a source tree that was never built
    raise ImportError(
        "fastconv's compiled kernels are missing in " + _os.path.dirname(__file__) + ": this "
        "looks like the source checkout, which shadows the installed package when Python "
        "runs from its top folder.  Build it in place (pip install -e . or python setup.py "
        "build_ext --inplace) or run from another folder.")
