"""The assembled program: segments, symbols and an address -> source line table."""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from harness.text import one_line


@dataclass(frozen=True)
class SourceLoc:
    file: str
    line: int
    text: str = ""
    col: int = 1

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


class AsmError(Exception):
    """A problem in the source, reported as `file:line:col: message` plus the line."""

    def __init__(self, message: str, loc: SourceLoc | None = None, note: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.loc = loc
        self.note = note

    @property
    def file(self) -> str | None:
        return self.loc.file if self.loc else None

    @property
    def line(self) -> int | None:
        return self.loc.line if self.loc else None

    @property
    def col(self) -> int | None:
        return self.loc.col if self.loc else None

    @property
    def source_line(self) -> str:
        return self.loc.text if self.loc else ""

    def __str__(self) -> str:
        if self.loc is None:
            return one_line(f"error: {self.message}")
        text = one_line(f"{self.loc.file}:{self.loc.line}:{self.loc.col}: {self.message}")
        if self.note:
            text += one_line(f" ({self.note})")
        if self.loc.text.strip():
            text += f"\n    {one_line(self.loc.text.strip())}"
        return text


@dataclass
class Segment:
    name: str
    addr: int
    data: bytes
    flags: str  # "rx", "rw", "r"


@dataclass
class Image:
    segments: list[Segment]
    symbols: dict[str, int]
    entry: int
    lines: list[tuple[int, int, SourceLoc]] = field(default_factory=list)  # (addr, size, loc), sorted
    source_files: list[str] = field(default_factory=list)
    insn_addrs: list[int] = field(default_factory=list)  # instruction statements (not data)
    globals: frozenset[str] = frozenset()  # names made global (.global/.globl; STB_GLOBAL in an ELF)
    # For the ELF writer (empty for loaded programs): the section of each label (equates have
    # none), `.type` of a label ("function" | "object"), the macro calls an instruction came from
    # (innermost first: macro name, where it was used), and the text of sources not read from
    # disk (a variant's patched files).
    label_sections: dict[str, str] = field(default_factory=dict)
    label_types: dict[str, str] = field(default_factory=dict)
    macro_calls: dict[int, tuple[tuple[str, SourceLoc], ...]] = field(default_factory=dict)
    source_texts: dict[str, str] = field(default_factory=dict)
    # (addr, size) of the alignment padding in code sections that GNU as marks as code ($x): the
    # NOPs it pads with. Not instructions of the program (`insn_addrs`), but code in an ELF.
    code_fill: list[tuple[int, int]] = field(default_factory=list)
    label_sizes: dict[str, int] = field(default_factory=dict)  # `.size` of a label (st_size)

    @staticmethod
    def is_local_symbol(name: str) -> bool:
        return is_local_symbol(name)

    def __post_init__(self) -> None:
        self.lines.sort(key=lambda t: t[0])
        self._line_addrs = [a for a, _, _ in self.lines]
        named = sorted((a, n) for n, a in self.symbols.items() if not is_local_symbol(n))
        self._sym_addrs = [a for a, _ in named]
        self._sym_names = [n for _, n in named]

    def addr_of(self, name_or_loc: str) -> int:
        """A label, `label+0x10`, a number, or `file.S:123` (first statement at or after that line;
        a macro call is a statement there, at the first instruction of its expansion, as in gdb)."""
        text = name_or_loc.strip()
        m = re.fullmatch(r"(.+?):(\d+)", text)
        if m and not text.startswith("0x"):
            fname, line = m.group(1), int(m.group(2))
            best = None
            sites = [(addr, site) for addr, calls in self.macro_calls.items() for _name, site in calls]
            for addr, loc in [(a, loc) for a, _size, loc in self.lines] + sites:
                if (loc.file == fname or loc.file.endswith("/" + fname)) and loc.line >= line:
                    if best is None or (loc.line, addr) < best[0]:
                        best = ((loc.line, addr), addr)
            if best is None:
                raise KeyError(f"no code at or after {text}")
            return best[1]
        m = re.fullmatch(r"([A-Za-z_.$][\w.$]*)\s*([+-]\s*(?:0x[0-9a-fA-F_]+|\d+))?", text)
        if m and m.group(1) in self.symbols:
            off = int(m.group(2).replace(" ", "").replace("_", ""), 0) if m.group(2) else 0
            return self.symbols[m.group(1)] + off
        try:
            return int(text.replace("_", ""), 0)
        except ValueError:
            raise KeyError(f"unknown label or address {text!r}") from None

    def symbol_at(self, addr: int) -> str | None:
        i = bisect.bisect_right(self._sym_addrs, addr) - 1
        if i < 0:
            return None
        base = self._sym_addrs[i]
        seg = self._segment_of(addr)
        if seg is None or not seg.addr <= base < seg.addr + max(len(seg.data), 1):
            return None
        # Prefer a global-looking name among labels at the same address.
        j = i
        while j > 0 and self._sym_addrs[j - 1] == base:
            j -= 1
        names = self._sym_names[j : i + 1]
        name = sorted(names, key=lambda n: (n.startswith("__"), n.startswith("."), n))[0]
        return name if addr == base else f"{name}+{addr - base:#x}"

    def source_at(self, addr: int) -> SourceLoc | None:
        i = bisect.bisect_right(self._line_addrs, addr) - 1
        if i < 0:
            return None
        a, size, loc = self.lines[i]
        return loc if a <= addr < a + max(size, 1) else None

    def _segment_of(self, addr: int) -> Segment | None:
        for seg in self.segments:
            if seg.addr <= addr < seg.addr + max(len(seg.data), 1):
                return seg
        return None

    def code_ranges(self) -> list[tuple[int, int]]:
        return [(s.addr, s.addr + len(s.data)) for s in self.segments if "x" in s.flags]

    def words(self) -> Iterator[tuple[int, int]]:
        """(addr, word) of every instruction statement."""
        seg = None
        for addr in self.insn_addrs:
            if seg is None or not seg.addr <= addr < seg.addr + len(seg.data):
                seg = self._segment_of(addr)
                if seg is None:
                    continue
            off = addr - seg.addr
            yield addr, int.from_bytes(seg.data[off : off + 4], "little")


def is_local_symbol(name: str) -> bool:
    """Labels no user wrote as names: GNU as locals (.L), numeric labels (1:, 1b) and pool entries."""
    return name.startswith((".L", "__num_", "__pool_"))
