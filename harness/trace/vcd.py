"""PSTATE timelines as VCD files for GTKWave (time = instruction count)."""

from __future__ import annotations

import datetime
import os
from collections.abc import Sequence
from pathlib import Path

from vcd import VCDWriter

from harness.arch.pstate import PSTATE_FIELDS, PState
from harness.arch.regs import PSTATE
from harness.trace import events as ev
from harness.trace.timeline import Span, pstate_timeline

# The flags change without an event, so the events cannot give them; M[4] is always 0 here.
_LEFT_OUT = {"n", "z", "c", "v", "nrw"}


def vcd_date() -> str:
    """Now, or SOURCE_DATE_EPOCH when set (for reproducible files)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = (datetime.datetime.fromtimestamp(int(epoch), datetime.UTC) if epoch and epoch.isdigit()
            else datetime.datetime.now(datetime.UTC))
    return when.strftime("%Y-%m-%d %H:%M:%S UTC")


def write_vcd(events: list[ev.Event], path: Path, *, initial: PState | None = None, timescale: str = "1 ns",
              phases: Sequence[Span] = (), windows: Sequence[Span] = (), date: str | None = None,
              comment: str = "pstate-harness") -> None:
    """Scope `pstate`: every PSTATE field the events give (EL, SPSel, PAN, UAO, D, A, I, F, SS,
    IL, ...); `exception_ec`, the EC of each exception entry for one instruction (0xFF for an
    interrupt); `eret` pulses. Scope `run`: `phase`, the kernel phase's name (a string), and
    `window`, 1 inside each of `windows`."""
    steps, markers = pstate_timeline(events, initial)
    fields = [f for f in PSTATE_FIELDS if f not in _LEFT_OUT]
    with open(path, "w") as f, VCDWriter(f, timescale=timescale, date=date or vcd_date(), comment=comment) as w:
        # each field named and sized as regs.PSTATE declares it
        sig = {name: w.register_var("pstate", PSTATE[name].label, "wire", size=PSTATE[name].width) for name in fields}
        exc = w.register_var("pstate", "exception_ec", "wire", size=8)
        eret = w.register_var("pstate", "eret", "wire", size=1)
        phase = w.register_var("run", "phase", "string", init="") if phases else None
        window = w.register_var("run", "window", "wire", size=1, init=0) if windows else None
        changes: dict[int, list] = {}
        for s in steps:
            for name in fields:
                changes.setdefault(s.icount, []).append((sig[name], getattr(s.pstate, name)))
        for m in markers:
            var, val = (exc, m.ec or 0xFF) if m.kind == "entry" else (eret, 1)
            changes.setdefault(m.icount, []).append((var, val))
            changes.setdefault(m.icount + 1, []).append((var, 0))
        for p in phases:
            changes.setdefault(p.start, []).append((phase, p.name.replace(" ", "_")))
        for s in windows:
            changes.setdefault(s.start, []).append((window, 1))
            changes.setdefault(s.end, []).append((window, 0))
        for t in sorted(changes):
            for var, val in changes[t]:
                w.change(var, t, val)
