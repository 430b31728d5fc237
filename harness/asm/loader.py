"""Programs that are already built: bare-metal ELF files and flat binaries."""

from __future__ import annotations

import os
import stat
import struct
from pathlib import Path
from typing import TYPE_CHECKING

from harness.asm.image import AsmError, Image, Segment, SourceLoc
from harness.memmap import RAM_SIZE

if TYPE_CHECKING:
    from elftools.elf.elffile import ELFFile

# What pyelftools raises, besides its ELFError, on a damaged file (verified by fuzzing mutated ELFs).
# What pyelftools raises on damaged input (ArithmeticError: a line program with line_range 0 divides by it)
_ELF_DAMAGE = (struct.error, ValueError, KeyError, IndexError, TypeError, AttributeError,
               AssertionError, UnicodeDecodeError, ArithmeticError, EOFError, RecursionError)


def _load_segments(p: Path, elf) -> tuple[list[Segment], dict[int, int]]:
    """The PT_LOAD segments, checked against RAM and the file before anything is allocated, and
    where each one's file bytes end (the rest is zero fill)."""
    segments = []
    file_ends: dict[int, int] = {}
    total = 0
    for seg in elf.iter_segments():
        if seg["p_type"] != "PT_LOAD" or not seg["p_memsz"]:
            continue
        memsz, filesz = seg["p_memsz"], seg["p_filesz"]
        total += memsz
        if total > RAM_SIZE:  # checked before anything is allocated
            raise AsmError(f"{p}: segments at {seg['p_vaddr']:#x} and before need {total:#x} bytes, "
                           f"more than the {RAM_SIZE >> 20} MiB of RAM")
        if filesz > memsz:
            raise AsmError(f"{p}: segment at {seg['p_vaddr']:#x} has more file bytes ({filesz:#x}) than "
                           f"memory bytes ({memsz:#x})")
        data = seg.data()
        if len(data) != filesz:
            raise AsmError(f"{p}: segment at {seg['p_vaddr']:#x} runs past the end of the file")
        data = data.ljust(memsz, b"\0")
        flags = "r" + ("w" if seg["p_flags"] & 2 else "") + ("x" if seg["p_flags"] & 1 else "")
        segments.append(Segment(f"LOAD@{seg['p_vaddr']:#x}", seg["p_vaddr"], data, flags))
        file_ends[seg["p_vaddr"]] = seg["p_vaddr"] + filesz
    return segments, file_ends


def _symbols(elf) -> tuple[dict[str, int], set[str], list[tuple[int, bool]]]:
    """Defined labels, the global ones, and the $x/$d mapping symbols (code or data from there on)."""
    symbols: dict[str, int] = {}
    globals_: set[str] = set()
    mapping: list[tuple[int, bool]] = []
    symtab = elf.get_section_by_name(".symtab")
    if symtab is not None:
        for sym in symtab.iter_symbols():
            if sym.name.startswith("$x") or sym.name.startswith("$d"):
                mapping.append((sym["st_value"], sym.name.startswith("$x")))
            if sym.name and not sym.name.startswith("$") and sym["st_info"]["type"] in ("STT_NOTYPE", "STT_FUNC", "STT_OBJECT"):
                if sym["st_shndx"] != "SHN_UNDEF":
                    symbols.setdefault(sym.name, sym["st_value"])
                    if sym["st_info"]["bind"] == "STB_GLOBAL":
                        globals_.add(sym.name)
    return symbols, globals_, mapping


def load_elf(path: str | os.PathLike) -> Image:
    # pyelftools is imported here, so running a .S or a .bin does not load it
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    damage = (ELFError, *_ELF_DAMAGE)
    p = _readable(Path(path))
    try:
        with p.open("rb") as f:
            elf = ELFFile(f)
            if elf["e_machine"] != "EM_AARCH64":
                raise AsmError(f"{p}: not an AArch64 ELF ({elf['e_machine']})")
            if elf["e_type"] not in ("ET_EXEC", "ET_DYN"):
                what = "a relocatable object: link it first (ld)" if elf["e_type"] == "ET_REL" else elf["e_type"]
                raise AsmError(f"{p}: not an executable ELF ({what})")
            segments, file_ends = _load_segments(p, elf)
            symbols, globals_, mapping = _symbols(elf)
            try:
                lines, files = _dwarf_lines(elf)
            except damage:
                lines, files = [], []  # damaged debug information: run without source lines
            entry = elf.header["e_entry"]
    except OSError as e:
        raise AsmError(f"{p}: cannot load ELF: {e.strerror}") from None
    except damage as e:
        raise AsmError(f"{p}: cannot load ELF: {type(e).__name__}: {str(e)[:200] or 'damaged file'}") from None
    if not segments:
        raise AsmError(f"{p}: no loadable segment: an empty program")
    if entry % 4 or not any(s.addr <= entry < s.addr + len(s.data) and "x" in s.flags for s in segments):
        raise AsmError(f"{p}: entry point {entry:#x} is not an aligned address in an executable segment")
    return Image(segments, symbols, entry, lines, files, _code_addresses(segments, mapping, file_ends), frozenset(globals_))


def _readable(p: Path) -> Path:
    """p, if it is a file the loaders can read whole (a directory or a file bigger than RAM is not)."""
    try:
        if p.is_dir():
            raise AsmError(f"{p}: is a directory, not a program")
        st = p.stat()
        if not stat.S_ISREG(st.st_mode):  # a FIFO or a device would block or never end
            raise AsmError(f"{p}: not a regular file")
        size = st.st_size
    except FileNotFoundError:
        raise AsmError(f"{p}: no such file") from None
    except OSError as e:
        raise AsmError(f"{p}: {e.strerror or e}") from None
    if size > RAM_SIZE:
        raise AsmError(f"{p}: {size:#x} bytes, more than the {RAM_SIZE >> 20} MiB of RAM")
    return p


def _code_addresses(segments: list[Segment], mapping: list[tuple[int, bool]],
                    file_ends: dict[int, int] | None = None) -> list[int]:
    """Instruction addresses of executable segments; data marked by $d mapping symbols is left out,
    and so is an ELF segment's zero fill past its file bytes (all UDF #0: a 256 MiB p_memsz made a
    list of 64M addresses, 2.8 GB, found by the slow fuzz)."""
    mapping.sort()
    out = []
    k = -1
    for seg in segments:
        if "x" not in seg.flags:
            continue
        end = (file_ends or {}).get(seg.addr, seg.addr + len(seg.data))
        for addr in range(seg.addr, end - 3, 4):
            while k + 1 < len(mapping) and mapping[k + 1][0] <= addr:
                k += 1
            if not mapping or (k >= 0 and mapping[k][1]):
                out.append(addr)
    return out


def _dwarf_lines(elf: ELFFile) -> tuple[list[tuple[int, int, SourceLoc]], list[str]]:
    if not elf.has_dwarf_info():
        return [], []
    out: list[tuple[int, int, SourceLoc]] = []
    files: list[str] = []
    texts: dict[str, list[str]] = {}
    dwarf = elf.get_dwarf_info()
    for cu in dwarf.iter_CUs():
        prog = dwarf.line_program_for_CU(cu)
        if prog is None:
            continue
        names = _file_names(cu, prog)
        prev = None
        for entry in prog.get_entries():
            st = entry.state
            if st is None:
                continue
            if prev is not None and st.address > prev.address:
                idx = prev.file - 1 if prog.header.version < 5 else prev.file
                name = names[idx] if 0 <= idx < len(names) else "?"
                if name not in files:
                    files.append(name)
                out.append((prev.address, st.address - prev.address, SourceLoc(name, prev.line, _line_text(texts, name, prev.line))))
            prev = None if st.end_sequence else st
    return out, files


def _line_text(cache: dict[str, list[str]], path: str, line: int) -> str:
    """The source line, where the file is at hand (shown at stops and in diagnostics)."""
    if path not in cache:
        try:
            cache[path] = Path(path).read_text(errors="replace").splitlines()
        except OSError:
            cache[path] = []
    lines = cache[path]
    return lines[line - 1] if 0 < line <= len(lines) else ""


def _file_names(cu, prog) -> list[str]:
    """The line table's file names with their directories (DWARF 4: directory 0 is the CU's
    comp_dir, the others 1-based; DWARF 5: 0-based, 0 the comp_dir), so a debugger finds the files."""
    def text(v) -> str:
        return v.decode(errors="replace") if isinstance(v, bytes) else str(v)

    comp = cu.get_top_DIE().attributes.get("DW_AT_comp_dir")
    comp_dir = text(comp.value) if comp is not None else ""
    dirs = [text(d) for d in prog["include_directory"]]
    if prog.header.version < 5:
        dirs = [comp_dir, *dirs]
    out = []
    for f in prog["file_entry"]:
        k = f.dir_index
        d = dirs[k] if 0 <= k < len(dirs) else ""
        if d and not os.path.isabs(d) and comp_dir:
            d = os.path.join(comp_dir, d)
        out.append(os.path.join(d, text(f.name)))
    return out


def load_flat(path: str | os.PathLike, load_addr: int) -> Image:
    p = _readable(Path(path))
    if load_addr % 4:
        raise AsmError(f"{p}: load address {load_addr:#x} is not 4-byte aligned (the PC starts there)")
    try:
        data = p.read_bytes()
    except OSError as e:
        raise AsmError(f"{p}: {e.strerror}") from None
    if not data:
        raise AsmError(f"{p}: empty file: an empty program")
    seg = Segment(p.name, load_addr, data, "rwx")
    return Image([seg], {}, load_addr, insn_addrs=_code_addresses([seg], []))


def load_program(path: str | os.PathLike, *, load_addr: int | None = None, **asm_kwargs) -> Image:
    """By suffix: .S/.s assembled by the harness (at load_addr, when given), .elf (or ELF magic)
    loaded where its program headers say, .bin flat at load_addr. A program with no code or data
    is an error, as is a load address for an ELF (its headers place it)."""
    p = _readable(Path(path))
    suffix = p.suffix.lower()
    if suffix in (".s", ".asm"):
        # only a .S needs the assembler (and capstone)
        from harness.asm.assembler import assemble_file

        if load_addr is not None:
            asm_kwargs["base"] = load_addr
        image = assemble_file(p, **asm_kwargs)
        if not any(seg.data for seg in image.segments):
            raise AsmError(f"{p}: no instructions or data: an empty program")
        return image
    try:
        with p.open("rb") as f:
            magic = f.read(4)
    except OSError as e:
        raise AsmError(f"{p}: {e.strerror}") from None
    if suffix == ".elf" or magic == b"\x7fELF":
        if load_addr is not None:
            raise AsmError(f"{p}: an ELF is placed by its program headers; a load address applies to .S and .bin only")
        return load_elf(p)
    if suffix == ".bin":
        if load_addr is None:
            raise AsmError(f"{p}: a flat binary needs a load address (load_addr=, or --load-addr)")
        return load_flat(p, load_addr)
    raise AsmError(f"{p}: unknown program type (expected .S, .elf or .bin)")
