"""The capstone check: every emitted word is disassembled and compared with the statement it came
from, so a word keystone got wrong (or dropped, facts §7) is an error at that statement."""

from __future__ import annotations

import re

import capstone

from harness.arch.insn import unprivileged_ldst
from harness.asm.expr import ExprError, evaluate
from harness.asm.image import AsmError
from harness.asm.prepare import BCOND, PCREL
from harness.asm.statement import Stmt
from harness.asm.tokenizer import split_head

_cs = capstone.Cs(capstone.CS_ARCH_ARM64, capstone.CS_MODE_ARM)
_CLASSES = [
    {"mov", "movz", "movn", "orr", "add"}, {"cmp", "subs"}, {"cmn", "adds"}, {"tst", "ands", "bics"}, {"bic", "and"},  # BIC (immediate) is AND of the inverse
    {"neg", "sub"}, {"negs", "subs"}, {"mvn", "orn"}, {"mul", "madd"}, {"mneg", "msub"},
    {"lsl", "lsr", "asr", "ubfm", "sbfm", "ubfx", "sbfx", "ubfiz", "sbfiz", "bfi", "bfxil", "bfm", "bfc",
     "uxtb", "uxth", "sxtb", "sxth", "sxtw"},
    {"cset", "csinc", "cinc"}, {"csetm", "csinv", "cinv"}, {"cneg", "csneg"}, {"ror", "extr"},
    {"smull", "smaddl"}, {"umull", "umaddl"}, {"ldr", "ldur"}, {"str", "stur"}, {"ldrb", "ldurb"},
    {"ldrh", "ldurh"}, {"strb", "sturb"}, {"strh", "sturh"}, {"ldrsw", "ldursw"},
    {"sys", "at", "dc", "ic", "tlbi"}, {"hint", "nop", "yield", "wfe", "wfi", "sev", "sevl"},
    {"b.hs", "b.cs"}, {"b.lo", "b.cc"},
]
_CLASS_OF = {m: i for i, c in enumerate(_CLASSES) for m in c}
_UNPRIV_SRC = re.compile(r"^(ld|st)tr(b|h|sb|sh|sw)?\s", re.IGNORECASE)
_IMM = re.compile(r"#(-?(?:0x[0-9a-fA-F]+|\d+))")
_GPREG = re.compile(r"(?<![\w.$])(?:[xw]([0-9]|[12][0-9]|30)|(sp|wsp)|(lr|fp|ip0|ip1))(?![\w.$])", re.IGNORECASE)
_GP_ALIAS = {"lr": 30, "fp": 29, "ip0": 16, "ip1": 17}


def check_word(word: int, addr: int, text: str, st: Stmt, symbols: dict[str, int], fixed: bool = False) -> None:
    """Disassemble the word emitted at `addr` for `text` (statement `st`, as prepared for
    keystone) and compare: mnemonic (modulo aliases), general-purpose registers, immediates and
    branch targets. `fixed`: a word encoded from the tables, whose encoding is tested apart."""
    got = list(_cs.disasm_lite(word.to_bytes(4, "little"), addr, 1))
    if not got and _UNPRIV_SRC.match(text) and unprivileged_ldst(word) is not None:
        return  # capstone 5.0.7 cannot decode LDTR-family loads with Rt == Rn
    if not got:
        raise AsmError(f"emitted word {word:#010x} does not decode as an instruction", st.loc, st.via)
    _a, _s, mnem, ops = got[0]
    if fixed and not text.lower().startswith(("msr", "mrs")):
        return  # a word from the tables (HINT space, UDF, ADRP): its encoding is tested
    head, rest = split_head(text)
    src = head.lower()
    if BCOND.match(src) and not src.startswith("b."):
        src = "b." + src[1:]
    if src in ("dsb", "dmb", "isb") and word & 0xFFFFF01F == 0xD503301F:
        return  # barrier with an immediate: capstone names some (dfb, ssbb) differently
    if src != mnem and (src not in _CLASS_OF or _CLASS_OF.get(src) != _CLASS_OF.get(mnem)):
        raise AsmError(f"emitted {mnem} {ops} ({word:#010x}) for this statement", st.loc, st.via)
    _check_registers(src, rest, mnem, ops, word, st)
    if not (src in ("movz", "movn") and "lsl" in text):
        _check_immediates(src, rest, text, mnem, ops, word, st)
    if (src.startswith("b.") or src in PCREL) and "[" not in rest and rest:
        _check_target(rest, ops, addr, symbols, st)


def _check_registers(src: str, rest: str, mnem: str, ops: str, word: int, st: Stmt) -> None:
    missing = _gp_regs(rest) - _gp_regs(ops) if src != "sys" else set()  # "ic iallu" hides Xt
    if src == "ret":
        missing.discard(30)  # capstone prints "ret x30" as "ret"
    if missing:
        name = sorted(map(str, missing))[0]
        raise AsmError(f"emitted {mnem} {ops} ({word:#010x}): register {name if name == 'sp' else 'x' + name} "
                       "of the statement is missing", st.loc, st.via)


def _check_immediates(src: str, rest: str, text: str, mnem: str, ops: str, word: int, st: Stmt) -> None:
    emitted = [int(v, 0) for v in _IMM.findall(ops)]
    for v in (int(x, 0) for x in _IMM.findall(text)):
        if src in ("bic", "bics") and mnem != src:
            v = ~v & (0xFFFF_FFFF if rest.lstrip().lower().startswith("w") else 0xFFFF_FFFF_FFFF_FFFF)
        if not _imm_matches(v, emitted):
            raise AsmError(f"emitted {mnem} {ops} ({word:#010x}): immediate {v:#x} is missing", st.loc, st.via)


def _check_target(rest: str, ops: str, addr: int, symbols: dict[str, int], st: Stmt) -> None:
    operand = rest.rsplit(",", 1)[-1].strip()
    symbols["."] = addr
    try:
        target = evaluate(operand, symbols)
    except ExprError:
        target = None
    finally:
        del symbols["."]
    m = re.search(r"#(0x[0-9a-f]+)$", ops)
    if target is not None and m and int(m.group(1), 16) != target & 0xFFFFFFFFFFFFFFFF:
        raise AsmError(f"emitted target {m.group(1)} but {operand} is {target:#x}", st.loc, st.via)


def _gp_regs(text: str) -> set[int | str]:
    """General-purpose registers an operand string names, by number ("sp" apart; xzr/wzr left
    out because aliases such as cset/mov/cmp hide them; W and X alike, as capstone prints
    tbz x0, #3 as tbz w0)."""
    out: set[int | str] = set()
    for m in _GPREG.finditer(text):
        if m.group(1) is not None:
            out.add(int(m.group(1)))
        elif m.group(2):
            out.add("sp")
        else:
            out.add(_GP_ALIAS[m.group(3).lower()])
    return out


def _imm_matches(v: int, emitted: list[int]) -> bool:
    """The source immediate appears in the disassembly, as itself, in 32 bits, or as imm12 << 12
    (capstone leaves out zero offsets and shifts)."""
    if v == 0:
        return True
    for e in emitted:
        if e == v or (e & 0xFFFFFFFF) == (v & 0xFFFFFFFF) or (e << 12) == v:
            return True
    return False
