"""The world-switch scenarios: every probe outcome, the host's PSTATE field by field and every
claim's verdict, with the expectations derived from the architectural rules
(shared/reference/arm-pstate-facts.md, cited as §N) and the kernel code each variant models,
not from the harness's own output."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness.arch.pstate import PState
from harness.scenarios.claims import evaluate
from harness.scenarios.observe import Observations
from harness.scenarios.runner import load_scenario_board, run_scenarios
from harness.scenarios.scenario import Scenario, configurations, matrix
from harness.scenarios.world import variant_names, variant_overrides, variant_preamble

ROOT = Path(__file__).resolve().parents[1]

# What each variant's code does (asm/kvm and asm/variants/*.diff), not what it yields.
PAN_RESET_ON_EXIT = ("v4.13", "uao-fix-minimal", "v4.16", "v5.11", "v6.13")  # __guest_exit sets PAN (cb96408da4e1)
PAN_RESET_LATE = ("patch-2017",)                              # set at vcpu_run_fixup, under VHE
UAO_RESTORED = ("patch-2017", "uao-fix-minimal")              # uao_thread_switch(current), under VHE
NO_UAO = ("v5.11", "v6.13")                                   # no set_fs(), no UAO (3d2403fd10a1, 1517c4facf2e)
IRQS_OFF = {"v6.13": 0b0011}                                  # local_irq_disable(): I (v6.13: I and F)
# Process context (the vcpu thread in KVM_RUN): v4.13's el0_svc clears D and I after the SVC's
# entry masked all four (enable_dbg_and_irq), so A and F stay set; from 746647c75afb (v4.16 here)
# el0_svc's enable_daif gives DAIF_PROCCTX = 0.
DAIF_PROCCTX = {"v4.16": 0b0000, "v5.11": 0b0000, "v6.13": 0b0000}   # others: v4.13's 0b0101
DAIF_PROCCTX_NOIRQ = {"v4.16": 0b0010, "v5.11": 0b0010, "v6.13": 0b0011}  # restored after a VHE run
ABORTS_UNMASKED_IN_EXIT = ("v4.13", "no-pan-reset", "patch-2017", "uao-fix-minimal", "v4.16")  # daifclr #4
DIT_AT_BOOT = ("v6.13",)                                      # cpu_enable_dit() (01ab991fc0ee), v6.2 on
FIELDS = tuple(f.name for f in dataclasses.fields(PState))


@pytest.fixture(scope="module")
def runs():
    return run_scenarios(matrix())


@pytest.fixture(scope="module")
def verdicts(runs):
    return {c["id"]: c for c in evaluate(runs)}


def has_pan(s) -> bool:
    return s.cpu == "max"


def host_uao_before(s) -> int:
    # set_fs(KERNEL_DS) (A1's caller) or a kernel thread's KERNEL_DS, switched in by
    # uao_thread_switch (A2's), sets UAO where the CPU has it and the kernel still uses it.
    return int(s.caller in ("kernel_ds", "kthread") and s.cpu == "max" and s.variant not in NO_UAO)


def pan_after_exit_at_el2(s) -> int:
    """PSTATE.PAN at EL2 once __guest_exit has run (before the variant's late fix-up)."""
    if not has_pan(s):
        return 0
    if s.variant in PAN_RESET_ON_EXIT:
        return 1
    # §1.6: entry to EL2 with E2H=0 (non-VHE) or with E2H=1, TGE=0 (VHE guest exit) leaves PAN,
    # as the guest had it at EL1 or at EL0 (where the guest kernel's ERET put SPSR_EL1.PAN).
    return s.guest_pan


def host_pan_after(s) -> int:
    if not has_pan(s):
        return 0
    if not s.vhe:
        return 1  # §2: the ERET back to EL1 restores the host's PAN from SPSR_EL2
    return 1 if s.variant in PAN_RESET_LATE else pan_after_exit_at_el2(s)


def host_uao_after(s) -> int:
    if s.cpu != "max" or s.variant in NO_UAO:
        return 0
    if not s.vhe:
        return host_uao_before(s)  # §2: restored by the ERET
    # §1.2: the exit cleared UAO; only uao_thread_switch(current) derives it again.
    return host_uao_before(s) if s.variant in UAO_RESTORED else 0


def host_daif_before(s) -> int:
    return DAIF_PROCCTX.get(s.variant, 0b0101) | IRQS_OFF.get(s.variant, 0b0010)


def host_daif_after(s) -> int:
    if not s.vhe:
        return host_daif_before(s)  # §2: the ERET restores D, A, I, F from SPSR_EL2
    if s.variant in DAIF_PROCCTX_NOIRQ:
        return DAIF_PROCCTX_NOIRQ[s.variant]  # local_daif_restore() after the run
    # §1.5: the exit masked D, A, I, F and no ERET returns to the host; __guest_exit's SError
    # window unmasks A (before v5.11 always, after only with an SError pending).
    return 0b1011 if s.variant in ABORTS_UNMASKED_IN_EXIT else 0b1111


def host_dit_before(s) -> int:
    return int(s.cpu == "max" and s.variant in DIT_AT_BOOT)  # set at boot; no code clears it


def host_dit_after(s) -> int:
    if not s.vhe:
        return host_dit_before(s)  # §2: the ERET restores DIT from SPSR_EL2 (SetPSTATEFromPSR)
    # §8: AArch64.TakeException leaves DIT as the guest had it, no ERET returns to the host and
    # no code on the VHE path writes DIT (v6.2+ sets it on entry from EL0 only)
    return s.guest_dit


def host_ssbs_after(s) -> int:
    # §8: a VHE exit sets SSBS from SCTLR_EL2.DSSBS, which no model sets (0: Linux's default,
    # the kernel runs with SSBS=0); non-VHE: §2, the ERET restores the host's SSBS (0)
    return 0


def expected_leaks(s) -> dict[str, str]:
    """W2's evidence, field by field from the rules above (NZCV left out: AAPCS64 does not keep
    them across a call; EL, SP, SS, IL, nRW: the host's path comes back at EL2h/EL1h; BTYPE:
    0 after every instruction but a BR/BLR, and the points follow a BL and a RET)."""
    before = {"pan": int(has_pan(s)), "uao": host_uao_before(s), "daif": host_daif_before(s),
              "dit": host_dit_before(s), "ssbs": 0}
    after = {"pan": host_pan_after(s), "uao": host_uao_after(s), "daif": host_daif_after(s),
             "dit": host_dit_after(s), "ssbs": host_ssbs_after(s)}
    out = {}
    if before["daif"] != after["daif"]:
        out["daif"] = f"0b{before['daif']:04b} -> 0b{after['daif']:04b}"
    out.update({f: f"{before[f]} -> {after[f]}" for f in ("pan", "uao", "dit", "ssbs") if before[f] != after[f]})
    return out


def expected_probes(s) -> dict[str, str]:
    pan, uao = host_pan_after(s), host_uao_after(s)
    unpriv_uaccess = s.cpu == "max" or s.variant in NO_UAO   # LDTR/STTR (else plain LDR/STR)
    # §3: PAN=1 faults privileged data accesses to AP[1]=1 pages at EL1 / EL2 with E2H=1.
    ldr = "fault" if pan else "ok"
    if unpriv_uaccess and not uao:
        user, kern = "ok", "fault"        # §3: an EL0 access: the user page yes, AP=00 no
    else:
        user, kern = ("fault" if pan else "ok"), "ok"   # privileged: PAN decides the user page
    window = "fault" if (s.vhe and pan_after_exit_at_el2(s)) else "ok"  # §3: no PAN effect at E2H=0
    out = {"probe_ldr_user": ldr, "probe_uaccess_user": user, "probe_uaccess_kernel": kern,
           "probe_window_ldr": window}
    if s.vhe:
        out.update(probe_hyp_pan1="fault", probe_hyp_pan0="ok", probe_hyp_call_kernel="ok", probe_hyp_current="ok")
    else:
        # Non-VHE hyp tables map hyp text/data only: kernel text and `current` abort at EL2.
        out.update(probe_hyp_pan1="ok" if has_pan(s) else "not_run", probe_hyp_pan0="ok" if has_pan(s) else "not_run",
                   probe_hyp_call_kernel="fault", probe_hyp_current="fault")
    return out


def test_matrix_covers_every_meaningful_configuration(runs):
    # max: VHE or not x 3 callers x PAN x UAO x (4 exits from EL1 + 3 from EL0: no HVC at EL0),
    # and the guest with DIT=SSBS=1: VHE or not x every exit (KVM_RUN); a57: non-VHE only, no
    # PAN/UAO/DIT/SSBS to set.
    per_variant = 2 * 3 * 2 * 2 * (4 + 3) + 2 * (4 + 3) + 3 * (4 + 3)
    assert len(configurations()) == per_variant == 203
    assert len(runs) == len(variant_names()) * per_variant
    assert all(r.ok and not r.observations.failures for r in runs), [r.scenario.id for r in runs if not r.ok][:3]
    assert not any(s.guest_el == 0 and s.exit == "hvc" for s in configurations())


def test_probe_outcomes_follow_the_rules(runs):
    wrong = []
    for r in runs:
        want = expected_probes(r.scenario)
        got = {p: r.observations.probes[p].outcome for p in want}
        if got != want:
            wrong.append((r.scenario.id, {p: (got[p], want[p]) for p in want if got[p] != want[p]}))
    assert not wrong, wrong[:5]


def test_pstate_after_return_follows_the_rules(runs):
    for r in runs:
        s, after = r.scenario, r.observations.points["host_after_call"]
        assert (after.pan, after.uao) == (host_pan_after(s), host_uao_after(s)), s.id
        assert after.daif == host_daif_after(s), s.id
        assert after.el == (2 if s.vhe else 1) and after.sp == 1


def test_observed_points_carry_every_pstate_field(runs):
    for r in runs[:: len(configurations()) // 7]:
        for name, point in r.observations.to_json()["points"].items():
            assert set(FIELDS) | {"daif", "icount"} == set(point), (r.scenario.id, name)
            assert point["daif"] == point["d"] << 3 | point["a"] << 2 | point["i"] << 1 | point["f"]


def test_observations_json_reads_back(runs):
    """The JSON form is stable: reading it back gives the same records, and its JSON again."""
    for r in runs[:: len(configurations()) // 7]:
        j = r.observations.to_json()
        back = Observations.from_json(json.loads(json.dumps(j)))
        assert back == r.observations and back.to_json() == j, r.scenario.id


def test_guest_exit(runs):
    ec = {"hvc": 0x16, "wfi": 0x01, "serror": 0x2F, "irq": None}
    code = {"hvc": 2, "wfi": 2, "irq": 0, "serror": 1}   # ARM_EXCEPTION_TRAP / _IRQ / _EL1_SERROR
    for r in runs:
        s, x = r.scenario, r.observations.exit
        assert x.ec == ec[s.exit], s.id
        assert x.from_el == x.before.el == s.guest_el and x.after.el == 2, s.id
        assert x.after.uao == 0                                  # §1.2
        assert x.after.pan == (s.guest_pan if has_pan(s) else 0)  # §1.6: SPAN does not act here
        assert x.after.daif == 0b1111                            # §1.5
        # §1.7: a lower EL using AArch64, from EL1 and from EL0 alike
        assert x.vector_offset == 0x400 + {"hvc": 0, "wfi": 0, "irq": 0x80, "serror": 0x180}[s.exit]
        assert r.observations.exit_code == code[s.exit]


def test_exposure_window_only_where_pan_is_not_reset_at_exit(runs):
    for r in runs:
        s, w = r.scenario, r.observations.window
        # §1.6: the exit itself never sets PAN here, so a guest's PAN=0 always opens it ...
        assert w.opened == (has_pan(s) and s.guest_pan == 0), s.id
        if w.opened and s.variant in PAN_RESET_ON_EXIT:
            # ... and __guest_exit's reset closes it before the window probe runs.
            assert w.closed_by.startswith("msr pan, #1 at __guest_exit") and not w.probe_inside, s.id
    late = next(r for r in runs if r.scenario.id == "patch-2017/max-vhe-kvm_run-pan0-uao0-hvc")
    assert late.observations.window.closed_by.startswith("msr pan, #1 at vcpu_run_fixup")
    assert late.observations.window.instructions > 50   # the whole of the sysreg restore
    # A guest at EL0 exits with PAN as EL0 has it: Linux user space runs with PAN=0, so there
    # the window opens whatever PAN the guest kernel uses.
    el0 = next(r for r in runs if r.scenario.id == "patch-2017/max-vhe-kvm_run-pan0-uao0-irq-el0")
    assert el0.observations.window.opened and el0.observations.probes["probe_window_ldr"].outcome == "ok"


def test_w2_evidence_names_each_leaked_field(verdicts):
    evidence = {e["scenario"]: e for e in verdicts["W2"]["evidence"]}
    assert len(evidence) == len(variant_names()) * len(configurations())   # every scenario
    wrong = []
    for s in matrix():
        e, want = evidence[s.id], expected_leaks(s)
        got = {} if e["observed"]["leaks"] == "none" else e["observed"]["leaks"]
        if got != want or e["holds"] != (not want):
            wrong.append((s.id, got, want))
    assert not wrong, wrong[:5]
    by = verdicts["W2"]["by_variant"]
    vhe = sum(c.vhe for c in configurations())
    vhe_config = next(c for c in configurations() if c.vhe)
    daif = f"daif {expected_leaks(vhe_config)['daif']}"       # v4.13: D, A, I, F before -> after
    assert by["v4.13"]["leaks"][daif] == vhe == 91                   # every VHE configuration
    # §8: a VHE host runs on with the guest's DIT: DIT=1 guests (7 configurations) before v6.2,
    # and under v6.13 (host DIT=1) every guest with DIT=0; SSBS never leaks (DSSBS)
    dit1 = sum(c.vhe and c.guest_dit for c in configurations())
    assert by["v5.11"]["leaking"] == by["v5.11"]["leaks"]["dit 0 -> 1"] == dit1 == 7
    assert by["v6.13"]["leaking"] == by["v6.13"]["leaks"]["dit 1 -> 0"] == vhe - dit1
    assert not any("ssbs" in k for v in by.values() for k in v["leaks"])


def test_r7b_every_exception_to_el2_follows_the_pan_rule(runs, verdicts):
    """§1.6 per exception: under VHE, PAN is set iff E2H=1, TGE=1 and SPAN=0; otherwise it stays.
    Guest exits run with TGE=0 (__activate_traps), host exceptions with TGE=1."""
    n = 0
    for r in runs:
        if not r.scenario.vhe:
            continue
        for e in r.observations.el2_entries:
            assert e.e2h == 1 and e.span == 0, (r.scenario.id, e)   # cpu_enable_pan cleared SPAN
            assert e.tge == (0 if e.from_el < 2 else e.tge)
            want = 1 if e.tge == 1 else e.pan_before
            assert e.pan_after == want, (r.scenario.id, e)
            n += 1
    assert len(verdicts["R7b"]["evidence"]) == n
    assert any(x["axes"]["tge"] == 1 and x["axes"]["pan_before"] == 0 for x in verdicts["R7b"]["evidence"])


def test_a1_and_a2_rest_on_different_paths(verdicts):
    a1 = {e["scenario"] for e in verdicts["A1"]["evidence"]}
    a2 = {e["scenario"] for e in verdicts["A2"]["evidence"]}
    assert a1 and a2 and not a1 & a2
    assert all("-kernel_ds-" in i for i in a1) and all("-kthread-" in i for i in a2)


@pytest.mark.parametrize("caller, stack, task", [("kernel_ds", "vcpu_stack", "vcpu_task"),
                                                 ("kthread", "kthread_stack", "kvm_kthread_task")])
def test_kernel_ds_paths_have_their_own_stack_and_task(caller, stack, task):
    board = load_scenario_board(Scenario("v4.13", caller=caller))
    board.add_breakpoint(board.resolve("host_before_call"))
    assert board.run().status == "breakpoint"
    assert board.resolve(stack) < board.sp <= board.resolve(f"{stack}_top")
    assert board.read_sysreg("SP_EL0") == board.resolve(task)     # `current`
    assert board.pstate().uao == 1                                # KERNEL_DS: set_fs or inherited


EXPECTED_VERDICTS = {
    "A1": ("holds", []),        # §1.2 clears UAO on the exit; nothing restores it in v4.13
    "R1": ("holds", []),        # USER_DS: UAO is 0 before, and §1.2 makes it 0 after
    "A2": ("holds", []),        # the kernel thread's UAO=1 is lost the same way (§1.2)
    "R2": ("holds", []),
    "A3": ("conditional", ["mode=nvhe", "mode=vhe and guest_pan=1"]),  # the late reset opens a window
    "R3": ("fails", []),        # the bit changes, but §3: PAN does nothing in the EL2 (E2H=0) regime
    "A4": ("holds", []),        # §2
    "R4": ("conditional", ["mode=nvhe"]),  # VHE: the kernel is mapped where hyp code runs
    "A5": ("holds", []),
    "R5": ("conditional", ["guest_pan=1"]),  # §1.6: a guest's PAN=0 survives the exit
    "R6": ("holds", []),        # §1.2
    "R7a": ("fails", []),       # §3 and §2: nothing non-VHE depends on the reset
    "R7b": ("conditional", ["tge=0 and pan_before=1", "tge=1"]),  # §1.6: SPAN acts with TGE=1 only
    "W1": ("conditional", ["variant=no-pan-reset", "variant=patch-2017"]),
    # §2 (non-VHE ERET), the DAIF restore of v4.16 on, no UAO from v5.11, §8 DIT kept on a VHE
    # exit (the guest's equal to the host's: DIT=0 before v6.2, 1 under v6.13): see expected_leaks
    "W2": ("conditional", ["mode=nvhe", "variant=v5.11 and guest_dit=0",
                           "variant=v4.16 and caller=kvm_run and guest_dit=0", "variant=v6.13 and guest_dit=1"]),
}
EXPECTED_PARTS = {
    "R3": {"part1_pan_bit_changes": "holds", "part2_pan_acts_at_el2": "fails"},
    "R7a": {"reset_needed": "fails",                # §3: PAN acts on no EL2 (E2H=0) access; §2
            "e2h0_entry_never_sets_pan": "holds"},  # §1.6: PAN is set at EL2 only with E2H=1, TGE=1
}


@pytest.mark.parametrize("cid", sorted(EXPECTED_VERDICTS))
def test_claim_verdicts(verdicts, cid):
    verdict, conditions = EXPECTED_VERDICTS[cid]
    c = verdicts[cid]
    assert (c["verdict"], c["conditions"]) == (verdict, conditions), c["summary"]
    assert c["evidence"] and all(e["observed"] for e in c["evidence"])
    assert {p["key"]: p["verdict"] for p in c.get("parts", [])} == EXPECTED_PARTS.get(cid, {})


def test_r7a_evidence(verdicts):
    obs = verdicts["R7a"]["evidence"][0]["observed"]
    assert obs["el2_load_user_page_pan1"] == obs["el2_load_user_page_pan0"] == "ok"
    assert obs["e2h0_entries"] and all("PAN" in x for x in obs["e2h0_entries"])


def _quirk_subset() -> list[Scenario]:
    """VHE and non-VHE configurations of the variants the quirk-sensitive claims read (a
    guest at EL1 leaving by HVC or IRQ, and at EL0 by IRQ, to keep it short)."""
    return [s for s in matrix(["v4.13", "patch-2017", "no-pan-reset", "v4.16"], ("max",))
            if s.exit == "irq" or (s.exit == "hvc" and s.guest_el == 1)]


def test_verdicts_follow_the_architecture_not_a_table():
    """With exception entry made to keep UAO (against §1.2), a guest's UAO=1 reaches the host:
    the claims resting on that rule change, and W2 sees the guest's UAO leak into the host.
    With entry never setting PAN (against §1.6), R7b holds only where PAN was already 1, and
    R7a does not move: it rests on §2 and §3, which no quirk changes."""
    base = {c["id"]: c for c in evaluate(run_scenarios(_quirk_subset()))}
    keep = {c["id"]: c for c in evaluate(run_scenarios(_quirk_subset(), quirks=("keep_uao_on_entry",)))}
    assert keep["R1"]["verdict"] == "conditional" and keep["R1"]["conditions"] == ["guest_uao=0"]
    assert keep["R6"]["verdict"] == "conditional"
    sid = "v4.16/max-vhe-kvm_run-pan0-uao1-irq"
    w2_base = next(e for e in base["W2"]["evidence"] if e["scenario"] == sid)
    w2_keep = next(e for e in keep["W2"]["evidence"] if e["scenario"] == sid)
    assert w2_base["holds"] and not w2_keep["holds"] and w2_keep["observed"]["leaks"] == {"uao": "0 -> 1"}
    nopan = {c["id"]: c for c in evaluate(run_scenarios(_quirk_subset(), quirks=("no_pan_on_entry",)))}
    assert base["R7b"]["conditions"] == ["tge=0 and pan_before=1", "tge=1"]
    assert nopan["R7b"]["verdict"] == "conditional" and nopan["R7b"]["conditions"] == ["pan_before=1"]
    for q in (keep, nopan):
        assert (q["R7a"]["verdict"], q["R7a"]["parts"]) == (base["R7a"]["verdict"], base["R7a"]["parts"])


def test_dit_and_ssbs_verdicts_follow_the_entry_rules():
    """§8 on the DIT slice of v4.13 and v6.13 (VHE and not, a guest at EL1 and at EL0): with
    entry clearing DIT as QEMU 7.2 does (against AArch64.TakeException), no guest's DIT=1 reaches
    a pre-v6.2 host any more, and v6.13's host loses its DIT=1 after every VHE exit, DIT=1 guest
    or not; with entry keeping SSBS (against SSBS = SCTLR_EL2.DSSBS), the guest's SSBS=1 reaches
    the VHE host. The verdicts are W2's evidence, read from the runs."""
    subset = [s for s in matrix(["v4.13", "v6.13"], ("max",)) if s.caller == "kvm_run" and s.guest_uao == 0
              and s.exit in ("hvc", "irq") and s.guest_pan == s.guest_el]

    def leaks(quirks: tuple[str, ...] = ()) -> dict[str, dict]:
        w2 = next(c for c in evaluate(run_scenarios(subset, quirks=quirks)) if c["id"] == "W2")
        return {e["scenario"]: {} if e["observed"]["leaks"] == "none" else e["observed"]["leaks"] for e in w2["evidence"]}

    base, cleared, kept = leaks(), leaks(("dit_cleared_on_entry",)), leaks(("ssbs_kept_on_entry",))
    for s in subset:
        assert base[s.id] == expected_leaks(s), s.id  # the Arm rules
        want_dit = host_dit_before(s) if not s.vhe else 0  # what a clearing entry leaves the VHE host
        before = host_dit_before(s)
        assert cleared[s.id].get("dit") == (None if want_dit == before else f"{before} -> {want_dit}"), s.id
        assert kept[s.id].get("ssbs") == ("0 -> 1" if s.vhe and s.guest_ssbs else None), s.id
    assert any(base[s.id].get("dit") == "0 -> 1" and "dit" not in cleared[s.id] for s in subset)
    assert any("dit" not in base[s.id] and cleared[s.id].get("dit") == "1 -> 0" for s in subset)


def test_variants_say_what_they_model():
    for v in variant_names():
        provenance, base = variant_preamble(v)
        assert provenance, v
        assert v == "v4.13" or base in variant_names()
        assert provenance.startswith(("Linux v", "What-if", "The 2017 patch")), v
        dict(variant_overrides(v))   # the chain of diffs applies
    assert variant_preamble("v6.13")[1] == "v5.11" and variant_preamble("v5.11")[1] == "v4.16"


def test_default_output_lists_the_variants_with_their_provenance():
    """Issue 11: `make run-scenarios` names each variant with the release and commits it models and
    whether it is that kernel or a what-if. A variant named after a release is that release; the
    commit ids are the ones its diff's preamble cites."""
    p = _cli("--only", "*/max-vhe-kvm_run-pan0-uao0-hvc", "--only", "user/*")
    assert p.returncode == 0, p.stderr
    out = " ".join(p.stdout.split())     # the upstream column may wrap
    listed = p.stdout.split("Variants (--details")[1].split("Claims of the review")[0]
    names = [line.split()[0] for line in listed.splitlines()[2:] if line.strip() and not line.startswith(" ")]
    assert sorted(names) == sorted([*variant_names(), "late-pan-reset"])
    for line in listed.splitlines()[2:]:
        if not line.strip() or line.startswith(" "):
            continue
        name = line.split()[0]
        provenance, _ = variant_preamble(name, str(ROOT / "scenarios" / "late-pan-reset.diff")
                                         if name == "late-pan-reset" else None)
        release = re.fullmatch(r"v\d+\.\d+", name)
        assert line.split()[1] == (name if release else "on"), line
        assert line.rstrip().endswith("faithful" if release else ("patch (unmerged)" if name == "patch-2017"
                                                                   else "what-if")), line
        for commit in re.findall(r"\b[0-9a-f]{12}\b", provenance):
            assert commit in out, (name, commit)
    assert "--details adds what each variant models" in p.stdout


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", "scenarios", "--no-reports", *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_cli_json_and_filters():
    p = _cli("--json", "--variant", "patch-2017", "--vhe", "--cpu", "max", "--only", "*kernel_ds*")
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    ids = [s["id"] for s in d["scenarios"]]
    assert ids and all(i.startswith("patch-2017/max-vhe-kernel_ds") for i in ids)
    a5 = next(c for c in d["claims"] if c["id"] == "A5")
    assert a5["verdict"] == "holds" and a5["evidence"][0]["scenario"] in ids
    # The contract: R7a, R7b, W2 with evidence; guest_el in every config; every PState field
    # at every observed point.
    assert {"R7a", "R7b", "W2"} <= {c["id"] for c in d["claims"]} and "R7" not in {c["id"] for c in d["claims"]}
    for s in d["scenarios"]:
        assert s["config"]["guest_el"] in (0, 1)
        assert all(set(FIELDS) <= set(pt) for pt in s["observations"]["points"].values())
    assert [v["name"] for v in d["variants"]] == ["patch-2017"] and d["variants"][0]["provenance"]


def test_cli_bad_input_is_one_line(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[[scenario]]\nname = "x"\nmode = "sideways"\n')
    p = _cli("--user", str(bad))
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "mode = 'sideways'" in p.stderr
    bad.write_text('[[scenario]]\nname = "x"\nguest_el = 0\nexit = "hvc"\n')
    p = _cli("--user", str(bad))
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "exit = 'hvc'" in p.stderr
    bad.write_text('[[scenario]\n')
    p = _cli("--user", str(bad))
    assert p.returncode == 2 and f"{bad}:1:" in p.stderr and "Traceback" not in p.stderr
    p = _cli("--variant", "nonsense")
    assert p.returncode == 2 and "unknown variant" in p.stderr


def test_user_example_scenarios_meet_their_expectations():
    p = _cli("--json", "--only", "user/*")
    assert p.returncode == 0, p.stderr
    user = json.loads(p.stdout)["user"]
    assert len(user) == 2 and all(u["met"] for u in user), user
