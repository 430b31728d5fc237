"""The world-switch scenarios: every probe outcome and every claim's verdict, with the
expectations derived from the architectural rules (shared/reference/arm-pstate-facts.md)
and the kernel code each variant models, not from the harness's own output."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from harness.scenarios.claims import evaluate
from harness.scenarios.runner import run_scenarios
from harness.scenarios.scenario import matrix
from harness.scenarios.world import ROOT

PAN_RESET_ON_EXIT = ("v4.13", "uao-fix-minimal", "v5.11")   # __guest_exit sets PAN (cb96408da4e1)
PAN_RESET_LATE = ("patch-2017",)                              # set at vcpu_run_fixup, under VHE
UAO_RESTORED = ("patch-2017", "uao-fix-minimal")              # uao_thread_switch(current), under VHE


@pytest.fixture(scope="module")
def runs():
    return run_scenarios(matrix())


@pytest.fixture(scope="module")
def verdicts(runs):
    return {c["id"]: c for c in evaluate(runs)}


def has_pan(s) -> bool:
    return s.cpu == "max"


def host_uao_before(s) -> int:
    # set_fs(KERNEL_DS) sets UAO where the CPU has it; v5.11 has neither set_fs nor UAO.
    return int(s.caller == "kernel_ds" and s.cpu == "max" and s.variant != "v5.11")


def pan_after_exit_at_el2(s) -> int:
    """PSTATE.PAN at EL2 once __guest_exit has run (before the variant's late fix-up)."""
    if not has_pan(s):
        return 0
    if s.variant in PAN_RESET_ON_EXIT:
        return 1
    # §1.6: entry to EL2 with E2H=0 (non-VHE) or with E2H=1, TGE=0 (VHE guest exit) leaves PAN.
    return s.guest_pan


def host_pan_after(s) -> int:
    if not has_pan(s):
        return 0
    if not s.vhe:
        return 1  # §2: the ERET back to EL1 restores the host's PAN from SPSR_EL2
    return 1 if s.variant in PAN_RESET_LATE else pan_after_exit_at_el2(s)


def host_uao_after(s) -> int:
    if s.cpu != "max" or s.variant == "v5.11":
        return 0
    if not s.vhe:
        return host_uao_before(s)  # §2: restored by the ERET
    # §1.2: the exit cleared UAO; only uao_thread_switch(current) derives it again.
    return host_uao_before(s) if s.variant in UAO_RESTORED else 0


def expected_probes(s) -> dict[str, str]:
    pan, uao = host_pan_after(s), host_uao_after(s)
    unpriv_uaccess = s.cpu == "max" or s.variant == "v5.11"   # LDTR/STTR (else plain LDR/STR)
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
    assert len(runs) == 5 * 72
    assert all(r.ok and not r.observations["failures"] for r in runs), [r.scenario.id for r in runs if not r.ok][:3]


def test_probe_outcomes_follow_the_rules(runs):
    wrong = []
    for r in runs:
        want = expected_probes(r.scenario)
        got = {p: r.observations["probes"][p]["outcome"] for p in want}
        if got != want:
            wrong.append((r.scenario.id, {p: (got[p], want[p]) for p in want if got[p] != want[p]}))
    assert not wrong, wrong[:5]


def test_pstate_after_return_follows_the_rules(runs):
    for r in runs:
        after = r.observations["points"]["host_after_call"]
        assert (after["pan"], after["uao"]) == (host_pan_after(r.scenario), host_uao_after(r.scenario)), r.scenario.id
        assert after["el"] == (2 if r.scenario.vhe else 1)


def test_guest_exit(runs):
    ec = {"hvc": 0x16, "wfi": 0x01, "serror": 0x2F, "irq": None}
    code = {"hvc": 2, "wfi": 2, "irq": 0, "serror": 1}   # ARM_EXCEPTION_TRAP / _IRQ / _EL1_SERROR
    for r in runs:
        s, x = r.scenario, r.observations["exit"]
        assert x["ec"] == ec[s.exit], s.id
        assert x["after"]["el"] == 2 and x["before"]["el"] == 1
        assert x["after"]["uao"] == 0                                  # §1.2
        assert x["after"]["pan"] == (s.guest_pan if has_pan(s) else 0)  # §1.6: SPAN does not act here
        assert x["vector_offset"] == 0x400 + {"hvc": 0, "wfi": 0, "irq": 0x80, "serror": 0x180}[s.exit]  # §1.7
        assert r.observations["exit_code"] == code[s.exit]


def test_exposure_window_only_where_pan_is_not_reset_at_exit(runs):
    for r in runs:
        s, w = r.scenario, r.observations["window"]
        # §1.6: the exit itself never sets PAN here, so a guest's PAN=0 always opens it ...
        assert w["opened"] == (has_pan(s) and s.guest_pan == 0), s.id
        if w["opened"] and s.variant in PAN_RESET_ON_EXIT:
            # ... and __guest_exit's reset closes it before the window probe runs.
            assert w["closed_by"].startswith("msr pan, #1 at __guest_exit") and not w["probe_inside"], s.id
    late = next(r for r in runs if r.scenario.id == "patch-2017/max-vhe-kvm_run-pan0-uao0-hvc")
    assert late.observations["window"]["closed_by"].startswith("msr pan, #1 at vcpu_run_fixup")
    assert late.observations["window"]["instructions"] > 50   # the whole of the sysreg restore


EXPECTED_VERDICTS = {
    "A1": ("holds", []),        # §1.2 clears UAO on the exit; nothing restores it in v4.13
    "R1": ("holds", []),        # USER_DS: UAO is 0 before, and §1.2 makes it 0 after
    "A2": ("holds", []),
    "R2": ("holds", []),
    "A3": ("conditional", ["mode=nvhe", "mode=vhe and guest_pan=1"]),  # the late reset opens a window
    "R3": ("fails", []),        # the bit changes, but §3: PAN does nothing in the EL2 (E2H=0) regime
    "A4": ("holds", []),        # §2
    "R4": ("conditional", ["mode=nvhe"]),  # VHE: the kernel is mapped where hyp code runs
    "A5": ("holds", []),
    "R5": ("conditional", ["guest_pan=1"]),  # §1.6: a guest's PAN=0 survives the exit
    "R6": ("holds", []),        # §1.2
    "R7": ("holds", []),        # §1.6 both ways
    "W1": ("conditional", ["variant=no-pan-reset", "variant=patch-2017"]),
}


@pytest.mark.parametrize("cid", sorted(EXPECTED_VERDICTS))
def test_claim_verdicts(verdicts, cid):
    verdict, conditions = EXPECTED_VERDICTS[cid]
    c = verdicts[cid]
    assert (c["verdict"], c["conditions"]) == (verdict, conditions), c["summary"]
    assert c["evidence"] and all(e["observed"] for e in c["evidence"])


def test_r3_reports_both_parts(verdicts):
    obs = verdicts["R3"]["evidence"][0]["observed"]
    assert obs["part1_pan_bit_changes"] is True and obs["part2_pan_acts_at_el2"] is False


def test_verdicts_follow_the_architecture_not_a_table():
    """With exception entry made to keep UAO (against §1.2), a guest's UAO=1 reaches the host:
    the claims resting on that rule change; with entry never setting PAN, R7's second part fails."""
    sub = [s for s in matrix(["v4.13", "patch-2017", "no-pan-reset"], ("max",)) if s.vhe]
    keep = {c["id"]: c for c in evaluate(run_scenarios(sub, quirks=("keep_uao_on_entry",)))}
    assert keep["R1"]["verdict"] == "conditional" and keep["R1"]["conditions"] == ["guest_uao=0"]
    assert keep["R6"]["verdict"] == "conditional"
    nopan = {c["id"]: c for c in evaluate(run_scenarios(sub, quirks=("no_pan_on_entry",)))}
    assert nopan["R7"]["verdict"] == "fails"


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


def test_cli_bad_input_is_one_line(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[[scenario]]\nname = "x"\nmode = "sideways"\n')
    p = _cli("--user", str(bad))
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "mode = 'sideways'" in p.stderr
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
