"""Bad input gives one `file:line:col: message` error, at the right place, never a traceback.

Each tests/data/asm/err_*.S fixture states on its first line the error it must produce
(worked out by hand from the fixture, including the column)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness.asm import AsmError, SourceLoc, assemble_file, assemble_text, load_program
from harness.asm.backend import KEYSTONE, Keystone
from harness.asm.check import check_word
from harness.asm.statement import Stmt

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


ADDR = 0x40080000


def stmt(text: str, file: str = "t.S", line: int = 2) -> Stmt:
    """A statement as the preprocessor makes it, on its own line of `file`."""
    return Stmt(text, SourceLoc(file, line, "    " + text, 5))


def test_keystone_abort_becomes_an_error_at_the_statement():
    # keystone 0.9.2 calls abort() on `ldr x0, [x1, #:lo12:sym]` (facts §7); the pipeline computes
    # :lo12: itself, so hand the raw text to the back end to reach the abort.
    ks = Keystone()
    sts = [stmt("nop", "boom.S", 3), stmt("ldr x0, [x1, #:lo12:_start]", "boom.S", 4), stmt("nop", "boom.S", 5)]
    try:
        with pytest.raises(AsmError, match="keystone crashed") as e:
            ks.encode([(st.text, ADDR + 4 * k) for k, st in enumerate(sts)], {"_start": ADDR}, sts)
        assert (e.value.file, e.value.line, e.value.col) == ("boom.S", 4, 5)
        # the worker restarts
        assert ks.encode([("mov x3, #0x7", ADDR)], {}, [stmt("mov x3, #7")]) == [(0xD28000E3).to_bytes(4, "little")]
    finally:
        ks.stop()


def test_a_dropped_statement_is_an_error():
    # keystone drops `.inst` silently (facts §7); any statement that yields no bytes is caught.
    st = stmt(".inst 0xd503201f", "drop.S", 3)
    with pytest.raises(AsmError, match="keystone dropped the statement") as e:
        KEYSTONE.encode_words({(st.text, None, ()): (ADDR, st)}, {})
    assert e.value.line == 3


@pytest.mark.parametrize(("text", "word", "symbols", "message"), [
    ("add x0, x1, x2", 0x8B030020, {}, "register x2 of the statement is missing"),  # ADD X0, X1, X3
    ("eor x0, x1, x2", 0xD503201F, {}, "emitted nop"),
    ("b there", 0x14000002, {"there": ADDR + 12}, "emitted target 0x40080008 but there is 0x4008000c"),
    ("mov x1, #10", 0xD2800201, {}, "immediate 0xa is missing"),  # the "#10 read as hex" keystone bug
])
def test_the_capstone_check_catches_a_wrong_word(text, word, symbols, message):
    with pytest.raises(AsmError, match=message) as e:
        check_word(word, ADDR, text, stmt(text, "w.S", 3), symbols)
    assert (e.value.file, e.value.line) == ("w.S", 3)


def test_the_capstone_check_passes_the_right_word():
    for text, word, symbols in [("add x0, x1, x2", 0x8B020020, {}), ("b there", 0x14000003, {"there": ADDR + 12}),
                                ("mov x1, #10", 0xD2800141, {})]:
        check_word(word, ADDR, text, stmt(text), symbols)


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
        # a decimal past 64 bits, as long as int() refuses to read (found by the slow fuzz)
        ("    .text\n    svc #" + "9" * 5000 + "\n", r"^d\.S:2:5: cannot assemble 'svc #9+' \(Literal value out of range"),
        ("    .text\n    mov x0, #-" + "9" * 26 + "\n", r"^d\.S:2:5: cannot assemble 'mov x0, #-9+' \(Literal value out of range"),
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
