"""`explore`: every point's outcome against the interrupt routing and masking rules (derived here,
independently of harness.arch), exact injection on the board, shared runs against one run per
point, the invariants on small runs, -j 1 vs -j N, the report and the debugger's --inject.
The full explore over v4.13 and patch-2017 is marked slow."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.arch.regs import HCR_EL2, PSTATE
from harness.scenarios.explore import Explorer, compact, walk_baseline
from harness.scenarios.explore_cli import json_document, segments_of, summarize
from harness.scenarios.explore_report import render
from harness.scenarios.invariants import check_points, evaluate
from harness.scenarios.runner import booted_for
from harness.scenarios.scenario import Scenario, matrix

ROOT = Path(__file__).resolve().parents[1]

IMO, FMO, AMO, TGE = (HCR_EL2[n].mask for n in ("IMO", "FMO", "AMO", "TGE"))
MASK_BIT = {"irq": PSTATE.I.lsb, "fiq": PSTATE.F.lsb, "serror": PSTATE.A.lsb}       # SPSR bit positions
ROUTE_BIT = {"irq": IMO, "fiq": FMO, "serror": AMO}
TYPE_OFFSET = {"irq": 0x80, "fiq": 0x100, "serror": 0x180}

VHE_HVC = Scenario("v4.13", "max", True, "kvm_run", 0, 0, "hvc")
NVHE_IRQ = Scenario("v4.13", "max", False, "kvm_run", 0, 0, "irq")


def rule(kind: str, pstate: int, hcr: int) -> tuple[int, bool]:
    """(target EL, masked). Routing (facts §1; SCR_EL3 = NS|HCE|RW routes nothing to EL3): an
    interrupt goes to EL2 from EL2, or when HCR_EL2's IMO/FMO/AMO bit or TGE is set, else to EL1.
    Masking (Arm ARM D1.13.4): never taken to a lower EL than the current one; always taken to a
    higher one; at the current EL only when its PSTATE mask (I, F, A) is clear."""
    el = pstate >> 2 & 3
    target = 2 if el == 2 or hcr & ROUTE_BIT[kind] or hcr & TGE else 1
    if target != el:
        return target, target < el
    return target, bool(pstate >> MASK_BIT[kind] & 1)


def vector_offset(kind: str, from_el: int, to_el: int, pstate: int) -> int:
    """Facts §1.7: 0x400 from a lower EL (AArch64), 0x200 at the same EL with SP_ELx; + the type."""
    base = 0x400 if to_el > from_el else (0x200 if pstate & 1 else 0)
    return base + TYPE_OFFSET[kind]


@pytest.fixture(scope="module")
def explorer() -> Explorer:
    return Explorer()


@pytest.fixture(scope="module")
def explored(explorer):
    """Full records (before compaction) and the whole baseline, for two small scenarios."""
    out = {}
    for sc in (VHE_HVC, NVHE_IRQ):
        res = explorer.scenario(sc)
        walk = walk_baseline(booted_for(explorer._boots, sc), sc)
        out[sc.id] = (res, walk)
    return out


def first_unmasked(walk, kind: str, after: int) -> int | None:
    for n in sorted(walk.boundaries):
        bd = walk.boundaries[n]
        if n > after and not rule(kind, bd.pstate, bd.hcr)[1]:
            return n
    return None


@pytest.mark.parametrize("sid", [VHE_HVC.id, NVHE_IRQ.id])
def test_every_point_follows_the_rules(explored, sid):
    """Unmasked at boundary N: taken there (before instruction N+1, ELR = the PC at N) to the
    rule's EL at the rule's vector offset. Masked: taken at the first later boundary where the
    rule unmasks it (after the daifclr or ERET that does), or never."""
    res, walk = explored[sid]
    checked = 0
    for kind, pts in res["kinds"].items():
        assert [p["icount"] for p in pts] == list(range(res["range"][0], res["range"][1] + 1))
        for p in pts:
            target, masked = rule(kind, p["pstate"], p["hcr"])
            if p["note"]:
                continue  # the scenario's own interrupt of this kind was taken at this boundary first
            if not masked:
                assert (p["outcome"], p["taken_at"], p["taken_pc"]) == ("taken", p["icount"], p["pc"]), (kind, p["at"])
                assert p["to_el"] == target
                el = p["pstate"] >> 2 & 3
                assert p["vector_offset"] == vector_offset(kind, el, target, p["pstate"]), (kind, p["at"])
            else:
                assert p["outcome"] == "masked", (kind, p["at"])
                assert p["taken_at"] == first_unmasked(walk, kind, p["icount"]), (kind, p["at"])
            checked += 1
    assert checked > 600


def test_chosen_points(explored, explorer):
    res, walk = explored[VHE_HVC.id]
    img = booted_for(explorer._boots, VHE_HVC).image
    pts = {k: {p["icount"]: p for p in v} for k, v in res["kinds"].items()}
    at = {p["at"]: n for n, p in pts["irq"].items()}
    # In the guest (EL1) with HCR_EL2.IMO=1: the IRQ goes to EL2, above the guest, whatever its
    # PSTATE.I: taken at VBAR_EL2 (__kvm_hyp_vector, installed by __activate_traps) + 0x400 + 0x80.
    g = next(n for n, p in pts["irq"].items() if p["pstate"] >> 2 & 3 == 1)
    p = pts["irq"][g]
    assert p["hcr"] & IMO and (p["outcome"], p["to_el"], p["vector"], p["vector_offset"]) == \
        ("taken", 2, "__kvm_hyp_vector", 0x480)
    assert p["end"] == "poweroff" and p["exit_code"] == img.symbols["ARM_EXCEPTION_IRQ"]
    # In the host's world switch (EL2, DAIF.I=1 since local_irq_disable): held until the ERET into
    # the guest lowers the EL below the IRQ's target: taken at the guest's first boundary.
    p = pts["irq"][at["__kvm_vcpu_run"]]
    assert p["pstate"] >> 7 & 1 and p["outcome"] == "masked"
    assert p["taken_at"] == min(n for n, q in pts["irq"].items() if q["pstate"] >> 2 & 3 == 1)
    # After the exit (the exit's entry set DAIF): held until the host's `msr daifclr, #2`
    # (local_irq_enable), then taken at EL2 through the kernel's vectors (+0x200 + 0x80), and the
    # handler returns to the interrupted instruction with its PSTATE.
    p = pts["irq"][at["vcpu_run_fixup"]]
    assert p["outcome"] == "masked" and p["vector"] == "vectors" and p["vector_offset"] == 0x280
    assert walk.boundaries[p["taken_at"] - 1].pstate >> 7 & 1 and not walk.boundaries[p["taken_at"]].pstate >> 7 & 1
    assert p["returned"] and p["return_diff"] == {}
    # FIQ in the v4.13 host at EL2: F=1 (the SVC's entry set it and v4.13 never clears it), so it
    # is held like the IRQ until the ERET into the guest, then taken to EL2 (FMO=1) at the guest's
    # first boundary: __kvm_hyp_vector + 0x400 + 0x100, v4.13's invalid FIQ vector (hyp_panic).
    p = pts["fiq"][at["host_before_call"]]
    assert p["pstate"] >> MASK_BIT["fiq"] & 1 and p["hcr"] & FMO == 0
    assert (p["outcome"], p["taken_at"]) == ("masked", min(n for n, q in pts["fiq"].items() if q["pstate"] >> 2 & 3 == 1))
    assert (p["vector"], p["vector_offset"], p["end"]) == ("__kvm_hyp_vector", 0x500, "hyp_panic")
    # An SError pending at the guest exit (DAIF.A=1 from the exit's entry): taken right after
    # __guest_exit's `msr daifclr, #4`, at abort_guest_exit_start; el2_error reports it with the
    # SError bit. One boundary later (abort_guest_exit_end) too; after the window, hyp_panic.
    sym = img.symbols
    p = pts["serror"][at["__guest_exit"]]
    assert p["outcome"] == "masked" and p["taken_where"] == "abort_guest_exit_start"
    assert p["exit_code"] == sym["ARM_EXCEPTION_TRAP"] | 1 << sym["ARM_EXIT_WITH_SERROR_BIT"] and p["end"] == "poweroff"
    for label, end in (("abort_guest_exit_start", "poweroff"), ("abort_guest_exit_end", "poweroff"),
                       ("__guest_exit_end", "hyp_panic")):
        p = pts["serror"][at[label]]
        assert (p["outcome"], p["vector"], p["vector_offset"], p["end"]) == ("taken", "__kvm_hyp_vector", 0x380, end)


def test_injection_is_exact_on_the_board(explorer):
    """Board.inject at the current count: taken before the next instruction when unmasked (ELR =
    the PC at the boundary, entry at that count); masked: taken at the first unmasking boundary."""
    booted = booted_for(explorer._boots, VHE_HVC)
    walk = walk_baseline(booted, VHE_HVC)
    b = booted.board
    guest = next(n for n in sorted(walk.boundaries) if walk.boundaries[n].pstate >> 2 & 3 == 1)
    for n, expect in ((guest + 2, guest + 2), (walk.start, guest)):
        b.restore_state(walk.snapshots[n])
        b.inject("irq", at_icount=n, note="t")
        b.run(100_000)
        e = next(x for x in b.events if getattr(x, "note", "") == "t")
        assert e.icount == expect and e.elr == walk.boundaries[expect].pc


@pytest.mark.parametrize("sc, kind", [
    (Scenario("patch-2017", "max", False, "kvm_run", 0, 0, "serror"), "serror"),
    # v5.11's __guest_enter and __guest_exit read ISR_EL1: a masked interrupt pending there changes
    # the run, so no shared group may span those reads
    (Scenario("v5.11", "max", True, "kvm_run", 0, 0, "irq"), "irq"),
], ids=["patch-2017-serror", "v5.11-irq"])
def test_shared_runs_equal_one_run_per_point(explorer, sc, kind):
    """The shared continuations give exactly what one run per point gives."""
    shared = explorer.scenario(sc, (kind,))
    alone = explorer.scenario(sc, (kind,), share=False)
    n_shared = 0
    for kind in shared["kinds"]:
        for a, b in zip(shared["kinds"][kind], alone["kinds"][kind], strict=True):
            n_shared += a["shared_with"] is not None
            assert {k: v for k, v in a.items() if k != "shared_with"} == {k: v for k, v in b.items() if k != "shared_with"}
            assert b["shared_with"] is None
    assert n_shared > 50


def small_run(explorer, scenarios, kinds):
    results = []
    for sc in scenarios:
        sres = explorer.scenario(sc, kinds)
        check_points(sres)
        results.append(compact(sres))
    return results


def test_invariants_small(explorer):
    """patch-2017 drops __guest_exit's PAN set: under VHE a guest exit leaves the guest's PAN=0
    at EL2 (facts §1.6, E2H=1 TGE=0), so an SError taken in the window meets PAN=0 (X1 violated);
    v4.13 sets PAN first (X1 holds). Both report the SError with the SError bit (X4)."""
    scs = [Scenario(v, "max", True, "kvm_run", 0, 0, "hvc") for v in ("v4.13", "patch-2017")]
    results = small_run(explorer, scs, ("serror",))
    verdicts = {x["id"]: x for x in evaluate(results)}
    assert verdicts["X4"]["verdict"] == "holds" and verdicts["X4"]["counts"]["holds"] > 20
    x1 = verdicts["X1"]
    assert x1["verdict"] == "conditional" and x1["by_variant"]["v4.13"]["violated"] == 0
    assert x1["by_variant"]["patch-2017"]["violated"] > 0
    ex = x1["examples"][0]
    assert ex["variant"] == "patch-2017" and ex["observed"]["pan"] == 0 and ex["replay"].startswith(
        "python -m harness debug max-vhe-kvm_run-pan0-uao0-hvc --variant patch-2017 --inject serror@")
    assert verdicts["X3"]["counts"]["violated"] == 0 and verdicts["X3"]["excluded"]
    result = summarize(results, list(verdicts.values()), ("serror",))
    page = render(result)
    assert page.count("<svg") == 2 and "abort_guest_exit_start" in page and "X1" in page


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=600)


def test_json_is_the_same_for_any_jobs():
    args = ["explore", "--only", "v4.13/max-vhe-kvm_run-pan0-uao0-serror", "--only", "patch-2017/max-nvhe-kvm_run-pan1-uao1-*",
            "--kinds", "serror,irq", "--json", "--no-reports"]
    one, two = run_cli(*args, "-j", "1"), run_cli(*args, "-j", "2")
    assert one.returncode == 0 and two.returncode == 0, one.stderr + two.stderr
    assert one.stdout == two.stdout
    d = json.loads(one.stdout)
    assert len(d["scenarios"]) == 8 and {r["kind"] for r in d["table"]} == {"irq", "serror", "all"}
    assert [x["id"] for x in d["invariants"]] == ["X1", "X2", "X3", "X4", "X5", "X6"]


def test_json_rows_keep_every_segment(explored):
    """--json prints segments as rows of COLUMNS with the invariants' verdicts and the source map
    shared; reading it back gives every segment, every field, and it is much smaller."""
    results = []
    for res, _ in explored.values():
        res = json.loads(json.dumps(res))   # a copy: check_points and compact add to it
        check_points(res)
        results.append(compact(res))
    result = summarize(results, evaluate(results), ("irq", "fiq", "serror"))
    doc = json.loads(json.dumps(json_document(result)))
    assert len(doc["scenarios"]) == 2 and doc["table"] == result["table"] and doc["invariants"] == result["invariants"]
    for r, s in zip(results, doc["scenarios"], strict=True):
        assert segments_of(doc, s) == r["kinds"]
        assert doc["src"][s["src"]].items() >= r["src"].items()
        assert {k: v for k, v in s.items() if k not in ("kinds", "src")} == \
            {k: v for k, v in r.items() if k not in ("kinds", "src")}
    size = len(json.dumps(doc, separators=(",", ":")))
    assert size < 0.7 * len(json.dumps(result, separators=(",", ":")))


@pytest.mark.parametrize("args, needle", [
    (["--kinds", "irq,nmi"], "choose among"),
    (["--variant", "v9"], "unknown variant"),
    (["--only", "nothing/*"], "no scenario matches"),
    (["-j", "0"], "at least 1"),
])
def test_cli_bad_input(args, needle):
    r = run_cli("explore", "--no-reports", *args)
    assert r.returncode == 2 and needle in r.stderr and "Traceback" not in r.stderr


def test_cli_selects_as_scenarios_does():
    """explore selects through Catalog.select, as `scenarios` does: the TOML scenarios are there."""
    r = run_cli("explore", "--user", "scenarios/example.toml", "--only", "user/*", "--kinds", "irq", "-j", "1",
                "--json", "--no-reports")
    assert r.returncode == 0, r.stderr
    assert [s["id"] for s in json.loads(r.stdout)["scenarios"]] == ["user/late-pan-reset-vhe-guest-pan0",
                                                                    "user/v4.13-nvhe-irq-exit"]
    r = run_cli("explore", "--user", "scenarios/example.toml", "--cpu", "a57", "--only", "user/*", "--no-reports")
    assert r.returncode == 2 and "no scenario matches" in r.stderr


def test_cli_arch_quirk_reaches_the_points():
    """--arch-quirk: an IRQ taken from the guest keeps PSTATE.DIT (Arm: entry leaves DIT alone,
    facts §8); under dit_cleared_on_entry (QEMU 7.2's behaviour) the same entries clear it."""
    sid = "v4.13/max-vhe-kvm_run-pan1-uao0-hvc-dit1-ssbs1"
    dit = PSTATE.DIT.lsb
    seen = {}
    for quirk in ((), ("--arch-quirk", "dit_cleared_on_entry")):
        r = run_cli("explore", "--only", sid, "--kinds", "irq", "-j", "1", "--json", "--no-reports", *quirk)
        assert r.returncode == 0, r.stderr
        d = json.loads(r.stdout)
        assert d["harness"]["quirks"] == list(quirk[1:])
        segs = segments_of(d, d["scenarios"][0])["irq"]
        taken = [x for x in segs if x["outcome"] == "taken" and x["before"] >> dit & 1]
        assert taken
        seen[quirk[1:]] = {x["after"] >> dit & 1 for x in taken}
    assert seen == {(): {1}, ("dit_cleared_on_entry",): {0}}


def test_debug_inject_stops_where_it_is_taken(explored):
    res, walk = explored[VHE_HVC.id]
    pts = {k: {p["at"]: p for p in v} for k, v in res["kinds"].items()}
    taken = pts["irq"]["guest_entry"]
    r = run_cli("debug", VHE_HVC.config_id, "--variant", "v4.13", "--inject", f"irq@{taken['icount']}")
    assert r.returncode == 0, r.stderr
    assert f"made pending at instruction {taken['icount']:,}" in r.stdout and "taken there" in r.stdout
    assert f"icount {taken['icount']:,}" in r.stdout and "__kvm_hyp_vector+0x480" in r.stdout
    masked = pts["serror"]["__guest_exit"]
    r = run_cli("debug", VHE_HVC.config_id, "--variant", "v4.13", "--inject", f"serror@{masked['icount']}")
    assert f"masked, taken at instruction {masked['taken_at']:,}" in r.stdout and "abort_guest_exit_start" in r.stdout
    r = run_cli("debug", VHE_HVC.config_id, "--inject", "irq@x")
    assert r.returncode == 2 and "KIND@ICOUNT" in r.stderr


@pytest.mark.slow
def test_full_explore_v413_and_patch():
    """The bench's selection. X2-X5 hold everywhere. X6 fails exactly where v4.13's masks are
    never cleared again: a FIQ pending after any exit (the host's process context keeps F=1 and
    nothing in v4.13 clears it; before the exit a pending FIQ is taken once the ERET lowers the
    EL into the guest), and an SError pending at the non-VHE host's EL1 after the exit (the ERET
    gives the host back its A=1, and only hyp's __guest_exit window unmasks A, at EL2). X1 fails
    only under patch-2017, VHE, guest PAN=0, for SErrors."""
    from harness.scenarios.explore import explore_all

    results = explore_all(matrix(["v4.13", "patch-2017"], ("max",)), jobs=2)
    v = {x["id"]: x for x in evaluate(results)}
    for xid in ("X2", "X3", "X4", "X5"):
        assert v[xid]["verdict"] == "holds", (xid, v[xid]["summary"])
    assert v["X6"]["violated_when"] == ["kind=fiq and phase=after_exit", "kind=serror and el=1 and phase=after_exit"]
    assert {(e["variant"], e["config"].split("-")[1], e["kind"]) for e in v["X1"]["examples"]} == {("patch-2017", "vhe", "serror")}
    assert all(e["config"].split("-")[3] == "pan0" for e in v["X1"]["examples"])
