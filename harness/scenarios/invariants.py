"""Invariants of the world switch under asynchronous exceptions, decided over `explore`'s points.

Each invariant is a named predicate over one point's observations (what the board recorded
when one IRQ, FIQ or SError was made pending at one instruction boundary and the run went on to
its end); like the claims (claims.py) it gets a verdict (holds / fails / conditional, with the
axes that separate the points where it holds from those where it fails) and evidence (counts,
the smallest violation of each group with a command that replays it, why points were excluded).

A test returns None where the invariant does not apply, else (status, observed) with status
`holds`, `violated` or `excluded` (applies in form, but lies outside what the invariant is
about: the harness's own probes, or a panic the real kernel has too; the reason is counted).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from harness.arch.pstate import PState
from harness.scenarios.claims import conditions_for
from harness.scenarios.world import PROBES_FILE

Test = Callable[[dict, dict, str], "tuple[str, dict] | None"]   # (scenario result, point, kind)


@dataclass(frozen=True)
class Invariant:
    id: str
    title: str
    statement: str
    test: Test


# ---------------------------------------------------------------- the kernel's vectors

# v4.13's handler for each asynchronous vector slot, read in Linux 4.13.4: `vectors` in
# arch/arm64/kernel/entry.S:318-342 and `__kvm_hyp_vector` in arch/arm64/kvm/hyp/hyp-entry.S:190-208.
# (handler, where, why the kernel panics there or None). el2_error panics unless ELR_EL2 is in
# __guest_exit's window (hyp-entry.S:148-153).
_BAD_MODE = "inv_entry -> bad_mode() -> panic(\"bad mode\") (arch/arm64/kernel/traps.c:654-664)"
_HYP_PANIC = "invalid_vector -> __hyp_panic() -> panic(\"HYP panic ...\") (arch/arm64/kvm/hyp/switch.c:427-447)"
_EL2_ERROR = "el2_error: b.ne __hyp_panic unless ELR_EL2 is abort_guest_exit_start/_end (hyp-entry.S:148-153)"
_E, _H = "arch/arm64/kernel/entry.S", "arch/arm64/kvm/hyp/hyp-entry.S"
KERNEL_VECTORS: dict[str, dict[int, tuple[str, str, str | None]]] = {
    "vectors": {
        0x080: ("el1_irq_invalid", f"{_E}:319", _BAD_MODE), 0x100: ("el1_fiq_invalid", f"{_E}:320", _BAD_MODE),
        0x180: ("el1_error_invalid", f"{_E}:321", _BAD_MODE), 0x280: ("el1_irq", f"{_E}:324", None),
        0x300: ("el1_fiq_invalid", f"{_E}:325", _BAD_MODE), 0x380: ("el1_error_invalid", f"{_E}:326", _BAD_MODE),
        0x480: ("el0_irq", f"{_E}:329", None), 0x500: ("el0_fiq_invalid", f"{_E}:330", _BAD_MODE),
        0x580: ("el0_error_invalid", f"{_E}:331", _BAD_MODE), 0x680: ("el0_irq_compat", f"{_E}:335", None),
        0x700: ("el0_fiq_invalid_compat", f"{_E}:336", _BAD_MODE),
        0x780: ("el0_error_invalid_compat", f"{_E}:337", _BAD_MODE),
    },
    "__kvm_hyp_vector": {
        0x080: ("el2t_irq_invalid", f"{_H}:191", _HYP_PANIC), 0x100: ("el2t_fiq_invalid", f"{_H}:192", _HYP_PANIC),
        0x180: ("el2t_error_invalid", f"{_H}:193", _HYP_PANIC), 0x280: ("el2h_irq_invalid", f"{_H}:196", _HYP_PANIC),
        0x300: ("el2h_fiq_invalid", f"{_H}:197", _HYP_PANIC), 0x380: ("el2_error", f"{_H}:198", _EL2_ERROR),
        0x480: ("el1_irq", f"{_H}:201", None), 0x500: ("el1_fiq_invalid", f"{_H}:202", _HYP_PANIC),
        0x580: ("el1_error", f"{_H}:203", None), 0x680: ("el1_irq", f"{_H}:206", None),
        0x700: ("el1_fiq_invalid", f"{_H}:207", _HYP_PANIC), 0x780: ("el1_error", f"{_H}:208", None),
    },
}


def kernel_handler(sres: dict, p: dict) -> tuple[str, str, str | None] | None:
    """v4.13's handler for the vector the point's interrupt entered, with its panic reason (the
    window test of el2_error applied to the point's ELR), or None for a vector v4.13 lacks."""
    slot = KERNEL_VECTORS.get(p["vector"] or "", {}).get(p["vector_offset"])
    if slot is None:
        return None
    name, where, why = slot
    if why == _EL2_ERROR:
        window = {sres["labels"].get("abort_guest_exit_start"), sres["labels"].get("abort_guest_exit_end")}
        why = None if p["taken_pc"] in window else why
    return name, where, why


# ---------------------------------------------------------------- the tests

def _pstate(bits: int) -> str:
    return PState.from_bits(bits).describe()


def _in_probe(p: dict) -> bool:
    """Taken inside the harness's probes (asm/kvm/probes.S), not kernel code."""
    return (p.get("taken_src") or "").split(":")[0].endswith(PROBES_FILE)


def _x1(sres: dict, p: dict, kind: str) -> tuple[str, dict] | None:
    """Taken from EL2 with E2H=1 (the VHE host's regime; PAN does nothing at EL2 with E2H=0)."""
    if p["taken_at"] is None or p["from_el"] != 2 or not p["e2h"]:
        return None
    pan = PState.from_bits(p["pstate_before"]).pan
    obs = {"taken_at": p["taken_at"], "where": p["taken_where"], "pan": pan, "tge": p["tge"]}
    if pan == 0 and _in_probe(p):
        return "excluded", {**obs, "reason": "the harness's probes (asm/kvm/probes.S) set PAN=0 on purpose"}
    return ("holds" if pan == 1 else "violated"), obs


def _x2(sres: dict, p: dict, kind: str) -> tuple[str, dict] | None:
    if p["taken_at"] is None:
        return None
    if p["returned"]:
        obs = {"taken_at": p["taken_at"], "where": p["taken_where"], "differs": p["return_diff"]}
        return ("holds" if not p["return_diff"] else "violated"), obs
    obs = {"taken_at": p["taken_at"], "where": p["taken_where"], "end": p["end"]}
    if _guest_exit(sres, p):
        return "excluded", {**obs, "reason": "a guest exit: the guest resumes in a later KVM_RUN (one run is modelled)"}
    if p["end"] in ("panic", "hyp_panic"):
        return "excluded", {**obs, "reason": "the run ended in a panic (see X3)"}
    return "violated", {**obs, "reason": "never returned to the interrupted instruction"}


def _x3(sres: dict, p: dict, kind: str) -> tuple[str, dict]:
    obs = {"end": p["end"], "at": p["end_where"]}
    if p["end"] == "poweroff":
        return "holds", obs
    if p["end"] in ("panic", "hyp_panic") and p["taken_at"] is not None:
        h = kernel_handler(sres, p)
        obs.update(vector=f"{p['vector']}+{p['vector_offset']:#x}")
        if h is not None:
            obs.update(kernel=f"{h[0]} ({h[1]})")
            if h[2] is not None:
                return "excluded", {**obs, "reason": f"v4.13 panics too: {h[2]}"}
    return "violated", obs


def _x4(sres: dict, p: dict, kind: str) -> tuple[str, dict] | None:
    """An SError made pending between the guest exit's entry and the window (DAIF.A=1 there)."""
    w = sres["window"]
    if kind != "serror" or w is None or w["start"] is None or not (w["exit"] <= p["icount"] <= w["start"]) \
            or PState.from_bits(p["pstate"]).el != 2:
        return None
    ec = sres["exit_codes"]
    want = sres["baseline"]["exit_code"] | (1 << ec["ARM_EXIT_WITH_SERROR_BIT"])
    gx = p["guest_exit"] or {}
    restored = p["after_restore"] or {}
    obs = {"taken_at": p["taken_where"], "exit_code": None if p["exit_code"] is None else hex(p["exit_code"]),
           "expected": hex(want), "end": p["end"],
           "elr_spsr_restored": (restored.get("ELR_EL2"), restored.get("SPSR_EL2")) == (gx.get("elr"), gx.get("spsr"))}
    in_window = p["taken_pc"] in (sres["labels"].get("abort_guest_exit_start"), sres["labels"].get("abort_guest_exit_end"))
    ok = in_window and p["end"] == "poweroff" and p["exit_code"] == want and obs["elr_spsr_restored"]
    return ("holds" if ok else "violated"), obs


def _guest_exit(sres: dict, p: dict) -> bool:
    """The point's interrupt was taken from the guest (EL1 or EL0) to EL2: a guest exit."""
    return (p["taken_at"] is not None and p["to_el"] == 2
            and phase(sres, p["taken_at"], p["from_el"]) == "in_guest")


def _x5(sres: dict, p: dict, kind: str) -> tuple[str, dict] | None:
    """Taken from the guest (a guest exit) and the run powered off."""
    if not _guest_exit(sres, p) or p["end"] != "poweroff":
        return None
    ec = sres["exit_codes"]
    want = {"irq": ec.get("ARM_EXCEPTION_IRQ"), "serror": ec.get("ARM_EXCEPTION_EL1_SERROR")}.get(kind)
    if want is None:
        return None
    obs = {"taken_at": p["taken_where"], "exit_code": p["exit_code"], "expected": want}
    return ("holds" if p["exit_code"] == want else "violated"), obs


def _x6(sres: dict, p: dict, kind: str) -> tuple[str, dict]:
    if p["taken_at"] is not None:
        return "holds", {"taken_at": p["taken_at"]}
    end = sres["baseline"]["pstate_at_end"]
    obs = {"end": p["end"], "pstate_at_end": _pstate(end)}
    if p["end"] != "poweroff":
        return "excluded", {**obs, "reason": "the run ended before power-off (see X3)"}
    return "violated", {**obs, "reason": "still pending at power-off"}


INVARIANTS: tuple[Invariant, ...] = (
    Invariant("X1", "no interrupt with PAN=0 in the host",
              "No asynchronous exception is taken while the host runs at EL2 (VHE: E2H=1) with PSTATE.PAN=0 (kernel "
              "code: the harness's probes in asm/kvm/probes.S set PAN=0 on purpose and are excluded).", _x1),
    Invariant("X2", "interrupted PSTATE restored",
              "Every asynchronous exception that is taken returns to the interrupted instruction with the interrupted "
              "PSTATE, every modelled field.", _x2),
    Invariant("X3", "no panic the kernel does not have",
              "No run ends in hyp_panic, panic or an unexpected vector, except where v4.13 panics too.", _x3),
    Invariant("X4", "SError at a guest exit reported",
              "An SError pending at a guest exit is taken in __guest_exit's abort_guest_exit window and reported to the "
              "host as an exit with the SError bit set (ARM_EXIT_WITH_SERROR_BIT), ELR/SPSR_EL2 of the exit put back.",
              _x4),
    Invariant("X5", "guest exit code matches",
              "An IRQ or SError taken while the guest runs ends its run with the matching exit code "
              "(ARM_EXCEPTION_IRQ, ARM_EXCEPTION_EL1_SERROR).", _x5),
    Invariant("X6", "no interrupt lost",
              "Every interrupt that arrives during the world switch is taken before the program powers off.", _x6),
)


# ---------------------------------------------------------------- verdicts

def _axes(sres: dict, kind: str, seg: dict) -> dict:
    """Points as conditions_for sees them: the scenario's axes, the kind, the EL at the boundary
    and the phase of the world switch (before the guest, in it, after its exit)."""
    return {**sres["axes"], "kind": kind, "el": seg["el"], "phase": seg["phase"]}


def phase(sres: dict, n: int, el: int) -> str | None:
    """Where boundary n lies in the world switch: before the guest runs, in the guest (EL1 or
    EL0 between its first instruction and its exit), or after the exit."""
    w = sres["window"]
    if w is None:
        return None
    if n < w["guest"]:
        return "before_guest"
    return "in_guest" if n <= w["exit"] and el < 2 else "after_exit"


def replay(sres: dict, kind: str, icount: int) -> str:
    return f"python -m harness debug {sres['config_id']} --variant {sres['variant']} --inject {kind}@{icount}"


def check_points(sres: dict, invariants: tuple[Invariant, ...] = INVARIANTS) -> None:
    """Evaluate every invariant at every point of one explored scenario (full records, before
    explore.compact): point["x"] = {id: status}; the first violation of each (invariant, kind,
    phase) keeps what was observed (point["x_why"]); exclusions are counted per reason
    (sres["x_excluded"])."""
    excluded: dict[str, dict[str, int]] = {}
    seen: set[tuple] = set()
    for kind, pts in sres["kinds"].items():
        for p in pts:
            p["x"] = {}
            for inv in invariants:
                res = inv.test(sres, p, kind)
                if res is None:
                    continue
                status, observed = res
                p["x"][inv.id] = status
                if status == "excluded":
                    why = excluded.setdefault(inv.id, {})
                    why[observed["reason"]] = why.get(observed["reason"], 0) + 1
                elif status == "violated" and (key := (inv.id, kind, phase(sres, p["icount"], PState.from_bits(p["pstate"]).el))) not in seen:
                    seen.add(key)
                    p.setdefault("x_why", {})[inv.id] = observed
    sres["x_excluded"] = excluded


def evaluate(results: list[dict], invariants: tuple[Invariant, ...] = INVARIANTS) -> list[dict]:
    """Verdicts over explored scenarios (compacted: each segment of points carries its statuses)."""
    out = []
    for inv in invariants:
        held: dict[tuple, dict] = {}
        failed: dict[tuple, dict] = {}
        counts = {"holds": 0, "violated": 0, "excluded": 0}
        excluded: dict[str, int] = {}
        by_variant: dict[str, dict[str, int]] = {}
        examples: dict[tuple, dict] = {}
        violations = []
        for sres in results:
            for reason, n in sres["x_excluded"].get(inv.id, {}).items():
                excluded[reason] = excluded.get(reason, 0) + n
            v = by_variant.setdefault(sres["variant"], {"holds": 0, "violated": 0, "excluded": 0})
            for kind, segs in sres["kinds"].items():
                bad: list[list[int]] = []
                for seg in segs:
                    status = seg["x"].get(inv.id)
                    if status is None:
                        continue
                    a, b = seg["n"]
                    counts[status] += b - a + 1
                    v[status] += b - a + 1
                    if status == "excluded":
                        continue
                    ax = _axes(sres, kind, seg)
                    (held if status == "holds" else failed).setdefault(tuple(ax.values()), ax)
                    if status != "violated":
                        continue
                    bad.append([a, b])
                    why = seg.get("x_why", {}).get(inv.id)
                    key = (sres["variant"], sres["axes"]["mode"], kind, seg["phase"])
                    if why is not None and (key not in examples or a < examples[key]["icount"]):
                        examples[key] = {"variant": sres["variant"], "config": sres["config_id"], "kind": kind,
                                         "phase": seg["phase"], "icount": a, "at": seg["at"],
                                         "src": sres["src"].get(seg["at"], "?"), "observed": why,
                                         "replay": replay(sres, kind, a)}
                if bad:
                    violations.append({"scenario": sres["id"], "kind": kind, "icounts": _merge(bad)})
        out.append(_verdict(inv, list(held.values()), list(failed.values()), counts, excluded, by_variant,
                            list(examples.values()), violations))
    return out


def _merge(ranges: list[list[int]]) -> list[list[int]]:
    out: list[list[int]] = []
    for a, b in ranges:
        if out and out[-1][1] == a - 1:
            out[-1][1] = b
        else:
            out.append([a, b])
    return out


def _verdict(inv: Invariant, held: list, failed: list, counts: dict, excluded: dict, by_variant: dict,
             examples: list, violations: list) -> dict:
    n_held, n_failed = counts["holds"], counts["violated"]
    n = n_held + n_failed
    if not n:
        verdict, conditions = "undecided", ["no point of the run decides it"]
    elif not n_failed:
        verdict, conditions = "holds", []
    elif not n_held:
        verdict, conditions = "fails", []
    else:
        verdict, conditions = "conditional", conditions_for(held, failed, max_axes=3)
    violated_when = conditions_for(failed, held, max_axes=3) if n_failed and n_held else []
    if verdict == "conditional":
        summary = f"violated at {n_failed} of {n} points"
        if "see the evidence" not in violated_when[0]:
            summary += f": when {' or '.join(violated_when)}"
    else:
        summary = {"holds": f"holds at all {n} points", "fails": f"fails at all {n} points",
                   "undecided": "no point decides it"}[verdict]
    if counts["excluded"]:
        summary += f"; {counts['excluded']} excluded"
    return {"id": inv.id, "title": inv.title, "statement": inv.statement, "verdict": verdict,
            "conditions": conditions, "violated_when": violated_when, "summary": summary, "counts": counts,
            "excluded": dict(sorted(excluded.items())), "by_variant": by_variant,
            "examples": sorted(examples, key=lambda e: (e["variant"], e["kind"], e["icount"], e["config"])),
            "violations": violations}
