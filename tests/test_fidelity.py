"""Differential fidelity (issue 5): generated programs on qemu-system-aarch64 and the harness.

Fast by default: the case space, the exclusions and the comparison are checked without QEMU,
and a quick differential run (every 8th exhaustive case plus 100 random ones) runs where QEMU
is installed. The full run (all exhaustive slices plus 600 random cases) is marked slow.
"""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import pytest

from harness.arch.exceptions import SysCtx, wfx_trap_target
from harness.arch.regs import HCR_EL2, SCTLR
from harness.fidelity import cli
from harness.fidelity.cases import KINDS, MODES, Case, exhaustive, sampled
from harness.fidelity.compare import CaseOutput, ExclusionError, compare, load_exclusions, parse
from harness.fidelity.run import run, select_cases
from harness.qemu import TOOLS

HAVE_TOOLS = all(shutil.which(t) for t in TOOLS)
needs_qemu = [pytest.mark.qemu, pytest.mark.skipif(not HAVE_TOOLS, reason="needs GNU binutils and QEMU")]


# ---- the case space


def test_sampling_is_seeded_valid_and_distinct():
    a, b = sampled(600, 7), sampled(600, 7)
    assert a == b and len(set(a)) == 600
    assert all(c.invalid_reason() is None for c in a)
    assert sampled(50, 8) != a[:50]
    # every axis takes every value somewhere
    assert {c.mode for c in a} == set(MODES) and {c.kind for c in a} == set(KINDS)
    assert {(c.e2h, c.tge) for c in a} == {(0, 0), (0, 1), (1, 0), (1, 1)}
    assert {c.daif for c in a} == set(range(16)) and {c.mmu for c in a} == {0, 1}
    assert {(c.dit, c.ssbs, c.dssbs1, c.dssbs2) for c in a} == set(itertools.product((0, 1), repeat=4))


def test_exhaustive_slices_cover_their_axes():
    ex = exhaustive()
    assert len(ex) == len(set(ex)) > 1000
    mem = [c for c in ex if c.kind in ("ldr", "str", "ldtr", "sttr") and c.target in ("kpage", "upage")]
    combos = {(c.mode, c.e2h, c.tge, c.kind, c.target, c.pan, c.uao) for c in mem}
    valid_modes = 5 * 2 + 3 * 2  # EL1 origins only without TGE
    assert len(combos) == valid_modes * 4 * 2 * 4
    # facts §8: DIT and SSBS on entry, every class x origin x regime x DIT x SSBS x DSSBS (EL1, EL2)
    entry = {(c.mode, c.e2h, c.tge, c.kind, c.dit, c.ssbs, c.dssbs1, c.dssbs2) for c in ex
             if c.kind in ("svc", "hvc", "brk", "udf") and c.xor == "none" and c.mmu and not c.pan}
    assert len(entry) >= valid_modes * 4 * 16
    # their MSR forms and the ERETs loading them (or an illegal one keeping them), at every origin
    assert {(c.mode, c.kind) for c in ex if c.kind in ("msrreg", "msrimm")} == set(itertools.product(MODES, ("msrreg", "msrimm")))
    assert {c.xor for c in ex if c.dit or c.ssbs} >= {"dit", "ssbs", "btype", "m8dit"}
    assert {(c.mode, c.kind) for c in ex if c.kind in ("brsvc", "blrbrk")} == set(itertools.product(MODES, ("brsvc", "blrbrk")))


@pytest.mark.parametrize("case, reason", [
    (Case(mode="el1h", tge=1), "illegal return"),
    (Case(kind="wfi", mode="el2h"), "untrapped WFI"),
    (Case(kind="wfi", mode="el1h", twi=0), "untrapped WFI"),
    (Case(kind="wfi", mode="el0t", e2h=1, tge=1, twi=1, ntwi=1), "untrapped WFI"),
    (Case(kind="ldr", target="unmapped", mmu=0), "outside RAM"),
    (Case(kind="str", target="unmapped", mode="el0t", tge=1), "outside RAM"),
    (Case(kind="ldr"), "needs a target"),
])
def test_cases_that_cannot_run_are_not_generated(case, reason):
    assert reason in case.invalid_reason()


def test_wfx_trap_target_follows_check_for_wfx_trap():
    e2h, tge, twi, ntwi = HCR_EL2.E2H.mask, HCR_EL2.TGE.mask, HCR_EL2.TWI.mask, SCTLR.nTWI.mask
    host = SysCtx(hcr_el2=e2h | tge, sctlr_el1=0, sctlr_el2=ntwi)
    assert wfx_trap_target(0, host) is None  # in host SCTLR_EL2.nTWI decides, not SCTLR_EL1's
    assert wfx_trap_target(0, SysCtx(hcr_el2=host.hcr_el2, sctlr_el1=ntwi, sctlr_el2=0)) == 2
    assert wfx_trap_target(0, SysCtx(hcr_el2=tge, sctlr_el1=0)) == 2  # TGE sends EL1's trap up
    assert wfx_trap_target(0, SysCtx(sctlr_el1=0)) == 1
    assert wfx_trap_target(1, SysCtx(hcr_el2=twi, sctlr_el1=ntwi)) == 2
    assert wfx_trap_target(1, SysCtx(sctlr_el1=0)) is None  # nTWI is for EL0 only
    assert wfx_trap_target(2, SysCtx(hcr_el2=twi)) is None


# ---- exclusions and comparison


def _out(line: str) -> CaseOutput:
    return parse(line)[0]


ABORT = "C0 n=1 x0=0x1 exit=0x3c9 | vec=0x200 el=0x8 esr={esr} elr=0x40 spsr=0x3c9 far=0x4 pan=0x0 uao=0x0 daif=0x3c0 spsel=0x1"


def test_masks_leave_out_only_the_listed_bits_and_check_the_arm_value():
    ex = load_exclusions()
    case = Case(mode="el2h", kind="ldr", target="upage")
    v = compare(case, _out(ABORT.format(esr="0x97c0800b")), _out(ABORT.format(esr="0x9600000b")), ex)
    assert v.status == "agree" and v.masked == ["isv_stage1_abort_at_el2"] and not v.arm_violations
    v = compare(case, _out(ABORT.format(esr="0x97c0800b")), _out(ABORT.format(esr="0x9600000c")), ex)
    assert v.status == "differ" and v.detail == "exception 1 esr: QEMU 0x97c0800b, harness 0x9600000c"
    # the harness itself must show ISV=0 there
    v = compare(case, _out(ABORT.format(esr="0x97c0800b")), _out(ABORT.format(esr="0x97c0800b")), ex)
    assert v.arm_violations and "isv_stage1_abort_at_el2" in v.arm_violations[0]


SVC_DIT = ("C0 n=1 x0=0x1111 exit=0x1000000 | vec=0x400 el=0x4 esr=0x56000033 elr=0x40 spsr={spsr} far=- pan=0x0 "
           "uao=0x0 daif=0x3c0 spsel=0x1 dit={dit} ssbs=0x0")


def test_dit_cleared_on_entry_is_masked_only_where_dit_was_set_and_the_harness_keeps_it():
    # Arm (AArch64.TakeException, facts §8): DIT is not assigned on entry, so the handler's DIT
    # equals SPSR.DIT; QEMU 7.2 clears it. The mask applies to records whose SPSR has DIT=1.
    ex = load_exclusions()
    case = Case(mode="el0t", kind="svc", dit=1)
    qemu = _out(SVC_DIT.format(spsr="0x1000000", dit="0x0"))
    v = compare(case, qemu, _out(SVC_DIT.format(spsr="0x1000000", dit="0x1000000")), ex)
    assert v.status == "agree" and v.masked == ["dit_cleared_on_entry"] and not v.arm_violations
    # a harness that cleared DIT too would agree with QEMU and break the Arm rule: reported
    v = compare(case, qemu, _out(SVC_DIT.format(spsr="0x1000000", dit="0x0")), ex)
    assert v.arm_violations and "dit_cleared_on_entry: exception 1 dit = 0x0" in v.arm_violations[0]
    # with SPSR.DIT=0 there is nothing to mask: the handler's DIT is compared as it is
    v = compare(Case(mode="el0t", kind="svc"), _out(SVC_DIT.format(spsr="0x0", dit="0x0")),
                _out(SVC_DIT.format(spsr="0x0", dit="0x1000000")), ex)
    assert v.status == "differ" and v.detail == "exception 1 dit: QEMU 0x0, harness 0x1000000"


def test_whole_case_exclusion_still_reports_what_qemu_did():
    ex = load_exclusions()
    case = Case(mode="el0t", tge=1, kind="ldr", target="kpage")
    q = _out("C0 n=1 x0=0x1 exit=0x0 | vec=0x400 el=0x8 esr=0x9200000f elr=0x40 spsr=0x0 far=0x4 pan=0x0 uao=0x0 daif=0x3c0 spsel=0x1")
    v = compare(case, q, _out("C0 n=0 x0=0x1111 exit=0x0"), ex)
    assert v.status == "excluded" and v.detail.startswith("el0_tge_e2h0_stage1_off (QEMU differs: exceptions taken")


def test_a_malformed_exclusion_is_one_clear_error(tmp_path: Path):
    bad = tmp_path / "x.toml"
    bad.write_text('[[exclusion]]\nname = "x"\nreason = "y"\nmatch = { colour = [1] }\n')
    with pytest.raises(ExclusionError, match="exclusion 1 \\(x\\): match names no case field"):
        load_exclusions(bad)
    bad.write_text("[[exclusion]\n")
    with pytest.raises(ExclusionError, match="x.toml"):
        load_exclusions(bad)


def test_missing_tools_is_one_line_and_exit_2(monkeypatch, capsys):
    monkeypatch.setattr(shutil, "which", lambda _t: None)
    assert cli.main(["--no-save"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "qemu-system-aarch64" in err


# ---- the differential runs


@pytest.mark.qemu
@pytest.mark.skipif(not HAVE_TOOLS, reason="needs GNU binutils and QEMU")
def test_quick_run_agrees_with_qemu(tmp_path: Path):
    res = run(select_cases(100, 11, quick=True), tmp_path)
    assert not res.problems, res.problems
    bad = [f"C{r.num} {r.case.id}: {r.verdict.detail}" for r in res.results if r.verdict.status != "agree"
           and r.verdict.status != "excluded"]
    assert not bad, bad[:5]
    assert res.count("agree") > 250
    assert all(p.words > 1000 for p in res.programs)


@pytest.mark.qemu
@pytest.mark.skipif(not HAVE_TOOLS, reason="needs GNU binutils and QEMU")
def test_a_wrong_architecture_is_caught_with_the_field_named(tmp_path: Path):
    cases = [Case(mode="el0t", kind="svc", span1=0), Case(mode="el1h", kind="brk", span1=0)]
    res = run(cases, tmp_path, quirks=("no_pan_on_entry",))
    details = [r.verdict.detail for r in res.results]
    assert [r.verdict.status for r in res.results] == ["differ", "differ"]
    assert details[0] == "exception 1 pan: QEMU 0x400000, harness 0x0"
    text = cli.side_by_side(res.results[0].case, 0, res.results[0].qemu, res.results[0].ours, details[0])
    assert any(ln.split() == ["1.pan", "0x400000", "0x0", "<-"] for ln in text.splitlines()), text


@pytest.mark.qemu
@pytest.mark.skipif(not HAVE_TOOLS, reason="needs GNU binutils and QEMU")
def test_the_dit_and_ssbs_entry_rules_are_checked_against_qemu_and_the_arm_rule(tmp_path: Path):
    # SSBS = SCTLR_ELx.DSSBS of the target EL (AArch64.TakeException): QEMU 7.2 does the same, so a
    # harness keeping SSBS differs from QEMU; DIT kept on entry: a harness clearing it as QEMU does
    # agrees with QEMU but breaks the Arm rule the reviewed exclusion states.
    cases = [Case(mode="el0t", kind="svc", ssbs=1, dssbs1=0), Case(mode="el1h", kind="hvc", dit=1, dssbs2=1)]
    right = run(cases, tmp_path / "arm")
    assert [r.verdict.status for r in right.results] == ["agree", "agree"] and not right.problems, right.problems
    ssbs = run(cases[:1], tmp_path / "ssbs", quirks=("ssbs_kept_on_entry",))
    assert ssbs.results[0].verdict.detail == "exception 1 ssbs: QEMU 0x0, harness 0x1000"
    dit = run(cases[1:], tmp_path / "dit", quirks=("dit_cleared_on_entry",))
    assert dit.results[0].verdict.status == "agree"
    assert dit.problems and "dit_cleared_on_entry: exception 1 dit = 0x0, Arm rule wants bits 0x1000000 = 0x1000000" \
        in dit.problems[0]


@pytest.mark.qemu
@pytest.mark.skipif(not HAVE_TOOLS, reason="needs GNU binutils and QEMU")
def test_wfi_in_host_traps_to_el2_by_sctlr_el2(tmp_path: Path):
    # the harness-only cases: QEMU 7.2 would sleep; Arm traps by SCTLR_EL2.nTWI=0
    cases = [c for c in exhaustive() if c.kind == "wfi" and c.mode == "el0t" and c.e2h and c.tge]
    res = run(cases, tmp_path)
    assert len(res.harness_only) == len(cases) > 0
    for r in res.harness_only:
        assert r.ours is not None and r.ours.n == 1
        assert int(r.ours.records[0]["esr"], 16) >> 26 == 0x01 and r.ours.records[0]["el"] == "0x8"


@pytest.mark.slow
@pytest.mark.qemu
@pytest.mark.skipif(not HAVE_TOOLS, reason="needs GNU binutils and QEMU")
def test_full_fidelity_run(tmp_path: Path, capsys):
    out = tmp_path / "fidelity.json"
    status = cli.main(["--build-dir", str(tmp_path / "build"), "--json", str(out)])
    text = capsys.readouterr().out
    assert status == 0, text[-3000:]
    d = json.loads(out.read_text())
    assert d["agree"] == d["cases"] >= 1500 and d["samples"] >= 500
    assert d["source_words"]["differences"] == [] and d["source_words"]["sources"] >= 10
    assert f"agrees with QEMU {d['qemu_version']} on {d['agree']}/{d['cases']} cases" in text
