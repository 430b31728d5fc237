"""Event records the board emits: the raw material of traces, reports and verdicts.

Every record carries the instruction count (instructions retired before it) and
the PC it refers to.  `to_json` gives a dict with sorted, stable keys so the same
run always serialises to the same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import IO, Any, ClassVar

from harness.arch.cause import Cause


class StopReason(StrEnum):
    """Why a run stopped: the board's stops (Stop.reason, RunResult.status), then the ends of
    the debugger's commands. Values are the strings traces and JSON have always carried."""

    POWEROFF = "poweroff"  # PSCI SYSTEM_OFF
    RESET = "reset"  # PSCI SYSTEM_RESET
    BUDGET = "budget"  # the instruction budget ran out
    LOOP = "loop"  # the same vector entered again and again without progress
    UNMAPPED = "unmapped"
    UNHANDLED = "unhandled"  # an exception the board does not model (one routed to EL3, ...)
    HALTED = "halted"  # WFI/WFE with nothing to wake it
    BREAKPOINT = "breakpoint"
    WATCH = "watch"  # Board.stop_on_event asked for it (the debugger's watch- and catchpoints)
    ERROR = "error"  # Unicorn or the harness failed
    # the debugger's
    STEP = "step"  # stepi/step did what it was asked
    NEXT = "next"
    FINISH = "finish"
    UNTIL = "until"
    INTERRUPT = "interrupt"  # Ctrl-C
    LIMIT = "limit"  # a command's instruction limit
    REVERSE_STEP = "reverse-step"
    REVERSE_CONTINUE = "reverse-continue"
    HISTORY_START = "history-start"  # reverse execution reached the oldest checkpoint


# The program powered the board off (PSCI): it ran to its end.
PROGRAM_ENDED = frozenset({StopReason.POWEROFF, StopReason.RESET})


@dataclass(frozen=True)
class Event:
    kind: ClassVar[str] = "event"
    icount: int
    pc: int

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["type"] = self.kind
        return d


@dataclass(frozen=True)
class ExceptionEntry(Event):
    """AArch64.TakeException as the board performed it."""

    kind: ClassVar[str] = "exception_entry"
    exc_type: str = "sync"  # sync | irq | fiq | serror
    cause: Cause = Cause.UNDEFINED
    from_el: int = 0
    to_el: int = 0
    pstate_before: int = 0
    pstate_after: int = 0
    spsr: int = 0
    elr: int = 0
    esr: int | None = None
    far: int | None = None
    vector: int = 0
    vector_offset: int = 0
    note: str = ""


@dataclass(frozen=True)
class ExceptionReturn(Event):
    """An ERET, checked against arch.exception_return (AArch64.ExceptionReturn)."""

    kind: ClassVar[str] = "exception_return"
    from_el: int = 0
    to_el: int = 0
    pstate_before: int = 0
    pstate_after: int = 0
    spsr: int = 0
    elr: int = 0
    illegal: bool = False
    # Set when Unicorn's (QEMU 5.0's) helper produced something else; the Arm result was applied.
    qemu_pstate: int | None = None
    qemu_pc: int | None = None
    note: str = ""


@dataclass(frozen=True)
class PStateChange(Event):
    """A PSTATE field write by an instruction (MSR PAN/UAO/DAIF*/SPSel)."""

    kind: ClassVar[str] = "pstate_change"
    insn: str = ""
    pstate_before: int = 0
    pstate_after: int = 0
    changes: dict[str, list[int]] = field(default_factory=dict)


@dataclass(frozen=True)
class SysregWrite(Event):
    kind: ClassVar[str] = "sysreg_write"
    name: str = ""
    value: int = 0
    redirected_to: str | None = None  # VHE E2H redirection or *_EL12 alias target


@dataclass(frozen=True)
class LabelReached(Event):
    kind: ClassVar[str] = "label"
    label: str = ""
    pstate: int = 0


@dataclass(frozen=True)
class MemoryWrite(Event):
    """A write into a watched range (debugger `watch *ADDR`)."""

    kind: ClassVar[str] = "memory_write"
    addr: int = 0
    size: int = 0
    value: int = 0


@dataclass(frozen=True)
class ModelMismatch(Event):
    """The harness's architecture model could not explain what Unicorn did."""

    kind: ClassVar[str] = "model_mismatch"
    what: str = ""


@dataclass(frozen=True)
class Stop(Event):
    kind: ClassVar[str] = "stop"
    reason: StopReason = StopReason.ERROR
    message: str = ""


def write_jsonl(events: Iterable[Event], out: IO[str]) -> None:
    for ev in events:
        out.write(json.dumps(ev.to_json(), sort_keys=True, separators=(",", ":")))
        out.write("\n")
