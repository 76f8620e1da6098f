"""A caching allocator for large activation and gradient arrays.

Notes
-----
A fresh multi-MiB NumPy array is a fresh mmap: the kernel zero-fills every page on
first touch, which costs as much as the op that writes it (a 49 MiB ReLU output:
~4.5 ms of faults for a 3 ms kernel).  Training allocates the same sizes every
step, so blocks of >= 1 MiB are kept when their last array dies and handed out
again for the next request of the same size (PyTorch's caching allocator, on the
CPU).  A miss first evicts idle blocks (the most recently freed first) that would push
live + idle well above the highest live total seen so far, so caching raises peak
memory by a bounded amount.  Arrays are ordinary NumPy arrays whose base is a
``Block`` exposing the buffer protocol; the memory returns to the cache when the array and all its views
are gone.  Everything runs with the GIL held (allocation and deallocation of
Python objects), so the cache needs no lock.  Idle memory is bounded twice: live +
idle stays within a quarter of the highest live total seen (at least 32 MiB) above it,
and idle alone stays under a limit (2 GiB by default, ``FASTCONV_CACHE_BYTES``
or ``set_limit``; the least recently freed blocks go first).  ``empty_cache()``
releases it all.
"""
from cpython.buffer cimport (PyBUF_ANY_CONTIGUOUS, PyBUF_WRITABLE, PyBuffer_Release,
                             PyObject_GetBuffer)
from libc.stdint cimport uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcmp, memcpy, memset
from cython.parallel cimport prange

import os

import numpy as np

cdef extern from "stdlib.h":
    int posix_memalign(void **memptr, size_t alignment, size_t size) nogil

cdef size_t MIN_BYTES = 1 << 20
cdef size_t GRANULE = 1 << 16

cdef dict _idle = {}          # rounded size -> list of addresses (ints), most recent last
cdef list _order = []         # (size, address) of idle blocks, oldest first
cdef size_t _idle_bytes = 0
cdef size_t _limit = int(os.environ.get("FASTCONV_CACHE_BYTES", 2 << 30))
cdef size_t _live_bytes = 0
cdef size_t _peak_bytes = 0
cdef Py_ssize_t _hits = 0, _misses = 0


cdef class Block:
    """A writable, 64-byte aligned buffer that returns its memory to the cache."""
    cdef char *ptr
    cdef size_t nbytes          # usable size requested
    cdef size_t cap             # rounded size (the cache key)
    cdef Py_ssize_t shape[1]
    cdef Py_ssize_t strides[1]

    def __getbuffer__(self, Py_buffer *buf, int flags):
        self.shape[0] = self.nbytes
        self.strides[0] = 1
        buf.buf = self.ptr
        buf.obj = self
        buf.len = self.nbytes
        buf.readonly = 0
        buf.itemsize = 1
        buf.format = "B"
        buf.ndim = 1
        buf.shape = self.shape
        buf.strides = self.strides
        buf.suboffsets = NULL
        buf.internal = NULL

    def __releasebuffer__(self, Py_buffer *buf):
        pass

    def __dealloc__(self):
        if self.ptr != NULL:
            _release(self.ptr, self.cap)
            self.ptr = NULL


cdef void _release(char *ptr, size_t cap) noexcept:
    global _idle_bytes, _live_bytes
    _live_bytes -= cap
    if cap > _limit:
        free(ptr)
        return
    while _idle_bytes + cap > _limit and _order:
        _evict_oldest()
    _idle.setdefault(cap, []).append(<size_t>ptr)
    _order.append((cap, <size_t>ptr))
    _idle_bytes += cap


cdef void _evict_oldest() noexcept:
    _evict_at(0)


cdef void _evict_at(Py_ssize_t i) noexcept:
    global _idle_bytes
    cap, addr = _order.pop(i)
    _idle[cap].remove(addr)
    _idle_bytes -= <size_t>cap
    free(<void *><size_t>addr)


cdef inline size_t _headroom() noexcept:
    """How far above the highest live total live + idle may go: a quarter of it (at least
    32 MiB).  With 32 MiB alone (and the oldest idle block evicted first), each training
    step's peak evicted the blocks its backward then allocated afresh: 17-35 fresh
    multi-MiB blocks a step, whose first touch (the kernel zeroing huge pages) doubled
    the layer that wrote them (a mobilenet_v2 depthwise gradient: 12 ms instead of 6)."""
    cdef size_t h = _peak_bytes // 4
    return h if h > (32 << 20) else (32 << 20)


cdef Block _take(size_t nbytes):
    global _idle_bytes, _live_bytes, _peak_bytes, _hits, _misses
    cdef size_t cap = ((nbytes + GRANULE - 1) // GRANULE) * GRANULE
    cdef void *p = NULL
    cdef Block b = Block.__new__(Block)
    lst = _idle.get(cap)
    if lst:
        addr = lst.pop()
        _order.remove((cap, addr))
        _idle_bytes -= cap
        p = <void *><size_t>addr
        _hits += 1
    else:
        # a fresh block: first drop idle blocks that would lift live + idle more than the
        # headroom above the highest live total seen, the most recently freed first: a
        # training step frees and takes its blocks in the same order every time, so the
        # block freed last is the one needed again last (the oldest, freed by the
        # previous step's backward, are about to be taken again by this one: evicting
        # them, as LRU would, refaulted them every step)
        while _order and _live_bytes + _idle_bytes + cap > _peak_bytes + _headroom():
            _evict_at(len(_order) - 1)
        if posix_memalign(&p, 64, cap) != 0:
            # make room from the cache and retry once before giving up
            while _order:
                _evict_oldest()
            if posix_memalign(&p, 64, cap) != 0:
                raise MemoryError(f"fastconv: cannot allocate {nbytes} bytes")
        _misses += 1
    b.ptr = <char *>p
    b.nbytes = nbytes
    b.cap = cap
    _live_bytes += cap
    if _live_bytes > _peak_bytes:
        _peak_bytes = _live_bytes
    return b


def empty(shape, dtype=np.float64):
    """np.empty(shape, dtype), C-contiguous; arrays of >= 1 MiB come from the cache."""
    if not isinstance(shape, tuple):
        shape = tuple(shape) if hasattr(shape, "__len__") else (shape,)
    dt = np.dtype(dtype)
    cdef Py_ssize_t n = 1
    for s in shape:
        n *= s
    cdef size_t nbytes = n * dt.itemsize
    if nbytes < MIN_BYTES:
        return np.empty(shape, dt)
    return np.frombuffer(_take(nbytes), dtype=dt, count=n).reshape(shape)


def empty_cache():
    """Free every idle cached block (live arrays are untouched)."""
    while _order:
        _evict_oldest()


def set_limit(size_t nbytes):
    """Most idle bytes the cache keeps (default 2 GiB, or FASTCONV_CACHE_BYTES); 0
    disables caching."""
    global _limit
    _limit = nbytes
    while _idle_bytes > _limit and _order:
        _evict_oldest()


def stats():
    """dict(live_bytes, idle_bytes, peak_live_bytes, hits, misses, limit)."""
    return dict(live_bytes=_live_bytes, idle_bytes=_idle_bytes, peak_live_bytes=_peak_bytes,
                hits=_hits, misses=_misses, limit=_limit)


cdef bint _equal_bytes(const char *a, const char *b, Py_ssize_t n, int nt) noexcept nogil:
    """memcmp(a, b, n) == 0, in 1 MiB chunks over nt threads from 4 MiB up (a one-frame
    resnet18 compares its 45 MB of weights on every call: 7% of the frame)."""
    cdef Py_ssize_t CH = 1 << 20, nch = (n + CH - 1) // CH, i, lo
    cdef int diff = 0
    if nt <= 1 or n < 4 * CH:
        return memcmp(a, b, n) == 0
    for i in prange(nch, num_threads=nt, schedule='static'):
        lo = i * CH
        if memcmp(a + lo, b + lo, CH if n - lo > CH else n - lo) != 0:
            diff += 1
    return diff == 0


def same_contents(tuple kept, tuple now, int n_threads=1):
    """Whether each buffer of ``now`` holds the bytes of the same-position entry of
    ``kept`` (None matching None only): the check an inference cache makes on every
    call that the arrays it was built from (weights, BatchNorm statistics) are
    unchanged, in one call for all of them, without the GIL and over n_threads for
    large buffers.  A non-contiguous array never matches."""
    cdef Py_ssize_t i, n = len(kept)
    cdef Py_buffer a, b
    cdef bint same
    if len(now) != n:
        return False
    for i in range(n):
        x, y = kept[i], now[i]
        if x is None or y is None:
            if x is not y:
                return False
            continue
        PyObject_GetBuffer(x, &a, PyBUF_ANY_CONTIGUOUS)
        try:
            PyObject_GetBuffer(y, &b, PyBUF_ANY_CONTIGUOUS)
        except (BufferError, ValueError):      # not contiguous
            PyBuffer_Release(&a)
            return False
        same = a.len == b.len
        if same and a.len:
            with nogil:
                same = _equal_bytes(<const char *>a.buf, <const char *>b.buf, a.len, n_threads)
        PyBuffer_Release(&b)
        PyBuffer_Release(&a)
        if not same:
            return False
    return True


# xxHash64's primes and round: acc = rotl(acc + word * P2, 31) * P1 is a bijection of acc
# for each word, its rotation carrying high bits down, so every change to one word
# changes the lane, and different contents collide only by chance
cdef uint64_t P1 = 11400714785074694791ULL
cdef uint64_t P2 = 14029467366897019727ULL
cdef uint64_t P3 = 1609587929392839161ULL


cdef inline uint64_t _round(uint64_t acc, uint64_t v) noexcept nogil:
    acc = acc + v * P2
    acc = (acc << 31) | (acc >> 33)
    return acc * P1


cdef void _hash_chunk(const unsigned char *p, Py_ssize_t n, uint64_t *out) noexcept nogil:
    """Four xxHash64 lanes over n bytes in 32-byte stripes (the tail zero-padded, the
    length folded in): out[0..3]."""
    cdef uint64_t a0 = P1 + P2, a1 = P2, a2 = 0, a3 = 0 - P1
    cdef uint64_t w[4]
    cdef Py_ssize_t i = 0
    while i + 32 <= n:
        memcpy(w, p + i, 32)
        a0 = _round(a0, w[0])
        a1 = _round(a1, w[1])
        a2 = _round(a2, w[2])
        a3 = _round(a3, w[3])
        i += 32
    if i < n:
        memset(w, 0, 32)
        memcpy(w, p + i, n - i)
        a0 = _round(a0, w[0])
        a1 = _round(a1, w[1])
        a2 = _round(a2, w[2])
        a3 = _round(a3, w[3])
    out[0] = _round(a0, <uint64_t>n)
    out[1] = _round(a1, P3)
    out[2] = a2
    out[3] = a3


def fingerprint(tuple arrays, int n_threads=1):
    """A 256-bit fingerprint of each buffer in ``arrays`` (None for None): a tuple of
    (byte length, four 64-bit xxHash64 lanes) per entry.  What an inference cache keeps
    of large weights instead of a copy: checking them is one read of the weights (a
    memcmp against a copy reads two streams: a one-frame resnet18 re-reads 45 MB of
    weights twice per call) and keeps no second copy; a change that leaves the
    fingerprint equal takes a collision of the four lanes.  Over n_threads in 1 MiB
    chunks from 4 MiB up, each chunk's lanes folded in order: the same value at any
    thread count.  A non-contiguous array raises (BufferError or ValueError)."""
    cdef Py_ssize_t CH = 1 << 20, nch, c, k
    cdef Py_buffer a
    cdef uint64_t *parts
    cdef uint64_t f[4]
    out = []
    for x in arrays:
        if x is None:
            out.append(None)
            continue
        PyObject_GetBuffer(x, &a, PyBUF_ANY_CONTIGUOUS)
        nch = max(1, (a.len + CH - 1) // CH)
        parts = <uint64_t *>malloc(nch * 4 * sizeof(uint64_t))
        if parts == NULL:
            PyBuffer_Release(&a)
            raise MemoryError("fingerprint: no memory")
        try:
            with nogil:
                if n_threads <= 1 or a.len < 4 * CH:
                    for c in range(nch):
                        _hash_chunk(<const unsigned char *>a.buf + c * CH,
                                    min(CH, a.len - c * CH), parts + 4 * c)
                else:
                    for c in prange(nch, num_threads=n_threads, schedule='static'):
                        _hash_chunk(<const unsigned char *>a.buf + c * CH,
                                    min(CH, a.len - c * CH), parts + 4 * c)
                f[0] = f[1] = f[2] = f[3] = 0
                for c in range(nch):
                    for k in range(4):
                        f[k] = _round(f[k], parts[4 * c + k])
            out.append((a.len, f[0], f[1], f[2], f[3]))
        finally:
            free(parts)
            PyBuffer_Release(&a)
    return tuple(out)


def copy_rows(src, Py_ssize_t src_off, Py_ssize_t src_stride, dst, Py_ssize_t dst_off,
              Py_ssize_t dst_stride, Py_ssize_t row_bytes, Py_ssize_t rows, int n_threads=1):
    """dst[dst_off + r*dst_stride : + row_bytes] = src[src_off + r*src_stride : + row_bytes]
    for r < rows, in bytes, over n_threads in pieces of at least 256 KiB: the copies of
    cat and of its backward (a slice of every row).  src, dst: C-contiguous buffers
    (dst writable); every range is checked to lie inside its buffer."""
    cdef Py_buffer a, b
    cdef Py_ssize_t per, pieces, total, i, r, k, lo, hi
    if rows <= 0 or row_bytes <= 0:
        return
    PyObject_GetBuffer(src, &a, PyBUF_ANY_CONTIGUOUS)
    try:
        PyObject_GetBuffer(dst, &b, PyBUF_ANY_CONTIGUOUS | PyBUF_WRITABLE)
    except BaseException:
        PyBuffer_Release(&a)
        raise
    try:
        if (min(src_off, dst_off, src_stride, dst_stride) < 0
                or src_off + (rows - 1) * src_stride + row_bytes > a.len
                or dst_off + (rows - 1) * dst_stride + row_bytes > b.len):
            raise ValueError("copy_rows: a range lies outside its buffer")
        per = (row_bytes + (1 << 18) - 1) >> 18         # 256 KiB pieces of a row
        total = rows * per
        with nogil:
            for i in prange(total, schedule='static',
                            num_threads=n_threads if rows * row_bytes >= (1 << 19) else 1):
                r = i // per
                k = i - r * per
                lo = k * row_bytes // per
                hi = (k + 1) * row_bytes // per
                memcpy(<char *>b.buf + dst_off + r * dst_stride + lo,
                       <const char *>a.buf + src_off + r * src_stride + lo, hi - lo)
    finally:
        PyBuffer_Release(&b)
        PyBuffer_Release(&a)
