"""What keystone cannot do, done before it sees a statement: the extension mnemonics it lacks
(MSR/MRS with any system register, `msr pan|uao, #imm`, the HINT space, UDF), `adrp` and `:lo12:`
from the symbol table, immediates computed from expressions, and decimal literals handed over in
hex (keystone reads them as hex once a symbol resolver is installed)."""

from __future__ import annotations

import re
from dataclasses import replace

from harness.arch.sysregs import (
    PSTATE_MSR_IMM,
    UnknownSysReg,
    encode_mrs,
    encode_msr,
    encode_msr_imm,
    lookup,
)
from harness.asm.expr import ExprError, evaluate
from harness.asm.image import AsmError, SourceLoc
from harness.asm.statement import Stmt
from harness.asm.tokenizer import split_head

# HINT-space instructions keystone 0.9.2 lacks (PAC, BTI, RAS, ...): HINT #imm is 0xd503201f | imm << 5 (C6.2.99).
_HINTS = {
    "xpaclri": 7, "pacia1716": 8, "pacib1716": 10, "autia1716": 12, "autib1716": 14, "esb": 16,
    "psb csync": 17, "tsb csync": 18, "csdb": 20, "paciaz": 24, "paciasp": 25, "pacibz": 26,
    "pacibsp": 27, "autiaz": 28, "autiasp": 29, "autibz": 30, "autibsp": 31, "bti": 32, "bti c": 34,
    "bti j": 36, "bti jc": 38,
}
_FIXED_WORDS = {name: 0xD503201F | imm << 5 for name, imm in _HINTS.items()}
_FIXED_WORDS.update({"ssbb": 0xD503309F, "pssbb": 0xD503349F, "sb": 0xD50330FF})  # DSB #0, DSB #4, SB
PCREL = {"b", "bl", "cbz", "cbnz", "tbz", "tbnz", "adr", "adrp", "ldr", "ldrsw", "prfm"}
_CONDS = "eq|ne|cs|hs|cc|lo|mi|pl|vs|vc|hi|ls|ge|lt|gt|le|al|nv"
BCOND = re.compile(rf"^b\.?({_CONDS})$", re.IGNORECASE)
SYMBOL = re.compile(r"(?<![\w.$])[A-Za-z_.$][\w.$]*")
_DOT = re.compile(r"(?<![\w.$])\.(?![\w.$])")
_DECIMAL = re.compile(r"(?<![\w.$])(-?)(\d+)(?![\w.])")
_REGISTER = re.compile(r"^([xwbhsdqv]([0-9]|[12][0-9]|3[01])|sp|wsp|xzr|wzr|lr|fp|ip0|ip1)$", re.IGNORECASE)


def _hex_literal(mm: re.Match[str]) -> str:
    """A decimal literal in hex. Past 64 bits every value is out of range for keystone alike,
    so 2**64 stands in (int() refuses a literal of more than 4300 digits)."""
    digits = mm.group(2).lstrip("0") or "0"
    value = int(digits) if len(digits) <= 20 else 1 << 64
    return f"{mm.group(1)}{value:#x}"


def text_info(text: str, symbols: dict[str, int]) -> tuple[bool, bool, tuple]:
    """What a statement's result depends on besides its text: the address (to prepare it:
    `.`, adrp; to encode and check it: also PC-relative forms) and the symbols it names."""
    head = text.split(None, 1)[0].lower() if text else ""
    pcrel = (head in PCREL and not (head in ("ldr", "ldrsw", "prfm") and "[" in text)) or bool(BCOND.match(head))
    uses_dot = _DOT.search(text) is not None
    refs = tuple((n, symbols[n]) for n in SYMBOL.findall(text) if n in symbols)
    return uses_dot or head == "adrp", pcrel or uses_dot, refs


class Preparer:
    """Statements, with every label placed, made into what keystone can encode, or encoded here."""

    def __init__(self, symbols: dict[str, int]) -> None:
        self.symbols = symbols

    def value(self, expr: str, st: Stmt, dot: int) -> int:
        """An expression's value at address `dot`; an unknown symbol is an error at its column."""
        self.symbols["."] = dot
        try:
            return evaluate(expr, self.symbols)
        except ExprError as e:
            raise AsmError(f"cannot evaluate {expr!r}: {e}", at(st, _unknown_name(e)), st.via) from None
        finally:
            del self.symbols["."]

    def prepare(self, text: str, st: Stmt, addr: int) -> tuple[str, int | None]:
        """The text for keystone, or (the text, the word) for a statement encoded here."""
        text = re.sub(r"\s+", " ", text.strip())
        low = text.lower()
        if low in _FIXED_WORDS:
            return text, _FIXED_WORDS[low]
        m = re.match(r"^hint\s+#?(.+)$", text, re.IGNORECASE)
        if m:
            imm = self.value(m.group(1), st, addr)
            if not 0 <= imm <= 127:
                raise AsmError(f"hint immediate {imm} out of range 0..127", st.loc, st.via)
            return text, 0xD503201F | imm << 5
        m = re.match(r"^udf\s+#?(.+)$", text, re.IGNORECASE)
        if m:  # keystone lacks UDF
            imm = self.value(m.group(1), st, addr)
            if not 0 <= imm <= 0xFFFF:
                raise AsmError(f"udf immediate {imm:#x} out of range", st.loc, st.via)
            return text, imm
        m = re.match(r"^(msr|mrs)\s+(.+)$", text, re.IGNORECASE)
        if m:
            return text, self._sysreg_insn(m.group(1).lower(), m.group(2), st, addr)
        text = re.sub(r"#?:lo12:\s*([^,\]]+)", lambda mm: f"#{self.value(mm.group(1), st, addr) & 0xFFF}", text)
        m = re.match(r"^adrp\s+(x\d+|xzr)\s*,\s*(.+)$", text, re.IGNORECASE)
        if m:
            return text, self._adrp(m.group(1), m.group(2), st, addr)
        text = re.sub(r"#\s*([^,\]\s][^,\]]*)", lambda mm: self._immediate(mm, addr), text)
        self._check_target(text, st)
        # keystone 0.9.2 with a symbol resolver installed reads decimal literals as hex
        # ("mov x1, #10" gives #0x10; verified): hand it hex only.
        return _DECIMAL.sub(_hex_literal, text), None

    def _adrp(self, reg: str, expr: str, st: Stmt, addr: int) -> int:
        target = self.value(expr, st, addr)
        rd = 31 if reg.lower() == "xzr" else int(reg[1:])
        imm = (target >> 12) - (addr >> 12)
        if not -(1 << 20) <= imm < (1 << 20):
            raise AsmError(f"adrp target {target:#x} out of range", st.loc, st.via)
        imm &= (1 << 21) - 1
        return 0x90000000 | (imm & 3) << 29 | (imm >> 2) << 5 | rd

    def _check_target(self, text: str, st: Stmt) -> None:
        """A branch or literal target that names no symbol: say so here, with its column
        (keystone's message would not say which name)."""
        head, rest = split_head(text)
        head = head.lower()
        if not (head in PCREL or BCOND.match(head)) or "[" in rest or not rest:
            return
        target = rest.rsplit(",", 1)[-1].strip()
        for name in SYMBOL.findall(target):
            if name not in self.symbols and name != "." and not _REGISTER.match(name):
                raise AsmError(f"undefined symbol {name!r}", at(st, name), st.via)

    def _immediate(self, mm: re.Match, addr: int) -> str:
        expr = mm.group(1).strip()
        if re.fullmatch(r"-?(0x[0-9a-fA-F]+|\d+)", expr):
            return "#" + expr
        try:
            val = evaluate(expr, {**self.symbols, ".": addr})
        except ExprError:
            return mm.group(0)  # e.g. a shift form keystone knows; let it decide
        return f"#{val:#x}" if val >= 0 else f"#{val}"

    def _sysreg_insn(self, op: str, operands: str, st: Stmt, addr: int) -> int:
        parts = [p.strip() for p in operands.split(",")]
        if len(parts) != 2:
            raise AsmError(f"{op} takes two operands", st.loc, st.via)
        try:
            if op == "mrs":
                rt = _xreg(parts[0], st)
                return encode_mrs(rt, lookup(parts[1]))
            field = parts[0].lower()
            if field in PSTATE_MSR_IMM and parts[1].startswith("#"):
                imm = evaluate(parts[1][1:], {**self.symbols, ".": addr})
                try:
                    return encode_msr_imm(field, imm)
                except ValueError as e:  # one-bit fields take #0 or #1 (C6.2.195), as GNU as checks
                    raise AsmError(str(e).lower(), at(st, parts[1]), st.via) from None
            return encode_msr(lookup(parts[0]), _xreg(parts[1], st))
        except UnknownSysReg as e:
            raise AsmError(str(e), at(st, parts[1] if op == "mrs" else parts[0]), st.via) from None
        except (ExprError, ValueError) as e:
            raise AsmError(str(e), st.loc, st.via) from None


def at(st: Stmt, token: str | None) -> SourceLoc:
    """The statement's location, with the column moved to `token` when the source line shows it."""
    if token:
        k = st.loc.text.lower().find(token.lower(), max(st.loc.col - 1, 0))
        if k >= 0:
            return replace(st.loc, col=k + 1)
    return st.loc


def _unknown_name(e: ExprError) -> str | None:
    m = re.search(r"unknown symbol '([^']+)'", str(e))
    return m.group(1) if m else None


def _xreg(text: str, st: Stmt) -> int:
    t = text.strip().lower()
    if t == "xzr":
        return 31
    if re.fullmatch(r"x([0-9]|[12][0-9]|30)", t):
        return int(t[1:])
    raise AsmError(f"expected a 64-bit register, got {text!r}", st.loc, st.via)
