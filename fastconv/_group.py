"""The default process group: set by ``fastconv.distributed.init()``, read by the
layers that reduce across processes (SyncBatchNorm's statistics).

Kept apart from ``fastconv.distributed`` so that the functional layer can find the
group without importing MPI: in a single process this module is all that is loaded."""

_default = None


def set_default(group):
    """Make ``group`` (a distributed.ProcessGroup, or None) the default."""
    global _default
    _default = group


def default():
    """The default group, or None outside a distributed job."""
    return _default


def resolve(group=None):
    """``group``, else the default; None when that spans a single process (nothing to
    reduce)."""
    g = _default if group is None else group
    return g if g is not None and g.size > 1 else None
