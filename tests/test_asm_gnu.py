"""Our assembly against GNU as: the keystone-hostile fixture (every form of facts §7) and the
project's own sources must give the same bytes, symbols and line table as
`aarch64-linux-gnu-as -march=armv8.5-a` (harness.qemu.GNU_AS_MARCH) + `ld` of the text expand_for_gnu_as produces."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from harness.arch.features import FEATURES_A57, FEATURES_MAX, Features
from harness.asm import AsmError, Image, assemble_file, expand_for_gnu_as, load_elf, load_program
from harness.fidelity.words import compare_words, gnu_link, project_sources

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "asm"
HAVE_GAS = all(shutil.which(t) for t in ("aarch64-linux-gnu-as", "aarch64-linux-gnu-ld"))
pytestmark = pytest.mark.skipif(not HAVE_GAS, reason="GNU binutils for aarch64 not installed")
FEATURES = [FEATURES_MAX, FEATURES_A57]


def gnu_build(src: Path, ours: Image, features: Features, tmp: Path, debug: bool = False) -> Path:
    text, locs = expand_for_gnu_as(src, features=features)
    assert len(locs) == text.count("\n")
    return gnu_link(src, ours, features, tmp, debug=debug)


def assert_same_bytes(ours: Image, gnu: Image) -> None:
    for seg in ours.segments:
        host = next((g for g in gnu.segments if g.addr <= seg.addr < g.addr + len(g.data)), None)
        assert host is not None, f"GNU ld put nothing at {seg.name} {seg.addr:#x}"
        off = seg.addr - host.addr
        theirs = host.data[off : off + len(seg.data)]
        for k in range(0, len(seg.data), 4):
            a = seg.addr + k
            assert seg.data[k : k + 4] == theirs[k : k + 4], (
                f"{a:#x} ({ours.source_at(a)}): ours {seg.data[k:k + 4].hex()} GNU {theirs[k:k + 4].hex()}")


@pytest.mark.parametrize("features", FEATURES, ids=lambda f: f.name)
def test_hostile_fixture_matches_gnu_as(features: Features, tmp_path: Path):
    src = DATA / "hostile.S"
    ours = assemble_file(src, features=features)
    gnu = load_elf(gnu_build(src, ours, features, tmp_path))
    assert {s.name for s in ours.segments} == {".text", ".rodata.hostile", ".data", ".bss"}
    assert_same_bytes(ours, gnu)
    for name, value in ours.symbols.items():
        if name in gnu.symbols:
            assert gnu.symbols[name] == value, name
    for name in ("_start", "table", "after_data", "ro_value", "far_data", "bytes", "bss_space", "STACK_SIZE"):
        assert gnu.symbols[name] == ours.symbols[name], name
    assert gnu.entry == ours.entry == ours.symbols["_start"]
    assert ours.globals == {"_start"} and "_start" in gnu.globals


def test_gnu_elf_loads_with_the_same_words_symbols_and_lines(tmp_path: Path):
    src = DATA / "hostile.S"
    ours = assemble_file(src)
    text, locs = expand_for_gnu_as(src)
    elf = gnu_build(src, ours, FEATURES_MAX, tmp_path, debug=True)
    gnu = load_program(elf)
    # words(): instructions and .inst only, pools and data left out (ELF $x/$d mapping symbols);
    # GNU as marks the NOPs it pads code with as code too, ours are padding, not statements
    ours_words, gnu_words = dict(ours.words()), dict(gnu.words())
    assert {a: gnu_words.get(a) for a in ours_words} == ours_words
    extra = {a: w for a, w in gnu_words.items() if a not in ours_words}
    assert extra and set(extra.values()) == {0xD503201F}
    for a in extra:
        loc = ours.source_at(a)
        assert loc is not None and "align" in loc.text, (hex(a), loc)
    assert [a for a, _ in ours.words()][:3] == [ours.entry, ours.entry + 4, ours.entry + 8]
    assert gnu.code_ranges()[0][0] == ours.code_ranges()[0][0]
    # the DWARF line table names lines of the expanded file; `locs` maps them back to ours
    checked = 0
    for addr, _w in ours.words():
        g = gnu.source_at(addr)
        assert g is not None and g.file.endswith("expanded.S")
        assert locs[g.line - 1].file == ours.source_at(addr).file
        assert locs[g.line - 1].line == ours.source_at(addr).line
        checked += 1
    assert checked > 100
    assert gnu.symbol_at(ours.symbols["table"] + 8) == "table+0x8"


def _project_programs() -> list[Path]:
    return sorted({s.path for s in project_sources()})


@pytest.mark.parametrize("src", _project_programs(), ids=lambda p: str(p.relative_to(ROOT)))
@pytest.mark.parametrize("features", FEATURES, ids=lambda f: f.name)
def test_project_sources_match_gnu_as(src: Path, features: Features, tmp_path: Path):
    try:
        ours = assemble_file(src, features=features)
    except AsmError as e:
        pytest.skip(f"not assemblable on its own: {str(e).splitlines()[0]}")
    assert_same_bytes(ours, load_elf(gnu_build(src, ours, features, tmp_path)))


@pytest.mark.parametrize("src", [s for s in project_sources() if s.variant], ids=lambda s: s.variant)
def test_world_variants_match_gnu_as(src):
    n, bad = compare_words(src)
    assert not bad, "\n".join(bad[:10])
    assert n > 500


def test_hard_facts_of_section_5_in_the_fixture():
    # independent of GNU as: the words facts §5 lists, found at the fixture's first statements
    words = [w for _a, w in assemble_file(DATA / "hostile.S").words()]
    assert words[:6] == [0xD500419F, 0xD500409F, 0xD500417F, 0xD500407F, 0xD5384260, 0xD5384281]
    assert words[8] == 0xD53D1004  # mrs x4, sctlr_el12 (S3_5_C1_C0_0)
    assert 0xD69F03E0 in words and 0xD4000002 in words and 0xD4000001 in words  # eret, hvc #0, svc #0
    assert 0xF8400801 in words and 0xF8000801 in words  # ldtr/sttr x1, [x0]
