"""The assembler's collaborators, each on its own: the tokenizer both preprocessor stages and the
layout share, the conditional stack of `#if` and `.if`, the cpp stage, the macro expander, the
layout with its literal pool and equates."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.asm import AsmError, SourceLoc, assemble_text
from harness.asm.conditional import ConditionalStack
from harness.asm.cpp import CPreprocessor, SourceFiles
from harness.asm.layout import Equates, Layout
from harness.asm.macros import MacroExpander
from harness.asm.statement import Stmt
from harness.asm.tokenizer import (
    call_args,
    split_commas,
    split_statements,
    split_top,
    strip_comments,
)

LOC = SourceLoc("t.S", 1, "", 1)


def at(text: str, line: int = 1) -> SourceLoc:
    return SourceLoc("t.S", line, text, 1)


# ---------------------------------------------------------------- tokenizer


@pytest.mark.parametrize(("text", "statements"), [
    ("nop ; nop", ["nop", "nop"]),
    ('.ascii "a;b" ; nop', ['.ascii "a;b"', "nop"]),
    ("mov x0, #';' ; nop", ["mov x0, #';'", "nop"]),
    ("mov x0, #'; ; nop", ["mov x0, #';", "nop"]),  # 'c needs no closing quote: the first ';' is the character
    ('.ascii "a\\";b"', ['.ascii "a\\";b"']),
    (" ; ;", []),
])
def test_statements_split_on_semicolons_outside_quotes(text, statements):
    assert split_statements(text, at(text)) == statements


def test_a_quote_left_open_is_an_error_at_it():
    with pytest.raises(AsmError, match='missing closing quote \\("\\)') as e:
        split_statements('.ascii "abc', at('    .ascii "abc'))
    assert e.value.col == 12
    with pytest.raises(AsmError, match="missing closing quote \\('\\)"):
        split_statements("b 'nosuch", at("    b 'nosuch"))
    assert split_statements('.ascii "abc') == ['.ascii "abc']  # without a location: no check


def test_comments_go_and_line_numbers_stay():
    lines = ['nop // c', 'a /* x */ b', 'c /* x', 'still comment', 'x */ d', '.ascii "// not" // yes',
             "mov x0, #'\"' // c", "mov x0, #'/' // c"]
    assert strip_comments(lines) == ["nop", "a  b", "c", "", " d", '.ascii "// not"', "mov x0, #'\"'",
                                     "mov x0, #'/'"]


@pytest.mark.parametrize(("text", "pieces"), [
    ("1, 2,, 3", ["1", "2", "3"]),
    ("',', 1", ["','", "1"]),
    ('"a,b", c', ['"a,b"', "c"]),
    ('"a\\",b", c', ['"a\\",b"', "c"]),
    ("f(1, 2), 3", ["f(1, 2)", "3"]),
    ("", []),
])
def test_commas_split_outside_quotes_and_parentheses(text, pieces):
    assert split_commas(text) == pieces


def test_split_top_keeps_empty_pieces_and_takes_any_brackets():
    assert split_top("a,,[b, c]", ",", "[", "]") == ["a", "", "[b, c]"]


def test_call_arguments():
    line = 'F(a, (b, c), "x,)y", \')\') tail'
    args, end = call_args(line, 1, LOC)
    assert args == ["a", " (b, c)", ' "x,)y"', " ')'"] and line[end:] == " tail"
    assert call_args("F + 1", 1, LOC) is None
    with pytest.raises(AsmError, match="unterminated macro arguments"):
        call_args("F(a, b", 1, LOC)


# ---------------------------------------------------------------- conditional stack


def test_one_branch_of_a_block_is_taken():
    for values, taken in [((True, True), 0), ((False, True), 1), ((False, False), 2)]:
        cond: ConditionalStack[str] = ConditionalStack()
        seen = []
        cond.open("if", lambda v=values[0]: v)
        seen.append(cond.active)
        cond.elif_(lambda v=values[1]: v)
        seen.append(cond.active)
        cond.else_()
        seen.append(cond.active)
        assert seen == [k == taken for k in range(3)]
        assert cond.close() and not cond and cond.active


def test_nothing_inside_a_block_not_taken_is_evaluated():
    def never() -> bool:
        raise AssertionError("evaluated")

    cond: ConditionalStack[str] = ConditionalStack()
    cond.open("outer", lambda: False)
    cond.open("inner", never)
    cond.elif_(never)
    assert not cond.active
    cond.else_()
    assert not cond.active and cond.innermost == "inner"
    cond.close()
    cond.else_()
    assert cond.active and cond.innermost == "outer"


def test_else_and_endif_without_a_block_say_so():
    cond: ConditionalStack[str] = ConditionalStack()
    assert not cond.elif_(lambda: True) and not cond.else_() and not cond.close()


# ---------------------------------------------------------------- cpp stage


def cpp(text: str, defines=None, caps=frozenset()) -> list[str]:
    stage = CPreprocessor(SourceFiles(), caps=caps, defines=defines)
    return [line for line, _loc in stage.run(Path("t.S"), text)]


def test_defines_are_not_expanded_in_strings_or_character_constants():
    src = '#define a 5\n#define F(x, y) x + y\n  mov x0, #a\n  .ascii "a"\n  mov x1, #\'a\'\n  add x2, x2, #F(1, \')\')\n'
    assert cpp(src) == ["  mov x0, #5", '  .ascii "a"', "  mov x1, #'a'", "  add x2, x2, #1 + ')'"]


def test_cpp_conditionals_and_alternative():
    src = "#ifdef X\n a\n#elif Y > 1\n b\n#else\n c\n#endif\nALTERNATIVE(nop, isb, PAN)\n"
    assert cpp(src, {"Y": 2}, frozenset({"PAN"})) == [
        " b", ".harness_alt_if 1 ; isb ; .harness_alt_else ; nop ; .harness_alt_endif"]
    with pytest.raises(AsmError, match="unterminated #if") as e:
        cpp("nop\n#if 1\nnop\n")
    assert e.value.line == 2


# ---------------------------------------------------------------- macro stage


def expand(text: str, caps=frozenset()) -> list[str]:
    lines = [(line, at(line, k + 1)) for k, line in enumerate(text.split("\n")) if line.strip()]
    return [" ".join([*(f"{lab}:" for lab in st.labels), st.text]).strip()
            for st in MacroExpander(caps).statements(lines)]


def test_macros_loops_and_local_labels():
    src = """
    .macro pair a, b=7, rest:vararg
    mov \\a, #\\b
    .ifnb \\rest
    add \\rest
    .endif
    .endm
    pair x1
    pair x2, 3, x2, x2, #1
    .irp r, x4, x5
    1: cbz \\r, 1b
    .endr
    .rept 2
    nop
    .endr
    """
    assert expand(src) == ["mov x1, #7", "mov x2, #3", "add x2, x2, #1",
                           "__num_1_0: cbz x4, __num_1_0", "__num_1_1: cbz x5, __num_1_1", "nop", "nop"]


def test_if_blocks_and_exitm():
    src = """
    .equ N, 2
    .if N == 1
    one
    .elseif N == 2
    two
    .else
    other
    .endif
    .macro m
    first
    .if 1
    .exitm
    .endif
    never
    .endm
    m
    """
    assert expand(src) == [".equ N, 2", "two", "first"]


def test_alternative_sides_must_match_in_size():
    src = "alternative_if PAN\nnop\nalternative_else\nmov x0, #1\nalternative_endif\n"
    assert expand(src, frozenset({"PAN"})) == ["nop"]
    assert expand(src) == ["mov x0, #1"]
    with pytest.raises(AsmError, match="the alternative_if side is 4 bytes, the alternative_else side 8"):
        expand(src.replace("mov x0, #1", "nop ; nop"))


def test_expansion_is_bounded():
    with pytest.raises(AsmError, match="exceeds the limit of 4,194,304 statements"):
        expand(".rept 5000000\nnop\n.endr\n")


# ---------------------------------------------------------------- layout


def lay(text: str, base: int = 0x1000) -> Layout:
    layout = Layout(base)
    layout.run([Stmt(line.strip(), at(line, k + 1)) for k, line in enumerate(text.split("\n")) if line.strip()])
    return layout


def test_literal_pool_shares_equal_values_and_places_four_before_eight():
    layout = lay("ldr x0, =1\nldr w1, =2\nldr x2, =1\nldr x3, =sym+4\nldr x4, =sym + 4\n.ltorg\nnop\nsym = 0x40")
    text = layout.sections[".text"]
    insns = [it.text for it in text.items if it.kind == "insn"]
    assert insns == ["ldr x0, __pool_0", "ldr w1, __pool_1", "ldr x2, __pool_0", "ldr x3, __pool_2",
                     "ldr x4, __pool_2", "nop"]
    pool = {it.values[0]: (it.offset, it.width) for it in text.items if it.kind == "pool"}
    assert pool == {"2": (0x14, 4), "1": (0x18, 8), "sym+4": (0x20, 8)}
    assert layout.symbols["sym"] == 0x40 and layout.symbols["__pool_1"] == 0x1014


def test_sections_and_padding():
    layout = lay(".byte 1\n.balign 8\nnop\n.data\n.word 2\n.previous\nnop\n.section .v, \"ax\"\n.org 0x10\n")
    text, data, v = (layout.sections[n] for n in (".text", ".data", ".v"))
    assert (text.size, data.size, v.size) == (16, 4, 0x10)
    # the alignment: zeros to a word boundary (data), then a NOP that is code (GNU as's $x)
    assert [(it.kind, it.size) for it in text.items] == [("data", 1), ("fill", 3), ("codefill", 4), ("insn", 4),
                                                         ("insn", 4)]
    assert (text.addr, data.addr, v.addr, v.flags) == (0x1000, 0x2000, 0x3000, "rx")


def test_equates_resolve_in_chains_once_labels_are_placed():
    eq = Equates()
    st = Stmt("", LOC)
    eq.define("b", "a + 1", st)
    eq.define("a", "lab * 2", st)
    eq.define("c", "3", st)
    assert eq.value("c << 1", st) == 6 and eq.value_or_none("a") is None
    symbols = {"lab": 5}
    eq.resolve(symbols)
    assert symbols == {"lab": 5, "b": 11, "a": 10, "c": 3}
    eq.define("d", "nowhere", st)
    with pytest.raises(AsmError, match="cannot evaluate .equ d"):
        eq.resolve(symbols)


def test_the_pipeline_agrees_with_gnu_as_on_quoted_commas():
    # GNU as: `.byte ','` is one byte, a string with \" in it one string (verified with
    # aarch64-linux-gnu-as: 2c 07 3b 22 01 / a"b\0a"b\0).
    img = assemble_text(".byte ',', 0x7\n.byte ';', '\"', 1\n.asciz \"a\\\"b\", \"a\\\"b\"\n")
    assert img.segments[0].data == bytes.fromhex("2c073b2201") + b'a"b\0a"b\0'
