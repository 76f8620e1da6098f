"""Compiled kernels (Cython + C, OpenMP).  Private: use fastconv.functional."""
