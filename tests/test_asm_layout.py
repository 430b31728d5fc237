"""Layout done in Python: alternatives, literal pools, sections, the Image API, variants.

Expected words come from the Arm ARM encodings (facts §5 and the instruction pages), expected
addresses from GNU as's layout rules, not from the code under test."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.arch.features import FEATURES_A57, FEATURES_MAX
from harness.asm import (
    AsmError,
    assemble_file,
    assemble_text,
    expand_for_gnu_as,
    load_flat,
    load_program,
)

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "asm"
NOP, RET = 0xD503201F, 0xD65F03C0
MSR_PAN_1, MSR_PAN_0, MSR_UAO_1 = 0xD500419F, 0xD500409F, 0xD500417F
MRS_X0_UAO, MRS_X0_CURRENTEL, HVC_0 = 0xD5384280, 0xD5384240, 0xD4000002


def words(img) -> list[int]:
    return [w for _a, w in img.words()]


# ------------------------------------------------------------------ alternatives


def test_alternatives_take_the_new_side_when_the_cpu_has_the_cap():
    img = assemble_file(DATA / "alternatives.S", features=FEATURES_MAX)
    # PAN: new; UAO: new (2 insns); no VHE-less path: nop padding; CONFIG_ARM64_PAN undefined: old
    assert words(img) == [MSR_PAN_1, MSR_UAO_1, MRS_X0_UAO, NOP, NOP, NOP, RET]


def test_alternatives_keep_the_old_side_without_the_cap():
    img = assemble_file(DATA / "alternatives.S", features=FEATURES_A57)
    b_to_after = 0x14000000 | 2  # b 1f from vhe_alt+4 to after: +8 bytes
    assert words(img) == [NOP, NOP, MRS_X0_CURRENTEL, HVC_0, b_to_after, NOP, RET]


def test_alternative_with_config_needs_the_config_too():
    on = assemble_file(DATA / "alternatives.S", features=FEATURES_MAX, defines={"CONFIG_ARM64_PAN": 1})
    off = assemble_file(DATA / "alternatives.S", features=FEATURES_MAX, defines={"CONFIG_ARM64_PAN": 0})
    at = on.symbols["config_alt"]
    assert dict(on.words())[at] == MSR_PAN_0
    assert dict(off.words())[at] == NOP


def test_both_sides_lay_out_alike():
    a = assemble_file(DATA / "alternatives.S", features=FEATURES_MAX)
    b = assemble_file(DATA / "alternatives.S", features=FEATURES_A57)
    assert a.symbols == b.symbols
    assert a.symbols["after"] - a.symbols["_start"] == 6 * 4


def test_alternative_else_nop_endif_pads_to_the_new_side_size():
    src = "    .text\nalternative_if ARM64_HAS_UAO\n    nop\n    nop\n    nop\nalternative_else_nop_endif\nend:\n    ret\n"
    for feats in (FEATURES_MAX, FEATURES_A57):
        img = assemble_text(src, features=feats)
        assert img.symbols["end"] - img.entry == 12
        assert words(img) == [NOP, NOP, NOP, RET]


# ------------------------------------------------------------------ literal pools


def test_literal_pools_follow_gnu_as():
    # GNU as: one pool per entry size; the 4-byte pool first (aligned 4), then the 8-byte pool
    # (aligned 8, zero padding); equal values of one size share an entry.
    img = assemble_text("""
    .text
_start:
    ldr w1, =5
    ldr x0, =6
    ldr w2, =7
    ldr x3, =5
    ldr w4, =5
    ldr x5, =_start
    ldr x6, =_start+0
    .ltorg
end:
""")
    ws = words(img)
    text = img.segments[0].data

    def target(k: int) -> int:  # LDR (literal): imm19 words from the instruction
        imm19 = (ws[k] >> 5) & 0x7FFFF
        return img.entry + 4 * k + 4 * (imm19 - (1 << 19) if imm19 & (1 << 18) else imm19)

    base = img.entry + 7 * 4  # 0x1c: the 4-byte pool, aligned 4
    assert [target(k) for k in range(7)] == [base, base + 12, base + 4, base + 20, base, base + 28, base + 28]
    assert text[0x1C:0x24] == (5).to_bytes(4, "little") + (7).to_bytes(4, "little")
    assert text[0x24:0x28] == b"\0\0\0\0"  # pad to 8
    assert text[0x28:0x30] == (6).to_bytes(8, "little")
    assert text[0x38:0x40] == img.entry.to_bytes(8, "little")
    assert img.symbols["end"] == img.entry + 0x40
    assert len(ws) == 7  # the pool is data, not instructions


def test_each_section_gets_its_pool_at_its_end():
    img = assemble_text("""
    .text
    ldr x0, =0x1111
    .section .text.other, "ax"
    ldr x1, =0x2222
    .text
    ldr x2, =0x3333
""")
    segs = {s.name: s for s in img.segments}
    assert segs[".text"].data[8:16] == (0x1111).to_bytes(8, "little")
    assert segs[".text"].data[16:24] == (0x3333).to_bytes(8, "little")
    assert segs[".text.other"].data[8:16] == (0x2222).to_bytes(8, "little")


def test_adrp_and_lo12_across_sections():
    img = assemble_text("""
    .text
_start:
    adrp x0, value
    add x0, x0, :lo12:value
    ldr x1, [x0, #:lo12:value]
    .data
    .skip 0x123 * 8
value:
    .quad 1
""", section_addresses={".data": 0x4123_0000})
    value = img.symbols["value"]
    assert value == 0x4123_0000 + 0x123 * 8
    adrp = words(img)[0]
    immlo, immhi = (adrp >> 29) & 3, (adrp >> 5) & 0x7FFFF
    assert ((immhi << 2 | immlo) << 12) + (img.entry & ~0xFFF) == value & ~0xFFF
    assert (words(img)[1] >> 10) & 0xFFF == value & 0xFFF  # ADD imm12
    assert (words(img)[2] >> 10) & 0xFFF == (value & 0xFFF) // 8  # LDR (unsigned offset) scaled by 8


# ------------------------------------------------------------------ sections and Image


def test_sections_are_placed_in_order_on_4k_boundaries():
    img = assemble_text("""
    .data
d0: .quad 1
    .text
_start:
    nop
    .section .rodata
r0: .byte 1
    .bss
b0: .space 16
    .section .vectors, "ax"
v0: nop
""", base=0x4020_0000)
    got = [(s.name, s.addr, s.flags) for s in img.segments]
    assert got == [
        (".text", 0x4020_0000, "rx"),  # .text is the default section, so first
        (".data", 0x4020_1000, "rw"),
        (".rodata", 0x4020_2000, "r"),
        (".bss", 0x4020_3000, "rw"),
        (".vectors", 0x4020_4000, "rx"),
    ]
    assert img.code_ranges() == [(0x4020_0000, 0x4020_0004), (0x4020_4000, 0x4020_4004)]


def test_fixed_section_addresses_and_overlap():
    img = assemble_text("    .text\n    nop\n    .data\n    .quad 1\n", section_addresses={".text": 0x5000_0000})
    segs = {s.name: s.addr for s in img.segments}
    assert segs[".text"] == 0x5000_0000 and segs[".data"] % 0x1000 == 0
    with pytest.raises(AsmError, match="overlap"):
        assemble_text("    .text\n    .skip 64\n    .data\n    .quad 1\n",
                      section_addresses={".text": 0x5000_0000, ".data": 0x5000_0020})


def test_image_lookups():
    img = assemble_file(DATA / "hostile.S")
    start = img.symbols["_start"]
    assert img.addr_of("_start") == start
    assert img.addr_of("_start+0x10") == start + 0x10
    assert img.addr_of("table - 8") == img.symbols["table"] - 8
    assert img.addr_of("0x4008_0000") == 0x4008_0000
    # "file:line": the first statement at or after that line (line 20 is `msr pan, #1`)
    assert img.addr_of("hostile.S:20") == start
    assert img.addr_of("hostile.S:18") == start  # `_start:` line: the next statement
    assert img.addr_of("hostile.S:21") == start + 4
    assert img.source_at(start).line == 20
    assert img.source_at(start + 4).line == 21
    assert img.symbol_at(start + 4) == "_start+0x4"
    assert img.symbol_at(img.symbols["far_data"] + 16) == "bytes"  # far_data is two quads
    assert img.symbol_at(img.symbols["far_data"] + 17) == "bytes+0x1"
    assert img.symbol_at(0x1000) is None
    for bad in ("no_such_label", "hostile.S:100000", "other.S:3"):
        with pytest.raises(KeyError) as e:
            img.addr_of(bad)
        assert "\n" not in str(e.value)
    words_at = dict(img.words())
    assert img.symbols["table"] not in words_at  # data is not an instruction
    assert sum(1 for w in words_at.values() if w == 0xD500419F) >= 2  # .inst words are
    assert img.source_files[0].endswith("hostile.S") and any(f.endswith("hostile_defs.h") for f in img.source_files)
    lines = [a for a, _s, _l in img.lines]
    assert lines == sorted(lines)


def test_load_flat_gives_the_same_words(tmp_path: Path):
    img = assemble_text("    .text\n    mov x0, #1\n    msr pan, #1\n    ret\n")
    flat = tmp_path / "p.bin"
    flat.write_bytes(img.segments[0].data)
    loaded = load_program(flat, load_addr=img.entry)
    assert list(loaded.words()) == list(img.words())
    assert load_flat(flat, 0x1000).entry == 0x1000


# ------------------------------------------------------------------ variants: defines and overrides


def test_defines_select_a_variant():
    def first(**defines) -> int:
        return words(assemble_file(DATA / "variants.S", defines=defines))[0]

    assert first() == 0xD2800000  # mov x0, #0
    assert first(VARIANT=2) == 0xD2800040
    assert first(VARIANT=5) == 0xD28000A0
    assert words(assemble_file(DATA / "variants.S", defines={"REG": "x5"}))[1] == 0xD2800025
    assert words(assemble_file(DATA / "variants.S"))[1] == 0xD2800029  # the header's default x9


def test_overrides_patch_an_included_file():
    body = DATA / "variants_body.h"
    patched = body.read_text().replace("msr\tpan, #1", "msr\tpan, #0\n\tnop")
    assert patched != body.read_text()
    img = assemble_file(DATA / "variants.S", overrides={str(body): patched})
    assert words(img)[2:4] == [MSR_PAN_0, NOP]
    assert words(assemble_file(DATA / "variants.S"))[2] == MSR_PAN_1  # the file itself is untouched


def test_expansion_for_gnu_as_is_flat():
    text, locs = expand_for_gnu_as(DATA / "alternatives.S", features=FEATURES_A57)
    assert "ALTERNATIVE" not in text and "alternative_" not in text and "#define" not in text
    assert len(text.splitlines()) == len(locs)
    assert all(loc.file.endswith("alternatives.S") for loc in locs)
