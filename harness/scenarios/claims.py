"""The review's claims (shared/reference/thread-claims.md) as predicates over observations.

Each claim names the scenarios it is decided on and a test that reads one scenario's
observations (and, where the claim compares code variants, the same configuration under
v4.13). The verdict follows from the evidence alone: holds everywhere, fails everywhere, or
holds only under conditions found by looking for the scenario axes that separate the two."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

from harness.scenarios.runner import ScenarioRun
from harness.scenarios.scenario import Scenario
from harness.scenarios.world import HOST_PROBES, WINDOW_PROBE

Index = dict[tuple[str, str], ScenarioRun]   # (variant, config_id) -> run
Test = Callable[[ScenarioRun, Index], "tuple[bool, dict] | None"]


@dataclass(frozen=True)
class Claim:
    id: str
    role: str
    claim: str
    select: Callable[[Scenario], bool]
    test: Test


def _pt(run: ScenarioRun, name: str, field: str) -> int | None:
    p = run.observations["points"].get(name)
    return None if p is None else p[field]


def _probe(run: ScenarioRun, name: str) -> dict:
    return run.observations["probes"][name]


def _twin(run: ScenarioRun, index: Index, variant: str = "v4.13") -> ScenarioRun | None:
    return index.get((variant, run.scenario.config_id))


def _vhe(s: Scenario) -> bool:
    return s.vhe and s.cpu == "max"


# ---------------------------------------------------------------- the tests

def _uao_lost(run: ScenarioRun, _index: Index, *, gate: bool) -> tuple[bool, dict] | None:
    """KERNEL_DS in, UAO cleared by the exit, the KERNEL_DS uaccess faults after the return."""
    before, after = _pt(run, "host_before_call", "uao"), _pt(run, "host_after_call", "uao")
    if gate and before != 1:
        return None  # the host did not enter with KERNEL_DS (UAO=1)
    k = _probe(run, "probe_uaccess_kernel")
    exit_ = run.observations["exit"] or {}
    obs = {"uao_before_call": before, "uao_at_exit_vector": exit_.get("after", {}).get("uao"),
           "uao_after_return": after, "kernel_ds_uaccess": f"{k['baseline']} -> {k['outcome']}"}
    return (before == 1 and after == 0 and k["baseline"] == "ok" and k["outcome"] == "fault"), obs


def _r1(run: ScenarioRun, _index: Index) -> tuple[bool, dict]:
    exit_ = run.observations["exit"] or {}
    u = _probe(run, "probe_uaccess_user")
    obs = {"uao_before_call": _pt(run, "host_before_call", "uao"),
           "uao_at_exit_vector": exit_.get("after", {}).get("uao"),
           "uao_after_return": _pt(run, "host_after_call", "uao"), "user_ds_uaccess": u["outcome"]}
    holds = (obs["uao_before_call"] == 0 and obs["uao_at_exit_vector"] == 0 and obs["uao_after_return"] == 0
             and u["outcome"] == "ok")
    return holds, obs


def _r2(run: ScenarioRun, _index: Index) -> tuple[bool, dict]:
    obs = {p: f"{_probe(run, p)['baseline']} -> {_probe(run, p)['outcome']}" for p in HOST_PROBES}
    return all(_probe(run, p)["baseline"] == _probe(run, p)["outcome"] for p in HOST_PROBES), obs


def _a3(run: ScenarioRun, index: Index) -> tuple[bool, dict] | None:
    base = _twin(run, index)
    if base is None:
        return None
    names = ("probe_ldr_user", WINDOW_PROBE)  # the accesses PAN decides (the uaccess ones follow UAO)
    pan_diff = sorted(n for n, p in run.observations["points"].items()
                      if n in base.observations["points"] and base.observations["points"][n]["pan"] != p["pan"])
    obs = {"pan_after_return": f"{_pt(base, 'host_after_call', 'pan')} -> {_pt(run, 'host_after_call', 'pan')}",
           **{p: f"{_probe(base, p)['outcome']} -> {_probe(run, p)['outcome']}" for p in names},
           "points_where_pan_differs": pan_diff}
    same = (_pt(base, "host_after_call", "pan") == _pt(run, "host_after_call", "pan")
            and all(_probe(base, p)["outcome"] == _probe(run, p)["outcome"] for p in names))
    return same, obs


def _r3(run: ScenarioRun, index: Index) -> tuple[bool, dict] | None:
    base = _twin(run, index)
    if base is None:
        return None
    p_base, p_run = _pt(base, "vcpu_run_after_guest", "pan"), _pt(run, "vcpu_run_after_guest", "pan")
    pan1, pan0 = _probe(run, "probe_hyp_pan1")["outcome"], _probe(run, "probe_hyp_pan0")["outcome"]
    obs = {"pan_at_el2_after_exit": f"v4.13 {p_base}, {run.scenario.variant} {p_run}",
           "part1_pan_bit_changes": p_base != p_run,
           "el2_load_user_page_pan1": pan1, "el2_load_user_page_pan0": pan0,
           "part2_pan_acts_at_el2": pan1 != pan0}
    return obs["part1_pan_bit_changes"] and obs["part2_pan_acts_at_el2"], obs


def _a4(run: ScenarioRun, _index: Index) -> tuple[bool, dict]:
    ldr = _probe(run, "probe_ldr_user")
    obs = {"pan_before_hvc": _pt(run, "host_before_call", "pan"), "pan_after_eret": _pt(run, "host_after_call", "pan"),
           "host_ldr_user_page": f"{ldr['baseline']} -> {ldr['outcome']}"}
    return obs["pan_before_hvc"] == obs["pan_after_eret"] and ldr["baseline"] == ldr["outcome"], obs


def _r4(run: ScenarioRun, _index: Index) -> tuple[bool, dict] | None:
    if run.scenario.variant == "v4.13":
        call, cur = _probe(run, "probe_hyp_call_kernel"), _probe(run, "probe_hyp_current")
        if "not_run" in (call["outcome"], cur["outcome"]):
            return None
        obs = {"hyp_calls_uao_thread_switch": _describe(call), "hyp_reads_current": _describe(cur)}
        return call["outcome"] == "fault" and cur["outcome"] == "fault", obs
    uts = run.observations["uao_switch"]
    if uts is None:
        return None
    return uts["faulted"], {"world_switch_calls_uao_thread_switch": "fault" if uts["faulted"] else f"ok at EL{uts['el']}"}


def _describe(p: dict) -> str:
    if p["outcome"] != "fault":
        return p["outcome"]
    return f"fault: {p['cause']} EL{p['el']}->EL{p['to_el']} ESR={p['esr']:#x} FAR={p['far']:#x}"


def _a5(run: ScenarioRun, _index: Index) -> tuple[bool, dict] | None:
    uts = run.observations["uao_switch"]
    k = _probe(run, "probe_uaccess_kernel")
    obs = {"uao_thread_switch": "not called" if uts is None else ("fault" if uts["faulted"] else f"ok at EL{uts['el']}"),
           "uao_before_call": _pt(run, "host_before_call", "uao"), "uao_after_return": _pt(run, "host_after_call", "uao"),
           "kernel_ds_uaccess": k["outcome"]}
    holds = (uts is not None and not uts["faulted"] and obs["uao_after_return"] == obs["uao_before_call"] == 1
             and k["outcome"] == "ok")
    return holds, obs


def _r5(run: ScenarioRun, _index: Index) -> tuple[bool, dict] | None:
    sets = [f for f in run.observations["fixups"] if f["insn"] == "msr pan, #1" and "vcpu_run_fixup" in f["at"]]
    if not sets:
        return None
    f = sets[0]
    return f["before"]["pan"] == 1, {"pan_before_set": f["before"]["pan"], "at": f["at"]}


def _r6(run: ScenarioRun, _index: Index) -> tuple[bool, dict] | None:
    uts = run.observations["uao_switch"]
    if uts is None:
        return None
    obs = {"uao_before_switch": uts["uao_before"], "uao_after_switch": uts["uao_after"]}
    return uts["uao_before"] == 0 and uts["uao_after"] == 0, obs


def _r7(run: ScenarioRun, _index: Index) -> tuple[bool, dict]:
    ent = run.observations["el2_entries"]
    exit_ = run.observations["exit"] or {}
    guest_exits = [e for e in ent if e["from_el"] == 1 and e["e2h"] == 1 and e["tge"] == 0]
    host_entries = [e for e in ent if e["e2h"] == 1 and e["tge"] == 1 and e["span"] == 0 and e["pan_before"] == 0]
    part1 = (_pt(run, "host_after_call", "pan") == 0 and bool(guest_exits)
             and all(e["pan_after"] == e["pan_before"] for e in guest_exits))
    part2 = bool(host_entries) and all(e["pan_after"] == 1 for e in host_entries)
    obs = {"pan_after_return": _pt(run, "host_after_call", "pan"),
           "exit_tge0_pan": f"{exit_.get('before', {}).get('pan')} -> {exit_.get('after', {}).get('pan')}",
           "entries_tge1_span0_from_pan0": [f"{e['cause']} at {e['at']}: PAN {e['pan_before']} -> {e['pan_after']}"
                                            for e in host_entries],
           "part1_exit_keeps_pan0": part1, "part2_tge1_span0_sets_pan": part2}
    return part1 and part2, obs


def _w1(run: ScenarioRun, _index: Index) -> tuple[bool, dict]:
    w = run.observations["window"]
    p = _probe(run, WINDOW_PROBE)
    obs = {"window_instructions": w["instructions"] if w["opened"] else 0, "closed_by": w["closed_by"],
           "open_at_return": w["open_at_return"], "ldr_user_page_in_window": p["outcome"]}
    return w["opened"] and p["outcome"] == "ok", obs


CLAIMS: tuple[Claim, ...] = (
    Claim("A1", "author", "With VHE the host may enter the world switch with UAO=1 (KERNEL_DS); the guest exit "
          "clears UAO and the host goes on with the wrong value.",
          lambda s: s.variant == "v4.13" and _vhe(s), lambda r, i: _uao_lost(r, i, gate=True)),
    Claim("R1", "reviewer", "Only KERNEL_DS callers are affected: KVM_RUN runs with USER_DS, so UAO is 0 before, "
          "at the exit and after, as the exit leaves it.",
          lambda s: s.variant == "v4.13" and _vhe(s) and s.caller == "kvm_run", _r1),
    Claim("A2", "author", "Any other kernel path that enters the world switch with KERNEL_DS hits the same fault.",
          lambda s: s.variant == "v4.13" and _vhe(s) and s.caller == "kernel_ds",
          lambda r, i: _uao_lost(r, i, gate=False)),
    Claim("R2", "reviewer", "Nothing is broken today: on the KVM_RUN path no uaccess behaves differently after the "
          "world switch than before it.",
          lambda s: s.variant == "v4.13" and s.caller == "kvm_run", _r2),
    Claim("A3", "author", "Moving the PAN reset next to the UAO reset is harmless.",
          lambda s: s.variant == "patch-2017", _a3),
    Claim("R3", "reviewer", "Moving it breaks PAN at HYP on CPUs with PAN but without VHE (both parts: does the "
          "PAN bit at EL2 change, and does PAN change any EL2 access there).",
          lambda s: s.variant == "patch-2017" and not s.vhe and s.cpu == "max" and s.guest_pan == 0, _r3),
    Claim("A4", "author", "Without VHE the HVC saves the host's PAN in SPSR_EL2 and the ERET restores it: the host's "
          "PAN is not at risk.",
          lambda s: not s.vhe and s.variant in ("v4.13", "patch-2017"), _a4),
    Claim("R4", "reviewer", "uao_thread_switch() and `current` cannot be reached from EL2 hyp code.",
          lambda s: (s.variant == "v4.13" and s.hyp_probes) or (s.variant == "patch-2017" and _vhe(s)), _r4),
    Claim("A5", "author", "With VHE both are reachable from EL2, since the host kernel runs there; the patch works.",
          lambda s: s.variant == "patch-2017" and _vhe(s) and s.caller == "kernel_ds", _a5),
    Claim("R5", "reviewer", "The patch's PAN set under VHE sets a PAN that is already set.",
          lambda s: s.variant == "patch-2017" and _vhe(s), _r5),
    Claim("R6", "reviewer", "The patch's UAO reset only clears a UAO the exit has already cleared.",
          lambda s: s.variant == "patch-2017" and _vhe(s) and s.caller == "kvm_run", _r6),
    Claim("R7", "reviewer", "The PAN reset on guest exit is needed because SPAN does not act while TGE=0; with TGE=1 "
          "and SPAN=0 an exception to EL2 sets PAN by itself.",
          lambda s: s.variant == "no-pan-reset" and _vhe(s) and s.guest_pan == 0, _r7),
    Claim("W1", "harness", "After a VHE guest exit with PAN=0, the host kernel runs at EL2 with PAN=0 long enough "
          "for a plain load from a user page to succeed (the exposure window).",
          lambda s: _vhe(s) and s.guest_pan == 0, _w1),
)


# ---------------------------------------------------------------- verdicts

def evaluate(runs: list[ScenarioRun], claims: tuple[Claim, ...] = CLAIMS) -> list[dict]:
    index: Index = {(r.scenario.variant, r.scenario.config_id): r for r in runs if not r.scenario.name}
    out = []
    for c in claims:
        evidence = []
        for r in runs:
            if r.scenario.name or not r.ok or not c.select(r.scenario):
                continue
            res = c.test(r, index)
            if res is not None:
                evidence.append((r, res[0], res[1]))
        out.append(_verdict(c, evidence))
    return out


def _verdict(c: Claim, evidence: list[tuple[ScenarioRun, bool, dict]]) -> dict:
    held = [r.scenario for r, h, _ in evidence if h]
    failed = [r.scenario for r, h, _ in evidence if not h]
    if not evidence:
        verdict, conditions = "undecided", ["no scenario of the run decides it"]
    elif not failed:
        verdict, conditions = "holds", []
    elif not held:
        verdict, conditions = "fails", []
    else:
        verdict, conditions = "conditional", conditions_for(held, failed)
    n = len(evidence)
    summary = {"holds": f"holds in all {n} scenarios", "fails": f"fails in all {n} scenarios",
               "undecided": "no scenario decides it",
               "conditional": f"holds in {len(held)} of {n} scenarios: when {' or '.join(conditions)}"}[verdict]
    return {"id": c.id, "role": c.role, "claim": c.claim, "verdict": verdict, "conditions": conditions,
            "summary": summary,
            "evidence": [{"scenario": r.scenario.id, "holds": h, "observed": o} for r, h, o in evidence]}


def conditions_for(held: list[Scenario], failed: list[Scenario]) -> list[str]:
    """The axis values under which the claim holds, as alternatives (OR): one axis if one
    separates held from failed scenarios, else a pair of axes, else 'see evidence'."""
    axes = list(held[0].axes())

    def vals(group: list[Scenario], a: str) -> set:
        return {s.axes()[a] for s in group}

    for a in axes:
        if not vals(held, a) & vals(failed, a):
            return [f"{a}={v}" for v in sorted(vals(held, a), key=str)]
    for a, b in itertools.combinations(axes, 2):
        hold_pairs = {(s.axes()[a], s.axes()[b]) for s in held}
        fail_pairs = {(s.axes()[a], s.axes()[b]) for s in failed}
        if hold_pairs & fail_pairs:
            continue
        out = []
        for va in sorted({p[0] for p in hold_pairs}, key=str):
            if not any(p[0] == va for p in fail_pairs):
                out.append(f"{a}={va}")
            else:
                out += [f"{a}={va} and {b}={vb}" for vb in sorted({p[1] for p in hold_pairs if p[0] == va}, key=str)]
        return out
    return ["no one or two axes separate them: see the evidence"]
