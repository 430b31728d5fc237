"""Turn a scenario's events into observations: PSTATE at named points, the guest exit, each
probe's outcome, the exposure window, PAN/UAO writes after the exit, the host's PSTATE before
and after the world switch field by field, and every exception taken to EL2 with the
HCR_EL2/SCTLR_EL2 bits that decide PAN on entry (facts §1.6).

The observations are typed records (`Observations` and what it holds); each has `to_json()`,
the stable JSON form `scenarios --json` prints, and `from_json()`, which reads it back.
PSTATE in that form: an object with every field PState models, by its PState name (the rows of
harness.arch.regs.PSTATE: `n z c v uao pan ss il d a i f el sp nrw dit ssbs btype`), plus `daif`
(D:A:I:F as a 4-bit number); points add `icount`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache

from harness.arch.cause import Cause
from harness.arch.pstate import PSTATE_FIELDS, PState
from harness.arch.regs import HCR_EL2, SCTLR
from harness.scenarios.scenario import Scenario
from harness.scenarios.world import (
    FAILURE_LABELS,
    HOST_PROBES,
    HYP_PROBES,
    POINTS,
    WINDOW_PROBE,
    canonical_label,
)
from harness.trace import events as ev

# Every field PState models, in its declaration order: observations and W2 derive from this.
PSTATE_FIELD_NAMES: tuple[str, ...] = PSTATE_FIELDS
_NEVER = 1 << 62   # the count of a point that was not reached


class _Record:
    """JSON of a record: its fields by name, records and containers in their JSON form."""

    def to_json(self) -> dict:
        return {f.name: _json(getattr(self, f.name)) for f in dataclasses.fields(self)}  # type: ignore[arg-type]


def _json(v: object) -> object:
    if isinstance(v, _Record | Probe | PStateSeen):
        return v.to_json()
    if isinstance(v, dict):
        return {k: _json(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_json(x) for x in v]
    return v


class _SeenMethods:
    def to_json(self) -> dict:
        out = {name: getattr(self, name) for name in PSTATE_FIELD_NAMES}
        out["daif"] = self.daif  # type: ignore[attr-defined]
        if self.icount is not None:  # type: ignore[attr-defined]
            out["icount"] = self.icount  # type: ignore[attr-defined]
        return out

    @classmethod
    def from_json(cls, d: dict | None) -> PStateSeen | None:
        if d is None:
            return None
        return cls(**{name: d[name] for name in PSTATE_FIELD_NAMES}, icount=d.get("icount"))  # type: ignore[call-arg]


# A PState as observed: every PState attribute (and `daif`), plus the count where it was seen
# (None where the record's own count says it: the exit's, a fix-up's before/after).
PStateSeen = dataclasses.make_dataclass("PStateSeen", [("icount", int | None, field(default=None))],
                                        bases=(_SeenMethods, PState), frozen=True)
PStateSeen.__module__ = __name__


def seen(bits: int, icount: int | None = None) -> PStateSeen:
    if icount is None:
        return PStateSeen.from_bits(bits)   # memoized per value
    return PStateSeen(**_decoded(bits), icount=icount)


@cache
def _decoded(bits: int) -> dict[str, int]:
    # A run visits few distinct PSTATE values: decode each once, not once per event.
    ps = PState.from_bits(bits)
    return {name: getattr(ps, name) for name in PSTATE_FIELD_NAMES}


@dataclass(frozen=True)
class ProbeFault(_Record):
    """The abort a probe's access (or a call's fetch) took."""

    cause: Cause
    esr: int
    far: int
    ec: int
    fsc: int
    to_el: int
    at: str


@dataclass(frozen=True)
class Probe:
    """A probe's outcome (`ok`, `fault`, `not_run`), the PSTATE it ran with and, for a host
    probe, the outcome of the same probe before the world switch (`baseline`). JSON: one object,
    the PSTATE's fields and the fault's beside `outcome`."""

    outcome: str
    pstate: PStateSeen | None = None
    fault: ProbeFault | None = None
    baseline: str | None = None

    @property
    def icount(self) -> int | None:
        return None if self.pstate is None else self.pstate.icount

    def to_json(self) -> dict:
        out: dict = {"outcome": self.outcome}
        if self.pstate is not None:
            out.update(self.pstate.to_json())
        if self.fault is not None:
            out.update(self.fault.to_json())
        if self.baseline is not None:
            out["baseline"] = self.baseline
        return out

    @classmethod
    def from_json(cls, d: dict) -> Probe:
        fault = ProbeFault(**{f.name: d[f.name] for f in dataclasses.fields(ProbeFault)}) if "fsc" in d else None
        return cls(d["outcome"], PStateSeen.from_json(d) if "icount" in d else None, fault, d.get("baseline"))


@dataclass(frozen=True)
class GuestExit(_Record):
    """The guest exit: the first exception from the guest (EL0/EL1) to EL2, PSTATE around it."""

    cause: Cause
    type: str
    esr: int | None
    from_el: int
    ec: int | None
    vector_offset: int
    icount: int
    before: PStateSeen
    after: PStateSeen


@dataclass(frozen=True)
class Window(_Record):
    """The exposure window: EL2 with PAN=0 from the exit until PAN is set or EL2 is left."""

    opened: bool = False
    instructions: int | None = 0
    closed_by: str | None = None
    open_at_return: bool = False
    probe_inside: bool = False


@dataclass(frozen=True)
class Fixup(_Record):
    """A PSTATE.PAN/UAO write at EL2 between the exit and the host's return."""

    insn: str
    at: str
    icount: int
    before: PStateSeen
    after: PStateSeen


@dataclass(frozen=True)
class UaoSwitch(_Record):
    """uao_thread_switch called from the world switch (patch-2017, uao-fix-minimal)."""

    el: int
    uao_before: int
    uao_after: int
    faulted: bool


@dataclass(frozen=True)
class El2Entry(_Record):
    """An exception taken to EL2, with the HCR_EL2/SCTLR_EL2 bits that decide PAN on entry."""

    cause: Cause
    from_el: int
    at: str
    icount: int
    e2h: int | None
    tge: int | None
    span: int | None
    pan_before: int
    pan_after: int
    uao_before: int
    uao_after: int


@dataclass(frozen=True)
class HostPState(_Record):
    """The host's PSTATE at host_before_call and host_after_call (W2), and
    `changed = {field: [before, after]}` for every PState field that differs."""

    before: PStateSeen | None
    after: PStateSeen | None
    changed: dict[str, list[int]]


@dataclass(frozen=True)
class Observations(_Record):
    points: dict[str, PStateSeen]
    exit: GuestExit | None
    exit_code: int
    probes: dict[str, Probe]
    window: Window
    fixups: list[Fixup]
    uao_switch: UaoSwitch | None
    el2_entries: list[El2Entry]
    host_pstate: HostPState
    failures: list[str]

    @classmethod
    def from_json(cls, d: dict) -> Observations:
        """The records back from their JSON form (a saved scenarios.json, a report's input)."""
        def pair(x: dict) -> dict:
            return {**x, "before": PStateSeen.from_json(x["before"]), "after": PStateSeen.from_json(x["after"])}

        hp = d["host_pstate"]
        return cls(
            points={k: PStateSeen.from_json(p) for k, p in d["points"].items()},
            exit=GuestExit(**pair(d["exit"])) if d["exit"] else None, exit_code=d["exit_code"],
            probes={k: Probe.from_json(p) for k, p in d["probes"].items()}, window=Window(**d["window"]),
            fixups=[Fixup(**pair(f)) for f in d["fixups"]],
            uao_switch=UaoSwitch(**d["uao_switch"]) if d["uao_switch"] else None,
            el2_entries=[El2Entry(**e) for e in d["el2_entries"]],
            host_pstate=HostPState(PStateSeen.from_json(hp["before"]), PStateSeen.from_json(hp["after"]), hp["changed"]),
            failures=d["failures"])


def pstate_changes(before: PState | None, after: PState | None) -> dict[str, list[int]]:
    """{field: [before, after]} for every PState field that differs between two observations."""
    if before is None or after is None:
        return {}
    return {f: [getattr(before, f), getattr(after, f)] for f in PSTATE_FIELD_NAMES
            if getattr(before, f) != getattr(after, f)}


# ---------------------------------------------------------------- from the events

@dataclass
class _Trace:
    """A run's events as observe reads them: exceptions, returns, PSTATE/sysreg writes and the
    labels reached (`by_label`: canonical name -> its marks in order), with the counts of the
    points everything is cut at. `entries`, `changes` and `regs_entries` are `seq`'s exception entries, PSTATE changes, and
    sysreg writes with exception entries, in order: the scans that want only those read them."""

    seq: list[ev.Event]
    location: Callable[[int], str]
    entries: list[ev.ExceptionEntry] = field(default_factory=list)
    changes: list[ev.PStateChange] = field(default_factory=list)
    regs_entries: list[ev.SysregWrite | ev.ExceptionEntry] = field(default_factory=list)
    by_label: dict[str, list[ev.LabelReached]] = field(default_factory=dict)
    t_before: int = _NEVER
    t_after: int = _NEVER
    t_exit: int = _NEVER

    @classmethod
    def of(cls, events: list[ev.Event], location: Callable[[int], str]) -> _Trace:
        t = cls([], location)
        for e in events:
            if isinstance(e, ev.MemoryWrite):
                continue
            t.seq.append(e)
            if isinstance(e, ev.LabelReached):
                label = canonical_label(e.label)
                m = e if label == e.label else dataclasses.replace(e, label=label)
                t.by_label.setdefault(label, []).append(m)
            elif isinstance(e, ev.ExceptionEntry):
                t.entries.append(e)
                t.regs_entries.append(e)
            elif isinstance(e, ev.PStateChange):
                t.changes.append(e)
            elif isinstance(e, ev.SysregWrite):
                t.regs_entries.append(e)
        return t

    def first(self, label: str, after: int = -1) -> ev.LabelReached | None:
        return next((m for m in self.by_label.get(label, ()) if m.icount > after), None)


def observe(scenario: Scenario, events: list[ev.Event], labels: dict[str, int],
            location: Callable[[int], str], exit_code: int, *, has_pan: bool = True) -> Observations:
    t = _Trace.of(events, location)
    points = {name: seen(m.pstate, m.icount) for name in POINTS if (m := t.first(name)) is not None}
    before, after = t.first("host_before_call"), t.first("host_after_call")
    t.t_before = before.icount if before else _NEVER
    t.t_after = after.icount if after else _NEVER
    exit_ev = _guest_exit(t)
    t.t_exit = exit_ev.icount if exit_ev else _NEVER
    probes = _probes(t)
    hb, ha = points.get("host_before_call"), points.get("host_after_call")
    return Observations(
        points=points, exit=None if exit_ev is None else _exit_record(exit_ev), exit_code=exit_code, probes=probes,
        window=_window(t, exit_ev, probes[WINDOW_PROBE], reached_return=after is not None) if has_pan else Window(),
        fixups=_fixups(t), uao_switch=_uao_switch(t, labels), el2_entries=_el2_entries(t),
        host_pstate=HostPState(hb, ha, pstate_changes(hb, ha)),
        failures=sorted({label for label in t.by_label if label in FAILURE_LABELS}))


def _guest_exit(t: _Trace) -> ev.ExceptionEntry | None:
    guest = t.first("guest_entry")
    if guest is None:
        return None
    return next((e for e in t.entries if e.icount >= guest.icount
                 and e.from_el in (0, 1) and e.to_el == 2), None)


def _exit_record(e: ev.ExceptionEntry) -> GuestExit:
    return GuestExit(e.cause, e.exc_type, e.esr, e.from_el, None if e.esr is None else e.esr >> 26, e.vector_offset,
                     e.icount, seen(e.pstate_before), seen(e.pstate_after))


def _probe(t: _Trace, m: ev.LabelReached | None, baseline: str | None = None) -> Probe:
    if m is None:
        return Probe("not_run", baseline=baseline)
    # The probe's own access (icount) or, for a call, the fetch at its target (icount + 1).
    hit = next((e for e in t.entries if m.icount <= e.icount <= m.icount + 1
                and e.cause.is_abort), None)
    fault = None if hit is None else ProbeFault(hit.cause, hit.esr, hit.far, hit.esr >> 26, hit.esr & 0x3F,
                                                hit.to_el, t.location(hit.elr))
    return Probe("ok" if fault is None else "fault", seen(m.pstate, m.icount), fault, baseline)


def _probes(t: _Trace) -> dict[str, Probe]:
    """Host probes after the return (with the same probe before the call as the baseline), hyp
    probes after the return, the window probe after the exit."""
    probes = {}
    for name in HOST_PROBES:
        base = next((m for m in t.by_label.get(name, ()) if m.icount < t.t_before), None)
        probes[name] = _probe(t, t.first(name, t.t_after), _probe(t, base).outcome if base else "not_run")
    for name in HYP_PROBES:
        probes[name] = _probe(t, t.first(name, t.t_after))
    probes[WINDOW_PROBE] = _probe(t, t.first(WINDOW_PROBE, t.t_exit))
    return probes


def _window(t: _Trace, exit_ev: ev.ExceptionEntry | None, wp: Probe, *, reached_return: bool) -> Window:
    """EL2 with PAN=0 from the exit until PAN is set or EL2 is left (only on a CPU with PAN:
    without it there is nothing to expose)."""
    if exit_ev is None or PState.from_bits(exit_ev.pstate_after).pan != 0:
        return Window()
    close = None
    for e in t.seq:
        if e.icount < t.t_exit or e is exit_ev:
            continue
        if e.icount >= t.t_after:
            break
        if isinstance(e, ev.PStateChange) and PState.from_bits(e.pstate_after).pan == 1 \
                and PState.from_bits(e.pstate_after).el == 2:
            close = (e.icount, f"{e.insn} at {t.location(e.pc)}")
            break
        if isinstance(e, ev.ExceptionReturn) and e.to_el < 2:
            close = (e.icount, f"eret to EL{e.to_el}")
            break
    ran = wp.outcome != "not_run"
    if close is None:
        n = (t.t_after - t.t_exit) if reached_return else None
        inside = ran and wp.icount < t.t_exit + n if n is not None else ran
        return Window(True, n, None, True, inside)
    n = close[0] - t.t_exit
    return Window(True, n, close[1], False, ran and wp.icount < t.t_exit + n)


def _fixups(t: _Trace) -> list[Fixup]:
    """PSTATE.PAN/UAO writes at EL2 between the exit and the host's return (each variant's fix-ups)."""
    return [Fixup(e.insn, t.location(e.pc), e.icount, seen(e.pstate_before), seen(e.pstate_after))
            for e in t.changes if t.t_exit < e.icount < t.t_after
            and ("pan" in e.insn or "uao" in e.insn) and PState.from_bits(e.pstate_before).el == 2]


def _uao_switch(t: _Trace, labels: dict[str, int]) -> UaoSwitch | None:
    uts = t.first("uao_thread_switch", t.t_exit)
    if uts is None or uts.icount >= t.t_after:
        return None
    w = next((e for e in t.changes if e.icount >= uts.icount and "uao" in e.insn), None)
    fault = next((e for e in t.entries if e.elr == labels.get("uao_thread_switch")
                  and uts.icount <= e.icount <= uts.icount + 1), None)
    ps = PState.from_bits(uts.pstate)
    return UaoSwitch(ps.el, ps.uao, PState.from_bits(w.pstate_after).uao if w else ps.uao, fault is not None)


def _el2_entries(t: _Trace) -> list[El2Entry]:
    """Exceptions taken to EL2 from the host's call on, with what decided PAN on entry (facts §1.6)."""
    regs: dict[str, int] = {}
    out = []
    for e in t.regs_entries:
        if isinstance(e, ev.SysregWrite):
            regs[e.redirected_to or e.name] = e.value
        elif isinstance(e, ev.ExceptionEntry) and e.to_el == 2 and e.icount >= t.t_before:
            hcr, sctlr = regs.get("HCR_EL2"), regs.get("SCTLR_EL2")
            b, a = PState.from_bits(e.pstate_before), PState.from_bits(e.pstate_after)
            out.append(El2Entry(e.cause, e.from_el, t.location(e.elr), e.icount,
                                None if hcr is None else HCR_EL2.E2H.get(hcr), None if hcr is None else HCR_EL2.TGE.get(hcr),
                                None if sctlr is None else SCTLR.SPAN.get(sctlr), b.pan, a.pan, b.uao, a.uao))
    return out
