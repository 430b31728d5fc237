"""PSTATE timelines as VCD files for GTKWave (time = instruction count)."""

from __future__ import annotations

from pathlib import Path

from vcd import VCDWriter

from harness.arch.pstate import PState
from harness.trace import events as ev
from harness.trace.timeline import pstate_timeline

_FIELDS = (("EL", 2, "el"), ("PAN", 1, "pan"), ("UAO", 1, "uao"), ("D", 1, "d"), ("A", 1, "a"), ("I", 1, "i"),
           ("F", 1, "f"), ("SPSel", 1, "sp"))


def write_vcd(events: list[ev.Event], path: Path, *, initial: PState | None = None, timescale: str = "1 ns") -> None:
    """One scope `pstate` with EL, PAN, UAO, D, A, I, F, SPSel, and `exception_ec`: the EC of
    each exception entry for one instruction (0xFF for an interrupt, 0 otherwise); `eret` pulses."""
    steps, markers = pstate_timeline(events, initial)
    with open(path, "w") as f, VCDWriter(f, timescale=timescale, date="today", comment="pstate-harness") as w:
        sig = {name: w.register_var("pstate", name, "wire", size=size) for name, size, _ in _FIELDS}
        exc = w.register_var("pstate", "exception_ec", "wire", size=8)
        eret = w.register_var("pstate", "eret", "wire", size=1)
        changes: dict[int, list] = {}
        for s in steps:
            for name, _size, attr in _FIELDS:
                changes.setdefault(s.icount, []).append((sig[name], getattr(s.pstate, attr)))
        for m in markers:
            var, val = (exc, m.ec or 0xFF) if m.kind == "entry" else (eret, 1)
            changes.setdefault(m.icount, []).append((var, val))
            changes.setdefault(m.icount + 1, []).append((var, 0))
        for t in sorted(changes):
            for var, val in changes[t]:
                w.change(var, t, val)
