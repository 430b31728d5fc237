"""Bad input gives one `file:line:col: message` error, at the right place, never a traceback.

Each tests/data/asm/err_*.S fixture states on its first line the error it must produce
(worked out by hand from the fixture, including the column)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import harness.asm.assembler as assembler
from harness.asm import AsmError, assemble_file, assemble_text, load_program

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "asm"
ERROR_FIXTURES = sorted(DATA.glob("err_*.S"))


def _basenames(text: str) -> str:
    """Drop directories in front of file names, so the check does not depend on the cwd."""
    return re.sub(r"[^\s'(]*/(?=[\w.-]+\.[Sh]:\d)", "", text)


@pytest.mark.parametrize("path", ERROR_FIXTURES, ids=[p.name for p in ERROR_FIXTURES])
def test_error_fixture_reports_file_line_col(path: Path):
    expected = path.read_text().splitlines()[0].split("EXPECT:", 1)[1].strip()
    with pytest.raises(AsmError) as e:
        assemble_file(path)
    err = e.value
    first, *rest = str(err).split("\n")
    assert _basenames(first).startswith(expected)
    # the attributes agree with the text, and the second line is the source line
    assert first.startswith(f"{err.file}:{err.line}:{err.col}: {err.message}")
    assert rest == [f"    {err.source_line.strip()}"] or (not err.source_line and rest == [])
    assert "Traceback" not in str(err)


def test_error_fixtures_cover_the_brief():
    names = {p.stem for p in ERROR_FIXTURES}
    assert {"err_include", "err_macro", "err_alt_size", "err_keystone"} <= names


def test_keystone_abort_becomes_an_error_at_the_statement(monkeypatch):
    # keystone 0.9.2 calls abort() on `ldr x0, [x1, #:lo12:sym]` (facts §7); the pipeline computes
    # :lo12: itself, so force the raw text through to keystone to reach the abort.
    monkeypatch.setattr(assembler.Assembler, "_prepare", lambda self, item, addr: (item.text, None))
    src = "    .text\n_start:\n    nop\n    ldr x0, [x1, #:lo12:_start]\n    nop\n"
    with pytest.raises(AsmError, match="keystone crashed") as e:
        assemble_text(src, "boom.S")
    assert (e.value.file, e.value.line, e.value.col) == ("boom.S", 4, 5)


def test_worker_restarts_after_an_abort(monkeypatch):
    with monkeypatch.context() as m:
        m.setattr(assembler.Assembler, "_prepare", lambda self, item, addr: (item.text, None))
        with pytest.raises(AsmError):
            assemble_text("    .text\n_s:\n    ldr x0, [x1, #:lo12:_s]\n", "boom.S")
    img = assemble_text("    .text\n    mov x3, #7\n")
    assert [w for _a, w in img.words()] == [0xD28000E3]  # MOVZ X3, #7


def _fake_keystone(replace_word):
    """A keystone stand-in that returns what `replace_word(text, real_bytes)` says."""
    real = assembler._keystone

    def fake(items, symbols, stmts):
        out = real(items, symbols, stmts)
        return [replace_word(text, enc) for (text, _addr), enc in zip(items, out, strict=True)]

    return fake


@pytest.fixture
def no_cache(monkeypatch):
    monkeypatch.setattr(assembler, "_ENCODED", {})


def test_a_dropped_statement_is_an_error(monkeypatch, no_cache):
    # keystone drops `.inst` silently (facts §7); any statement that yields no bytes is caught.
    monkeypatch.setattr(assembler, "_keystone", _fake_keystone(lambda t, enc: b"" if t.startswith("add") else enc))
    with pytest.raises(AsmError, match="dropped the statement") as e:
        assemble_text("    .text\n    nop\n    add x0, x1, x2\n    nop\n", "drop.S")
    assert e.value.line == 3


def test_a_wrong_register_is_caught_by_the_capstone_check(monkeypatch, no_cache):
    add_x0_x1_x3 = (0x8B030020).to_bytes(4, "little")
    monkeypatch.setattr(assembler, "_keystone", _fake_keystone(lambda t, enc: add_x0_x1_x3 if t.startswith("add") else enc))
    with pytest.raises(AsmError, match="register x2 of the statement is missing") as e:
        assemble_text("    .text\n    nop\n    add x0, x1, x2\n", "reg.S")
    assert e.value.line == 3


def test_a_wrong_mnemonic_is_caught(monkeypatch, no_cache):
    nop = (0xD503201F).to_bytes(4, "little")
    monkeypatch.setattr(assembler, "_keystone", _fake_keystone(lambda t, enc: nop if t.startswith("eor") else enc))
    with pytest.raises(AsmError, match="emitted nop"):
        assemble_text("    .text\n    eor x0, x1, x2\n", "mn.S")


def test_a_wrong_branch_target_is_caught(monkeypatch, no_cache):
    b_plus_8 = (0x14000002).to_bytes(4, "little")
    monkeypatch.setattr(assembler, "_keystone", _fake_keystone(lambda t, enc: b_plus_8 if t.startswith("b ") else enc))
    with pytest.raises(AsmError, match="emitted target"):
        assemble_text("    .text\n_start:\n    b there\n    nop\n    nop\nthere:\n    ret\n", "br.S")


def test_a_wrong_immediate_is_caught(monkeypatch, no_cache):
    mov_x1_16 = (0xD2800201).to_bytes(4, "little")  # the "#10 read as hex" keystone bug
    monkeypatch.setattr(assembler, "_keystone", _fake_keystone(lambda t, enc: mov_x1_16 if t.startswith("mov") else enc))
    with pytest.raises(AsmError, match="immediate 0xa is missing"):
        assemble_text("    .text\n    mov x1, #10\n", "imm.S")


@pytest.mark.parametrize(
    ("src", "pattern"),
    [
        ("    .text\n    .frobnicate 3\n", r"^d\.S:2:5: unknown directive \.frobnicate"),
        ("    .text\n    .if 1\n    nop\n", r"^d\.S:2:5: \.if without \.endif"),
        ("    .text\n    .endr\n", r"^d\.S:2:5: \.endr without a matching block"),
        ("    .text\n    .quad undefined_thing\n", r"^d\.S:2:\d+: cannot evaluate 'undefined_thing'"),
        ("    .text\n    .byte 300\n", r"^d\.S:2:5: value 0x12c does not fit in 1 byte\n"),
        ("    .text\n    adrp x0, 0x1\n    .section .x, \"ax\"\n", None),
        ("    .text\n    .macro m a:req\n    mov \\a, #1\n    .endm\n    m\n", r"^d\.S:5:5: macro 'm': missing value"),
        ("    .text\n    msr sctlr_el1, w0\n", r"^d\.S:2:5: expected a 64-bit register"),
        ("    .text\n    ALTERNATIVE(nop, nop, ARM64_HAS_PAN, CFG, extra)\n", r"^d\.S:2:5: ALTERNATIVE\(old, new, CAP\[, CONFIG\]\)"),
    ],
)
def test_more_errors_have_a_location(src: str, pattern: str | None):
    if pattern is None:  # a valid input among the invalid ones: must assemble
        assemble_text(src, "d.S")
        return
    with pytest.raises(AsmError) as e:
        assemble_text(src, "d.S")
    assert re.search(pattern, str(e.value)), str(e.value)


def test_program_loading_errors_are_one_line(tmp_path):
    for call, pattern in [
        (lambda: load_program(tmp_path / "missing.S"), "no such file"),
        (lambda: load_program(tmp_path / "missing.elf"), "no such file"),
        (lambda: load_program(_write(tmp_path / "x.bin", b"\x1f\x20\x03\xd5")), "load address"),
        (lambda: load_program(_write(tmp_path / "x.txt", b"hello")), "unknown program type"),
        (lambda: load_program(_write(tmp_path / "bad.elf", b"\x7fELF\x02\x01")), "cannot load ELF"),
    ]:
        with pytest.raises(AsmError, match=pattern) as e:
            call()
        assert "\n" not in str(e.value)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_cli_prints_the_error_without_traceback():
    path = DATA / "err_macro.S"
    p = subprocess.run([sys.executable, "-m", "harness", "run", str(path)], capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 2
    assert "err_macro.S:5:5: cannot assemble 'frob x1'" in p.stderr
    assert "Traceback" not in p.stderr
