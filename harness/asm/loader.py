"""Programs that are already built: bare-metal ELF files and flat binaries."""

from __future__ import annotations

import os
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from harness.asm.image import AsmError, Image, Segment, SourceLoc


def load_elf(path: str | os.PathLike) -> Image:
    p = Path(path)
    try:
        with p.open("rb") as f:
            elf = ELFFile(f)
            if elf["e_machine"] != "EM_AARCH64":
                raise AsmError(f"{p}: not an AArch64 ELF ({elf['e_machine']})")
            segments = []
            for seg in elf.iter_segments():
                if seg["p_type"] != "PT_LOAD" or not seg["p_memsz"]:
                    continue
                data = seg.data().ljust(seg["p_memsz"], b"\0")
                flags = "r" + ("w" if seg["p_flags"] & 2 else "") + ("x" if seg["p_flags"] & 1 else "")
                segments.append(Segment(f"LOAD@{seg['p_vaddr']:#x}", seg["p_vaddr"], data, flags))
            symbols: dict[str, int] = {}
            globals_: set[str] = set()
            mapping: list[tuple[int, bool]] = []  # ($x / $d mapping symbols: code or data from here on)
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
            lines, files = _dwarf_lines(elf)
            entry = elf.header["e_entry"]
    except (OSError, ELFError) as e:
        raise AsmError(f"{p}: cannot load ELF: {e}") from None
    return Image(segments, symbols, entry, lines, files, _code_addresses(segments, mapping), frozenset(globals_))


def _code_addresses(segments: list[Segment], mapping: list[tuple[int, bool]]) -> list[int]:
    """Instruction addresses of executable segments; data marked by $d mapping symbols is left out."""
    mapping.sort()
    out = []
    k = -1
    for seg in segments:
        if "x" not in seg.flags:
            continue
        for addr in range(seg.addr, seg.addr + len(seg.data) - 3, 4):
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
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise AsmError(f"{p}: {e.strerror}") from None
    seg = Segment(p.name, load_addr, data, "rwx")
    return Image([seg], {}, load_addr, insn_addrs=_code_addresses([seg], []))


def load_program(path: str | os.PathLike, *, load_addr: int | None = None, **asm_kwargs) -> Image:
    """By suffix: .S/.s assembled by the harness, .elf (or ELF magic) loaded, .bin flat at load_addr."""
    from harness.asm.assembler import assemble_file

    p = Path(path)
    suffix = p.suffix.lower()
    if suffix in (".s", ".asm"):
        return assemble_file(p, **asm_kwargs)
    try:
        magic = p.read_bytes()[:4]
    except OSError as e:
        raise AsmError(f"{p}: {e.strerror}") from None
    if suffix == ".elf" or magic == b"\x7fELF":
        return load_elf(p)
    if suffix == ".bin":
        if load_addr is None:
            raise AsmError(f"{p}: a flat binary needs a load address (load_addr=, or --load-addr)")
        return load_flat(p, load_addr)
    raise AsmError(f"{p}: unknown program type (expected .S, .elf or .bin)")
