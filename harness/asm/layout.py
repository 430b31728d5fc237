"""Layout, the assembler's first pass, in Python: every statement's section and offset (each
instruction is 4 bytes), labels, literal pools, `.equ` symbols, alignment and padding; then the
sections placed at addresses. Nothing is encoded here (harness.asm.encoder does that)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from harness.asm.expr import ExprError, evaluate
from harness.asm.image import AsmError
from harness.asm.statement import DATA_WIDTHS, Stmt
from harness.asm.tokenizer import split_commas, split_head
from harness.memmap import RAM_SIZE

# Every size a source asks for (.space, .fill, .org, alignment padding, data) is checked against
# this before anything is allocated: an image can occupy at most the board's RAM.
MAX_IMAGE_BYTES = RAM_SIZE
NOP = (0xD503201F).to_bytes(4, "little")
_MNEMONIC = re.compile(r"[A-Za-z][A-Za-z0-9_.]*$")
_ASSIGN = re.compile(r"^([A-Za-z_.$][\w.$]*)\s*=\s*(.+)$")
_LDR_LITERAL = re.compile(r"^ldr\s+([xw]\d+|[xw]zr|lr|fp)\s*,\s*=\s*(.+)$", re.IGNORECASE)
_IGNORED = {
    ".weak", ".hidden", ".local", ".file", ".loc", ".ident",
    ".arch", ".cpu", ".arch_extension", ".purgem", ".func", ".endfunc", ".end", ".protected",
    ".cfi_startproc", ".cfi_endproc", ".cfi_sections", ".cfi_def_cfa", ".cfi_offset", ".cfi_def_cfa_offset",
    ".cfi_restore", ".cfi_undefined", ".cfi_signal_frame", ".cfi_adjust_cfa_offset", ".cfi_rel_offset",
    ".cfi_register", ".cfi_def_cfa_register", ".cfi_same_value", ".cfi_return_column", ".cfi_window_save",
    ".cfi_remember_state", ".cfi_restore_state", ".cfi_escape", ".cfi_personality", ".cfi_lsda",
    ".ltorg_disable", ".subsection",
}


@dataclass(slots=True)
class Item:
    kind: str  # insn | word | data | bytes | pool | fill (raw repeated to size) | codefill (a fill that is code)
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
class Section:
    name: str
    flags: str
    items: list[Item] = field(default_factory=list)
    size: int = 0
    addr: int = 0
    labels: dict[str, int] = field(default_factory=dict)


class Equates:
    """`.equ`/`.set`/`NAME = expr` symbols: constants are usable during layout (.skip, .align,
    .org), the rest once labels have addresses."""

    def __init__(self) -> None:
        self.exprs: dict[str, tuple[str, Stmt]] = {}
        self.consts: dict[str, int] = {}

    def define(self, name: str, value: str, st: Stmt) -> None:
        self.exprs[name] = (value, st)
        try:
            self.consts[name] = evaluate(value, self.consts)
        except ExprError:
            self.consts.pop(name, None)

    def value_or_none(self, expr: str) -> int | None:
        try:
            return evaluate(expr, self.consts)
        except ExprError:
            return None

    def value(self, expr: str, st: Stmt, sec: Section | None = None) -> int:
        """A constant expression; with `sec`, its labels so far and `.` (its size) count too."""
        syms = dict(self.consts)
        if sec is not None:
            syms.update(sec.labels)
            syms["."] = sec.size
        try:
            return evaluate(expr, syms)
        except ExprError as e:
            raise AsmError(f"cannot evaluate {expr!r} here: {e}", st.loc, st.via) from None

    def resolve(self, symbols: dict[str, int]) -> None:
        """Every equate's value into `symbols`, labels placed (in as many rounds as chains need)."""
        pending = dict(self.exprs)
        for _ in range(len(pending) + 1):
            progress = False
            for name, (expr, _st) in list(pending.items()):
                try:
                    symbols[name] = evaluate(expr, symbols)
                except ExprError:
                    continue
                del pending[name]
                progress = True
            if not progress:
                break
        for name, (expr, st) in pending.items():
            try:
                evaluate(expr, symbols)
            except ExprError as e:
                raise AsmError(f"cannot evaluate .equ {name}: {e}", st.loc, st.via) from None


PoolEntry = tuple[str, str, int, Stmt]  # label, expression, width, the `ldr =` statement


class LiteralPool:
    """The literals of `ldr xN, =expr` waiting in each section for the next `.ltorg` (or the
    section's end). GNU as shares one entry between equal values of the same size in a pool (a
    constant, or a symbol plus addend)."""

    def __init__(self, equates: Equates) -> None:
        self.equates = equates
        self.pending: dict[str, list[PoolEntry]] = {}
        self._count = 0

    def label_for(self, section: str, expr: str, width: int, st: Stmt) -> str:
        entries = self.pending.setdefault(section, [])
        key = self._key(expr)
        for label, e, w, _ in entries:
            if w == width and self._key(e) == key:
                return label
        label = f"__pool_{self._count}"
        self._count += 1
        entries.append((label, expr, width, st))
        return label

    def _key(self, expr: str) -> object:
        value = self.equates.value_or_none(expr)
        if value is not None:
            return value
        m = re.fullmatch(r"([A-Za-z_.$][\w.$]*)\s*(?:([+-])\s*(.+))?", expr.strip())
        if m:
            off = self.equates.value_or_none(m.group(3)) if m.group(3) else 0
            if off is not None:
                return (m.group(1), -off if m.group(2) == "-" else off)
        return re.sub(r"\s+", "", expr)

    def take(self, section: str) -> list[tuple[int, list[PoolEntry]]]:
        """The section's pending literals, gone from the pool: GNU as keeps one pool per entry
        size and emits the 4-byte pool, then the 8-byte one."""
        entries = self.pending.pop(section, [])
        by_width = [(w, [e for e in entries if e[2] == w]) for w in (4, 8)]
        return [(w, es) for w, es in by_width if es]


class Layout:
    """The first pass over the statements: sections with their items, labels and equates."""

    def __init__(self, base: int, section_addresses: Mapping[str, int] | None = None) -> None:
        self.base = base
        self.section_addresses = dict(section_addresses or {})
        self.sections: dict[str, Section] = {}
        self.symbols: dict[str, int] = {}
        self.globals: set[str] = set()
        self.label_types: dict[str, str] = {}
        self.label_sizes: dict[str, int] = {}  # `.size NAME, EXPR` (st_size in an ELF)
        self.equates = Equates()
        self.pool = LiteralPool(self.equates)
        self._total = 0  # bytes in all sections so far (bounded by MAX_IMAGE_BYTES)
        self._labels: list[tuple[str, Section, int]] = []  # in the order they are defined
        self.cur = self._section(".text", None)
        self._previous = self.cur
        self._stack: list[Section] = []

    def run(self, stmts: list[Stmt]) -> None:
        for st in stmts:
            if st.labels:
                self._define_labels(st)
            if st.text:
                self._statement(st)
        for sec in self.sections.values():
            self._flush_pool(sec, None)
        place_sections(self.sections, self.base, self.section_addresses)
        for lab, sec, off in self._labels:
            self.symbols[lab] = sec.addr + off
        for sec in self.sections.values():
            for lab, off in sec.labels.items():
                self.symbols[lab] = sec.addr + off
        self.equates.resolve(self.symbols)

    def _define_labels(self, st: Stmt) -> None:
        cur = self.cur
        for k, lab in enumerate(st.labels):
            self._labels.append((lab, cur, cur.size))
            if lab in cur.labels or any(lab in s.labels for s in self.sections.values()):
                where = st.label_locs[k] if k < len(st.label_locs) else st.loc
                raise AsmError(f"label {lab!r} defined twice", where, st.via)
            cur.labels[lab] = cur.size

    def _statement(self, st: Stmt) -> None:
        text = st.text
        head, rest = split_head(text)
        head_l = head.lower()
        if head_l.startswith("."):
            if head_l in DATA_WIDTHS:
                self._data(head_l, rest, st)
            elif head_l in _DIRECTIVES:
                _DIRECTIVES[head_l](self, head_l, rest, st)
            elif head_l not in _IGNORED:
                raise AsmError(f"unknown directive {head}", st.loc, st.via)
            return
        cur = self.cur
        if "=" in text:
            m = _ASSIGN.match(text)
            if m:
                self.equates.define(m.group(1), m.group(2), st)
                return
            lit = _LDR_LITERAL.match(text)
            if lit:
                reg, expr = lit.group(1), lit.group(2).strip()
                width = 4 if reg.lower().startswith("w") else 8
                text = f"ldr {reg}, {self.pool.label_for(cur.name, expr, width, st)}"
        if not _MNEMONIC.match(head):
            raise AsmError(f"{head!r} is not an instruction, directive or macro", st.loc, st.via)
        if cur.size % 4:
            raise AsmError(f"instruction at offset {cur.size:#x} of {cur.name} is not 4-byte aligned "
                           "(data before it: add .balign 4)", st.loc, st.via)
        self._add(cur, Item("insn", cur.size, 4, st, text=text))

    # ------------------------------------------------------------ sections

    def _section(self, name: str, spec: str | None) -> Section:
        sec = self.sections.get(name)
        if sec is None:
            sec = self.sections[name] = Section(name, _section_flags(name, spec))
        return sec

    def _switch(self, sec: Section) -> None:
        self._previous, self.cur = self.cur, sec

    def _named_section(self, head: str, rest: str, st: Stmt) -> None:
        self._switch(self._section(head, None))

    def _section_directive(self, head: str, rest: str, st: Stmt) -> None:
        name, spec = _section_spec(rest, st)
        if head == ".pushsection":
            self._stack.append(self.cur)
        self._switch(self._section(name, spec))

    def _popsection(self, head: str, rest: str, st: Stmt) -> None:
        if not self._stack:
            raise AsmError(".popsection without .pushsection", st.loc, st.via)
        self._switch(self._stack.pop())

    def _previous_section(self, head: str, rest: str, st: Stmt) -> None:
        self._switch(self._previous)

    # ------------------------------------------------------------ contents

    def _add(self, sec: Section, item: Item) -> None:
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

    def _data(self, head: str, rest: str, st: Stmt) -> None:
        vals = split_commas(rest)
        size = DATA_WIDTHS[head]
        self._add(self.cur, Item("data", self.cur.size, self._size(size * len(vals), head, st), st, values=vals, width=size))

    def _inst(self, head: str, rest: str, st: Stmt) -> None:
        for v in split_commas(rest):
            self._add(self.cur, Item("word", self.cur.size, 4, st, values=[v], width=4))

    def _string(self, head: str, rest: str, st: Stmt) -> None:
        data = b"".join(parse_string(s, st) + (b"\0" if head != ".ascii" else b"") for s in split_commas(rest))
        self._add(self.cur, Item("bytes", self.cur.size, self._size(len(data), head, st), st, raw=data))

    def _space(self, head: str, rest: str, st: Stmt) -> None:
        args = split_commas(rest)
        if not args:
            raise AsmError(f"{head} needs a size", st.loc, st.via)
        n = self._size(self.equates.value(args[0], st, self.cur), head, st)
        fill = self.equates.value(args[1], st) if len(args) > 1 else 0
        self._pad(self.cur, n, st, bytes([fill & 0xFF]))

    def _fill(self, head: str, rest: str, st: Stmt) -> None:
        args = split_commas(rest)
        if not args:
            raise AsmError(".fill needs a repeat count", st.loc, st.via)
        rep = self._size(self.equates.value(args[0], st, self.cur), ".fill repeat count", st)
        size = self._size(self.equates.value(args[1], st) if len(args) > 1 else 1, ".fill size", st)
        val = self.equates.value(args[2], st) if len(args) > 2 else 0
        self._size(rep * size, ".fill", st)
        # GNU as stores the value in at most 8 bytes, zeros after them
        raw = (val & ((1 << (8 * min(size, 8))) - 1)).to_bytes(min(size, 8), "little").ljust(size, b"\0")
        self._pad(self.cur, rep * size, st, raw)

    def _org(self, head: str, rest: str, st: Stmt) -> None:
        target = self.equates.value(rest, st, self.cur)
        if target < self.cur.size:
            raise AsmError(f".org {target:#x} moves backwards (at {self.cur.size:#x})", st.loc, st.via)
        self._pad(self.cur, self._size(target - self.cur.size, ".org", st), st, b"\0")

    def _pad(self, sec: Section, n: int, st: Stmt, fill: bytes | None = None, align: bool = False) -> None:
        """n bytes of `fill` repeated; without one, code sections get zeros up to a word
        boundary and NOPs after it, other sections zeros (as GNU as's frag_align_code).
        Alignment (`align`) in a code section is code, as GNU as marks it ($x), but for the zeros
        up to a word boundary (aarch64_handle_align marks those $d).
        The bytes are made when the section is encoded, after every size has been checked."""
        if n <= 0:
            return
        self._size(n, "padding", st)
        kind = "codefill" if align and "x" in sec.flags else "fill"
        if fill is not None and fill.strip(b"\0"):
            self._add(sec, Item(kind, sec.size, n, st, raw=fill))
            return
        lead = (-sec.size) % 4 if fill is None and "x" in sec.flags else n
        if lead:
            self._add(sec, Item("fill" if fill is None else kind, sec.size, min(lead, n), st, raw=b"\0"))
        if n > lead:
            self._add(sec, Item(kind, sec.size, (n - lead) // 4 * 4, st, raw=NOP))
            if (n - lead) % 4:
                self._add(sec, Item(kind, sec.size, (n - lead) % 4, st, raw=b"\0"))

    def _align(self, head: str, rest: str, st: Stmt) -> None:
        """.align/.p2align N[, fill[, max]] (power of two on AArch64), .balign[wl] BYTES[, fill[, max]]."""
        args = [a.strip() for a in rest.split(",")]
        n = self.equates.value(args[0], st)
        if not head.startswith(".balign") and not 0 <= n < MAX_IMAGE_BYTES.bit_length():
            raise AsmError(f"alignment 2**{n} is not possible in {MAX_IMAGE_BYTES >> 20} MiB of RAM", st.loc, st.via)
        align = n if head.startswith(".balign") else 1 << n
        if align <= 0 or align & (align - 1):
            raise AsmError(f"alignment {align} is not a power of two", st.loc, st.via)
        if align > MAX_IMAGE_BYTES:
            raise AsmError(f"alignment {align:#x} is larger than the {MAX_IMAGE_BYTES >> 20} MiB of RAM", st.loc, st.via)
        pad = (-self.cur.size) % align
        if len(args) > 2 and args[2] and pad > self.equates.value(args[2], st):
            return  # more than the maximum skip: GNU as leaves the alignment out
        fill = None
        if len(args) > 1 and args[1]:
            width = {".balignw": 2, ".balignl": 4}.get(head, 1)
            fill = (self.equates.value(args[1], st) & ((1 << (8 * width)) - 1)).to_bytes(width, "little")
        self._pad(self.cur, pad, st, fill, align=True)

    def _ltorg(self, head: str, rest: str, st: Stmt) -> None:
        self._flush_pool(self.cur, st)

    def _flush_pool(self, sec: Section, st: Stmt | None) -> None:
        """Place the section's pending literals, each pool aligned to its entry size with zeros
        (an alignment: code in a code section, as GNU as's s_ltorg marks it; the entries are data)."""
        for width, entries in self.pool.take(sec.name):
            self._pad(sec, (-sec.size) % width, st or entries[0][3], b"\0", align=True)
            for label, expr, _w, pst in entries:
                sec.labels[label] = sec.size
                self._add(sec, Item("pool", sec.size, width, pst, values=[expr], width=width))

    # ------------------------------------------------------------ symbols

    def _equ(self, head: str, rest: str, st: Stmt) -> None:
        name, _, value = rest.partition(",")
        self.equates.define(name.strip(), value.strip(), st)

    def _global(self, head: str, rest: str, st: Stmt) -> None:
        self.globals.update(n.strip() for n in rest.split(",") if n.strip())

    def _type(self, head: str, rest: str, st: Stmt) -> None:
        name, _, kind = rest.partition(",")
        kind = kind.strip().lstrip("%@#\"").rstrip("\"").lower()
        if kind in ("function", "object"):  # the symbol type an ELF gets (STT_FUNC, STT_OBJECT)
            self.label_types[name.strip()] = kind

    def _size_directive(self, head: str, rest: str, st: Stmt) -> None:
        # Evaluated where it stands, as GNU as does: `.size f, .-f` after f's last instruction.
        name, _, expr = rest.partition(",")
        if not name.strip() or not expr.strip():
            raise AsmError(f"{head} needs NAME, EXPR", st.loc, st.via)
        self.label_sizes[name.strip()] = self.equates.value(expr.strip(), st, self.cur)


_Handler = Callable[[Layout, str, str, Stmt], None]
_DIRECTIVES: dict[str, _Handler] = {
    **dict.fromkeys((".text", ".data", ".bss", ".rodata"), Layout._named_section),
    ".section": Layout._section_directive, ".pushsection": Layout._section_directive,
    ".popsection": Layout._popsection, ".previous": Layout._previous_section,
    **dict.fromkeys((".align", ".p2align", ".balign", ".balignw", ".balignl"), Layout._align),
    ".inst": Layout._inst, ".ascii": Layout._string, ".asciz": Layout._string, ".string": Layout._string,
    ".space": Layout._space, ".skip": Layout._space, ".zero": Layout._space, ".fill": Layout._fill,
    ".org": Layout._org, ".ltorg": Layout._ltorg, ".pool": Layout._ltorg, ".equ": Layout._equ, ".set": Layout._equ,
    ".global": Layout._global, ".globl": Layout._global, ".type": Layout._type,
    ".size": Layout._size_directive,
}


def place_sections(sections: Mapping[str, Section], base: int, fixed: Mapping[str, int]) -> None:
    """Give each section its address: those in `fixed` there, the first other one at `base`, each
    next one on the next page, clear of the fixed ones."""
    addr = base
    placed_one = False
    for name, addr_fixed in fixed.items():
        if name in sections:
            sections[name].addr = addr_fixed
    for sec in sections.values():
        if sec.name in fixed:
            continue
        if not sec.size and not sec.labels:
            sec.addr = addr
            continue
        while True:
            if placed_one:
                addr = (addr + 0xFFF) & ~0xFFF
            placed_one = True
            clash = [s for s in sections.values() if s.name in fixed
                     and s.addr < addr + sec.size and addr < s.addr + max(s.size, 1)]
            if not clash:
                break
            addr = clash[0].addr + clash[0].size
        sec.addr = addr
        addr += sec.size
    placed = sorted((sec.addr, sec.addr + sec.size, sec.name) for sec in sections.values() if sec.size)
    for (a0, a1, n0), (b0, _b1, n1) in zip(placed, placed[1:], strict=False):
        if b0 < a1:
            raise AsmError(f"sections {n0} and {n1} overlap ({a0:#x}..{a1:#x} and {b0:#x})")


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


def _section_spec(rest: str, st: Stmt) -> tuple[str, str | None]:
    parts = split_commas(rest)
    if not parts or not parts[0]:
        raise AsmError(".section needs a name", st.loc, st.via)
    spec = parts[1].strip().strip('"') if len(parts) > 1 else None
    return parts[0].strip().strip('"'), spec


def parse_string(s: str, st: Stmt) -> bytes:
    """The bytes of a string operand ("..." with C escapes)."""
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
