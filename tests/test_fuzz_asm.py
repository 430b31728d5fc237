"""Fuzz the assembler through `python -m harness run FILE.S`: generated statement soup, directives
with extreme operands, and random bytes. Every input must end with status 0, 1 or 2, one
diagnostic line for 2 (plus the quoted source line), no traceback, no signal, bounded time and
memory (tests/fuzzkit.py checks all of it in a child process under a memory limit).

`make test` runs 300 inputs in all (derandomized, so a commit is green or red for a reason);
`make test-slow` runs 3,000 with fresh randomness (fuzztwice.py)."""

from __future__ import annotations

import itertools

import fuzzkit
import pytest
from fuzztwice import twice
from hypothesis import strategies as st

MAX_INSNS = "2000"

_counter = itertools.count()


@pytest.fixture(scope="module")
def worker():
    with fuzzkit.Worker() as w:
        yield w


@pytest.fixture(scope="module")
def srcdir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz_asm")


def run_source(worker, srcdir, data: bytes | str, *extra: str) -> fuzzkit.Result:
    path = srcdir / f"f{next(_counter)}.S"
    path.write_bytes(data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data)
    try:
        r = worker.cli(["run", str(path), "--max-insns", MAX_INSNS, *extra])
        r.what = f"{r.what}\n--- {path.name}\n{path.read_bytes()[:3000]!r}"
        return r.check()
    finally:
        path.unlink()


# ---------------------------------------------------------------- pieces of GNU-as source

EXTREME = [0, 1, 2, 3, 4, 7, 8, 15, 16, 63, 64, 65, 127, 128, 255, 256, 4095, 4096, 0xFFFF, 0x10000,
           0x0FFF_FFFF, 0x1000_0000, 0x1000_0001, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF, 0x1_0000_0000,
           0x7FFF_FFFF_FFFF_FFFF, 0x8000_0000_0000_0000, 0xFFFF_FFFF_FFFF_FFFF, 1 << 64, 1 << 100, 10**40]
numbers = st.one_of(
    st.sampled_from(EXTREME).flatmap(lambda n: st.sampled_from([n, -n])),
    st.integers(-(1 << 70), 1 << 70),
)
number_text = st.one_of(
    numbers.map(str),
    numbers.map(lambda n: hex(n) if n >= 0 else "-" + hex(-n)),
    st.sampled_from(["0b1011", "010", "08", "0x", "0x_", "1_000", "0b", "'a'", "'a", "'\\n'", "'", "''",
                     "1f", "1b", "2b", ".", "._", "9" * 5000, "0x" + "f" * 40, "1e5", "1.5"]),
)
labels = st.sampled_from(["_start", "lab", "loop", "vec", "data", "end", ".Llocal", "__num_1_0", "x0", "nop",
                          "lab+4", "lab-_start", "1b", "1f", "2f", "nosuch", "'nosuch", '"nosuch'])
regs = st.sampled_from(["x0", "x1", "x2", "w3", "x30", "sp", "xzr", "wzr", "lr", "x31", "w32", "v0", "q1", "pan"])
ops = st.sampled_from(["+", "-", "*", "/", "%", "<<", ">>", "&", "|", "^", "&&", "||", "==", "!=", "<", ">", "<=", ">="])


@st.composite
def expressions(draw, depth=0):
    if depth > 3 or draw(st.booleans()):
        return draw(st.one_of(number_text, labels))
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return f"{draw(expressions(depth + 1))} {draw(ops)} {draw(expressions(depth + 1))}"
    if kind == 1:
        return f"({draw(expressions(depth + 1))})"
    if kind == 2:
        return f"{draw(st.sampled_from(['-', '~', '!']))}{draw(expressions(depth + 1))}"
    return "(" * draw(st.integers(0, 300)) + "1" + ")" * draw(st.integers(0, 300))


strings = st.one_of(
    st.text(max_size=20).map(lambda s: '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'),
    st.sampled_from(['"abc', '"a\\"b"', '"\\x41\\101\\n"', '"\\q"', '""', '"a;b"', "'a'", '"é"', '"\\']),
)

INSNS = ["nop", "ret", "eret", "isb", "dsb sy", "wfi", "wfe", "yield", "esb", "csdb", "sb", "ssbb", "bti c",
         "svc #{n}", "hvc #{n}", "smc #{n}", "brk #{n}", "udf #{n}", "hint #{n}", "mov {r}, #{n}",
         "movz {r}, #{n}, lsl #16", "add {r}, {r}, #{n}", "sub {r}, {r}, {r}", "cmp {r}, #{n}",
         "ldr {r}, [{r}]", "ldr {r}, [{r}, #{n}]", "str {r}, [{r}, #{n}]!", "ldtr {r}, [{r}]",
         "sttr {r}, [{r}]", "ldr {r}, ={e}", "ldr {r}, {l}", "adr {r}, {l}", "adrp {r}, {l}",
         "add {r}, {r}, #:lo12:{l}", "b {l}", "bl {l}", "b.eq {l}", "cbz {r}, {l}", "tbz {r}, #{n}, {l}",
         "msr pan, #{n}", "msr uao, #{n}", "msr daifset, #{n}", "msr dit, #{n}", "msr spsel, #{n}",
         "mrs {r}, {s}", "msr {s}, {r}", "mrs {r}, s3_0_c1_c0_0", "msr s3_4_c1_c1_0, {r}",
         "at s1e1r, {r}", "tlbi vmalle1", "ic iallu", "dc civac, {r}", "blr {r}", "br {r}",
         "mov {r}, {r}", "ldp {r}, {r}, [sp], #16", "stp {r}, {r}, [sp, #-16]!", "{l}", "{r}",
         "bogus {r}", ".inst {e}", "ALTERNATIVE(nop, msr pan, #1, ARM64_HAS_PAN)", "nop; nop", "nop ; // x"]
SYSREGS = ["sctlr_el1", "sctlr_el2", "hcr_el2", "vbar_el2", "vbar_el1", "elr_el2", "spsr_el2", "esr_el2",
           "sctlr_el12", "spsr_el12", "currentel", "daif", "nzcv", "pan", "uao", "ttbr0_el1", "nosuchreg",
           "s3_0_c0_c0_0", "s4_0_c0_c0_0", "id_aa64pfr0_el1"]
DIRECTIVES = [".space {n}", ".skip {n}, {n}", ".zero {n}", ".fill {n}, {n}, {n}", ".fill {n}", ".balign {n}",
              ".balignw {n}, {n}", ".balignl {n}, {n}, {n}", ".align {n}", ".p2align {n}", ".p2align {n}, 0, {n}",
              ".org {n}", ".byte {e}", ".hword {e}", ".short {e}, {e}", ".word {e}", ".long {e}", ".quad {e}",
              ".xword {e}", ".ascii {str}", ".asciz {str}, {str}", ".string {str}", ".equ {id}, {e}",
              ".set {id}, {e}", "{id} = {e}", ".global {id}", ".type {id}, %function", ".size {id}, .-{id}",
              ".text", ".data", ".bss", ".rodata", ".section .text.x, \"ax\"", ".section \"weird\"",
              ".section", ".pushsection .foo", ".popsection", ".previous", ".ltorg", ".pool",
              ".if {e}", ".else", ".elseif {e}", ".endif", ".ifdef {id}", ".ifndef {id}", ".ifc {id}, {id}",
              ".ifeq {e}", ".rept {n}", ".rept {e}", ".endr", ".irp v, {n}, {n}", ".irpc c, {id}", ".endm",
              ".macro {id} a, b=1", ".macro", ".purgem {id}", ".error {str}", ".exitm", "{id} .req x{n}",
              ".unreq {id}", ".incbin \"/etc/passwd\"", ".include \"{inc}\"", ".cfi_startproc", ".arch armv8.2-a",
              "alternative_if ARM64_HAS_PAN", "alternative_else", "alternative_endif",
              "alternative_else_nop_endif", ".unknown_directive", ".inst 0xd503201f"]
CPP = ["#define {id} {e}", "#define {id}(a, b) a + b", "#if {e}", "#ifdef {id}", "#else", "#endif", "#elif {e}",
       "#undef {id}", "#include \"{inc}\"", "#include <{inc}>", "#error {id}", "# 1 \"x\"", "#"]
INCLUDES = ["arm64_defs.S", "board.S", "vectors.S", "print.S", "nosuch.h", "../include/board.S", "", "/etc"]
idents = st.one_of(st.sampled_from(["m", "x", "lab", "_start", "FOO", "a", "b", "v", "c", "pan", "ALTERNATIVE", "nop"]),
                   st.from_regex(r"[A-Za-z_.$][\w.$]{0,12}", fullmatch=True))


@st.composite
def statements(draw):
    kind = draw(st.integers(0, 9))
    table = INSNS if kind < 5 else DIRECTIVES if kind < 8 else CPP
    template = draw(st.sampled_from(table))
    out = []
    for piece in template.replace("{", "\0{").split("\0"):
        for key, strat in (("{n}", number_text), ("{e}", expressions()), ("{l}", labels), ("{r}", regs),
                           ("{s}", st.sampled_from(SYSREGS)), ("{id}", idents), ("{str}", strings),
                           ("{inc}", st.sampled_from(INCLUDES))):
            while key in piece:
                piece = piece.replace(key, draw(strat), 1)
        out.append(piece)
    line = "".join(out)
    if draw(st.integers(0, 4)) == 0:
        line = f"{draw(st.sampled_from(['1', '2', 'lab', '_start', 'vec', 'x', '0']))}: {line}"
    if draw(st.integers(0, 9)) == 0:
        line += draw(st.sampled_from([" // c", " /* c", " */", " ;", "\\", " \"", " '", "\t@", " # x"]))
    return line


programs = st.lists(statements(), max_size=40).map(lambda lines: "\n".join(lines) + "\n")

PROLOGUE = "_start:\n"
EPILOGUE = "\n    ldr x0, =0x84000008\n    smc #0\n"


def _soup(worker, srcdir, text):
    run_source(worker, srcdir, text)


def _soup_running(worker, srcdir, text):
    run_source(worker, srcdir, PROLOGUE + text + EPILOGUE, "--el", "1")


test_statement_soup, test_statement_soup_slow = twice(100, 1000, programs)(_soup)
test_statement_soup_in_a_running_program, test_statement_soup_in_a_running_program_slow = \
    twice(50, 500, programs)(_soup_running)


EXTREME_DIRECTIVES = [".space", ".skip", ".zero", ".fill", ".balign", ".balignw", ".balignl", ".align", ".p2align",
                      ".org", ".rept", ".byte", ".hword", ".word", ".quad", ".irp v,", ".if", ".equ x,"]


def _directives(worker, srcdir, items, code_first):
    lines = ["_start:", "    nop"] if code_first else []
    for directive, args in items:
        lines.append(f"    {directive} {', '.join(args)}")
        if directive in (".rept", ".irp v,"):
            lines += ["    nop", "    .endr"]
        elif directive == ".if":
            lines += ["    nop", "    .endif"]
    run_source(worker, srcdir, "\n".join(lines) + EPILOGUE)


directive_lists = st.lists(st.tuples(st.sampled_from(EXTREME_DIRECTIVES),
                                     st.lists(st.one_of(number_text, expressions()), min_size=1, max_size=3)),
                           min_size=1, max_size=6)
test_directives_with_extreme_operands, test_directives_with_extreme_operands_slow = \
    twice(100, 1000, directive_lists, st.booleans())(_directives)


def _bytes(worker, srcdir, data):
    run_source(worker, srcdir, data)


random_sources = st.one_of(st.binary(max_size=3000),
                           st.binary(max_size=300).map(lambda b: b"_start:\n  nop\n" + b + b"\n  nop\n"))
test_random_bytes, test_random_bytes_slow = twice(50, 500, random_sources)(_bytes)
