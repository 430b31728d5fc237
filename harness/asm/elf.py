"""An assembled Image as an ELF executable with symbols and DWARF line information.

ET_EXEC for EM_AARCH64, little-endian: one PT_LOAD per section (so QEMU's `-kernel` and
`python -m harness run` load it as they load a GNU-built program), section headers, `.symtab`
with every label (typed and sized by `.type`/`.size`) and the `$x`/`$d` mapping symbols GNU as emits (objdump disassembles code and
dumps data by them), and DWARF 4 (`.debug_line`, plus the `.debug_info`/`.debug_abbrev`/
`.debug_aranges`/`.debug_ranges` gdb needs to find the line table of the one compile unit).

Written here with `struct`: no maintained Python library writes an ELF from nothing or any DWARF
(LIEF 1.0 only edits an ELF it parsed, and its DWARF editor needs the non-free LIEF Extended and
has no line tables; pyelftools only reads). pyelftools reads the result back in the tests, and
binutils and gdb check it.

Line table: every statement row of the harness's own table (`Image.lines`), so gdb and objdump
name the line the harness's debugger names. An instruction from a macro maps to the line of the
macro body it came from (step through a macro line by line; the disassembly shows the operands
the body line names); the first instruction of each expansion also gets a row for the call
line(s) at the same address, before the body row, so `break file.S:CALL_LINE` stops at the
expansion (gdb reports the address's last row, the body line).
"""

from __future__ import annotations

import bisect
import os
import struct
from collections.abc import Mapping
from pathlib import Path

from harness.asm.image import Image, SourceLoc
from harness.data import ASM_DIR, source_path

EM_AARCH64 = 183
ET_EXEC = 2
PT_LOAD = 1
SHT_PROGBITS, SHT_SYMTAB, SHT_STRTAB = 1, 2, 3
SHF_WRITE, SHF_ALLOC, SHF_EXECINSTR = 1, 2, 4
STB_LOCAL, STB_GLOBAL = 0, 1
STT_NOTYPE, STT_OBJECT, STT_FUNC, STT_FILE = 0, 1, 2, 4
SHN_ABS = 0xFFF1
PAGE = 0x1000
PRODUCER = "pstate-harness"
DW_LANG_MIPS_ASSEMBLER = 0x8001  # what GNU as says for assembly; gdb then skips no prologue at `break LABEL`

# DWARF 4 line program (DWARF 4 §6.2.5).
LINE_BASE, LINE_RANGE, OPCODE_BASE = -5, 14, 13
DW_LNS_copy, DW_LNS_advance_pc, DW_LNS_advance_line, DW_LNS_set_file = 1, 2, 3, 4
DW_LNE_end_sequence, DW_LNE_set_address = 1, 2


def _hidden(name: str) -> bool:
    """Labels GNU as keeps out of .symtab: numeric locals (renamed __num_N_k here), literal pools, .L*."""
    return name.startswith(("__num_", "__pool_", ".L"))


def uleb(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def sleb(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        done = (value == 0 and not byte & 0x40) or (value == -1 and byte & 0x40)
        out.append(byte | (0 if done else 0x80))
        if done:
            return bytes(out)


class _StrTab:
    def __init__(self) -> None:
        self.data = bytearray(b"\0")
        self.index: dict[str, int] = {"": 0}

    def add(self, s: str) -> int:
        if s not in self.index:
            self.index[s] = len(self.data)
            self.data += s.encode() + b"\0"
        return self.index[s]


def _sections(image: Image) -> list[tuple[str, int, bytes, str]]:
    """(name, addr, data, flags) of every section: the segments, plus empty sections that hold
    labels (section boundary markers such as `__start___ex_table`)."""
    out = [(s.name, s.addr, s.data, s.flags) for s in image.segments]
    names = {s[0] for s in out}
    empty: dict[str, int] = {}
    for label, sec in image.label_sections.items():
        if sec not in names:
            addr = image.symbols[label]
            empty[sec] = min(addr, empty.get(sec, addr))
    out += [(name, addr, b"", "r") for name, addr in empty.items()]
    return sorted(out, key=lambda s: (s[1], len(s[2]) > 0, s[0]))


def _mapping_symbols(image: Image, sections) -> list[tuple[int, int, str]]:
    """($x | $d) at each switch between code and data in executable sections: (addr, section, name).
    Code is the instructions and the padding GNU as marks as code (image.code_fill)."""
    runs = sorted([(a, 4) for a in image.insn_addrs] + list(image.code_fill))
    starts = [a for a, _ in runs]
    out = []
    for k, (_name, addr, data, flags) in enumerate(sections):
        if "x" not in flags or not data:
            continue
        state, a, end = None, addr, addr + len(data)
        i = bisect.bisect_left(starts, a)
        while a < end:
            code = i < len(runs) and starts[i] == a
            if code != state:
                out.append((a, k, "$x" if code else "$d"))
                state = code
            if code:
                a += runs[i][1]
            else:  # data runs to the next code
                a = starts[i] if i < len(runs) and starts[i] < end else end
            while i < len(runs) and starts[i] < a:
                i += 1
    return out


def _symbols(image: Image, sections) -> tuple[list[tuple[str, int, int, int, int, int]], int]:
    """(name, value, size, bind, type, shndx) of every symbol, locals first; and the first global."""
    file_sym = [(Path(image.source_files[0]).name if image.source_files else "", 0, 0, STB_LOCAL, STT_FILE, SHN_ABS)]
    mapping = [(name, addr, 0, STB_LOCAL, STT_NOTYPE, k + 1) for addr, k, name in _mapping_symbols(image, sections)]
    index = {s[0]: k for k, s in enumerate(sections)}
    labels = [(name, image.symbols[name], index[sec]) for name, sec in image.label_sections.items()
              if not _hidden(name)]
    labels.sort(key=lambda t: (t[1], t[0]))
    # As GNU as: `.type` gives the type, `.size` the size (0 without one), any other label is
    # STT_NOTYPE. gdb takes a sized function, not the labels inside it, for the function at a pc.
    syms = []
    for name, value, k in labels:
        stype = {"function": STT_FUNC, "object": STT_OBJECT}.get(image.label_types.get(name, ""), STT_NOTYPE)
        bind = STB_GLOBAL if name in image.globals else STB_LOCAL
        size = image.label_sizes.get(name, 0) & 0xFFFF_FFFF_FFFF_FFFF  # `.size f, -4` as GNU as: two's complement
        syms.append((name, value, size, bind, stype, k + 1))
    local = file_sym + sorted(mapping, key=lambda s: s[1]) + [s for s in syms if s[3] == STB_LOCAL]
    glob = [s for s in syms if s[3] == STB_GLOBAL]
    return local + glob, len(local) + 1  # +1: the null symbol


# ------------------------------------------------------------------ DWARF


def _file_table(image: Image, source_paths: Mapping[str, str]) -> tuple[list[str], list[tuple[str, int]], dict[str, int]]:
    """Include directories, (basename, dir index) entries and the file index of each line-table name."""
    names = list(dict.fromkeys([*image.source_files, *(loc.file for _a, _s, loc in image.lines)]))
    dirs: list[str] = []
    files: list[tuple[str, int]] = []
    index: dict[str, int] = {}
    for name in names:
        path = Path(source_paths.get(name) or source_path(name))
        d = str(path.parent)
        if d not in dirs:
            dirs.append(d)
        files.append((path.name, dirs.index(d) + 1))
        index[name] = len(files)  # DWARF 4 file numbers start at 1
    return dirs, files, index


def _rows(image: Image, findex: dict[str, int]) -> list[list[tuple[int, int, int]]]:
    """Sequences of (addr, file, line) rows; a gap in the table (a literal pool) ends a sequence.
    Each sequence ends with its end address as a row of file 0."""
    seqs: list[list[tuple[int, int, int]]] = []
    cur: list[tuple[int, int, int]] = []
    end = None
    prev_calls: tuple[tuple[str, SourceLoc], ...] = ()
    for addr, size, loc in image.lines:
        if end is not None and addr != end:
            cur.append((end, 0, 0))
            seqs.append(cur)
            cur, prev_calls = [], ()
        calls = image.macro_calls.get(addr, ())
        # A new expansion (at some depth): rows for its call sites, outermost first, then the body row.
        outer_new, outer_old = calls[::-1], prev_calls[::-1]
        k = 0
        while k < min(len(outer_new), len(outer_old)) and outer_new[k] == outer_old[k]:
            k += 1
        for _name, site in outer_new[k:]:
            cur.append((addr, findex[site.file], site.line))
        cur.append((addr, findex[loc.file], loc.line))
        prev_calls = calls
        end = addr + size
    if cur:
        cur.append((end, 0, 0))
        seqs.append(cur)
    return seqs


def _line_program(seqs: list[list[tuple[int, int, int]]]) -> bytes:
    out = bytearray()
    for seq in seqs:
        out += b"\0" + uleb(9) + bytes([DW_LNE_set_address]) + struct.pack("<Q", seq[0][0])
        addr, file, line = seq[0][0], 1, 1
        for a, f, ln in seq[:-1]:
            if f != file:
                out += bytes([DW_LNS_set_file]) + uleb(f)
                file = f
            da, dl = a - addr, ln - line
            special = (dl - LINE_BASE) + LINE_RANGE * da + OPCODE_BASE
            if 0 <= dl - LINE_BASE < LINE_RANGE and special <= 255:
                out.append(special)
            else:
                if dl:
                    out += bytes([DW_LNS_advance_line]) + sleb(dl)
                if da:
                    out += bytes([DW_LNS_advance_pc]) + uleb(da)
                out.append(DW_LNS_copy)
            addr, line = a, ln
        out += bytes([DW_LNS_advance_pc]) + uleb(seq[-1][0] - addr)
        out += b"\0" + uleb(1) + bytes([DW_LNE_end_sequence])
    return bytes(out)


def _debug_line(dirs: list[str], files: list[tuple[str, int]], program: bytes) -> bytes:
    header = bytearray()
    header += struct.pack("<BBBbBB", 1, 1, 1, LINE_BASE, LINE_RANGE, OPCODE_BASE)  # min insn length 1: data rows
    header += bytes([0, 1, 1, 1, 1, 0, 0, 0, 1, 0, 0, 1])  # standard opcode lengths
    for d in dirs:
        header += d.encode() + b"\0"
    header += b"\0"
    for name, d in files:
        header += name.encode() + b"\0" + uleb(d) + uleb(0) + uleb(0)
    header += b"\0"
    body = struct.pack("<H", 4) + struct.pack("<I", len(header)) + header + program
    return struct.pack("<I", len(body)) + body


def _debug_info(name: str, comp_dir: str) -> tuple[bytes, bytes]:
    """One compile unit: its line table at .debug_line offset 0, its ranges at .debug_ranges 0."""
    DW_TAG_compile_unit = 0x11
    DW_AT_name, DW_AT_stmt_list, DW_AT_low_pc, DW_AT_language = 0x03, 0x10, 0x11, 0x13
    DW_AT_comp_dir, DW_AT_producer, DW_AT_ranges = 0x1B, 0x25, 0x55
    DW_FORM_addr, DW_FORM_data2, DW_FORM_string, DW_FORM_sec_offset = 0x01, 0x05, 0x08, 0x17
    abbrev = uleb(1) + uleb(DW_TAG_compile_unit) + b"\0"  # no children
    for at, form in ((DW_AT_name, DW_FORM_string), (DW_AT_comp_dir, DW_FORM_string),
                     (DW_AT_producer, DW_FORM_string), (DW_AT_language, DW_FORM_data2),
                     (DW_AT_stmt_list, DW_FORM_sec_offset), (DW_AT_low_pc, DW_FORM_addr),
                     (DW_AT_ranges, DW_FORM_sec_offset)):
        abbrev += uleb(at) + uleb(form)
    abbrev += b"\0\0" + b"\0"
    die = (uleb(1) + name.encode() + b"\0" + comp_dir.encode() + b"\0" + PRODUCER.encode() + b"\0"
           + struct.pack("<HIQI", DW_LANG_MIPS_ASSEMBLER, 0, 0, 0))
    body = struct.pack("<HIB", 4, 0, 8) + die  # version 4, abbrev offset 0, address size 8
    return struct.pack("<I", len(body)) + body, abbrev


def _debug_ranges(ranges: list[tuple[int, int]]) -> bytes:
    return b"".join(struct.pack("<QQ", a, b) for a, b in ranges) + struct.pack("<QQ", 0, 0)


def _debug_aranges(ranges: list[tuple[int, int]]) -> bytes:
    body = struct.pack("<HIBB", 2, 0, 8, 0) + b"\0" * 4  # tuples start at a multiple of 16
    body += b"".join(struct.pack("<QQ", a, b - a) for a, b in ranges) + struct.pack("<QQ", 0, 0)
    return struct.pack("<I", len(body)) + body


def _dwarf(image: Image, source_paths: Mapping[str, str]) -> dict[str, bytes]:
    if not image.lines:
        return {}
    dirs, files, findex = _file_table(image, source_paths)
    seqs = _rows(image, findex)
    ranges = sorted((s[0][0], s[-1][0]) for s in seqs)
    merged: list[tuple[int, int]] = []
    for a, b in ranges:
        if merged and merged[-1][1] == a:
            merged[-1] = (merged[-1][0], b)
        else:
            merged.append((a, b))
    main = image.source_files[0] if image.source_files else image.lines[0][2].file
    name = str(Path(source_paths.get(main) or source_path(main)))
    info, abbrev = _debug_info(name, str(Path(name).parent))  # not the cwd: same bytes from any directory
    return {".debug_abbrev": abbrev, ".debug_info": info, ".debug_aranges": _debug_aranges(merged),
            ".debug_ranges": _debug_ranges(merged), ".debug_line": _debug_line(dirs, files, _line_program(seqs))}


# ------------------------------------------------------------------ ELF


def elf_bytes(image: Image, source_paths: Mapping[str, str] | None = None) -> bytes:
    """The ELF of an assembled image. `source_paths` maps a line-table file name to the path the
    DWARF should name (for sources not on disk as assembled); others are taken from the current
    directory, where the assembler named them, and written as absolute paths."""
    sections = _sections(image)
    phnum = sum(1 for s in sections if s[2])
    off = 64 + 56 * phnum
    placed = []  # (name, addr, data, flags, offset)
    for name, addr, data, flags in sections:
        if data:
            off += (addr - off) % PAGE  # p_offset == p_vaddr modulo p_align
        placed.append((name, addr, data, flags, off))
        off += len(data)
    shstr, strtab = _StrTab(), _StrTab()
    symbols, first_global = _symbols(image, sections)
    symtab = bytearray(24)  # the null symbol
    for name, value, size, bind, stype, shndx in symbols:
        symtab += struct.pack("<IBBHQQ", strtab.add(name), bind << 4 | stype, 0, shndx, value, size)
    extra = [(n, SHT_PROGBITS, d, 1, 0, 0, 0) for n, d in _dwarf(image, source_paths or {}).items()]
    nalloc = len(placed)
    symtab_index = 1 + nalloc + len(extra)
    extra += [(".symtab", SHT_SYMTAB, bytes(symtab), 8, symtab_index + 1, first_global, 24),
              (".strtab", SHT_STRTAB, bytes(strtab.data), 1, 0, 0, 0)]
    for name, *_ in placed:
        shstr.add(name)
    for name, *_ in extra:
        shstr.add(name)
    shstr.add(".shstrtab")
    extra.append((".shstrtab", SHT_STRTAB, bytes(shstr.data), 1, 0, 0, 0))

    headers = [bytes(64)]
    blobs: list[tuple[int, bytes]] = []
    phdrs = bytearray()
    for name, addr, data, flags, offset in placed:
        shflags = SHF_ALLOC | (SHF_WRITE if "w" in flags else 0) | (SHF_EXECINSTR if "x" in flags else 0)
        align = min(addr & -addr, PAGE) if addr else PAGE
        headers.append(struct.pack("<IIQQQQIIQQ", shstr.add(name), SHT_PROGBITS, shflags, addr, offset,
                                   len(data), 0, 0, align, 0))
        if data:
            pflags = 4 | (2 if "w" in flags else 0) | (1 if "x" in flags else 0)
            phdrs += struct.pack("<IIQQQQQQ", PT_LOAD, pflags, offset, addr, addr, len(data), len(data), PAGE)
            blobs.append((offset, data))
    for name, stype, data, align, link, info, entsize in extra:
        off += (-off) % align
        headers.append(struct.pack("<IIQQQQIIQQ", shstr.add(name), stype, 0, 0, off, len(data), link, info,
                                   align, entsize))
        blobs.append((off, data))
        off += len(data)
    off += (-off) % 8
    shoff = off
    ehdr = (b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
            + struct.pack("<HHIQQQIHHHHHH", ET_EXEC, EM_AARCH64, 1, image.entry, 64 if phnum else 0, shoff, 0, 64, 56, phnum,
                          64, len(headers), len(headers) - 1))
    out = bytearray(shoff + 64 * len(headers))
    out[0:64] = ehdr
    out[64 : 64 + len(phdrs)] = phdrs
    for offset, data in blobs:
        out[offset : offset + len(data)] = data
    out[shoff:] = b"".join(headers)
    return bytes(out)


def write_elf(image: Image, path: str | os.PathLike) -> Path:
    """Write the ELF to `path`. Sources the image holds as text only (a variant's patched files)
    are written beside it, under `<stem>-src/`, and the DWARF names those copies."""
    out = Path(path)
    source_paths: dict[str, str] = {}
    if image.source_texts:
        src_dir = out.parent / f"{out.stem}-src"
        for name, text in image.source_texts.items():
            absolute = source_path(name)
            try:  # asm/kvm/entry.S for a project file, else the path without its root
                rel = absolute.relative_to(ASM_DIR.parent)
            except ValueError:
                rel = Path(*absolute.parts[1:])
            target = src_dir / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
            source_paths[name] = str(target.resolve())
    out.write_bytes(elf_bytes(image, source_paths))
    return out
