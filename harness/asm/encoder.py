"""The assembler's second pass: with every label placed, each instruction gets its word (from the
tables here or from keystone), each word is checked by capstone, and the sections become bytes.

A statement's preparation, encoding and check depend on its text, the symbol values it names and,
for some forms, its address: each distinct combination is worked out once (a .rept of 100k NOPs
is one NOP for keystone and capstone)."""

from __future__ import annotations

from harness.asm.backend import KEYSTONE, Key, Keystone
from harness.asm.check import check_word
from harness.asm.image import AsmError, Image, Segment, SourceLoc
from harness.asm.layout import Item, Layout, Section
from harness.asm.prepare import Preparer, text_info
from harness.asm.statement import Stmt

_Work = list[tuple[int, Item, Key]]  # (address, instruction, what keystone's answer depends on)


class Encoder:
    def __init__(self, layout: Layout, keystone: Keystone = KEYSTONE) -> None:
        self.layout = layout
        self.symbols = layout.symbols
        self.preparer = Preparer(layout.symbols)
        self.keystone = keystone
        self._info: dict[str, tuple[bool, bool, tuple]] = {}  # text -> text_info(text)

    def image(self) -> Image:
        self._encode(self._prepare())
        segments: list[Segment] = []
        lines: list[tuple[int, int, SourceLoc]] = []
        macro_calls: dict[int, tuple[tuple[str, SourceLoc], ...]] = {}
        insn_addrs: list[int] = []
        code_fill: list[tuple[int, int]] = []
        checked: set[tuple] = set()
        for sec in self.layout.sections.values():
            if sec.size:
                segments.append(self._emit(sec, lines, macro_calls, (insn_addrs, code_fill), checked))
        layout = self.layout
        entry = self.symbols.get("_start")
        if entry is None:
            code = [s for s in segments if "x" in s.flags]
            entry = code[0].addr if code else (segments[0].addr if segments else layout.base)
        label_sections = {lab: sec.name for sec in layout.sections.values() for lab in sec.labels}
        label_types = {n: t for n, t in layout.label_types.items() if n in label_sections}
        label_sizes = {n: v for n, v in layout.label_sizes.items() if n in label_sections}
        return Image(segments, dict(self.symbols), entry, lines, [], sorted(insn_addrs), frozenset(layout.globals),
                     label_sections, label_types, macro_calls, code_fill=code_fill, label_sizes=label_sizes)

    def _prepare(self) -> _Work:
        """Every instruction made ready for keystone, or encoded here (item.fixed): what is left
        for keystone, with the key of its answer."""
        info, symbols, prepare = self._info, self.symbols, self.preparer.prepare
        prepared: dict[tuple, tuple[str, int | None]] = {}
        work: _Work = []
        for sec in self.layout.sections.values():
            for item in sec.items:
                if item.kind != "insn":
                    continue
                addr = sec.addr + item.offset
                src = info.get(item.text) or info.setdefault(item.text, text_info(item.text, symbols))
                pkey = (item.text, addr if src[0] else None)
                hit = prepared.get(pkey)
                if hit is None:
                    hit = prepared[pkey] = prepare(item.text, item.stmt, addr)
                text, word = hit
                item.text = text
                t = info.get(text) or info.setdefault(text, text_info(text, symbols))
                if word is not None:
                    item.word, item.fixed = word, True
                    continue
                work.append((addr, item, (text, addr if t[1] else None, t[2])))
        return work

    def _encode(self, work: _Work) -> None:
        wanted: dict[Key, tuple[int, Stmt]] = {}
        for addr, item, key in work:
            if key not in wanted:
                wanted[key] = (addr, item.stmt)
        words = self.keystone.encode_words(wanted, self.symbols)
        for _addr, item, key in work:
            item.word = words[key]

    def _emit(self, sec: Section, lines: list[tuple[int, int, SourceLoc]],
              macro_calls: dict[int, tuple[tuple[str, SourceLoc], ...]],
              code: tuple[list[int], list[tuple[int, int]]], checked: set[tuple]) -> Segment:
        """The section's bytes; its instructions checked (each distinct one once), its lines,
        macro calls and code recorded (instruction addresses; (addr, size) of padding that is code)."""
        insn_addrs, code_fill = code
        buf = bytearray(sec.size)
        info, value = self._info, self.preparer.value
        for item in sec.items:
            addr = sec.addr + item.offset
            if item.kind == "insn":
                word = item.word
                ckey = (word, item.text, addr if info[item.text][1] else None, item.fixed)
                if ckey not in checked:
                    check_word(word, addr, item.text, item.stmt, self.symbols, item.fixed)
                    checked.add(ckey)
                buf[item.offset : item.offset + 4] = word.to_bytes(4, "little")
                insn_addrs.append(addr)
            elif item.kind in ("data", "word", "pool"):
                for k, v in enumerate(item.values):
                    val = value(v, item.stmt, addr + k * item.width)
                    buf[item.offset + k * item.width : item.offset + (k + 1) * item.width] = _pack(val, item.width, item)
                if item.kind == "word":
                    insn_addrs.append(addr)
            elif item.kind in ("fill", "codefill"):
                if item.kind == "codefill":
                    code_fill.append((addr, item.size))
                reps = -(-item.size // len(item.raw))
                buf[item.offset : item.offset + item.size] = (item.raw * reps)[: item.size]
            else:
                buf[item.offset : item.offset + item.size] = item.raw
            if item.kind != "pool" and item.size:
                lines.append((addr, item.size, item.stmt.loc))
                if item.stmt.calls:
                    macro_calls[addr] = item.stmt.calls
        return Segment(sec.name, sec.addr, bytes(buf), sec.flags)


def _pack(val: int, width: int, item: Item) -> bytes:
    lo, hi = -(1 << (8 * width - 1)), (1 << (8 * width)) - 1
    if not lo <= val <= hi:
        raise AsmError(f"value {val:#x} does not fit in {width} byte{'s' if width > 1 else ''}", item.stmt.loc, item.stmt.via)
    return (val & ((1 << (8 * width)) - 1)).to_bytes(width, "little")
