"""Turn a scenario's events into observations: PSTATE at named points, the guest exit, each
probe's outcome, the exposure window, PAN/UAO writes after the exit, the host's PSTATE before
and after the world switch field by field, and every exception taken to EL2 with the
HCR_EL2/SCTLR_EL2 bits that decide PAN on entry (facts §1.6).

PSTATE in observations (a stable JSON form): a dict with every field PState models, by its
PState name (the rows of harness.arch.regs.PSTATE: `n z c v uao pan ss il d a i f el sp nrw dit
ssbs btype`),
plus `daif` (D:A:I:F as a 4-bit number); points add `icount`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

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


def pstate_fields(bits: int) -> dict[str, int]:
    ps = PState.from_bits(bits)
    return {**{name: getattr(ps, name) for name in PSTATE_FIELD_NAMES}, "daif": ps.daif}


def pstate_changes(before: dict | None, after: dict | None) -> dict[str, list[int]]:
    """{field: [before, after]} for every PState field that differs between two observations."""
    if before is None or after is None:
        return {}
    return {f: [before[f], after[f]] for f in PSTATE_FIELD_NAMES if before[f] != after[f]}


def observe(scenario: Scenario, events: list[ev.Event], labels: dict[str, int],
            location: Callable[[int], str], exit_code: int, *, has_pan: bool = True) -> dict:
    seq = [e for e in events if not isinstance(e, ev.MemoryWrite)]
    marks = [dataclasses.replace(e, label=canonical_label(e.label)) for e in seq if isinstance(e, ev.LabelReached)]

    def first(label: str, after: int = -1) -> ev.LabelReached | None:
        return next((m for m in marks if m.label == label and m.icount > after), None)

    points = {}
    for name in POINTS:
        m = first(name)
        if m is not None:
            points[name] = {**pstate_fields(m.pstate), "icount": m.icount}

    before = first("host_before_call")
    after = first("host_after_call")
    t_before = before.icount if before else 1 << 62
    t_after = after.icount if after else 1 << 62

    guest = first("guest_entry")
    exit_ev = None
    if guest is not None:
        exit_ev = next((e for e in seq if isinstance(e, ev.ExceptionEntry) and e.icount >= guest.icount
                        and e.from_el in (0, 1) and e.to_el == 2), None)
    exit_obs = None
    if exit_ev is not None:
        exit_obs = {"cause": exit_ev.cause, "type": exit_ev.exc_type, "esr": exit_ev.esr, "from_el": exit_ev.from_el,
                    "ec": None if exit_ev.esr is None else exit_ev.esr >> 26,
                    "vector_offset": exit_ev.vector_offset, "icount": exit_ev.icount,
                    "before": pstate_fields(exit_ev.pstate_before), "after": pstate_fields(exit_ev.pstate_after)}
    t_exit = exit_ev.icount if exit_ev else 1 << 62

    def probe(m: ev.LabelReached | None) -> dict:
        if m is None:
            return {"outcome": "not_run"}
        out = {"outcome": "ok", **pstate_fields(m.pstate), "icount": m.icount}
        # The probe's own access (icount) or, for a call, the fetch at its target (icount + 1).
        hit = next((e for e in seq if isinstance(e, ev.ExceptionEntry) and m.icount <= e.icount <= m.icount + 1
                    and e.cause.is_abort), None)
        if hit is not None:
            out.update(outcome="fault", cause=hit.cause, esr=hit.esr, far=hit.far, ec=hit.esr >> 26,
                       fsc=hit.esr & 0x3F, to_el=hit.to_el, at=location(hit.elr))
        return out

    probes: dict[str, dict] = {}
    for name in HOST_PROBES:
        main = probe(first(name, t_after))
        base = next((m for m in marks if m.label == name and m.icount < t_before), None)
        main["baseline"] = probe(base)["outcome"] if base else "not_run"
        probes[name] = main
    for name in HYP_PROBES:
        probes[name] = probe(first(name, t_after))
    probes[WINDOW_PROBE] = probe(first(WINDOW_PROBE, t_exit))

    # The exposure window: EL2 with PAN=0 from the exit until PAN is set or EL2 is left
    # (only on a CPU with PAN: without it there is nothing to expose).
    window = {"opened": False, "instructions": 0, "closed_by": None, "open_at_return": False,
              "probe_inside": False}
    if has_pan and exit_ev is not None and PState.from_bits(exit_ev.pstate_after).pan == 0:
        window["opened"] = True
        close = None
        for e in seq:
            if e.icount < t_exit or e is exit_ev:
                continue
            if e.icount >= t_after:
                break
            if isinstance(e, ev.PStateChange) and PState.from_bits(e.pstate_after).pan == 1 \
                    and PState.from_bits(e.pstate_after).el == 2:
                close = (e.icount, f"{e.insn} at {location(e.pc)}")
                break
            if isinstance(e, ev.ExceptionReturn) and e.to_el < 2:
                close = (e.icount, f"eret to EL{e.to_el}")
                break
        if close is None:
            window.update(instructions=(t_after - t_exit) if after else None, closed_by=None, open_at_return=True)
        else:
            window.update(instructions=close[0] - t_exit, closed_by=close[1])
        wp = probes[WINDOW_PROBE]
        window["probe_inside"] = wp["outcome"] != "not_run" and wp["icount"] < t_exit + window["instructions"] \
            if window["instructions"] is not None else wp["outcome"] != "not_run"

    # PSTATE.PAN/UAO writes at EL2 between the exit and the host's return (each variant's fix-ups).
    fixups = [{"insn": e.insn, "at": location(e.pc), "icount": e.icount,
               "before": pstate_fields(e.pstate_before), "after": pstate_fields(e.pstate_after)}
              for e in seq if isinstance(e, ev.PStateChange) and t_exit < e.icount < t_after
              and ("pan" in e.insn or "uao" in e.insn) and PState.from_bits(e.pstate_before).el == 2]

    # uao_thread_switch called from the world switch (patch-2017, uao-fix-minimal).
    uts = first("uao_thread_switch", t_exit)
    uao_switch = None
    if uts is not None and uts.icount < t_after:
        w = next((e for e in seq if isinstance(e, ev.PStateChange) and e.icount >= uts.icount and "uao" in e.insn), None)
        fault = next((e for e in seq if isinstance(e, ev.ExceptionEntry) and e.elr == labels.get("uao_thread_switch")
                      and uts.icount <= e.icount <= uts.icount + 1), None)
        uao_switch = {"el": PState.from_bits(uts.pstate).el, "uao_before": PState.from_bits(uts.pstate).uao,
                      "uao_after": PState.from_bits(w.pstate_after).uao if w else PState.from_bits(uts.pstate).uao,
                      "faulted": fault is not None}

    # Exceptions taken to EL2, with what decided PAN on entry (facts §1.6).
    regs: dict[str, int] = {}
    el2_entries = []
    for e in seq:
        if isinstance(e, ev.SysregWrite):
            regs[e.redirected_to or e.name] = e.value
        elif isinstance(e, ev.ExceptionEntry) and e.to_el == 2 and e.icount >= t_before:
            hcr, sctlr = regs.get("HCR_EL2"), regs.get("SCTLR_EL2")
            el2_entries.append({
                "cause": e.cause, "from_el": e.from_el, "at": location(e.elr), "icount": e.icount,
                "e2h": None if hcr is None else HCR_EL2.E2H.get(hcr),
                "tge": None if hcr is None else HCR_EL2.TGE.get(hcr),
                "span": None if sctlr is None else SCTLR.SPAN.get(sctlr),
                "pan_before": PState.from_bits(e.pstate_before).pan, "pan_after": PState.from_bits(e.pstate_after).pan,
                "uao_before": PState.from_bits(e.pstate_before).uao, "uao_after": PState.from_bits(e.pstate_after).uao,
            })

    # The host's PSTATE at the same point of its path before and after the world switch (W2).
    hb, ha = points.get("host_before_call"), points.get("host_after_call")
    host_pstate = {"before": hb, "after": ha, "changed": pstate_changes(hb, ha)}

    failures = sorted({m.label for m in marks if m.label in FAILURE_LABELS})
    return {"points": points, "exit": exit_obs, "exit_code": exit_code, "probes": probes, "window": window,
            "fixups": fixups, "uao_switch": uao_switch, "el2_entries": el2_entries, "host_pstate": host_pstate,
            "failures": failures}
