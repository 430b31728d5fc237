"""Instruction counting without a Python hook per instruction.

The native block hook in `_icount.c` counts the instructions of every
translation block as it starts and stops the run before a block that would
pass `limit`.  Python hooks that stop mid-block, and exceptions, correct the
count with the start and size of the block counted last.  When the board
sets `pending`, the hook calls its check (a ctypes callback) at the next block.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable

from unicorn import UC_HOOK_BLOCK, UC_HOOK_CODE, Uc
from unicorn.unicorn_py3 import unicorn as _ucmod

from harness.machine import _icount  # the compiled extension (built by pip install)
from harness.machine.sysport import uc_handle

NO_LIMIT = (1 << 64) - 1


# The board's check at the block after an ERET / PSTATE write: nonzero stops before that block.
CHECK_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_uint64)


class _State(ctypes.Structure):
    _fields_ = [
        ("count", ctypes.c_uint64),
        ("limit", ctypes.c_uint64),
        ("stop", ctypes.c_void_p),
        ("hit", ctypes.c_uint64),
        ("last_addr", ctypes.c_uint64),
        ("last_size", ctypes.c_uint64),
        ("pending", ctypes.c_uint64),
        ("check", CHECK_FN),
    ]


_lib = ctypes.CDLL(_icount.__file__)
_uclib = _ucmod.uclib
_hook_add = _uclib.uc_hook_add


class ICounter:
    """Counts retired instructions of one Uc; `limit` stops the run before passing it."""

    def __init__(self, uc: Uc, check: Callable[[int], int]) -> None:
        """`check(addr)` runs at the start of the block at `addr` when `state.pending` is set
        (and clears it); nonzero stops the run before that block, as the limit does."""
        # The struct keeps the callback alive. Not ctypes.cast: it would tie the callback to
        # itself in a cycle only the collector breaks (see sysport.uc_release).
        self.state = _State(0, NO_LIMIT, ctypes.cast(_uclib.uc_emu_stop, ctypes.c_void_p).value, 0, 0, 0, 0,
                            CHECK_FN(check))
        self._handle = ctypes.c_size_t()
        # Call uc_hook_add directly: the Python binding only accepts Python callables.
        err = _hook_add(
            uc_handle(uc),
            ctypes.byref(self._handle),
            ctypes.c_int(UC_HOOK_BLOCK),
            ctypes.cast(_lib.icount_block, ctypes.c_void_p),
            ctypes.c_void_p(ctypes.addressof(self.state)),  # (a cast would tie the state to a cycle)
            ctypes.c_uint64(1),
            ctypes.c_uint64(0),
        )
        if err != 0:
            raise RuntimeError(f"uc_hook_add for the instruction counter failed ({err})")
        self._uc = uc

    @property
    def count(self) -> int:
        return self.state.count

    def set(self, value: int) -> None:
        self.state.count = value
        self.state.last_size = 0  # the correction below no longer applies

    def at(self, pc: int) -> int:
        """Instructions retired before the one at `pc`, which is in the block counted last."""
        s = self.state
        start, size = s.last_addr, s.last_size
        if size and start <= pc < start + size:
            return s.count - (start + size - pc) // 4
        return s.count

    def settle(self, pc: int) -> int:
        """The run stopped before `pc` without running the rest of its block: fix the count."""
        n = self.at(pc)
        self.set(n)
        return n


class _TraceState(ctypes.Structure):
    _fields_ = [("buf", ctypes.POINTER(ctypes.c_uint64)), ("len", ctypes.c_uint64), ("cap", ctypes.c_uint64)]


_lib.trace_push.argtypes = [ctypes.POINTER(_TraceState), ctypes.c_uint64]
_lib.trace_free.argtypes = [ctypes.POINTER(_TraceState)]


class InsnTrace:
    """The address of every executed instruction (--trace-insns), recorded by a native code
    hook; the board adds the instructions it performs itself and drops one a hook stopped
    before (it did not execute)."""

    def __init__(self, uc: Uc) -> None:
        self.state = _TraceState(None, 0, 0)
        handle = ctypes.c_size_t()
        err = _hook_add(uc_handle(uc), ctypes.byref(handle), ctypes.c_int(UC_HOOK_CODE),
                        ctypes.cast(_lib.trace_code, ctypes.c_void_p),
                        ctypes.cast(ctypes.pointer(self.state), ctypes.c_void_p), ctypes.c_uint64(1), ctypes.c_uint64(0))
        if err != 0:
            raise RuntimeError(f"uc_hook_add for the instruction trace failed ({err})")

    def __len__(self) -> int:
        return self.state.len

    def append(self, addr: int) -> None:
        _lib.trace_push(ctypes.byref(self.state), addr)

    def drop_last(self, addr: int) -> None:
        """The last recorded instruction, if at `addr`, did not execute (a hook stopped before it)."""
        s = self.state
        if s.len and s.buf[s.len - 1] == addr:
            s.len -= 1

    def truncate(self, n: int) -> None:
        self.state.len = min(self.state.len, n)

    def addresses(self) -> list[int]:
        s = self.state
        return s.buf[: s.len] if s.len else []

    def __del__(self) -> None:
        _lib.trace_free(ctypes.byref(self.state))
