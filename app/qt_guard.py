"""A guard against a reference-count bug of PySide6 6.12.0 on Python 3.11 and older.

In PySide6 / shiboken6 6.12.0 ``SignalInstance.emit`` returns ``True``, and every wrapped C++
method returning void (``setText``, ``setChecked``, ``trigger``, ``hide``, ...) returns ``None``,
without taking a reference to it (6.11.3 takes one). Python 3.12+ does not mind: ``True`` and
``None`` are immortal there. On 3.11 they are ordinary objects, so every such call (ours, and
pyqtgraph's on every pan, zoom and redraw) takes one reference away for good; once the calls
outnumber the references the program holds (some thousands: a session with background jobs
reporting progress, a few quits) a count reaches zero and the interpreter aborts with "Fatal
Python error: bool_dealloc: deallocating True or False" (or ``none_dealloc``), mostly at quit,
when the objects still holding them let go. It is not a teardown-order problem: the count is
drained while the window runs, whatever order the worker threads, pyqtgraph items and signal
connections are torn down in.

:func:`install` measures whether the running PySide6 has the bug (ten emits of a private signal,
ten void calls) and only then gives the object it drains a reserve of references (2**40: more
calls than a process makes), which is what Python 3.12 does for them (immortal objects). Wrapping
``SignalInstance.emit`` is no way out (``signal.connect(other.emit)`` must still see PySide6's own
method, and the void methods are thousands). Python 3.12+ and sound PySide6 releases are left
untouched.
"""
from __future__ import annotations

import sys

RESERVE = 1 << 40
_state = {"checked": False, "reserved": ()}


def drained() -> dict:
    """References to ``True`` and ``None`` that ten emits of a connected signal and ten void
    calls take away for good ({} when PySide6 is sound)."""
    from PySide6 import QtCore

    class _Probe(QtCore.QObject):
        fired = QtCore.Signal(int)

    probe = _Probe()
    probe.fired.connect(lambda value: None)
    before = {"True": sys.getrefcount(True), "None": sys.getrefcount(None)}
    for _ in range(10):
        probe.fired.emit(1)
        probe.setObjectName("probe")
    after = {"True": sys.getrefcount(True), "None": sys.getrefcount(None)}
    return {name: before[name] - after[name] for name in before if before[name] - after[name] >= 5}


def install() -> tuple[str, ...]:
    """Reserve references for ``True`` / ``None`` when (and only when) PySide6 drains them;
    returns the names of the objects given a reserve. Idempotent."""
    if _state["checked"]:
        return _state["reserved"]
    _state["checked"] = True
    if sys.version_info >= (3, 12) or sys.implementation.name != "cpython":
        return ()  # immortal True and None (3.12+), or no reference counts to run out
    import ctypes

    objects = {"True": True, "None": None}
    names = tuple(sorted(drained()))
    for name in names:
        # ob_refcnt is the first field of every CPython object (PyObject_HEAD)
        ctypes.c_ssize_t.from_address(id(objects[name])).value += RESERVE
    _state["reserved"] = names
    return names
