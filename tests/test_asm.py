"""The assembler pipeline: GNU-as dialect, keystone's gaps (facts §7), errors with file:line."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.arch.features import FEATURES_A57, FEATURES_MAX
from harness.asm import (
    AsmError,
    SourceLoc,
    assemble_file,
    assemble_text,
    expand_for_gnu_as,
    load_elf,
    load_program,
)
from harness.asm.backend import KEYSTONE
from harness.asm.check import check_word
from harness.asm.statement import Stmt
from harness.qemu import GNU_AS_MARCH

ROOT = Path(__file__).resolve().parents[1]
HAVE_GAS = shutil.which("aarch64-linux-gnu-as") is not None


def words(img) -> list[int]:
    return [w for _a, w in img.words()]


def test_extension_mnemonics_encode_as_facts_5_says():
    img = assemble_text("""
    .text
    msr pan, #1
    msr pan, #0
    msr uao, #1
    msr uao, #0
    mrs x0, pan
    mrs x0, uao
    mrs x0, sctlr_el12
    eret
    hvc #0
    svc #0
    ldtr x1, [x0]
    sttr x1, [x0]
""")
    assert words(img) == [0xD500419F, 0xD500409F, 0xD500417F, 0xD500407F, 0xD5384260, 0xD5384280,
                          0xD53D1000, 0xD69F03E0, 0xD4000002, 0xD4000001, 0xF8400801, 0xF8000801]


def test_dit_and_ssbs_forms_encode_as_facts_8_says():
    # facts §8: msr dit, #imm = 0xd503405f | imm<<8, dit = S3_3_C4_C2_5; msr ssbs, #imm =
    # 0xd503403f | imm<<8, ssbs = S3_3_C4_C2_6 (MRS 0xd5300000 / MSR 0xd5100000 | op1<<16 ...).
    img = assemble_text("""
    .text
    msr dit, #1
    msr dit, #0
    msr ssbs, #1
    msr ssbs, #0
    mrs x0, dit
    mrs x1, ssbs
    msr dit, x2
    msr ssbs, x3
""")
    assert words(img) == [0xD503415F, 0xD503405F, 0xD503413F, 0xD503403F, 0xD53B42A0, 0xD53B42C1,
                          0xD51B42A2, 0xD51B42C3]


def test_decimal_immediates_stay_decimal():
    # keystone with a symbol resolver reads "#10" as 0x10: the pipeline must not let that through.
    img = assemble_text("    .text\n    mov x1, #10\n    add x2, x2, #100\n    ldr x0, [x1, #16]\n")
    assert words(img) == [0xD2800141, 0x91019042, 0xF9400820]


def test_capstone_check_catches_keystone_reading_decimal_as_hex():
    # Without the pipeline's workaround keystone makes #10 into #0x10; the check sees it.
    st = Stmt("mov x1, #10", SourceLoc("bug.S", 2, "    mov x1, #10", 5))
    [enc] = KEYSTONE.encode([(st.text, 0x40080000)], {}, [st])
    with pytest.raises(AsmError, match="immediate 0xa is missing"):
        check_word(int.from_bytes(enc, "little"), 0x40080000, st.text, st, {})


def test_inst_is_never_dropped_and_numeric_labels_work():
    img = assemble_text("""
    .text
_start:
1:  nop
    .inst 0xd500419f
    b 1b
    b 2f
    nop
2:  ret
""")
    ws = words(img)
    assert ws[1] == 0xD500419F and len(ws) == 6
    assert ws[2] == 0x17FFFFFE  # b back two instructions
    assert ws[3] == 0x14000002


def test_literal_pool_adrp_lo12_and_sections():
    img = assemble_text("""
    .text
_start:
    ldr x0, =0x84000008
    ldr w1, =0x1234
    adrp x2, value
    ldr x3, [x2, #:lo12:value]
    add x4, x2, :lo12:value
    .ltorg
    .data
    .quad 1, 2
value:
    .quad 0x1122334455667788
""", section_addresses={".data": 0x4010_0010})
    data = {s.name: s for s in img.segments}[".data"]
    assert img.symbols["value"] == 0x4010_0020
    assert data.data[16:24] == (0x1122334455667788).to_bytes(8, "little")
    text = {s.name: s for s in img.segments}[".text"]
    pool = text.data[24:32]
    assert int.from_bytes(pool, "little") == 0x84000008
    ws = words(img)
    assert ws[3] == 0xF9401043  # ldr x3, [x2, #0x20]
    assert ws[4] == 0x91008044  # add x4, x2, #0x20


def test_macros_rept_irp_equ_and_cpp():
    img = assemble_text("""
#define SHIFT 4
#define BIT(n) (1 << (n))
    .equ BASE, 0x100
    .macro load_const reg, val=7
    mov \\reg, #\\val
    .endm
    .text
    load_const x1
    load_const x2, BASE + BIT(SHIFT)
    .rept 2
    nop
    .endr
    .irp r, x3, x4
    mov \\r, #1
    .endr
#if SHIFT > 3
    mov x5, #SHIFT
#else
    mov x5, #0
#endif
""")
    assert words(img) == [0xD28000E1, 0xD2802202, 0xD503201F, 0xD503201F, 0xD2800023, 0xD2800024, 0xD2800085]


def test_alternative_follows_cpu_caps():
    src = "    .text\n    ALTERNATIVE(nop, msr pan, #1, ARM64_HAS_PAN)\n" \
          "alternative_if ARM64_HAS_UAO\n    msr uao, #1\nalternative_else\n    nop\nalternative_endif\n"
    # "msr pan, #1" contains a comma: kernel style wraps it in a macro; here the 3-arg form splits it.
    src = src.replace("ALTERNATIVE(nop, msr pan, #1, ARM64_HAS_PAN)", "ALTERNATIVE(nop, SET_PAN1, ARM64_HAS_PAN)")
    src = "#define SET_PAN1 .inst 0xd500419f\n" + src
    assert words(assemble_text(src, features=FEATURES_MAX)) == [0xD500419F, 0xD500417F]
    assert words(assemble_text(src, features=FEATURES_A57)) == [0xD503201F, 0xD503201F]


def test_alternative_sides_must_have_the_same_size():
    with pytest.raises(AsmError, match="old is 4 bytes, new is 8; both must have the same size"):
        assemble_text("    .text\n    ALTERNATIVE(nop, nop; nop, ARM64_HAS_PAN)\n", "alt.S")


def test_errors_name_file_and_line_in_includes_and_macros(tmp_path):
    inc = tmp_path / "inc.S"
    inc.write_text("    nop\n    bogus x0\n")
    main = tmp_path / "main.S"
    main.write_text('    .text\n    #include "inc.S"\n')
    with pytest.raises(AsmError) as e:
        assemble_file(main)
    assert e.value.file.endswith("inc.S") and e.value.line == 2
    main.write_text("    .macro m\n    nop\n    frob x1\n    .endm\n    .text\n    m\n")
    with pytest.raises(AsmError) as e:
        assemble_file(main)
    assert e.value.line == 3 and "main.S:6" in str(e.value)
    main.write_text("    .text\n    mrs x0, no_such_el1\n")
    with pytest.raises(AsmError, match="unknown system register") as e:
        assemble_file(main)
    assert str(e.value).startswith(f"{main}:2:")


def test_keystone_abort_is_an_error_not_a_crash():
    # The text the pipeline would never hand over (it computes :lo12: itself) aborts keystone
    # (facts §7): an error at the statement, and the pipeline's worker starts again.
    st = Stmt("ldr x0, [x1, #:lo12:_start]", SourceLoc("boom.S", 3, "    ldr x0, [x1, #:lo12:_start]", 5))
    with pytest.raises(AsmError, match="keystone crashed|cannot assemble") as e:
        KEYSTONE.encode([(st.text, 0x40080000)], {"_start": 0x40080000}, [st])
    assert e.value.line == 3
    assert assemble_text("    .text\n    nop\n").segments  # the worker restarts


def test_undefined_symbol_and_bad_directive():
    with pytest.raises(AsmError, match="undefined symbol 'nowhere'") as e:
        assemble_text("    .text\n    b nowhere\n", "u.S")
    assert (e.value.line, e.value.col) == (2, 7)
    with pytest.raises(AsmError, match="unknown directive"):
        assemble_text("    .text\n    .frobnicate 3\n", "d.S")


def test_line_table_and_addr_of_file_line():
    img = assemble_text("    .text\n_start:\n    nop\n    mov x0, #1\n", "lines.S")
    assert img.source_at(img.entry + 4).line == 4
    assert img.addr_of("lines.S:4") == img.entry + 4
    assert img.addr_of("_start+4") == img.entry + 4
    assert img.symbol_at(img.entry + 4) == "_start+0x4"


@pytest.mark.skipif(not HAVE_GAS, reason="GNU binutils for aarch64 not installed")
def test_words_equal_gnu_as_and_elf_loading(tmp_path):
    src = tmp_path / "k.S"
    src.write_text("""
    .text
    .global _start
_start:
    msr pan, #1
    mrs x0, sctlr_el12
    msr ttbr1_el2, x1
    mrs x2, contextidr_el2
    ldr x3, =0x1234567890
    adrp x4, data
    ldr x5, [x4, #:lo12:data]
1:  subs x1, x1, #1
    b.ne 1b
    .inst 0xd503201f
    ldtr x6, [x0]
    eret
    .ltorg
    .balign 8
data:
    .quad 42
""")
    text, _locs = expand_for_gnu_as(src)
    exp = tmp_path / "exp.S"
    exp.write_text(text)
    subprocess.run(["aarch64-linux-gnu-as", GNU_AS_MARCH, "-o", tmp_path / "k.o", exp], check=True)
    subprocess.run(["aarch64-linux-gnu-ld", "-Ttext=0x40080000", "-o", tmp_path / "k.elf", tmp_path / "k.o"], check=True)
    ours = assemble_file(src)
    gnu = load_elf(tmp_path / "k.elf")
    ours_text = {s.name: s for s in ours.segments}[".text"].data
    seg = next(s for s in gnu.segments if s.addr <= ours.entry < s.addr + len(s.data))
    off = ours.entry - seg.addr
    assert gnu.entry == ours.entry == ours.symbols["_start"]
    assert seg.data[off : off + len(ours_text)] == ours_text
    assert load_program(tmp_path / "k.elf").symbols["data"] == ours.symbols["data"]


def test_cli_reports_asm_error_with_exit_2(tmp_path):
    bad = tmp_path / "x.S"
    bad.write_text("    .text\n    mov x0, #1\n    ldr x0, [x1, x99]\n")
    p = subprocess.run([sys.executable, "-m", "harness", "run", str(bad)], capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 2 and "x.S:3:" in p.stderr and "Traceback" not in p.stderr


def test_gnu_as_forms_found_by_the_bare_metal_tests():
    img = assemble_text("""
    .macro two a, b
    mov \\a, #\\b
    .endm
    .macro str_arg s
    .asciz "\\s"
    .endm
    .text
_start:
1:  two x1, 3
    ldtr x0, [x0]
    udf #0x12
    ldr x2, =0x10
    ldr x3, =16
    ldr w4, =0x5
    ldr x5, =0x6
    .ltorg
    .data
msg: str_arg " A "
""")
    ws = words(img)
    assert ws[:3] == [0xD2800061, 0xF8400800, 0x00000012]

    def literal(k: int) -> int:  # address an LDR (literal) at word k loads from
        return img.entry + 4 * k + ((ws[k] >> 5) & 0x7FFFF) * 4

    assert literal(3) == literal(4)  # 0x10 and 16: one shared entry, as GNU as does
    assert literal(6) % 8 == 0  # an 8-byte literal after a 4-byte one stays aligned
    assert img.symbols["__num_1_0"] == img.symbols["_start"]
    data = {s.name: s for s in img.segments}[".data"].data
    assert data[:4] == b" A \0"
