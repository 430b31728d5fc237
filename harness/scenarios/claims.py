"""The review's claims (shared/reference/thread-claims.md) as predicates over observations.

Each claim names the scenarios it is decided on and a test that reads one scenario's
observations (and, where the claim compares code variants, the same configuration under
v4.13). The verdict follows from the evidence alone: holds everywhere, fails everywhere, or
holds only under conditions found by looking for the scenario axes that separate the two.

A test returns one result per scenario, or a list of them when the claim is about single
events (R7b: every exception taken to EL2), each with the event's own axes. A claim whose
sentence makes two statements names them as `parts`: each part gets its own verdict from
the boolean its key has in every piece of evidence."""

from __future__ import annotations

import collections
import itertools
from collections.abc import Callable
from dataclasses import dataclass

from harness.scenarios.observe import HostPState, Probe
from harness.scenarios.runner import ScenarioRun
from harness.scenarios.scenario import Scenario
from harness.scenarios.world import HOST_PROBES, WINDOW_PROBE

Index = dict[tuple[str, str], ScenarioRun]   # (variant, config_id) -> run
Result = tuple[bool, dict]                    # holds, observed
EventResult = tuple[bool, dict, dict]         # holds, observed, the event's own axes
Test = Callable[[ScenarioRun, Index], "Result | list[EventResult] | None"]


@dataclass(frozen=True)
class Claim:
    id: str
    role: str
    claim: str
    select: Callable[[Scenario], bool]
    test: Test
    parts: tuple[tuple[str, str], ...] = ()   # (key in `observed`, the statement it decides)


def _pt(run: ScenarioRun, name: str, field: str) -> int | None:
    p = run.observations.points.get(name)
    return None if p is None else getattr(p, field)


def _probe(run: ScenarioRun, name: str) -> Probe:
    return run.observations.probes[name]


def _twin(run: ScenarioRun, index: Index, variant: str = "v4.13") -> ScenarioRun | None:
    return index.get((variant, run.scenario.config_id))


def _vhe(s: Scenario) -> bool:
    return s.vhe and s.cpu == "max"


# ---------------------------------------------------------------- the tests

def _uao_lost(run: ScenarioRun, _index: Index) -> tuple[bool, dict]:
    """KERNEL_DS in, UAO cleared by the exit, the KERNEL_DS uaccess faults after the return."""
    before, after = _pt(run, "host_before_call", "uao"), _pt(run, "host_after_call", "uao")
    k = _probe(run, "probe_uaccess_kernel")
    exit_ = run.observations.exit
    obs = {"uao_before_call": before, "uao_at_exit_vector": exit_ and exit_.after.uao,
           "uao_after_return": after, "kernel_ds_uaccess": f"{k.baseline} -> {k.outcome}"}
    return (before == 1 and after == 0 and k.baseline == "ok" and k.outcome == "fault"), obs


def _r1(run: ScenarioRun, _index: Index) -> tuple[bool, dict]:
    exit_ = run.observations.exit
    u = _probe(run, "probe_uaccess_user")
    obs = {"uao_before_call": _pt(run, "host_before_call", "uao"),
           "uao_at_exit_vector": exit_ and exit_.after.uao,
           "uao_after_return": _pt(run, "host_after_call", "uao"), "user_ds_uaccess": u.outcome}
    holds = (obs["uao_before_call"] == 0 and obs["uao_at_exit_vector"] == 0 and obs["uao_after_return"] == 0
             and u.outcome == "ok")
    return holds, obs


def _r2(run: ScenarioRun, _index: Index) -> tuple[bool, dict]:
    obs = {p: f"{_probe(run, p).baseline} -> {_probe(run, p).outcome}" for p in HOST_PROBES}
    return all(_probe(run, p).baseline == _probe(run, p).outcome for p in HOST_PROBES), obs


def _a3(run: ScenarioRun, index: Index) -> tuple[bool, dict] | None:
    base = _twin(run, index)
    if base is None:
        return None
    names = ("probe_ldr_user", WINDOW_PROBE)  # the accesses PAN decides (the uaccess ones follow UAO)
    base_points = base.observations.points
    pan_diff = sorted(n for n, p in run.observations.points.items() if n in base_points and base_points[n].pan != p.pan)
    obs = {"pan_after_return": f"{_pt(base, 'host_after_call', 'pan')} -> {_pt(run, 'host_after_call', 'pan')}",
           **{p: f"{_probe(base, p).outcome} -> {_probe(run, p).outcome}" for p in names},
           "points_where_pan_differs": pan_diff}
    same = (_pt(base, "host_after_call", "pan") == _pt(run, "host_after_call", "pan")
            and all(_probe(base, p).outcome == _probe(run, p).outcome for p in names))
    return same, obs


def _r3(run: ScenarioRun, index: Index) -> tuple[bool, dict] | None:
    base = _twin(run, index)
    if base is None:
        return None
    p_base, p_run = _pt(base, "vcpu_run_after_guest", "pan"), _pt(run, "vcpu_run_after_guest", "pan")
    pan1, pan0 = _probe(run, "probe_hyp_pan1").outcome, _probe(run, "probe_hyp_pan0").outcome
    obs = {"pan_at_el2_after_exit": f"v4.13 {p_base}, {run.scenario.variant} {p_run}",
           "part1_pan_bit_changes": p_base != p_run,
           "el2_load_user_page_pan1": pan1, "el2_load_user_page_pan0": pan0,
           "part2_pan_acts_at_el2": pan1 != pan0}
    return obs["part1_pan_bit_changes"] and obs["part2_pan_acts_at_el2"], obs


def _a4(run: ScenarioRun, _index: Index) -> tuple[bool, dict]:
    ldr = _probe(run, "probe_ldr_user")
    obs = {"pan_before_hvc": _pt(run, "host_before_call", "pan"), "pan_after_eret": _pt(run, "host_after_call", "pan"),
           "host_ldr_user_page": f"{ldr.baseline} -> {ldr.outcome}"}
    return obs["pan_before_hvc"] == obs["pan_after_eret"] and ldr.baseline == ldr.outcome, obs


def _r4(run: ScenarioRun, _index: Index) -> tuple[bool, dict] | None:
    if run.scenario.variant == "v4.13":
        call, cur = _probe(run, "probe_hyp_call_kernel"), _probe(run, "probe_hyp_current")
        if "not_run" in (call.outcome, cur.outcome):
            return None
        obs = {"hyp_calls_uao_thread_switch": _describe(call), "hyp_reads_current": _describe(cur)}
        return call.outcome == "fault" and cur.outcome == "fault", obs
    uts = run.observations.uao_switch
    if uts is None:
        return None
    return uts.faulted, {"world_switch_calls_uao_thread_switch": "fault" if uts.faulted else f"ok at EL{uts.el}"}


def _describe(p: Probe) -> str:
    if p.fault is None or p.pstate is None:
        return p.outcome
    f = p.fault
    return f"fault: {f.cause} EL{p.pstate.el}->EL{f.to_el} ESR={f.esr:#x} FAR={f.far:#x}"


def _a5(run: ScenarioRun, _index: Index) -> tuple[bool, dict] | None:
    uts = run.observations.uao_switch
    k = _probe(run, "probe_uaccess_kernel")
    obs = {"uao_thread_switch": "not called" if uts is None else ("fault" if uts.faulted else f"ok at EL{uts.el}"),
           "uao_before_call": _pt(run, "host_before_call", "uao"), "uao_after_return": _pt(run, "host_after_call", "uao"),
           "kernel_ds_uaccess": k.outcome}
    holds = (uts is not None and not uts.faulted and obs["uao_after_return"] == obs["uao_before_call"] == 1
             and k.outcome == "ok")
    return holds, obs


def _r5(run: ScenarioRun, _index: Index) -> tuple[bool, dict] | None:
    sets = [f for f in run.observations.fixups if f.insn == "msr pan, #1" and "vcpu_run_fixup" in f.at]
    if not sets:
        return None
    f = sets[0]
    return f.before.pan == 1, {"pan_before_set": f.before.pan, "at": f.at}


def _r6(run: ScenarioRun, _index: Index) -> tuple[bool, dict] | None:
    uts = run.observations.uao_switch
    if uts is None:
        return None
    obs = {"uao_before_switch": uts.uao_before, "uao_after_switch": uts.uao_after}
    return uts.uao_before == 0 and uts.uao_after == 0, obs


def _r7a(run: ScenarioRun, index: Index) -> tuple[bool, dict] | None:
    """Non-VHE: does removing the __guest_exit PAN reset change anything the host or hyp does
    (part 1), and does an exception to EL2 with E2H=0 leave PAN alone, whatever SCTLR_EL2[23]
    holds (part 2: no SPAN bit there)?"""
    base = _twin(run, index)
    if base is None:
        return None
    pan1, pan0 = _probe(run, "probe_hyp_pan1").outcome, _probe(run, "probe_hyp_pan0").outcome
    window = (_probe(base, WINDOW_PROBE).outcome, _probe(run, WINDOW_PROBE).outcome)
    host_pan = (_pt(base, "host_after_call", "pan"), _pt(run, "host_after_call", "pan"))
    e2h0 = [e for e in run.observations.el2_entries if e.e2h == 0]
    obs = {"pan_at_el2_after_exit": f"v4.13 {_pt(base, 'vcpu_run_after_guest', 'pan')}, "
                                    f"{run.scenario.variant} {_pt(run, 'vcpu_run_after_guest', 'pan')}",
           "el2_load_user_page_pan1": pan1, "el2_load_user_page_pan0": pan0,
           "el2_load_user_page_after_exit": f"v4.13 {window[0]}, {run.scenario.variant} {window[1]}",
           "host_pan_after_eret": f"v4.13 {host_pan[0]}, {run.scenario.variant} {host_pan[1]}",
           "e2h0_entries": [f"{e.cause} from EL{e.from_el} at {e.at.split(' (')[0]}: "
                            f"PAN {e.pan_before} -> {e.pan_after}, SCTLR_EL2[23]={e.span}" for e in e2h0],
           "reset_needed": pan1 != pan0 or window[0] != window[1] or host_pan[0] != host_pan[1],
           "e2h0_entry_never_sets_pan": bool(e2h0) and all(e.pan_after == e.pan_before for e in e2h0)}
    return obs["reset_needed"] and obs["e2h0_entry_never_sets_pan"], obs


def _r7b(run: ScenarioRun, _index: Index) -> list[tuple[bool, dict, dict]]:
    """VHE: every exception taken to EL2 while SCTLR_EL2.SPAN=0: did the entry set PAN? One
    result per exception, with TGE, the PAN before it and where it came from as its axes."""
    out = []
    for e in run.observations.el2_entries:
        if e.e2h != 1 or e.span != 0:
            continue
        axes = {"tge": e.tge, "pan_before": e.pan_before, "from_el": e.from_el, "cause": e.cause}
        obs = {"exception": f"{e.cause} from EL{e.from_el} at {e.at}", "tge": e.tge, "span": e.span,
               "pan": f"{e.pan_before} -> {e.pan_after}"}
        out.append((e.pan_after == 1, obs, axes))
    return out


def _w1(run: ScenarioRun, _index: Index) -> tuple[bool, dict]:
    w = run.observations.window
    p = _probe(run, WINDOW_PROBE)
    obs = {"window_instructions": w.instructions if w.opened else 0, "closed_by": w.closed_by,
           "open_at_return": w.open_at_return, "ldr_user_page_in_window": p.outcome}
    return w.opened and p.outcome == "ok", obs



# W2 compares every field PState models, except the condition flags: AAPCS64 does not
# preserve NZCV across a call, so no caller relies on them (the non-VHE ERET restores them,
# a VHE return leaves the callee's). Fields PState gains later join the comparison unchanged.
CALL_CLOBBERED = ("n", "z", "c", "v")
# Fields shown together, as the kernel writes them (local_daif_restore(DAIF_PROCCTX_NOIRQ)).
SHOWN_TOGETHER = {"daif": ("d", "a", "i", "f")}


def pstate_leaks(host_pstate: HostPState) -> dict[str, str]:
    """{field: "before -> after"} of the host's PSTATE across the world switch (observe's
    host_pstate), condition flags left out, D/A/I/F shown as one DAIF value."""
    changed = {f: v for f, v in host_pstate.changed.items() if f not in CALL_CLOBBERED}
    out = {}
    for name, members in SHOWN_TOGETHER.items():
        if any(m in changed for m in members):
            b, a = getattr(host_pstate.before, name), getattr(host_pstate.after, name)
            out[name] = f"0b{b:0{len(members)}b} -> 0b{a:0{len(members)}b}"
            changed = {f: v for f, v in changed.items() if f not in members}
    out.update({f: f"{b} -> {a}" for f, (b, a) in changed.items()})
    return out


def _w2(run: ScenarioRun, _index: Index) -> tuple[bool, dict] | None:
    hp = run.observations.host_pstate
    if hp.before is None or hp.after is None:
        return None
    leaks = pstate_leaks(hp)
    return not leaks, {"leaks": leaks or "none", "compared": "host_before_call -> host_after_call"}


def w2_by_variant(evidence: list[dict]) -> dict[str, dict]:
    """Per variant: scenarios compared, how many leak, and each leak with its count."""
    out: dict[str, dict] = {}
    for e in evidence:
        v = out.setdefault(e["scenario"].split("/", 1)[0], {"scenarios": 0, "leaking": 0, "leaks": {}})
        v["scenarios"] += 1
        if not e["holds"]:
            v["leaking"] += 1
            for field, change in e["observed"]["leaks"].items():
                key = f"{field} {change}"
                v["leaks"][key] = v["leaks"].get(key, 0) + 1
    return out


CLAIMS: tuple[Claim, ...] = (
    Claim("A1", "author", "With VHE the host may enter the world switch with UAO=1 (KERNEL_DS); the guest exit "
          "clears UAO and the host goes on with the wrong value.",
          lambda s: s.variant == "v4.13" and _vhe(s) and s.caller == "kernel_ds", _uao_lost),
    Claim("R1", "reviewer", "Only KERNEL_DS callers are affected: KVM_RUN runs with USER_DS, so UAO is 0 before, "
          "at the exit and after, as the exit leaves it.",
          lambda s: s.variant == "v4.13" and _vhe(s) and s.caller == "kvm_run", _r1),
    Claim("A2", "author", "Any other kernel path that enters the world switch with KERNEL_DS hits the same fault "
          "(here a kernel thread, KERNEL_DS by inheritance, on its own stack and call chain).",
          lambda s: s.variant == "v4.13" and _vhe(s) and s.caller == "kthread", _uao_lost),
    Claim("R2", "reviewer", "Nothing is broken today: on the KVM_RUN path no uaccess behaves differently after the "
          "world switch than before it.",
          lambda s: s.variant == "v4.13" and s.caller == "kvm_run", _r2),
    Claim("A3", "author", "Moving the PAN reset next to the UAO reset is harmless.",
          lambda s: s.variant == "patch-2017", _a3),
    Claim("R3", "reviewer", "Moving it breaks PAN at HYP on CPUs with PAN but without VHE (both parts: does the "
          "PAN bit at EL2 change, and does PAN change any EL2 access there).",
          lambda s: s.variant == "patch-2017" and not s.vhe and s.cpu == "max" and s.guest_pan == 0, _r3,
          parts=(("part1_pan_bit_changes", "the move changes PSTATE.PAN at EL2 after a non-VHE exit"),
                 ("part2_pan_acts_at_el2", "PSTATE.PAN changes an EL2 access in the E2H=0 regime"))),
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
    Claim("R7a", "reviewer", "The __guest_exit PAN reset is needed for !VHE, because SCTLR_EL2 with HCR_EL2.E2H "
          "clear has no SPAN bit.",
          lambda s: s.variant == "no-pan-reset" and not s.vhe and s.cpu == "max", _r7a,
          parts=(("reset_needed", "without the reset, some EL2 access or the host's PAN after the ERET changes"),
                 ("e2h0_entry_never_sets_pan", "an exception to EL2 with E2H=0 never sets PAN (no SPAN there)"))),
    Claim("R7b", "reviewer", "With VHE, SCTLR_EL2.SPAN=0 makes the CPU set PSTATE.PAN when it takes an exception.",
          _vhe, _r7b),
    Claim("W1", "harness", "After a VHE guest exit with PAN=0, the host kernel runs at EL2 with PAN=0 long enough "
          "for a plain load from a user page to succeed (the exposure window).",
          lambda s: _vhe(s) and s.guest_pan == 0, _w1),
    Claim("W2", "harness", "The world switch gives the host back its PSTATE, field by field.",
          lambda s: True, _w2),
)


# ---------------------------------------------------------------- verdicts

def evaluate(runs: list[ScenarioRun], claims: tuple[Claim, ...] = CLAIMS) -> list[dict]:
    index: Index = {(r.scenario.variant, r.scenario.config_id): r for r in runs if not r.scenario.name}
    out = []
    for c in claims:
        evidence: list[tuple[ScenarioRun, bool, dict, dict]] = []
        for r in runs:
            if r.scenario.name or not r.ok or not c.select(r.scenario):
                continue
            res = c.test(r, index)
            if isinstance(res, list):
                evidence += [(r, h, o, axes) for h, o, axes in res]
            elif res is not None:
                evidence.append((r, res[0], res[1], {}))
        out.append(_verdict(c, evidence))
    return out


def _decide(evidence: list[tuple[dict, bool]], n_word: str = "scenarios") -> tuple[str, list[str], str]:
    """(verdict, conditions, summary) from (axes, holds) pairs."""
    held = [a for a, h in evidence if h]
    failed = [a for a, h in evidence if not h]
    if not evidence:
        verdict, conditions = "undecided", ["no scenario of the run decides it"]
    elif not failed:
        verdict, conditions = "holds", []
    elif not held:
        verdict, conditions = "fails", []
    else:
        verdict, conditions = "conditional", conditions_for(held, failed, cover_width=3)
    n = len(evidence)
    summary = {"holds": f"holds in all {n} {n_word}", "fails": f"fails in all {n} {n_word}",
               "undecided": "no scenario decides it",
               "conditional": f"holds in {len(held)} of {n} {n_word}: when {' or '.join(conditions)}"}[verdict]
    return verdict, conditions, summary


def _verdict(c: Claim, evidence: list[tuple[ScenarioRun, bool, dict, dict]]) -> dict:
    # An event's own axes come first: they are what a per-event claim is about.
    axes = [{**extra, **r.scenario.axes()} for r, _, _, extra in evidence]
    n_word = "exceptions" if any(extra for *_, extra in evidence) else "scenarios"
    verdict, conditions, summary = _decide([(a, h) for a, (_, h, _, _) in zip(axes, evidence, strict=True)], n_word)
    out = {"id": c.id, "role": c.role, "claim": c.claim, "verdict": verdict, "conditions": conditions,
           "summary": summary,
           "evidence": [{"scenario": r.scenario.id, "holds": h, "observed": o, **({"axes": extra} if extra else {})}
                        for r, h, o, extra in evidence]}
    if c.parts:
        out["parts"] = []
        for key, statement in c.parts:
            pv, pc, ps = _decide([(a, bool(o[key])) for a, (_, _, o, _) in zip(axes, evidence, strict=True)], n_word)
            out["parts"].append({"key": key, "statement": statement, "verdict": pv, "conditions": pc, "summary": ps})
        out["summary"] += "; " + "; ".join(f"{p['statement']}: {p['verdict']}"
                                            + (f" (when {' or '.join(p['conditions'])})" if p["conditions"] else "")
                                            for p in out["parts"])
    if c.id == "W2":
        out["by_variant"] = w2_by_variant(out["evidence"])
    return out


def conditions_for(held: list[dict], failed: list[dict], max_axes: int = 2, cover_width: int = 2) -> list[str]:
    """The axis values under which the claim holds, as alternatives (OR): one axis if one
    separates held from failed evidence, else a pair of axes, else (max_axes=3, explore's
    invariants) a triple, else a cover: alternatives of up to `cover_width` axis values (the
    claims: three), else 'see evidence'. `held` and `failed` are the axes of each piece of
    evidence (Scenario.axes(), an event's first)."""
    axes = list(held[0])

    def vals(group: list[dict], a: str) -> set:
        return {x.get(a) for x in group}

    for a in axes:
        if not vals(held, a) & vals(failed, a):
            return [f"{a}={v}" for v in sorted(vals(held, a), key=str)]
    for a, b in itertools.combinations(axes, 2):
        hold_pairs = {(x.get(a), x.get(b)) for x in held}
        fail_pairs = {(x.get(a), x.get(b)) for x in failed}
        if hold_pairs & fail_pairs:
            continue
        out = []
        for va in sorted({p[0] for p in hold_pairs}, key=str):
            if not any(p[0] == va for p in fail_pairs):
                out.append(f"{a}={va}")
            else:
                out += [f"{a}={va} and {b}={vb}" for vb in sorted({p[1] for p in hold_pairs if p[0] == va}, key=str)]
        return out
    if max_axes >= 3:
        for combo in itertools.combinations(axes, 3):
            hold_t = {tuple(x.get(a) for a in combo) for x in held}
            fail_t = {tuple(x.get(a) for a in combo) for x in failed}
            if not hold_t & fail_t:
                return sorted({_fewest(combo, t, fail_t) for t in hold_t})
    cover = next((c for w in range(2, cover_width + 1) if (c := _cover(held, failed, axes, w))), [])
    return cover or [f"no {'one or two' if max(max_axes, cover_width) < 3 else 'one, two or three'} axes "
                     "separate them: see the evidence"]


def _fewest(combo: tuple[str, ...], t: tuple, fail_t: set[tuple]) -> str:
    """The fewest of `combo`'s axes, at t's values, that no failed tuple matches."""
    for k in range(1, len(combo) + 1):
        for idx in itertools.combinations(range(len(combo)), k):
            if not any(all(f[i] == t[i] for i in idx) for f in fail_t):
                return " and ".join(f"{combo[i]}={t[i]}" for i in idx)
    return " and ".join(f"{a}={v}" for a, v in zip(combo, t, strict=True))


def _cover(held: list[dict], failed: list[dict], axes: list[str], width: int = 2) -> list[str]:
    """Alternatives of up to `width` axis values, each true of no failed evidence, that together
    cover every held one (chosen greedily: widest first, fewer axes before more, in axis order)."""
    combos = [c for k in range(1, width + 1) for c in itertools.combinations(axes, k)]
    # Each piece's values, axis by axis, read once; a combo's tuples zip those columns, and the
    # greedy rounds below only count them.
    held_col = {a: [x.get(a) for x in held] for a in axes}
    fail_col = {a: [x.get(a) for x in failed] for a in axes}
    fail = {c: set(zip(*(fail_col[a] for a in c), strict=True)) for c in combos}
    keys = {c: list(zip(*(held_col[a] for a in c), strict=True)) for c in combos}
    rank = {a: {v: i for i, v in enumerate(sorted(set(held_col[a]), key=str))} for a in axes}
    left, out = list(range(len(held))), []
    while left:
        best, best_n = None, 0
        for c in combos:
            kc = keys[c]
            counts = collections.Counter(kc[i] for i in left)
            for t in sorted(counts, key=lambda t, c=c: [rank[a][v] for a, v in zip(c, t, strict=True)]):
                if counts[t] > best_n and t not in fail[c]:
                    best, best_n = (c, t), counts[t]
        if best is None:
            return []
        out.append(" and ".join(f"{a}={v}" for a, v in zip(*best, strict=True)))
        kb = keys[best[0]]
        left = [i for i in left if kb[i] != best[1]]
    return out


def vals_of(group: list[dict], a: str) -> set:
    return {x.get(a) for x in group}
