"""User input to `scenarios` and the debugger's scenario lookup (issue 13): filters apply alike
to built-in and user scenarios, the debugger finds what `scenarios` lists, and every bad TOML
file, diff or reports directory is one line with exit status 2 before anything runs; a variant
that hangs is stopped once instead of on every scenario."""

from __future__ import annotations

import difflib
import fnmatch
import json
import re
from pathlib import Path

import pytest

from harness.debugger.core import Debugger, DebuggerError
from harness.scenarios import cli
from harness.scenarios.catalog import Catalog, Selection, SelectionError, find_scenario
from harness.scenarios.patch import PatchError, apply_diff
from harness.scenarios.runner import ScenarioError, load_scenario_board, run_scenarios
from harness.scenarios.scenario import configurations, matrix
from harness.scenarios.user import UserFileError
from harness.scenarios.world import ASM_DIR

ROOT = Path(__file__).resolve().parents[1]

EXAMPLE = ROOT / "scenarios" / "example.toml"
N_CONFIGS = len(configurations())


def scenarios(capsys, *args: str) -> tuple[int, str, str]:
    """`python -m harness scenarios --no-reports ARGS`, in process."""
    status = cli.main(["--no-reports", *args])
    out, err = capsys.readouterr()
    return status, out, err


def one_line(err: str) -> str:
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def _find(rel: str, text: str) -> tuple[list[str], int]:
    lines = (ASM_DIR / rel).read_text().splitlines()
    return lines, next(n for n, s in enumerate(lines) if s.split("//")[0].split() == text.split())


def diff_inserting(rel: str, after: str, new: str) -> str:
    """A unified diff against asm/REL adding `new` after the line `after` (whitespace aside),
    computed from today's file so the test follows the models as they change."""
    lines, i = _find(rel, after)
    return f"--- a/{rel}\n+++ b/{rel}\n@@ -{i + 1},1 +{i + 1},2 @@\n {lines[i]}\n+{new}\n"


def diff_renaming(label: str, new: str) -> str:
    """A diff renaming `label` everywhere in the models (a variant that drops a label)."""
    out = []
    for path in sorted((ASM_DIR / "kvm").glob("*.S")):
        rel = str(path.relative_to(ASM_DIR))
        old = path.read_text().splitlines(keepends=True)
        renamed = [re.sub(rf"\b{label}\b", new, s) for s in old]
        out += difflib.unified_diff(old, renamed, f"a/{rel}", f"b/{rel}")
    return "".join(out)


def user_variant(tmp_path: Path, name: str, diff: str, *, matrix: bool = True, extra: str = "") -> Path:
    (tmp_path / f"{name}.diff").write_text(diff)
    toml = tmp_path / f"{name}.toml"
    toml.write_text(f'[variant.{name}]\ndiff = "{name}.diff"\nmatrix = {str(matrix).lower()}\n{extra}')
    return toml


# ---------------------------------------------------------------- 1. filters

@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load([EXAMPLE])


def test_variant_filter_selects_a_user_variant_and_its_scenarios(catalog):
    ids = [s.id for s in catalog.select(Selection(variants=("late-pan-reset",)))]
    assert len(ids) == N_CONFIGS + 1
    assert all(i.startswith("late-pan-reset/") for i in ids[:-1]) and ids[-1] == "user/late-pan-reset-vhe-guest-pan0"


def test_every_filter_applies_to_user_scenarios(catalog):
    assert "user/v4.13-nvhe-irq-exit" not in {s.id for s in catalog.select(Selection(variants=("v5.11",)))}
    a57 = catalog.select(Selection(cpus=("a57",)))
    assert a57 and all(s.cpu == "a57" for s in a57)   # both user scenarios run on max
    for vhe in (True, False):
        picked = catalog.select(Selection(vhe=vhe))
        assert all(s.vhe == vhe for s in picked)
        assert any(s.name for s in picked)    # one user scenario is VHE, the other not
    assert [s.id for s in catalog.select(Selection(only=("user/v4.13*",)))] == ["user/v4.13-nvhe-irq-exit"]


def test_selection_errors(catalog):
    with pytest.raises(SelectionError, match="unknown variant 'nope'"):
        catalog.select(Selection(variants=("nope",)))
    with pytest.raises(SelectionError, match="no scenario matches"):
        catalog.select(Selection(variants=("v5.11",), only=("user/*",)))


def test_cli_uses_the_selection(capsys):
    status, out, err = scenarios(capsys, "--json", "--user", str(EXAMPLE), "--variant", "late-pan-reset",
                                 "--only", "user/*")
    assert status == 0, err
    assert [s["id"] for s in json.loads(out)["scenarios"]] == ["user/late-pan-reset-vhe-guest-pan0"]
    status, _, err = scenarios(capsys, "--user", str(EXAMPLE), "--cpu", "a57", "--only", "user/*")
    assert status == 2 and "no scenario matches" in one_line(err)


# ---------------------------------------------------------------- 2. the debugger's lookup

@pytest.mark.parametrize("name, variant, want", [
    ("user/late-pan-reset-vhe-guest-pan0", None, "user/late-pan-reset-vhe-guest-pan0"),
    ("late-pan-reset-vhe-guest-pan0", None, "user/late-pan-reset-vhe-guest-pan0"),
    ("user/late-pan-reset-vhe-guest-pan0", "late-pan-reset", "user/late-pan-reset-vhe-guest-pan0"),
    ("max-vhe-kvm_run-pan1-uao0-hvc", "late-pan-reset", "late-pan-reset/max-vhe-kvm_run-pan1-uao0-hvc"),
    ("late-pan-reset/a57-nvhe-kvm_run-pan0-uao0-irq", None, "late-pan-reset/a57-nvhe-kvm_run-pan0-uao0-irq"),
    ("max-vhe-kvm_run-pan1-uao0-hvc", None, "v4.13/max-vhe-kvm_run-pan1-uao0-hvc"),
])
def test_find_scenario(name, variant, want):
    s = find_scenario(name, variant, [EXAMPLE])
    assert s.id == want
    if s.variant == "late-pan-reset":
        assert s.diff and s.diff.endswith("late-pan-reset.diff")


def test_find_scenario_errors(tmp_path):
    with pytest.raises(SelectionError, match="under variant late-pan-reset, not --variant v4.13"):
        find_scenario("user/late-pan-reset-vhe-guest-pan0", "v4.13", [EXAMPLE])
    with pytest.raises(SelectionError, match=r"no scenario nope/max-vhe-kvm_run-pan1-uao0-hvc \(variants: late-pan-reset, .*v4\.13"):
        find_scenario("max-vhe-kvm_run-pan1-uao0-hvc", "nope", [EXAMPLE])
    bad = tmp_path / "bad.toml"
    bad.write_text("[[scenario]]\nname = 5\n")
    with pytest.raises(SelectionError, match=r"bad\.toml:1: scenario '#1': name = 5"):
        find_scenario("user/x", None, [bad])
    # A built-in scenario is found without reading (possibly broken) user files.
    assert find_scenario("max-vhe-kvm_run-pan1-uao0-hvc", "patch-2017", [bad]).variant == "patch-2017"


def test_debugger_loads_user_scenarios_and_variants():
    d = Debugger()   # the default user files: scenarios/*.toml, as `scenarios` reads them
    assert "user/late-pan-reset-vhe-guest-pan0" in d.load_scenario("user/late-pan-reset-vhe-guest-pan0")
    d.execute("break __guest_exit")
    d.execute("continue")
    assert d.board.pc == d.board.image.addr_of("__guest_exit")
    # late-pan-reset moves the PAN reset (MSR PAN, #1) out of __guest_exit: the loaded code is the variant's.
    msr_pan_1 = (0xD500419F).to_bytes(4, "little")

    def second_insn() -> bytes:
        return d.board.read_mem(d.board.image.addr_of("__guest_exit") + 4, 4)

    d.execute("load scenario max-vhe-kvm_run-pan0-uao0-hvc")
    assert second_insn() == msr_pan_1
    assert "late-pan-reset/max-vhe" in d.execute("load scenario max-vhe-kvm_run-pan0-uao0-hvc --variant late-pan-reset")
    assert second_insn() != msr_pan_1
    with pytest.raises(DebuggerError, match="no scenario user/nope"):
        d.load_scenario("user/nope")


# ---------------------------------------------------------------- 3. the reports directory

def test_reports_directory_is_checked_before_running(capsys, tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("")
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "vcd").write_text("")
    for where, what in (("/proc/foo", "/proc/foo: cannot write reports there"),
                        (str(a_file), f"{a_file}: cannot write reports there: not a directory"),
                        (str(tmp_path / "r"), f"{tmp_path / 'r' / 'vcd'}: cannot write reports there: not a directory")):
        status = cli.main(["--reports", where, "--only", "v4.13/max-vhe-kvm_run-pan0-uao0-hvc"])
        out, err = capsys.readouterr()
        assert status == 2 and what in one_line(err) and out == ""


# ---------------------------------------------------------------- 4. bad user input is 2, one line

@pytest.mark.parametrize("toml, diff, want", [
    # a user variant that does not assemble: the diff's line that added the bad instruction
    ('[variant.v]\ndiff = "v.diff"\nmatrix = true\n', diff_inserting("kvm/entry.S", "__guest_exit:", "    bogus x1, x2"),
     r"v\.diff:5: variant v \(max\): .*entry\.S:\d+:\d+: cannot assemble 'bogus x1, x2'"),
    ('[variant.v]\ndiff = "v.diff"\n', "just some text\n", r"v\.diff:1: not a unified diff"),
    ('[variant.v]\ndiff = "v.diff"\n', "--- a/kvm/entry.S\n+++ b/kvm/entry.S\n@@ -1,3 +1,3 @@\n a\n",
     r"v\.diff:4: diff ends inside a hunk"),
    ('[variant.v]\ndiff = "../../etc/passwd"\n', None, r"v\.toml:1: \[variant\.v\]: diff '\.\./\.\./etc/passwd' is outside"),
    ('[variant.v]\ndiff = "/etc/passwd"\n', None, r"v\.toml:1: \[variant\.v\]: diff '/etc/passwd' is outside"),
    ('[variant.v]\ndiff = "v.diff"\n', "--- a/kvm/x\n+++ b/../../../etc/passwd\n@@ -1 +1 @@\n-a\n+b\n",
     r"v\.diff:2: '\.\./\.\./\.\./etc/passwd' is outside asm/"),
    ('[variant.v]\ndiff = "v.diff"\nmatrix = true\n',
     diff_renaming("host_main", "host_main_renamed"),
     r"v\.diff: variant v removes host_main, which the runner needs"),
    ('scenario = "not a table"\n', None, r"v\.toml:1: scenario must be an array of tables"),
    ('variant = 3\n', None, r"v\.toml:1: variant must be tables"),
    ('[[scenario]]\nname = "a"\n\n[[scenario]]\nname = "a"\n', None,
     r"v\.toml:4: scenario 'a' is already defined at .*v\.toml:1$"),
    (b'# \xff\n', None, r"v\.toml:1:3: not UTF-8 text \(byte 0xff\)"),
    ('[variant.v]\ndiff = "v.diff"\n', b"--- a/kvm/entry.S\n+++ b/kvm/entry.S\n@@ -1 +1 @@\n-\xfe\n+b\n",
     r"v\.diff:4:2: not UTF-8 text \(byte 0xfe\)"),
    ('[[scenario]]\nname = "x"\nguest_pan = true\n', None, r"v\.toml:1: scenario 'x': guest_pan = true: choose one of 0, 1"),
    ('[[scenario]]\nname = "x"\nhyp_probes = "no"\n', None, r"v\.toml:1: scenario 'x': hyp_probes = 'no': must be a bool"),
    ('[[scenario]]\nname = "../../x"\n', None, r"v\.toml:1: scenario '\.\./\.\./x': name = '\.\./\.\./x': use letters"),
    ('[variant."a\\nb"]\ndiff = "v.diff"\n', None, r"v\.toml: variant name 'a\\nb'"),
    ('[variant.user]\ndiff = "v.diff"\n', None, r"v\.toml:1: variant name 'user'"),
    ('[[scenario]]\nname = "x"\nexpect = { probe_ldr_user = 1 }\n', None, r"expect: probe_ldr_user = 1: choose ok"),
    # found by the fuzzer: tomllib's RecursionError and ValueError, repr() of a 20,000-digit int
    ("a = " + "[" * 2000 + "]" * 2000 + "\n", None, r"v\.toml: arrays or tables nested too deeply"),
    ("[[scenario]]\nname = \"x\"\nguest_pan = " + "9" * 5000 + "\n", None, r"v\.toml: Exceeds the limit \(4300 digits\)"),
    ("[[scenario]]\nname = \"x\"\nguest_pan = 0x" + "f" * 20000 + "\n", None,
     r"v\.toml:1: scenario 'x': guest_pan = \(a value too large to show\)"),
    # found by the fuzzer: Path.exists()/is_file() raise for a name longer than NAME_MAX
    ('[variant.v]\ndiff = "v.diff"\n', "--- a/x\n+++ b/" + "x" * 300 + "\n@@ -1 +1 @@\n-a\n+b\n",
     r"v\.diff:3: cannot patch 'x{60}': File name too long"),
    ('[variant.v]\ndiff = "' + "x" * 300 + '"\n', None, r"v\.toml:1: \[variant\.v\]: diff 'x+\.\.\.: File name too long"),
])
def test_bad_user_input_is_one_line_and_status_2(capsys, tmp_path, toml, diff, want):
    path = tmp_path / "v.toml"
    path.write_bytes(toml if isinstance(toml, bytes) else toml.encode())
    if diff is not None:
        (tmp_path / "v.diff").write_bytes(diff if isinstance(diff, bytes) else diff.encode())
    status, out, err = scenarios(capsys, "--user", str(path), "--only", "user/*", "--only", "v/max-vhe-kvm_run-pan0-uao0-hvc")
    assert status == 2, err
    assert re.search(want, one_line(err).strip()), err


def test_duplicates_across_files_name_both_places(capsys, tmp_path):
    (tmp_path / "a").mkdir()
    other = tmp_path / "a" / "other.toml"
    other.write_text('\n[[scenario]]\nname = "late-pan-reset-vhe-guest-pan0"\n')
    status, _, err = scenarios(capsys, "--user", str(EXAMPLE), "--user", str(other))
    assert status == 2 and f"{other}:2: scenario 'late-pan-reset-vhe-guest-pan0' is already defined at {EXAMPLE}:" in one_line(err)
    (tmp_path / "a" / "late-pan-reset.diff").write_text((ROOT / "scenarios" / "late-pan-reset.diff").read_text())
    other.write_text('[variant.late-pan-reset]\ndiff = "late-pan-reset.diff"\n')
    with pytest.raises(UserFileError, match=rf"{other}:1: variant 'late-pan-reset' is already defined at {EXAMPLE}:4"):
        Catalog.load([EXAMPLE, other])


def test_patch_errors_name_the_diff_line(tmp_path):
    d = tmp_path / "x.diff"
    d.write_text("--- a/kvm/entry.S\n+++ b/kvm/entry.S\n@@ -1 +1 @@ x\n-a\n+b\n@@ nonsense\n")
    with pytest.raises(PatchError, match=r"x\.diff:6: malformed hunk header"):
        apply_diff(d, ASM_DIR)
    d.write_text("--- /dev/null\n+++ /etc/passwd\n@@ -1 +1 @@\n-a\n+b\n")
    with pytest.raises(PatchError, match=r"x\.diff:2: '/etc/passwd' is outside asm/"):
        apply_diff(d, ASM_DIR)


# ---------------------------------------------------------------- 5. a variant that hangs

def test_a_hanging_variant_is_stopped_after_its_first_scenario(capsys, tmp_path):
    hang = user_variant(tmp_path, "hang", diff_inserting("kvm/entry.S", "__guest_exit:", "    b __guest_exit"))
    only = "*-kvm_run-pan0-uao0-*"
    status, out, err = scenarios(capsys, "--json", "--user", str(hang), "--variant", "hang", "--variant", "v5.11",
                                 "--cpu", "max", "--only", only)
    assert status == 1
    d = json.loads(out)
    ran = [s["id"] for s in d["scenarios"]]
    per_variant = sum(1 for c in configurations() if c.cpu == "max" and fnmatch.fnmatchcase(c.id, only))
    assert ran[-1] == "hang/max-vhe-kvm_run-pan0-uao0-hvc" and len(ran) == per_variant + 1   # all of v5.11 ran
    assert [(s["variant"], s["skipped"]) for s in d["stopped"]] == [("hang", per_variant - 1)]
    assert one_line(err).startswith("harness failure: hang/max-vhe-kvm_run-pan0-uao0-hvc: budget")
    assert f"variant hang stopped there: {per_variant - 1} of its scenarios not run" in err


def test_a_variant_that_does_not_boot_is_stopped_once(capsys, tmp_path):
    spin = user_variant(tmp_path, "spin", diff_inserting("kvm/head.S", "_start:", "1:  b 1b"),
                        extra='[[scenario]]\nname = "s"\nvariant = "spin"\n')
    status, out, err = scenarios(capsys, "--json", "--user", str(spin), "--variant", "spin")
    assert status == 1
    d = json.loads(out)
    assert d["scenarios"] == []
    assert [(s["variant"], s["skipped"]) for s in d["stopped"]] == [("spin", N_CONFIGS + 1)]
    assert "spin (max, vhe): boot did not reach host_main" in one_line(err)


# ---------------------------------------------------------------- what the fuzzer found

def test_an_edited_diff_is_applied_again(tmp_path):
    """The assembly cache is keyed on the diff file's state: a debugger session that reloads a
    scenario after the user edited the diff gets the edited code."""
    toml = user_variant(tmp_path, "ed", diff_inserting("kvm/entry.S", "__guest_exit:", "    nop"), matrix=False,
                        extra='[[scenario]]\nname = "e"\nvariant = "ed"\n')
    sc = find_scenario("user/e", None, [toml])
    load_scenario_board(sc)
    (tmp_path / "ed.diff").write_text(diff_inserting("kvm/entry.S", "__guest_exit:", "    bogus x1"))
    with pytest.raises(ScenarioError, match=r"ed\.diff:5: .*cannot assemble 'bogus x1'"):
        load_scenario_board(sc)


def test_a_run_frees_its_boards():
    """Each Board holds ~1.4 GB of address space in a reference cycle: a long-lived process (the
    fuzz worker, a run under ulimit -v) died with QEMU's 'Could not allocate dynamic translator
    buffer' after a few runs until the runner freed each board when its last scenario ran."""
    import gc

    from harness.machine import Board

    gc.collect()
    before = {id(o) for o in gc.get_objects() if isinstance(o, Board)}   # other tests' fixtures
    run_scenarios([s for s in matrix(["v4.13"]) if s.exit == "hvc" and s.caller == "kvm_run" and not s.guest_uao])
    assert not [o for o in gc.get_objects() if isinstance(o, Board) and id(o) not in before]
