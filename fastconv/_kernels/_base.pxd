# base.h: the index type and the parallel grain every kernel family builds on.
from libc.stdint cimport int64_t

cdef extern from "base.h":
    ctypedef int64_t fc_int
    enum:
        FC_PARALLEL_GRAIN
