"""The bare-metal exception tests of asm/tests on the board, and proof that they can fail.

The expectations live in the .S programs, each written from a rule of
../shared/reference/arm-pstate-facts.md §1-§4; this file checks that every check the
board runs prints PASS, that the program powers off, and that a wrong expectation or a
deliberately wrong architecture (the board's debug quirks) turns checks into FAIL lines."""

from __future__ import annotations

import re

import pytest

from harness import selftest
from harness.selftest import (
    CPUS,
    QEMU_KNOWN_DEVIATIONS,
    discover,
    parse_output,
    qemu_tools,
    run_on_board,
    run_on_qemu,
)

PROGRAMS = discover()


def _ids(path):
    return path.stem


def test_the_four_programs_exist():
    assert {p.stem for p in PROGRAMS} >= {"sync", "pan", "uao", "aborts"}


@pytest.mark.parametrize("cpu", CPUS)
@pytest.mark.parametrize("path", PROGRAMS, ids=_ids)
def test_program_passes_on_board(path, cpu):
    r = run_on_board(path, cpu)
    assert r.status == "poweroff", f"{path.name} on {cpu}: {r.status}: {r.message}"
    o = r.outcome
    assert not o.problems, o.problems
    fails = [f"FAIL {name} {text}" for name, texts in o.failed.items() for text in texts]
    assert not fails, f"{path.name} on {cpu}:\n" + "\n".join(fails)
    assert o.passed, f"{path.name} on {cpu} ran no check"
    assert o.done == len(o.passed)
    if cpu == "max":
        # The max CPU has PAN, UAO, VHE, DIT and SSBS: only the checks for a v8.0 CPU may be skipped.
        assert set(o.skipped.values()) <= {"has PAN", "has UAO", "has DIT"}, o.skipped
    else:
        assert set(o.skipped.values()) <= {"no PAN", "no UAO", "no VHE", "no DIT"}, o.skipped


def _sync():
    return next(p for p in PROGRAMS if p.stem == "sync")


def test_a_wrong_expectation_prints_fail():
    # svc #0x33 from EL0 gives ESR 0x56000033 (facts §4); claim 0x56000034 instead.
    path = _sync()
    text = path.read_text()
    right = "    expect_rec esr, 0x56000033"
    assert right in text
    wrong = text.replace(right, "    expect_rec esr, 0x56000034", 1)
    r = run_on_board(path, "max", source=wrong)
    assert r.status == "poweroff"
    assert r.outcome.failed == {"svc_el0_to_el1": ["esr=0x56000033 expected 0x56000034"]}
    assert "FAIL svc_el0_to_el1 esr=0x56000033 expected 0x56000034" in r.output.splitlines()
    assert not r.ok
    assert r.outcome.complete  # the program went on and counted the failed check


def _by_name(stem):
    return next(p for p in PROGRAMS if p.stem == stem)


def test_board_that_keeps_uao_on_entry_fails_the_uao_checks():
    # Quirk: exception entry leaves UAO alone (Arm: cleared on every entry, facts §1.2).
    r = run_on_board(_by_name("uao"), "max", quirks=["keep_uao_on_entry"])
    assert r.status == "poweroff"
    failed = r.outcome.failed
    for name in ("uao_entry_el1_clears", "uao_entry_el2_from_el1_clears",
                 "uao_entry_el2_same_el_clears", "uao_entry_el2_vhe_guest_exit_clears"):
        assert "uao=0x1 expected 0x0" in failed.get(name, []), (name, failed)
    # Checks that do not depend on the rule still pass.
    assert "ldtr_el1_uao0_kernel_page_faults" in r.outcome.passed


def test_board_that_never_sets_pan_on_entry_fails_the_pan_checks():
    # Quirk: entry never sets PAN (Arm: set for EL1, or EL2 with E2H=TGE=1, when SPAN=0).
    r = run_on_board(_by_name("pan"), "max", quirks=["no_pan_on_entry"])
    assert r.status == "poweroff"
    failed = r.outcome.failed
    for name in ("pan_entry_el1_span0_sets", "pan_entry_el0_span0_sets",
                 "pan_entry_el2_vhe_host_span0_sets", "pan_vhe_guest_span0_via_sctlr_el12"):
        assert "pan=0x0 expected 0x1" in failed.get(name, []), (name, failed)
    # Where the rule leaves PAN alone, the quirk changes nothing.
    for name in ("pan_entry_el1_span1_keeps0", "pan_entry_el2_e2h1_tge0_keeps0"):
        assert name in r.outcome.passed


# ---------------------------------------------------------------- output parsing


def test_parse_counts_checks_and_skips():
    o = parse_output("INFO features=0x7\nPASS a\nFAIL b esr=0x1 expected 0x2\n"
                     "FAIL b elr=0x3 expected 0x4\nSKIP c no PAN\nDONE 2 checks\n")
    assert o.passed == ["a"]
    assert o.failed == {"b": ["esr=0x1 expected 0x2", "elr=0x3 expected 0x4"]}
    assert o.skipped == {"c": "no PAN"}
    assert o.complete


@pytest.mark.parametrize(
    "text, problem",
    [
        ("PASS a\n", "no DONE line"),
        ("PASS a\nDONE 2 checks\n", "DONE counts 2 checks but 1 reported"),
        ("PASS a\nPASS a\nDONE 2 checks\n", "reported twice"),
        ("PASS a\ngarbage\nDONE 1 checks\n", "unexpected output"),
    ],
)
def test_parse_flags_incomplete_output(text, problem):
    o = parse_output(text)
    assert not o.complete
    assert any(problem in p for p in o.problems), o.problems


# ---------------------------------------------------------------- the command


def test_main_runs_a_program_and_prints_the_table(capsys):
    assert selftest.main(["--only", "sync", "--cpu", "max"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"sync\s+.\s+max\s+.\s+\d+\s+.\s+0\s+.\s+0\s+.\s+PASS", out), out
    assert "1/1 runs passed" in out


def test_main_bad_pattern_is_one_line_and_status_2(capsys):
    assert selftest.main(["--only", "no-such-program"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no-such-program" in err[0]


# ---------------------------------------------------------------- the reference


@pytest.mark.qemu
@pytest.mark.skipif(bool(qemu_tools()), reason=f"needs {', '.join(qemu_tools())}")
@pytest.mark.parametrize("cpu", CPUS)
@pytest.mark.parametrize("path", PROGRAMS, ids=_ids)
def test_program_passes_on_qemu(path, cpu):
    # The same sources, built by GNU binutils, on qemu-system-aarch64 -M virt,virtualization=on.
    r = run_on_qemu(path, cpu)
    assert r.status == "poweroff", r.message
    assert r.outcome.complete, r.outcome.problems
    unexpected = r.unexpected_failures
    assert not unexpected, unexpected
    assert set(r.known) <= set(selftest.QEMU_KNOWN_DEVIATIONS)


def test_board_that_clears_dit_on_entry_fails_the_dit_checks_as_qemu_does():
    # Quirk: entry clears DIT, as QEMU 7.2 does (Arm: AArch64.TakeException leaves it, facts §8):
    # exactly the checks QEMU fails fail, and they are the listed QEMU deviations.
    r = run_on_board(_by_name("dit_ssbs"), "max", quirks=["dit_cleared_on_entry"])
    assert r.status == "poweroff"
    assert set(r.outcome.failed) == {"dit_kept_on_svc_entry", "dit_kept_on_hvc_entry"} <= set(QEMU_KNOWN_DEVIATIONS)
    assert all(t == ["dit=0x0 expected 0x1"] for t in r.outcome.failed.values())
    # Entry keeping SSBS (Arm: SCTLR_ELx.DSSBS of the target EL): every check of that rule fails
    r = run_on_board(_by_name("dit_ssbs"), "max", quirks=["ssbs_kept_on_entry"])
    assert set(r.outcome.failed) == {"ssbs_from_sctlr_el1_dssbs", "ssbs_from_sctlr_el2_dssbs",
                                     "dit_ssbs_el0_svc_spsr_eret", "dit_ssbs_el1_hvc_spsr_eret"}
    assert all(t[0].startswith("ssbs=") for t in r.outcome.failed.values())
