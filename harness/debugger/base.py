"""What every part of the debugger shares: the one-line error, the preconditions a command or an
operation declares, and numbers as commands write them."""

from __future__ import annotations

from enum import Enum

from harness.arch.pstate import PState

MASK64 = (1 << 64) - 1
NOTHING_LOADED = "nothing loaded: load scenario NAME [--variant V] or run PROGRAM"


class DebuggerError(Exception):
    """Bad command or argument: one line for the user."""


class Needs(Enum):
    """What a command or an operation needs before it runs (pwndbg's OnlyWhenRunning)."""

    NOTHING = 0
    LOADED = 1  # a target loaded (reading state, reverse execution)
    RUNNING = 2  # a target that can execute: loaded and not powered off


def parse_int(text: str) -> int:
    """A number as a command writes it: decimal, 0x.., 0b.., 0o.., with _ separators."""
    return int(text.strip().replace("_", ""), 0)


def fit(value: int, bits: int, what: str) -> int:
    """`value` as `bits` bits (a negative one in two's complement); refused if it does not fit."""
    if not -(1 << (bits - 1)) <= value < 1 << bits:
        raise DebuggerError(f"{value:#x} does not fit in the {bits} bits of {what}")
    return value & ((1 << bits) - 1)


def checked_pstate(ps: PState) -> PState:
    """A PSTATE the user may set: an AArch64 mode the board models."""
    if ps.nrw:
        raise DebuggerError("PSTATE.nRW=1 is AArch32 state, which the board does not model")
    if ps.el == 0 and ps.sp:
        raise DebuggerError("EL0 has only SP_EL0: PSTATE.SP must be 0 at EL0 (M[3:0]=0b0001 is reserved)")
    return ps
