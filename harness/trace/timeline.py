"""PSTATE over instruction count, from a run's events (the raw material of plots and VCDs)."""

from __future__ import annotations

from dataclasses import dataclass

from harness.arch.pstate import PState
from harness.trace import events as ev


@dataclass(frozen=True)
class Step:
    icount: int
    pstate: PState
    cause: str


@dataclass(frozen=True)
class Span:
    """A named stretch of a run, [start, end) in instructions: a kernel phase, a window."""
    name: str
    start: int
    end: int


@dataclass(frozen=True)
class Marker:
    icount: int
    kind: str       # entry | eret
    text: str       # e.g. "hvc EL1->EL2", "eret EL2->EL1"
    ec: int         # ESR_ELx.EC for an entry (0 when none), 0 for an eret


def pstate_timeline(events: list[ev.Event], initial: PState | None = None) -> tuple[list[Step], list[Marker]]:
    """The step function of PSTATE (one Step per change, with its cause) and the exception
    entries and returns as markers."""
    steps: list[Step] = []
    markers: list[Marker] = []
    cur = initial

    def push(ic: int, ps: PState, cause: str) -> None:
        nonlocal cur
        if ps != cur:
            steps.append(Step(ic, ps, cause))
            cur = ps

    for e in events:
        if isinstance(e, ev.ExceptionEntry):
            text = f"{e.cause} EL{e.from_el}->EL{e.to_el}"
            if cur is None:
                push(e.icount, PState.from_bits(e.pstate_before), "start")
            push(e.icount, PState.from_bits(e.pstate_after), text)
            markers.append(Marker(e.icount, "entry", text, 0 if e.esr is None else e.esr >> 26))
        elif isinstance(e, ev.ExceptionReturn):
            text = f"eret EL{e.from_el}->EL{e.to_el}" + (" (illegal)" if e.illegal else "")
            if cur is None:
                push(e.icount, PState.from_bits(e.pstate_before), "start")
            push(e.icount, PState.from_bits(e.pstate_after), text)
            markers.append(Marker(e.icount, "eret", text, 0))
        elif isinstance(e, ev.PStateChange):
            if cur is None:
                push(e.icount, PState.from_bits(e.pstate_before), "start")
            push(e.icount, PState.from_bits(e.pstate_after), e.insn)
        elif isinstance(e, ev.LabelReached) and cur is None:
            push(e.icount, PState.from_bits(e.pstate), "start")
    return steps, markers
