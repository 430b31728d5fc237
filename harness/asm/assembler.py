"""Layout in Python, encoding by keystone one statement at a time, checking by capstone.

Python knows every statement's address (each instruction is 4 bytes), so labels,
literal pools, `adrp`/`:lo12:` and the extension mnemonics keystone lacks (MSR/MRS
with any system register, `msr pan|uao, #imm`, `esb`) are resolved here; keystone
only ever sees one plain instruction with a symbol resolver, in a child process.
Every emitted word is disassembled and checked against its statement.
"""

from __future__ import annotations

import gc
import json
import os
import re
import select
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import capstone

from harness.arch.features import FEATURES_MAX, Features
from harness.arch.insn import unprivileged_ldst
from harness.arch.sysregs import (
    PSTATE_MSR_IMM,
    UnknownSysReg,
    encode_mrs,
    encode_msr,
    encode_msr_imm,
    lookup,
)
from harness.asm.expr import ExprError, evaluate
from harness.asm.image import AsmError, Image, Segment, SourceLoc
from harness.asm.preprocess import Preprocessor, Stmt, split_head
from harness.data import ASM_DIR
from harness.memmap import DEFAULT_LOAD, RAM_SIZE

DEFAULT_BASE = DEFAULT_LOAD
# Every size a source asks for (.space, .fill, .org, alignment padding, data) is checked against
# this before anything is allocated: an image can occupy at most the board's RAM.
MAX_IMAGE_BYTES = RAM_SIZE
INCLUDE_DIRS = [ASM_DIR / "include", ASM_DIR]
_NOP = (0xD503201F).to_bytes(4, "little")
_DECIMAL = re.compile(r"(?<![\w.$])(-?)(\d+)(?![\w.])")
_IMM = re.compile(r"#(-?(?:0x[0-9a-fA-F]+|\d+))")
# HINT-space instructions keystone 0.9.2 lacks (PAC, BTI, RAS, ...): HINT #imm is 0xd503201f | imm << 5 (C6.2.99).
_HINTS = {
    "xpaclri": 7, "pacia1716": 8, "pacib1716": 10, "autia1716": 12, "autib1716": 14, "esb": 16,
    "psb csync": 17, "tsb csync": 18, "csdb": 20, "paciaz": 24, "paciasp": 25, "pacibz": 26,
    "pacibsp": 27, "autiaz": 28, "autiasp": 29, "autibz": 30, "autibsp": 31, "bti": 32, "bti c": 34,
    "bti j": 36, "bti jc": 38,
}
_FIXED_WORDS = {name: 0xD503201F | imm << 5 for name, imm in _HINTS.items()}
_FIXED_WORDS.update({"ssbb": 0xD503309F, "pssbb": 0xD503349F, "sb": 0xD50330FF})  # DSB #0, DSB #4, SB
_PCREL = {"b", "bl", "cbz", "cbnz", "tbz", "tbnz", "adr", "adrp", "ldr", "ldrsw", "prfm"}
_CONDS = "eq|ne|cs|hs|cc|lo|mi|pl|vs|vc|hi|ls|ge|lt|gt|le|al|nv"
_BCOND = re.compile(rf"^b\.?({_CONDS})$", re.IGNORECASE)
_IDENT_RE = re.compile(r"(?<![\w.$])[A-Za-z_.$][\w.$]*")
_MNEMONIC = re.compile(r"[A-Za-z][A-Za-z0-9_.]*$")
_ASSIGN = re.compile(r"^([A-Za-z_.$][\w.$]*)\s*=\s*(.+)$")
_LDR_LITERAL = re.compile(r"^ldr\s+([xw]\d+|[xw]zr|lr|fp)\s*,\s*=\s*(.+)$", re.IGNORECASE)
_DOT = re.compile(r"(?<![\w.$])\.(?![\w.$])")
_REGISTER = re.compile(r"^([xwbhsdqv]([0-9]|[12][0-9]|3[01])|sp|wsp|xzr|wzr|lr|fp|ip0|ip1)$", re.IGNORECASE)
_DATA_SIZES = {
    ".byte": 1, ".hword": 2, ".short": 2, ".2byte": 2, ".word": 4, ".long": 4, ".int": 4,
    ".4byte": 4, ".quad": 8, ".xword": 8, ".8byte": 8, ".dword": 8,
}
_IGNORED = {
    ".global", ".globl", ".type", ".size", ".weak", ".hidden", ".local", ".file", ".loc", ".ident",
    ".arch", ".cpu", ".arch_extension", ".purgem", ".func", ".endfunc", ".end", ".protected",
    ".cfi_startproc", ".cfi_endproc", ".cfi_sections", ".cfi_def_cfa", ".cfi_offset", ".cfi_def_cfa_offset",
    ".cfi_restore", ".cfi_undefined", ".cfi_signal_frame", ".cfi_adjust_cfa_offset", ".cfi_rel_offset",
    ".cfi_register", ".cfi_def_cfa_register", ".cfi_same_value", ".cfi_return_column", ".cfi_window_save",
    ".cfi_remember_state", ".cfi_restore_state", ".cfi_escape", ".cfi_personality", ".cfi_lsda",
    ".ltorg_disable", ".subsection",
}


@dataclass(slots=True)
class _Item:
    kind: str  # insn | word | data | bytes | pool | fill (raw repeated to size)
    offset: int
    size: int
    stmt: Stmt
    text: str = ""
    values: list[str] | tuple[()] = ()  # (an empty tuple, not a list per item: there may be millions)
    raw: bytes = b""
    width: int = 0
    word: int = 0  # an instruction's encoding, once known
    fixed: bool = False  # encoded here (tables, sysregs), not by keystone


@dataclass
class _Section:
    name: str
    flags: str
    items: list[_Item] = field(default_factory=list)
    size: int = 0
    pool: list[tuple[str, str, int, Stmt]] = field(default_factory=list)
    addr: int = 0
    labels: dict[str, int] = field(default_factory=dict)


def _section_flags(name: str, spec: str | None) -> str:
    if spec is not None:
        flags = "r"
        if "w" in spec:
            flags += "w"
        if "x" in spec:
            flags += "x"
        return flags
    if name.startswith(".text") or ".text" in name or name.startswith(".vectors") or name == ".init":
        return "rx"
    if name.startswith(".rodata"):
        return "r"
    return "rw"


class Assembler:
    def __init__(self, features: Features, base: int, section_addresses: Mapping[str, int] | None) -> None:
        self.features = features
        self.base = base
        self.section_addresses = dict(section_addresses or {})
        self.sections: dict[str, _Section] = {}
        self.symbols: dict[str, int] = {}
        self.equates: dict[str, tuple[str, Stmt]] = {}
        self.consts: dict[str, int] = {}
        self.globals: set[str] = set()
        self.label_types: dict[str, str] = {}
        self._pool_n = 0
        self._total = 0  # bytes in all sections so far (bounded by MAX_IMAGE_BYTES)

    # ------------------------------------------------------------ layout

    def layout(self, stmts: list[Stmt]) -> None:
        cur = self._section(".text", None)
        stack: list[_Section] = []
        previous = cur
        label_at: list[tuple[str, _Section, int, Stmt]] = []
        for st in stmts:
            for k, lab in enumerate(st.labels):
                label_at.append((lab, cur, cur.size, st))
                if lab in cur.labels or any(lab in s.labels for s in self.sections.values()):
                    where = st.label_locs[k] if k < len(st.label_locs) else st.loc
                    raise AsmError(f"label {lab!r} defined twice", where, st.via)
                cur.labels[lab] = cur.size
            text = st.text
            if not text:
                continue
            head, rest = split_head(text)
            head_l = head.lower()
            if head_l.startswith("."):
                if head_l in (".text", ".data", ".bss", ".rodata"):
                    previous, cur = cur, self._section(head_l, None)
                elif head_l in (".section", ".pushsection"):
                    name, spec = _section_spec(rest, st)
                    if head_l == ".pushsection":
                        stack.append(cur)
                    previous, cur = cur, self._section(name, spec)
                elif head_l == ".popsection":
                    if not stack:
                        raise AsmError(".popsection without .pushsection", st.loc, st.via)
                    previous, cur = cur, stack.pop()
                elif head_l == ".previous":
                    previous, cur = cur, previous
                elif head_l in (".align", ".p2align", ".balign", ".balignw", ".balignl"):
                    self._align(cur, head_l, rest, st)
                elif head_l in _DATA_SIZES:
                    vals = _split_commas(rest)
                    size = _DATA_SIZES[head_l]
                    self._add(cur, _Item("data", cur.size, self._size(size * len(vals), head_l, st), st, values=vals, width=size))
                elif head_l == ".inst":
                    vals = _split_commas(rest)
                    for v in vals:
                        self._add(cur, _Item("word", cur.size, 4, st, values=[v], width=4))
                elif head_l in (".ascii", ".asciz", ".string"):
                    data = b"".join(_parse_string(s, st) + (b"\0" if head_l != ".ascii" else b"") for s in _split_commas(rest))
                    self._add(cur, _Item("bytes", cur.size, self._size(len(data), head_l, st), st, raw=data))
                elif head_l in (".space", ".skip", ".zero"):
                    args = _split_commas(rest)
                    if not args:
                        raise AsmError(f"{head_l} needs a size", st.loc, st.via)
                    n = self._size(self._const(args[0], st, cur), head_l, st)
                    fill = self._const(args[1], st) if len(args) > 1 else 0
                    self._pad(cur, n, st, bytes([fill & 0xFF]))
                elif head_l == ".fill":
                    args = _split_commas(rest)
                    if not args:
                        raise AsmError(".fill needs a repeat count", st.loc, st.via)
                    rep = self._size(self._const(args[0], st, cur), ".fill repeat count", st)
                    size = self._size(self._const(args[1], st) if len(args) > 1 else 1, ".fill size", st)
                    val = self._const(args[2], st) if len(args) > 2 else 0
                    self._size(rep * size, ".fill", st)
                    # GNU as stores the value in at most 8 bytes, zeros after them
                    raw = (val & ((1 << (8 * min(size, 8))) - 1)).to_bytes(min(size, 8), "little").ljust(size, b"\0")
                    self._pad(cur, rep * size, st, raw)
                elif head_l == ".org":
                    target = self._const(rest, st, cur)
                    if target < cur.size:
                        raise AsmError(f".org {target:#x} moves backwards (at {cur.size:#x})", st.loc, st.via)
                    self._pad(cur, self._size(target - cur.size, ".org", st), st, b"\0")
                elif head_l in (".ltorg", ".pool"):
                    self._flush_pool(cur, st)
                elif head_l in (".equ", ".set"):
                    name, _, value = rest.partition(",")
                    self._equate(name.strip(), value.strip(), st)
                elif head_l in (".global", ".globl"):
                    self.globals.update(n.strip() for n in rest.split(",") if n.strip())
                elif head_l == ".type":
                    name, _, kind = rest.partition(",")
                    kind = kind.strip().lstrip("%@#\"").rstrip("\"").lower()
                    if kind in ("function", "object"):  # the symbol type an ELF gets (STT_FUNC, STT_OBJECT)
                        self.label_types[name.strip()] = kind
                elif head_l in _IGNORED:
                    pass
                else:
                    raise AsmError(f"unknown directive {head}", st.loc, st.via)
                continue
            m = _ASSIGN.match(text) if "=" in text else None
            if m:
                self._equate(m.group(1), m.group(2), st)
                continue
            lit = _LDR_LITERAL.match(text) if "=" in text else None
            if lit:
                reg, expr = lit.group(1), lit.group(2).strip()
                width = 4 if reg.lower().startswith("w") else 8
                label = self._pool_label(cur, expr, width, st)
                text = f"ldr {reg}, {label}"
            if not _MNEMONIC.match(head):
                raise AsmError(f"{head!r} is not an instruction, directive or macro", st.loc, st.via)
            if cur.size % 4:
                raise AsmError(f"instruction at offset {cur.size:#x} of {cur.name} is not 4-byte aligned "
                               "(data before it: add .balign 4)", st.loc, st.via)
            self._add(cur, _Item("insn", cur.size, 4, st, text=text))
        for sec in self.sections.values():
            self._flush_pool(sec, None)
        self._place()
        for lab, sec, off, _st in label_at:
            self.symbols[lab] = sec.addr + off
        for sec in self.sections.values():
            for lab, off in sec.labels.items():
                self.symbols[lab] = sec.addr + off
        self._resolve_equates()

    def _section(self, name: str, spec: str | None) -> _Section:
        sec = self.sections.get(name)
        if sec is None:
            sec = self.sections[name] = _Section(name, _section_flags(name, spec))
        return sec

    def _add(self, sec: _Section, item: _Item) -> None:
        self._size(item.size, "this statement", item.stmt)
        item.offset = sec.size
        sec.items.append(item)
        sec.size += item.size
        self._total += item.size

    def _size(self, n: int, what: str, st: Stmt) -> int:
        """n, a byte count the source asked for, if the image still has room for it."""
        if n < 0:
            raise AsmError(f"{what}: negative size {n}", st.loc, st.via)
        if self._total + n > MAX_IMAGE_BYTES:
            raise AsmError(f"{what}: {n:#x} bytes do not fit in the {MAX_IMAGE_BYTES >> 20} MiB of RAM "
                           f"(the image already holds {self._total:#x})", st.loc, st.via)
        return n

    def _pad(self, sec: _Section, n: int, st: Stmt, fill: bytes | None = None) -> None:
        """n bytes of `fill` repeated; without one, code sections get zeros up to a word
        boundary and NOPs after it, other sections zeros (as GNU as's frag_align_code).
        The bytes are made when the section is encoded, after every size has been checked."""
        if n <= 0:
            return
        self._size(n, "padding", st)
        if fill is not None and fill.strip(b"\0"):
            self._add(sec, _Item("fill", sec.size, n, st, raw=fill))
            return
        lead = (-sec.size) % 4 if fill is None and "x" in sec.flags else n
        if lead:
            self._add(sec, _Item("fill", sec.size, min(lead, n), st, raw=b"\0"))
        if n > lead:
            self._add(sec, _Item("fill", sec.size, (n - lead) // 4 * 4, st, raw=_NOP))
            if (n - lead) % 4:
                self._add(sec, _Item("fill", sec.size, (n - lead) % 4, st, raw=b"\0"))

    def _align(self, sec: _Section, head: str, rest: str, st: Stmt) -> None:
        """.align/.p2align N[, fill[, max]] (power of two on AArch64), .balign[wl] BYTES[, fill[, max]]."""
        args = [a.strip() for a in rest.split(",")]
        n = self._const(args[0], st)
        if not head.startswith(".balign") and not 0 <= n < MAX_IMAGE_BYTES.bit_length():
            raise AsmError(f"alignment 2**{n} is not possible in {MAX_IMAGE_BYTES >> 20} MiB of RAM", st.loc, st.via)
        align = n if head.startswith(".balign") else 1 << n
        if align <= 0 or align & (align - 1):
            raise AsmError(f"alignment {align} is not a power of two", st.loc, st.via)
        if align > MAX_IMAGE_BYTES:
            raise AsmError(f"alignment {align:#x} is larger than the {MAX_IMAGE_BYTES >> 20} MiB of RAM", st.loc, st.via)
        pad = (-sec.size) % align
        if len(args) > 2 and args[2] and pad > self._const(args[2], st):
            return  # more than the maximum skip: GNU as leaves the alignment out
        fill = None
        if len(args) > 1 and args[1]:
            width = {".balignw": 2, ".balignl": 4}.get(head, 1)
            fill = (self._const(args[1], st) & ((1 << (8 * width)) - 1)).to_bytes(width, "little")
        self._pad(sec, pad, st, fill)

    def _pool_label(self, sec: _Section, expr: str, width: int, st: Stmt) -> str:
        # GNU as shares one entry between equal values of the same size in a pool
        # (a constant, or a symbol plus addend).
        key = self._pool_key(expr)
        for label, e, w, _ in sec.pool:
            if w == width and self._pool_key(e) == key:
                return label
        label = f"__pool_{self._pool_n}"
        self._pool_n += 1
        sec.pool.append((label, expr, width, st))
        return label

    def _pool_key(self, expr: str) -> object:
        value = self._const_or_none(expr)
        if value is not None:
            return value
        m = re.fullmatch(r"([A-Za-z_.$][\w.$]*)\s*(?:([+-])\s*(.+))?", expr.strip())
        if m:
            off = self._const_or_none(m.group(3)) if m.group(3) else 0
            if off is not None:
                return (m.group(1), -off if m.group(2) == "-" else off)
        return re.sub(r"\s+", "", expr)

    def _flush_pool(self, sec: _Section, st: Stmt | None) -> None:
        """Place the pending literals: GNU as keeps one pool per entry size and emits the
        4-byte pool, then the 8-byte one, each aligned to its size with zeros."""
        if not sec.pool:
            return
        for width in (4, 8):
            entries = [e for e in sec.pool if e[2] == width]
            if not entries:
                continue
            self._pad(sec, (-sec.size) % width, st or entries[0][3], b"\0")
            for label, expr, _w, pst in entries:
                sec.labels[label] = sec.size
                self._add(sec, _Item("pool", sec.size, width, pst, values=[expr], width=width))
        sec.pool = []

    def _place(self) -> None:
        addr = self.base
        placed_one = False
        placed: list[tuple[int, int, str]] = []
        for name, addr_fixed in self.section_addresses.items():
            if name in self.sections:
                self.sections[name].addr = addr_fixed
        for sec in self.sections.values():
            if sec.name in self.section_addresses:
                continue
            if not sec.size and not sec.labels:
                sec.addr = addr
                continue
            # Keep clear of sections given fixed addresses. The first section starts at the base
            # itself (a load address is honoured), the others on the next page.
            while True:
                if placed_one:
                    addr = (addr + 0xFFF) & ~0xFFF
                placed_one = True
                clash = [s for s in self.sections.values() if s.name in self.section_addresses
                         and s.addr < addr + sec.size and addr < s.addr + max(s.size, 1)]
                if not clash:
                    break
                addr = clash[0].addr + clash[0].size
            sec.addr = addr
            addr += sec.size
        for sec in self.sections.values():
            if sec.size:
                placed.append((sec.addr, sec.addr + sec.size, sec.name))
        placed.sort()
        for (a0, a1, n0), (b0, _b1, n1) in zip(placed, placed[1:], strict=False):
            if b0 < a1:
                raise AsmError(f"sections {n0} and {n1} overlap ({a0:#x}..{a1:#x} and {b0:#x})")

    def _resolve_equates(self) -> None:
        pending = dict(self.equates)
        for _ in range(len(pending) + 1):
            progress = False
            for name, (expr, _st) in list(pending.items()):
                try:
                    self.symbols[name] = evaluate(expr, self.symbols)
                except ExprError:
                    continue
                del pending[name]
                progress = True
            if not progress:
                break
        for name, (expr, st) in pending.items():
            try:
                evaluate(expr, self.symbols)
            except ExprError as e:
                raise AsmError(f"cannot evaluate .equ {name}: {e}", st.loc, st.via) from None

    def _equate(self, name: str, value: str, st: Stmt) -> None:
        self.equates[name] = (value, st)
        try:  # constants are usable at layout time (.skip, .align, .if); the rest waits for labels
            self.consts[name] = evaluate(value, self.consts)
        except ExprError:
            self.consts.pop(name, None)

    def _const_or_none(self, expr: str) -> int | None:
        try:
            return evaluate(expr, self.consts)
        except ExprError:
            return None

    def _const(self, expr: str, st: Stmt, sec: _Section | None = None) -> int:
        syms = dict(self.consts)
        if sec is not None:
            syms.update(sec.labels)
            syms["."] = sec.size
        try:
            return evaluate(expr, syms)
        except ExprError as e:
            raise AsmError(f"cannot evaluate {expr!r} here: {e}", st.loc, st.via) from None

    # ------------------------------------------------------------ encoding

    def encode(self) -> Image:
        # A statement's preparation, encoding and check depend on its text, the symbol values it
        # names and, for some forms, its address: each distinct combination is worked out once
        # (a .rept of 100k NOPs is one NOP for keystone and capstone).
        info: dict[str, tuple[bool, bool, tuple]] = {}  # text -> (needs addr to prepare, to encode/check, refs)
        prepared: dict[tuple, tuple[str, int | None]] = {}
        work: list[tuple[_Section, _Item, tuple]] = []
        for sec in self.sections.values():
            for item in sec.items:
                if item.kind != "insn":
                    continue
                addr = sec.addr + item.offset
                src = info.get(item.text) or info.setdefault(item.text, self._text_info(item.text))
                pkey = (item.text, addr if src[0] else None)
                hit = prepared.get(pkey)
                if hit is None:
                    hit = prepared[pkey] = self._prepare(item, addr)
                text, word = hit
                item.text = text
                t = info.get(text) or info.setdefault(text, self._text_info(text))
                if word is not None:
                    item.word, item.fixed = word, True
                    continue
                work.append((sec, item, (text, addr if t[1] else None, t[2])))
        todo: dict[tuple, tuple[str, int, Stmt]] = {}
        for sec, item, key in work:
            if key not in _ENCODED and key not in todo:
                todo[key] = (key[0], sec.addr + item.offset, item.stmt)
        results = _keystone([(t, a) for t, a, _ in todo.values()], self.symbols, [st for _, _, st in todo.values()])
        if len(_ENCODED) > 200_000:
            _ENCODED.clear()
        _ENCODED.update(zip(todo, results, strict=True))
        for _sec, item, key in work:
            enc = _ENCODED[key]
            if len(enc) != 4:
                what = "dropped the statement (no bytes)" if not enc else f"produced {len(enc)} bytes"
                raise AsmError(f"keystone {what} for {key[0]!r}", item.stmt.loc, item.stmt.via)
            item.word = int.from_bytes(enc, "little")
        del work, todo, prepared
        segments: list[Segment] = []
        lines: list[tuple[int, int, SourceLoc]] = []
        macro_calls: dict[int, tuple[tuple[str, SourceLoc], ...]] = {}
        insn_addrs: list[int] = []
        checked: set[tuple] = set()
        for sec in self.sections.values():
            if not sec.size:
                continue
            buf = bytearray(sec.size)
            for item in sec.items:
                addr = sec.addr + item.offset
                if item.kind == "insn":
                    word = item.word
                    ckey = (word, item.text, addr if info[item.text][1] else None, item.fixed)
                    if ckey not in checked:
                        _check(word, addr, item, self.symbols, item.fixed)
                        checked.add(ckey)
                    buf[item.offset : item.offset + 4] = word.to_bytes(4, "little")
                    insn_addrs.append(addr)
                elif item.kind in ("data", "word", "pool"):
                    for k, v in enumerate(item.values):
                        val = self._eval(v, item, addr + k * item.width)
                        buf[item.offset + k * item.width : item.offset + (k + 1) * item.width] = _pack(val, item.width, item)
                    if item.kind == "word":
                        insn_addrs.append(addr)
                elif item.kind == "fill":
                    reps = -(-item.size // len(item.raw))
                    buf[item.offset : item.offset + item.size] = (item.raw * reps)[: item.size]
                else:
                    buf[item.offset : item.offset + item.size] = item.raw
                if item.kind != "pool" and item.size:
                    lines.append((addr, item.size, item.stmt.loc))
                    if item.stmt.calls:
                        macro_calls[addr] = item.stmt.calls
            segments.append(Segment(sec.name, sec.addr, bytes(buf), sec.flags))
        entry = self.symbols.get("_start")
        if entry is None:
            code = [s for s in segments if "x" in s.flags]
            entry = code[0].addr if code else (segments[0].addr if segments else self.base)
        label_sections = {lab: sec.name for sec in self.sections.values() for lab in sec.labels}
        return Image(segments, dict(self.symbols), entry, lines, [], sorted(insn_addrs), frozenset(self.globals),
                     label_sections, {n: t for n, t in self.label_types.items() if n in label_sections}, macro_calls)

    def _text_info(self, text: str) -> tuple[bool, bool, tuple]:
        """What a statement's result depends on besides its text: the address (to prepare it:
        `.`, adrp; to encode and check it: also PC-relative forms) and the symbols it names."""
        head = text.split(None, 1)[0].lower() if text else ""
        pcrel = (head in _PCREL and not (head in ("ldr", "ldrsw", "prfm") and "[" in text)) or bool(_BCOND.match(head))
        uses_dot = _DOT.search(text) is not None
        refs = tuple((n, self.symbols[n]) for n in _IDENT_RE.findall(text) if n in self.symbols)
        return uses_dot or head == "adrp", pcrel or uses_dot, refs

    def _eval(self, expr: str, item: _Item, dot: int) -> int:
        self.symbols["."] = dot
        try:
            return evaluate(expr, self.symbols)
        except ExprError as e:
            raise AsmError(f"cannot evaluate {expr!r}: {e}", _at(item.stmt, _unknown_name(e)),
                           item.stmt.via) from None
        finally:
            del self.symbols["."]

    def _prepare(self, item: _Item, addr: int) -> tuple[str, int | None]:
        """Resolve what keystone cannot: sysregs, PSTATE fields, adrp, :lo12:, constant immediates."""
        st = item.stmt
        text = re.sub(r"\s+", " ", item.text.strip())
        low = text.lower()
        if low in _FIXED_WORDS:
            return text, _FIXED_WORDS[low]
        m = re.match(r"^hint\s+#?(.+)$", text, re.IGNORECASE)
        if m:
            imm = self._eval(m.group(1), item, addr)
            if not 0 <= imm <= 127:
                raise AsmError(f"hint immediate {imm} out of range 0..127", st.loc, st.via)
            return text, 0xD503201F | imm << 5
        m = re.match(r"^udf\s+#?(.+)$", text, re.IGNORECASE)
        if m:  # keystone lacks UDF
            imm = self._eval(m.group(1), item, addr)
            if not 0 <= imm <= 0xFFFF:
                raise AsmError(f"udf immediate {imm:#x} out of range", st.loc, st.via)
            return text, imm
        m = re.match(r"^(msr|mrs)\s+(.+)$", text, re.IGNORECASE)
        if m:
            return text, self._sysreg_insn(m.group(1).lower(), m.group(2), st, addr)
        text = re.sub(r"#?:lo12:\s*([^,\]]+)", lambda mm: f"#{self._eval(mm.group(1), item, addr) & 0xFFF}", text)
        m = re.match(r"^adrp\s+(x\d+|xzr)\s*,\s*(.+)$", text, re.IGNORECASE)
        if m:
            target = self._eval(m.group(2), item, addr)
            rd = 31 if m.group(1).lower() == "xzr" else int(m.group(1)[1:])
            imm = (target >> 12) - (addr >> 12)
            if not -(1 << 20) <= imm < (1 << 20):
                raise AsmError(f"adrp target {target:#x} out of range", st.loc, st.via)
            imm &= (1 << 21) - 1
            return text, 0x90000000 | (imm & 3) << 29 | (imm >> 2) << 5 | rd
        text = re.sub(r"#\s*([^,\]\s][^,\]]*)", lambda mm: self._immediate(mm, item, addr), text)
        self._check_target(text, st)
        # keystone 0.9.2 with a symbol resolver installed reads decimal literals as hex
        # ("mov x1, #10" gives #0x10; verified): hand it hex only.
        text = _DECIMAL.sub(lambda mm: f"{mm.group(1)}{int(mm.group(2)):#x}", text)
        item.text = text
        return text, None

    def _check_target(self, text: str, st: Stmt) -> None:
        """A branch or literal target that names no symbol: say so here, with its column
        (keystone's message would not say which name)."""
        head, rest = split_head(text)
        head = head.lower()
        if not (head in _PCREL or _BCOND.match(head)) or "[" in rest or not rest:
            return
        target = rest.rsplit(",", 1)[-1].strip()
        for name in _IDENT_RE.findall(target):
            if name not in self.symbols and name != "." and not _REGISTER.match(name):
                raise AsmError(f"undefined symbol {name!r}", _at(st, name), st.via)

    def _immediate(self, mm: re.Match, item: _Item, addr: int) -> str:
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
                    raise AsmError(str(e).lower(), _at(st, parts[1]), st.via) from None
            return encode_msr(lookup(parts[0]), _xreg(parts[1], st))
        except UnknownSysReg as e:
            raise AsmError(str(e), _at(st, parts[1] if op == "mrs" else parts[0]), st.via) from None
        except (ExprError, ValueError) as e:
            raise AsmError(str(e), st.loc, st.via) from None


@contextmanager
def _no_gc() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _at(st: Stmt, token: str | None) -> SourceLoc:
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


def _pack(val: int, width: int, item: _Item) -> bytes:
    lo, hi = -(1 << (8 * width - 1)), (1 << (8 * width)) - 1
    if not lo <= val <= hi:
        raise AsmError(f"value {val:#x} does not fit in {width} byte{'s' if width > 1 else ''}", item.stmt.loc, item.stmt.via)
    return (val & ((1 << (8 * width)) - 1)).to_bytes(width, "little")


def _section_spec(rest: str, st: Stmt) -> tuple[str, str | None]:
    parts = _split_commas(rest)
    if not parts or not parts[0]:
        raise AsmError(".section needs a name", st.loc, st.via)
    spec = parts[1].strip().strip('"') if len(parts) > 1 else None
    return parts[0].strip().strip('"'), spec


def _split_commas(text: str) -> list[str]:
    out, cur, depth, in_str = [], [], 0, False
    for ch in text:
        if ch == '"':
            in_str = not in_str
        elif not in_str and ch == "(":
            depth += 1
        elif not in_str and ch == ")":
            depth -= 1
        if ch == "," and depth == 0 and not in_str:
            out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    if cur or out:
        out.append("".join(cur).strip())
    return [o for o in out if o != ""] if out != [""] else []


def _parse_string(s: str, st: Stmt) -> bytes:
    s = s.strip()
    if len(s) < 2 or s[0] != '"' or s[-1] != '"':
        raise AsmError(f"expected a string, got {s!r}", st.loc, st.via)
    body = s[1:-1].encode("utf-8")  # GNU as emits the source bytes, UTF-8 included
    out = bytearray()
    i = 0
    simple = {ord("n"): 10, ord("t"): 9, ord("r"): 13, ord("0"): 0, ord("\\"): 92, ord('"'): 34,
              ord("'"): 39, ord("a"): 7, ord("b"): 8, ord("f"): 12, ord("v"): 11}
    while i < len(body):
        c = body[i]
        if c != 92 or i + 1 >= len(body):
            out.append(c)
            i += 1
            continue
        n = body[i + 1]
        m = re.match(rb"x([0-9a-fA-F]{1,2})|([0-7]{1,3})", body[i + 1 :])
        if m and m.group(1):
            out.append(int(m.group(1), 16))
            i += 1 + m.end()
        elif m and m.group(2):
            out.append(int(m.group(2), 8) & 0xFF)
            i += 1 + m.end()
        elif n in simple:
            out.append(simple[n])
            i += 2
        else:
            raise AsmError(f"unknown escape \\{chr(n)} in {s}", st.loc, st.via)
    return bytes(out)


# ------------------------------------------------------------------ keystone worker


class _Worker:
    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None

    def ensure(self) -> subprocess.Popen:
        if self.proc is None or self.proc.poll() is not None:
            # Run as a script, so the child imports keystone only (not the harness packages).
            self.proc = subprocess.Popen(
                [sys.executable, str(Path(__file__).with_name("ksworker.py"))], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            )
        return self.proc

    def reset(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def run(self, items: list[tuple[str, int]], symbols: dict[str, int]) -> tuple[list[dict], bool]:
        """keystone's replies, in order, and whether it hung: the replies stop short when it
        aborted (the worker died) or gave no answer for KEYSTONE_TIMEOUT (it loops forever on
        some inputs, e.g. `%`; the worker is then killed)."""
        request = (json.dumps({"syms": symbols, "items": items}) + "\n").encode()
        for attempt in (0, 1):
            proc = self.ensure()
            assert proc.stdin is not None and proc.stdout is not None
            try:
                proc.stdin.write(request)
                proc.stdin.flush()
                break
            except BrokenPipeError:  # it died after its last reply (an abort we have not seen yet)
                self.reset()
                if attempt:
                    return [], False
        replies: list[dict] = []
        fd = proc.stdout.fileno()
        pending = b""
        while len(replies) < len(items):
            ready, _, _ = select.select([fd], [], [], KEYSTONE_TIMEOUT)
            if not ready:
                self.reset()
                return replies, True
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break  # keystone aborted the worker on the next item
            *lines, pending = (pending + chunk).split(b"\n")
            replies.extend(json.loads(line) for line in lines)
        return replies, False


_WORKER = _Worker()
KEYSTONE_TIMEOUT = 10.0  # seconds for one statement (it takes microseconds; it loops forever on some input)
_ENCODED: dict[tuple, bytes] = {}  # keystone's answers: (text, address if it matters, symbols named)


def _keystone(items: list[tuple[str, int]], symbols: dict[str, int], stmts: list[Stmt]) -> list[bytes]:
    out: list[bytes] = []
    start = 0
    while start < len(items):
        replies, hung = _WORKER.run(items[start:], symbols)
        for k, rep in enumerate(replies):
            st = stmts[start + k]
            if "err" in rep:
                raise AsmError(f"cannot assemble {st.text!r} ({rep['err']})", st.loc, st.via)
            out.append(bytes.fromhex(rep["hex"]))
        start += len(replies)
        if start < len(items):
            st = stmts[start]
            _WORKER.reset()
            if hung:
                raise AsmError(f"keystone gave no answer in {KEYSTONE_TIMEOUT:.0f} s for {st.text!r}", st.loc, st.via)
            raise AsmError(f"keystone crashed (abort) on {st.text!r}", st.loc, st.via)
    return out


# ------------------------------------------------------------------ capstone check

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


_GPREG = re.compile(r"(?<![\w.$])(?:[xw]([0-9]|[12][0-9]|30)|(sp|wsp)|(lr|fp|ip0|ip1))(?![\w.$])", re.IGNORECASE)
_GP_ALIAS = {"lr": 30, "fp": 29, "ip0": 16, "ip1": 17}


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


def _check(word: int, addr: int, item: _Item, symbols: dict[str, int], fixed: bool = False) -> None:
    """Disassemble the emitted word and compare it with the statement: mnemonic (modulo
    aliases), general-purpose registers, immediates and branch targets."""
    got = list(_cs.disasm_lite(word.to_bytes(4, "little"), addr, 1))
    st = item.stmt
    if not got and _UNPRIV_SRC.match(item.text) and unprivileged_ldst(word) is not None:
        return  # capstone 5.0.7 cannot decode LDTR-family loads with Rt == Rn
    if not got:
        raise AsmError(f"emitted word {word:#010x} does not decode as an instruction", st.loc, st.via)
    _a, _s, mnem, ops = got[0]
    if fixed and not item.text.lower().startswith(("msr", "mrs")):
        return  # a word from the tables above (HINT space, UDF, ADRP): its encoding is tested
    head, rest = split_head(item.text)
    src = head.lower()
    if _BCOND.match(src) and not src.startswith("b."):
        src = "b." + src[1:]
    if src in ("dsb", "dmb", "isb") and word & 0xFFFFF01F == 0xD503301F:
        return  # barrier with an immediate: capstone names some (dfb, ssbb) differently
    if src != mnem and (src not in _CLASS_OF or _CLASS_OF.get(src) != _CLASS_OF.get(mnem)):
        raise AsmError(f"emitted {mnem} {ops} ({word:#010x}) for this statement", st.loc, st.via)
    missing = _gp_regs(rest) - _gp_regs(ops) if src != "sys" else set()  # "ic iallu" hides Xt
    if src == "ret":
        missing.discard(30)  # capstone prints "ret x30" as "ret"
    if missing:
        name = sorted(map(str, missing))[0]
        raise AsmError(f"emitted {mnem} {ops} ({word:#010x}): register {name if name == 'sp' else 'x' + name} "
                       "of the statement is missing", st.loc, st.via)
    if not (src in ("movz", "movn") and "lsl" in item.text):
        emitted = [int(v, 0) for v in _IMM.findall(ops)]
        for v in (int(x, 0) for x in _IMM.findall(item.text)):
            if src in ("bic", "bics") and mnem != src:
                v = ~v & (0xFFFF_FFFF if rest.lstrip().lower().startswith("w") else 0xFFFF_FFFF_FFFF_FFFF)
            if not _imm_matches(v, emitted):
                raise AsmError(f"emitted {mnem} {ops} ({word:#010x}): immediate {v:#x} is missing", st.loc, st.via)
    if (src.startswith("b.") or src in _PCREL) and "[" not in rest and rest:
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


def _imm_matches(v: int, emitted: list[int]) -> bool:
    """The source immediate appears in the disassembly, as itself, in 32 bits, or as imm12 << 12
    (capstone leaves out zero offsets and shifts)."""
    if v == 0:
        return True
    for e in emitted:
        if e == v or (e & 0xFFFFFFFF) == (v & 0xFFFFFFFF) or (e << 12) == v:
            return True
    return False


# ------------------------------------------------------------------ API


def _preprocessor(features: Features | None, defines, overrides, root: Path) -> Preprocessor:
    feats = features or FEATURES_MAX
    pp = Preprocessor(caps=feats.caps, defines=defines, include_dirs=INCLUDE_DIRS, overrides=overrides)
    pp.display_root = root
    return pp


def _assemble(pp: Preprocessor, path: Path, text: str | None, features, base, section_addresses) -> Image:
    _WORKER.ensure()  # the worker starts (~0.1 s) while Python preprocesses and lays out
    # The statements and items are acyclic and may number millions: without the cyclic
    # collector rescanning them over and over, a large .rept assembles twice as fast.
    with _no_gc():
        stmts = pp.statements(pp.cpp(path, text))
        asm = Assembler(features or FEATURES_MAX, base, section_addresses)
        asm.layout(stmts)
        image = asm.encode()
    image.source_files = list(pp.files)
    image.source_texts = dict(pp.texts)
    return image


def assemble_file(
    path: str | os.PathLike,
    *,
    features: Features | None = None,
    defines: Mapping[str, int | str] | None = None,
    base: int = DEFAULT_BASE,
    section_addresses: Mapping[str, int] | None = None,
    overrides: Mapping[str, str] | None = None,
) -> Image:
    p = Path(path)
    pp = _preprocessor(features, defines, overrides, Path.cwd())
    if str(p.resolve()) not in pp.overrides and not p.is_file():
        raise AsmError(f"{p}: is a directory, not a source file" if p.is_dir() else f"{p}: no such file")
    return _assemble(pp, p, None, features, base, section_addresses)


def assemble_text(text: str, filename: str = "<string>", **kwargs) -> Image:
    features = kwargs.pop("features", None)
    pp = _preprocessor(features, kwargs.pop("defines", None), kwargs.pop("overrides", None), Path.cwd())
    return _assemble(pp, Path(filename), text, features, kwargs.pop("base", DEFAULT_BASE),
                     kwargs.pop("section_addresses", None))


def expand_for_gnu_as(
    path: str | os.PathLike,
    *,
    features: Features | None = None,
    defines: Mapping[str, int | str] | None = None,
    overrides: Mapping[str, str] | None = None,
) -> tuple[str, list[SourceLoc]]:
    """The fully preprocessed source, one statement per line, that GNU as assembles to the same
    words; with the origin of each line, so the two assemblers can be compared statement by statement."""
    pp = _preprocessor(features, defines, overrides, Path.cwd())
    stmts = pp.statements(pp.cpp(Path(path)))
    lines: list[str] = []
    locs: list[SourceLoc] = []
    for st in stmts:
        for lab in st.labels:
            lines.append(f"{lab}:")
            locs.append(st.loc)
        if st.text:
            lines.append("\t" + st.text)
            locs.append(st.loc)
    return "\n".join(lines) + "\n", locs
