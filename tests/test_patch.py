"""Code variants are unified diffs applied in memory (harness.scenarios.patch)."""

from pathlib import Path

import pytest

from harness.scenarios.patch import PatchError, apply_diff


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "kvm").mkdir()
    (tmp_path / "kvm" / "entry.S").write_text("a\nb\nc\nd\ne\nf\ng\n")
    return tmp_path


def _diff(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "v.diff"
    p.write_text(body)
    return p


def test_applies_with_a_b_prefixes(tree: Path) -> None:
    d = _diff(tree, "--- a/kvm/entry.S\n+++ b/kvm/entry.S\n@@ -2,3 +2,4 @@\n b\n-c\n+C1\n+C2\n d\n")
    out = apply_diff(d, tree)
    assert out == {str((tree / "kvm/entry.S").resolve()): "a\nb\nC1\nC2\nd\ne\nf\ng\n"}


def test_hunk_found_when_line_numbers_drift(tree: Path) -> None:
    # A variant written against an older copy still applies where its context is (like patch's offset).
    d = _diff(tree, "--- a/kvm/entry.S\n+++ b/kvm/entry.S\n@@ -1,2 +1,1 @@\n-e\n f\n")
    assert apply_diff(d, tree)[str((tree / "kvm/entry.S").resolve())] == "a\nb\nc\nd\nf\ng\n"


def test_second_hunk_sees_the_first_hunks_shift(tree: Path) -> None:
    d = _diff(tree, "--- a/kvm/entry.S\n+++ b/kvm/entry.S\n@@ -1,1 +1,2 @@\n a\n+X\n@@ -6,1 +7,0 @@\n-f\n")
    assert apply_diff(d, tree)[str((tree / "kvm/entry.S").resolve())] == "a\nX\nb\nc\nd\ne\ng\n"


def test_context_mismatch_names_diff_line(tree: Path) -> None:
    d = _diff(tree, "--- a/kvm/entry.S\n+++ b/kvm/entry.S\n@@ -2,2 +2,2 @@\n b\n-zz\n+c\n")
    with pytest.raises(PatchError, match=r"v\.diff:3: hunk does not apply to entry\.S"):
        apply_diff(d, tree)


@pytest.mark.parametrize("body, msg", [
    ("--- a/kvm/entry.S\n+++ b/kvm/entry.S\n@@ -2,1 +2,1 @@\n b\n c\n", r":5: hunk is longer"),
    ("--- a/kvm/entry.S\n+++ b/kvm/entry.S\n@@ -2,3 +2,3 @@\n b\n", r"ends inside a hunk"),
    ("hello\n", r":1: not a unified diff"),
    ("--- a/kvm/nope.S\n+++ b/kvm/nope.S\n@@ -1 +1 @@\n-a\n+b\n", r"nope\.S does not exist"),
])
def test_malformed_diffs_give_one_line(tree: Path, body: str, msg: str) -> None:
    with pytest.raises(PatchError, match=msg) as e:
        apply_diff(_diff(tree, body), tree)
    assert "\n" not in str(e.value)
