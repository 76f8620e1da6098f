"""Gradient mode: ``with fastconv.no_grad():`` runs forwards without keeping activations."""
import functools
import threading

_state = threading.local()


def is_grad_enabled():
    """True unless inside ``fastconv.no_grad()`` (per Python thread)."""
    return getattr(_state, "enabled", True)


class no_grad:
    """Context manager (or decorator): forwards keep no activations (inference memory);
    a later ``backward`` raises RuntimeError.  A class rather than a generator: entering
    it is on every single-frame inference call, so it costs a fraction of a microsecond."""

    __slots__ = ("_prev",)

    def __enter__(self):
        self._prev = getattr(_state, "enabled", True)
        _state.enabled = False
        return self

    def __exit__(self, *exc):
        _state.enabled = self._prev
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with no_grad():
                return fn(*args, **kwargs)
        return wrapper
