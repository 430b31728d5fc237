"""`python -m harness explore`: an IRQ, FIQ or SError at every instruction boundary of the
world switch, each run to the end on the board.

A boundary is an instruction count N: N instructions have retired and the interrupt is pending
before the next one. For each scenario the baseline (no extra interrupt) is walked once, one
instruction at a time, from `host_main` to power-off; from the host's call into the world
switch (`host_before_call`) to its return (`host_after_call`), guest included, the board is
saved at every boundary (Board.save_state: copy-on-write, ~20 us). Each kind is then made
pending at each boundary of that range, from that boundary's snapshot, and the board runs on
until the program powers off or enters a function that never returns (`panic`, `hyp_panic`,
the guest's `guest_bad_exception`), or the board stops it.

Each point is *taken* (the board took it at its boundary: before instruction N+1) or *masked*
(held back by the rules the board applies at every boundary: `route_async`, i.e. HCR_EL2
IMO/FMO/AMO/TGE and SCR_EL3, then `async_masked`, i.e. PSTATE.I/F/A against the target EL);
a masked point records where and when it was finally taken, if it was.

Shared continuations. A pending interrupt that is masked changes no architectural state until
it is taken, except through the instructions that observe it: an MRS of ISR_EL1 reads it (v5.11's
__guest_enter and __guest_exit do) and a WFI/WFE wakes on it, so boundaries are never grouped
across one. The runs from consecutive boundaries where a kind is
masked therefore coincide from the first boundary where it is unmasked on: one of them (the
latest) is run and its outcome is attributed to each, which names it in `shared_with`. The test
suite compares this with one run per point (tests/test_explore.py).

Boundaries are instruction counts, and an exception entry retires no instruction: the state at
a vector has the count of the boundary before the instruction that raised it. The walk keeps one
state per count, the first it sees: before a faulting instruction, but already at the vector
where the board takes the scenario's own exit interrupt inside a step. Entry sets D, A, I and F
and never lowers the EL, so every interrupt is masked at a vector; and one made pending beside
the scenario's own interrupt waits behind it (the board takes injections in order), so either
state of that count gives the same outcome.

This module runs on the board through harness.machine only; it never calls Unicorn.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from harness.arch import sysregs
from harness.arch.exceptions import ExceptionType, SysCtx, async_masked, route_async
from harness.arch.pstate import PState
from harness.arch.regs import HCR_EL2
from harness.machine import Board, decode
from harness.scenarios.invariants import check_points, phase
from harness.scenarios.runner import (
    MAX_INSNS,
    ScenarioError,
    _Booted,
    booted_for,
    pool_map,
)
from harness.scenarios.scenario import Scenario
from harness.scenarios.world import FAILURE_LABELS
from harness.trace import events as ev

KINDS = ("irq", "fiq", "serror")
_TYPE = {"irq": ExceptionType.IRQ, "fiq": ExceptionType.FIQ, "serror": ExceptionType.SERROR}
START_LABEL, END_LABEL = "host_before_call", "host_after_call"
NOTE = "explore"  # marks the entry of the interrupt explore made pending
# The end state of a run that enters a function that never returns.
END_STATE_AT = {"panic": "panic", "hyp_panic": "hyp_panic", "guest_bad_exception": "unexpected_vector"}
assert set(END_STATE_AT) == set(FAILURE_LABELS)
HCR_VF, HCR_VI, HCR_VSE = 1 << 6, 1 << 7, 1 << 8  # virtual FIQ, IRQ, SError pending (D13.2.48)


def held_back(kind: str, pstate: PState, hcr: int, scr: int) -> tuple[int, bool]:
    """(target EL, masked) of an interrupt of `kind` at a boundary with this PSTATE, HCR_EL2 and
    SCR_EL3: the rules the board applies (AArch64 interrupt routing and masking)."""
    ctx = SysCtx(hcr_el2=hcr, scr_el3=scr)
    target = route_async(_TYPE[kind], pstate.el, ctx)
    return target, async_masked(_TYPE[kind], target, pstate, ctx)


@dataclass(frozen=True)
class Boundary:
    """The baseline at one instruction boundary (the first state with that count)."""

    icount: int
    pc: int
    pstate: int
    hcr: int
    sees_pending: bool   # the instruction here observes a pending interrupt (_sees_pending)
    masked_after: bool   # every kind masked at an exception entry taken here (same count)


@dataclass
class Walk:
    """The baseline of one scenario, walked once."""

    boundaries: dict[int, Boundary]   # every count from the call into the world switch to power-off
    snapshots: dict                   # count -> BoardState, for start..end
    start: int
    end: int
    events: list[ev.Event]
    exit_code: int
    scr: int
    guest: int | None          # the guest's first boundary (its first instruction, guest_entry)
    exit: int | None           # the count of the guest exit's entry (as a run records it)


class Explorer:
    """Explores scenarios on shared boots (one per variant, CPU and VHE)."""

    def __init__(self, quirks: tuple[str, ...] = ()) -> None:
        self.quirks = quirks
        self._boots: dict[tuple, _Booted] = {}

    def scenario(self, sc: Scenario, kinds: Iterable[str] = KINDS, *, share: bool = True) -> dict:
        """Every boundary x kind of `sc` (see the module docstring); a JSON-ready dict."""
        booted = booted_for(self._boots, sc, self.quirks)
        kinds = tuple(kinds)
        walk = walk_baseline(booted, sc)
        b = booted.board
        stops = [booted.image.addr_of(n) for n in FAILURE_LABELS]
        for a in stops:
            b.add_breakpoint(a)
        try:
            points = {k: {} for k in kinds}
            # Newest first: Unicorn keeps snapshots as a stack, and restoring one discards later ones.
            for n in range(walk.end, walk.start - 1, -1):
                for k in kinds:
                    later = points[k].get(n + 1)
                    if share and later is not None and _masked_through(walk, k, n) and later["outcome"] == "masked" \
                            and later["rule"]["masked"]:
                        rec = _point(booted, walk, n, k)
                        rec.update({f: later[f] for f in _SHARED})
                        rec["shared_with"] = later["shared_with"] if later["shared_with"] is not None else n + 1
                    else:
                        rec = _run_point(booted, walk, n, k)
                    points[k][n] = rec
        finally:
            for a in stops:
                b.remove_breakpoint(a)
        return _result(booted, sc, walk, kinds, points)


def walk_baseline(booted: _Booted, sc: Scenario) -> Walk:
    b = booted.start(sc)
    img = booted.image
    first, last = img.addr_of(START_LABEL), img.addr_of(END_LABEL)
    b.add_breakpoint(first)
    r = b.run(MAX_INSNS)
    b.remove_breakpoint(first)
    if r.status != "breakpoint":
        raise ScenarioError(f"{sc.id}: the baseline did not reach {START_LABEL}: {r.status}: {r.message}")
    scr = b.read_sysreg("SCR_EL3")
    start = b.icount
    end = None
    boundaries: dict[int, Boundary] = {}
    snapshots = {}
    guest_at = img.addr_of("guest_entry")
    guest = exit_ = None
    while True:
        n = b.icount
        pc, ps, hcr = b.pc_pstate_hcr()
        if guest is None and pc == guest_at:
            guest = n
        if n in boundaries:
            # the state at a vector, after an entry that retired nothing: note whether any kind
            # could be taken there (the rules say no, since entry masks all of D, A, I and F)
            open_ = any(not held_back(k, ps, hcr, scr)[1] for k in KINDS)
            if open_:
                old = boundaries[n]
                boundaries[n] = Boundary(old.icount, old.pc, old.pstate, old.hcr, old.sees_pending, False)
        else:
            boundaries[n] = Boundary(n, pc, ps.to_bits(), hcr, _sees_pending(b.word_at(pc)), True)
            if end is None:
                snapshots[n] = b.save_state()
                if pc == last and n > start:
                    end = n
        seen = len(b.events)
        r = b.step(1)
        # The exit's entry has the count after its step: the HVC's, which retires, or the boundary
        # an interrupt or abort is taken at. (Events emitted inside a step carry other counts.)
        if guest is not None and exit_ is None and any(
                isinstance(e, ev.ExceptionEntry) and e.from_el < 2 and e.to_el == 2 for e in b.events[seen:]):
            exit_ = b.icount
        if r is not None:
            break
    if r.status != "poweroff" or end is None:
        raise ScenarioError(f"{sc.id}: the baseline does not run from {START_LABEL} through {END_LABEL} "
                            f"to power-off: {r.status}: {r.message} at {b.location(r.pc)}")
    return Walk(boundaries, snapshots, start, end, list(b.events), booted.exit_code(), scr, guest, exit_)


_ISR_EL1 = sysregs.lookup("ISR_EL1").encoding


def _sees_pending(word: int) -> bool:
    """A pending interrupt changes what this instruction does: a WFI/WFE wakes on it, an MRS of
    ISR_EL1 reads it."""
    if decode.is_wfx(word)[0]:
        return True
    ops = decode.sysreg_operands(word)
    return ops is not None and ops[2] and ops[0] == _ISR_EL1


def _masked_through(walk: Walk, kind: str, n: int) -> bool:
    """`kind` is held back at every state with count n, and nothing there observes it pending."""
    bd = walk.boundaries[n]
    return (not bd.sees_pending and bd.masked_after
            and held_back(kind, PState.from_bits(bd.pstate), bd.hcr, walk.scr)[1])


# Fields a masked point shares with the run it is attributed to.
_SHARED = ("outcome", "note", "taken_at", "taken_pc", "taken_where", "taken_src", "from_el", "to_el", "vector", "vector_offset",
           "pstate_before", "pstate_after", "e2h", "tge", "returned", "return_diff", "end", "end_where",
           "exit_code", "guest_exit", "after_restore")


def _point(booted: _Booted, walk: Walk, n: int, kind: str) -> dict:
    """What the baseline and the rules say about boundary n."""
    bd = walk.boundaries[n]
    ps = PState.from_bits(bd.pstate)
    target, masked = held_back(kind, ps, bd.hcr, walk.scr)
    where, src = _where(booted, bd.pc)
    return {"icount": n, "pc": bd.pc, "at": where, "src": src, "pstate": bd.pstate, "hcr": bd.hcr,
            "rule": {"target_el": target, "masked": masked}, "shared_with": None}


def _where(booted: _Booted, addr: int) -> tuple[str, str]:
    img = booted.image
    loc = img.source_at(addr)
    return img.symbol_at(addr) or f"{addr:#x}", f"{loc.file}:{loc.line}" if loc else "?"


def _run_point(booted: _Booted, walk: Walk, n: int, kind: str) -> dict:
    b = booted.board
    state = walk.snapshots[n]
    b.restore_state(state)
    b.inject(kind, at_icount=n, note=NOTE)
    r = b.run(MAX_INSNS)
    rec = _point(booted, walk, n, kind)
    rec.update(_classify(booted, walk, n, kind, state.n_events, b.events[state.n_events:], r, b))
    return rec


def _classify(booted: _Booted, walk: Walk, n: int, kind: str, n_prefix: int, events: list[ev.Event], r,
              b: Board) -> dict:
    """Our interrupt's entry and return, and how the run ended, from the run's events."""
    out: dict = {f: None for f in _SHARED}
    i = next((i for i, e in enumerate(events) if isinstance(e, ev.ExceptionEntry) and e.note == NOTE), None)
    if i is not None:
        e: ev.ExceptionEntry = events[i]
        first = next(x for x in events if isinstance(x, ev.ExceptionEntry) and x.exc_type == kind)
        bd = walk.boundaries[e.icount]
        out.update(outcome="taken" if e.icount == n else "masked", taken_at=e.icount, taken_pc=e.elr,
                   taken_where=_where(booted, e.elr)[0], taken_src=_where(booted, e.elr)[1], from_el=e.from_el, to_el=e.to_el,
                   vector=booted.image.symbol_at(e.vector - e.vector_offset) or f"{e.vector - e.vector_offset:#x}",
                   vector_offset=e.vector_offset, pstate_before=e.pstate_before, pstate_after=e.pstate_after,
                   e2h=HCR_EL2.E2H.get(bd.hcr), tge=HCR_EL2.TGE.get(bd.hcr), returned=False)
        if first is not e and first.icount == e.icount:
            out["note"] = "the scenario's own interrupt of this kind was taken first, at the same boundary"
        ret = next((x for x in events[i + 1:] if isinstance(x, ev.ExceptionReturn)
                    and x.elr == e.elr and x.to_el == e.from_el), None)
        if ret is not None:
            diff = PState.from_bits(e.pstate_before).diff(PState.from_bits(ret.pstate_after))
            out.update(returned=True, return_diff={f: list(v) for f, v in sorted(diff.items())})
        # What the exit path put back into ELR/SPSR_EL2 after it (v4.13 restores the guest exit's).
        restore = {}
        for x in events[i + 1:]:
            if isinstance(x, ev.SysregWrite) and x.name in ("ELR_EL2", "SPSR_EL2") and x.name not in restore:
                restore[x.name] = x.value
        out["after_restore"] = restore
    else:
        out["outcome"] = "masked"
    gx = guest_exit(walk.events[:n_prefix] + events, walk.start)
    if gx is not None:
        out["guest_exit"] = {"icount": gx.icount, "cause": gx.cause, "elr": gx.elr, "spsr": gx.spsr}
    if r.status == "breakpoint":
        name = (booted.image.symbol_at(r.pc) or "").split("+")[0]
        out["end"] = END_STATE_AT.get(name, "stop")
    elif r.status in ("poweroff", "reset"):
        out["end"] = "poweroff"
        out["exit_code"] = booted.exit_code()
    elif r.status in ("loop", "budget"):
        out["end"] = "loop"
    else:
        out["end"] = "stop"
    out["end_where"] = b.location(r.pc) + ("" if out["end"] != "stop" else f": {r.status}: {r.message}")
    return out


def guest_exit(events: list[ev.Event], since: int) -> ev.ExceptionEntry | None:
    """The guest exit: the first entry from the guest (EL1 or EL0) to EL2 once the guest has
    started (its first instruction, `guest_entry`, reached at or after count `since`)."""
    entered = None
    for x in events:
        if x.icount < since:
            continue
        if entered is None:
            if isinstance(x, ev.LabelReached) and x.label == "guest_entry":
                entered = x.icount
        elif isinstance(x, ev.ExceptionEntry) and x.from_el < 2 and x.to_el == 2:
            return x
    return None


def _window(booted: _Booted, walk: Walk) -> dict | None:
    """The baseline's guest entry and exit (the exit entry's count) and the boundary at
    abort_guest_exit_start, where a pending SError is taken (X4; None when the baseline does not
    pass there, as v5.11's __guest_exit enters its window only when ISR_EL1.A is set)."""
    if walk.guest is None or walk.exit is None:
        return None
    at = booted.image.symbols.get("abort_guest_exit_start")
    start = next((n for n in sorted(walk.boundaries) if n >= walk.exit and walk.boundaries[n].pc == at), None)
    return {"guest": walk.guest, "exit": walk.exit, "start": start}


def _result(booted: _Booted, sc: Scenario, walk: Walk, kinds: tuple[str, ...], points: dict) -> dict:
    virtual = sorted({n for n, bd in walk.boundaries.items() if bd.hcr & (HCR_VF | HCR_VI | HCR_VSE)})
    last = max(walk.boundaries)
    return {
        "id": sc.id, "variant": sc.variant, "config_id": sc.config_id, "axes": sc.axes(),
        "range": [walk.start, walk.end], "window": _window(booted, walk),
        "baseline": {"exit_code": walk.exit_code, "icount": last, "pstate_at_end": walk.boundaries[last].pstate},
        "labels": {name: booted.image.addr_of(name) for name in ("abort_guest_exit_start", "abort_guest_exit_end")
                   if name in booted.image.symbols},
        "exit_codes": {name: booted.image.symbols[name] for name in
                       ("ARM_EXCEPTION_IRQ", "ARM_EXCEPTION_EL1_SERROR", "ARM_EXCEPTION_TRAP", "ARM_EXIT_WITH_SERROR_BIT")
                       if name in booted.image.symbols},
        "virtual_interrupts_at": virtual[:1],
        "kinds": {k: [points[k][n] for n in sorted(points[k])] for k in kinds},
    }


# ---------------------------------------------------------------- the record kept and printed

def compact(sres: dict) -> dict:
    """Full point records (after invariants.check_points) -> segments: runs of consecutive
    boundaries with one outcome (a masked group shares its run; a taken point is its own
    segment, with PSTATE before and after entry). Locations map to file:line once (`src`)."""
    src: dict[str, str] = {}
    out = {k: v for k, v in sres.items() if k != "kinds"}
    out["kinds"] = {}
    for kind, pts in sres["kinds"].items():
        segs: list[dict] = []
        for p in pts:
            src[p["at"]] = p["src"]
            if p["taken_where"] is not None:
                src[p["taken_where"]] = p["taken_src"]
            el = PState.from_bits(p["pstate"]).el
            seg = {"n": [p["icount"], p["icount"]], "at": p["at"], "el": el, "phase": phase(sres, p["icount"], el),
                   "outcome": p["outcome"], "rule": p["rule"],
                   "ran_at": p["shared_with"] if p["shared_with"] is not None else p["icount"],
                   "taken_at": p["taken_at"], "taken_where": p["taken_where"], "to_el": p["to_el"],
                   "vector": None if p["vector"] is None else f"{p['vector']}+{p['vector_offset']:#x}",
                   "before": p["pstate_before"], "after": p["pstate_after"], "returned": p["returned"],
                   "differs": p["return_diff"] or None, "end": p["end"],
                   "end_where": p["end_where"] if p["end"] in ("loop", "stop") else None, "exit_code": p["exit_code"],
                   "x": p["x"]}
            if p["note"]:
                seg["note"] = p["note"]
            if p.get("x_why"):
                seg["x_why"] = p["x_why"]
            last = segs[-1] if segs else None
            if (last is not None and p["outcome"] == "masked" and "x_why" not in seg
                    and last["n"][1] == p["icount"] - 1 and _same_outcome(last, seg)):
                last["n"][1] = p["icount"]
            else:
                segs.append(seg)
        out["kinds"][kind] = segs
    out["src"] = dict(sorted(src.items()))
    return out


def _same_outcome(a: dict, b: dict) -> bool:
    return all(a.get(f) == b.get(f) for f in ("el", "phase", "outcome", "rule", "ran_at", "taken_at", "to_el", "vector",
                                               "before", "after", "returned", "differs", "end", "end_where",
                                               "exit_code", "x", "note"))


# ---------------------------------------------------------------- many scenarios, -j N

_WORKER: Explorer | None = None


def _explore_one(args: tuple[Scenario, tuple[str, ...], tuple[str, ...]]) -> dict:
    global _WORKER
    sc, kinds, quirks = args
    if _WORKER is None or _WORKER.quirks != quirks:
        _WORKER = Explorer(quirks)
    sres = _WORKER.scenario(sc, kinds)
    check_points(sres)
    return compact(sres)


def explore_all(scenarios: list[Scenario], kinds: Iterable[str] = KINDS, *, jobs: int = 1,
                quirks: tuple[str, ...] = (), progress: Callable[[dict], None] | None = None) -> list[dict]:
    """Explore each scenario; with jobs > 1 in worker processes. The result is in the order given
    and does not depend on `jobs` (each scenario is explored on its own from its shared boot)."""
    kinds = tuple(kinds)
    tasks = [(sc, kinds, quirks) for sc in scenarios]
    out: list[dict] = []
    for res in pool_map(_explore_one, tasks, jobs):
        out.append(res)
        if progress is not None:
            progress(res)
    return out
