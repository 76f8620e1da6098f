"""Gradient mode: ``with fastconv.no_grad():`` runs forwards without keeping activations."""
import contextlib
import threading

_state = threading.local()


def is_grad_enabled():
    """True unless inside ``fastconv.no_grad()`` (per Python thread)."""
    return getattr(_state, "enabled", True)


@contextlib.contextmanager
def no_grad():
    """Context manager: forwards keep no activations (inference memory); a later
    ``backward`` raises RuntimeError."""
    prev = is_grad_enabled()
    _state.enabled = False
    try:
        yield
    finally:
        _state.enabled = prev
