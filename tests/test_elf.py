"""ELF with symbols and DWARF line information (issue 14, item 3): `python -m harness build`,
read back by pyelftools and checked with the real tools (readelf, objdump, qemu-system-aarch64,
and gdb-multiarch attached to `python -m harness gdbserver`)."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile
from rich.text import Text

from harness.arch.features import FEATURES_MAX
from harness.asm import assemble_file, load_elf
from harness.asm.elf import write_elf
from harness.build import main as build_main
from harness.build import scenario_image
from harness.fidelity.words import gnu_link, project_sources
from harness.scenarios.world import LAYOUT, WORLD_S, config_bytes, variant_overrides

ROOT = Path(__file__).resolve().parents[1]
SCENARIO, VARIANT = "max-vhe-kvm_run-pan1-uao0-hvc", "patch-2017"
READELF, OBJDUMP = "aarch64-linux-gnu-readelf", "aarch64-linux-gnu-objdump"
needs = {tool: pytest.mark.skipif(shutil.which(tool) is None, reason=f"{tool} not installed")
         for tool in (READELF, OBJDUMP, "gdb-multiarch", "qemu-system-aarch64")}

HELPER = """\
// macros for prog.S, nested
    .macro  add_once reg
    add     \\reg, \\reg, #1
    .endm
    .macro  add_twice reg
    add_once \\reg
    add_once \\reg
    .endm
"""
PROG = """\
// prog.S: includes, nested macros, data in code, a data section, typed labels
    .include "arm64_defs.S"
    .include "board.S"
    .include "print.S"
#include "helper.inc"

    .text
    .global _start
    .type   _start, %function
_start:
    puts_lit "hello "
    bl      greet
    mov     x1, #0
    add_twice x1
    ldr     x2, =counter
    ldr     x3, [x2]
    psci_system_off
    .size   _start, .-_start

    .type   greet, %function
greet:
    adr     x0, msg
    b       bm_puts
msg:
    .asciz  "elf\\n"
    .balign 4
    print_lib

    .data
    .type   counter, %object
counter:
    .quad   7
    .size   counter, .-counter
"""


@pytest.fixture(scope="module")
def prog(tmp_path_factory) -> tuple[Path, Path]:
    """(prog.S, prog.elf) built by `python -m harness build`."""
    d = tmp_path_factory.mktemp("prog")
    (d / "helper.inc").write_text(HELPER)
    src = d / "prog.S"
    src.write_text(PROG)
    elf = d / "prog.elf"
    assert build_main([str(src), "-o", str(elf)]) == 0
    return src, elf


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> tuple[Path, object]:
    """(world.elf of SCENARIO under VARIANT, its image)."""
    d = tmp_path_factory.mktemp("world")
    elf = d / "world.elf"
    assert build_main(["--scenario", SCENARIO, "--variant", VARIANT, "-o", str(elf)]) == 0
    return elf, scenario_image(SCENARIO, VARIANT)[0]


def _key(loc) -> tuple[str, int]:
    return Path(loc.file).name, loc.line


# ------------------------------------------------------------------ read back (pyelftools)


def test_elf_reads_back_as_the_image(prog):
    src, elf = prog
    img = assemble_file(src)
    back = load_elf(elf)
    assert back.entry == img.entry == img.symbols["_start"]
    assert [(s.addr, s.data, s.flags) for s in back.segments] == [(s.addr, s.data, s.flags) for s in img.segments]
    assert back.insn_addrs == img.insn_addrs  # from the $x/$d mapping symbols
    labels = {n: a for n, a in img.symbols.items() if n in img.label_sections and not n.startswith(("__num_", "__pool_"))}
    assert {n: back.symbols[n] for n in labels} == labels
    assert not [n for n in back.symbols if n.startswith(("__num_", "__pool_", "$"))]
    assert "UART_BASE" not in back.symbols  # equates are not labels
    assert back.globals == {"_start"}
    # the line table: every row of the harness's, by file name and line
    assert [(a, s, _key(loc)) for a, s, loc in back.lines] == [(a, s, _key(loc)) for a, s, loc in img.lines]


def test_symbol_types_sizes_and_mapping_symbols(prog):
    src, elf = prog
    img = assemble_file(src)
    with elf.open("rb") as f:
        e = ELFFile(f)
        assert (e["e_type"], e["e_machine"], e.little_endian, e.elfclass) == ("ET_EXEC", "EM_AARCH64", True, 64)
        syms = {}
        mapping = []
        for s in e.get_section_by_name(".symtab").iter_symbols():
            if s.name in ("$x", "$d"):
                mapping.append((s["st_value"], s.name))
            elif s.name:
                syms[s.name] = (s["st_info"]["type"], s["st_info"]["bind"], s["st_size"],
                                e.get_section(s["st_shndx"]).name if isinstance(s["st_shndx"], int) else s["st_shndx"])
    # `.size _start, .-_start` after its last instruction; greet has no `.size`: 0, as GNU as gives
    assert syms["_start"] == ("STT_FUNC", "STB_GLOBAL", img.symbols["greet"] - img.symbols["_start"], ".text")
    assert syms["greet"] == ("STT_FUNC", "STB_LOCAL", 0, ".text")
    assert syms["counter"] == ("STT_OBJECT", "STB_LOCAL", 8, ".data")
    assert syms["msg"] == ("STT_NOTYPE", "STB_LOCAL", 0, ".text")
    assert syms["prog.S"][0] == "STT_FILE"
    mapping.sort()
    assert mapping[0] == (img.entry, "$x")
    assert (img.symbols["msg"], "$d") in mapping  # the string after `b bm_puts`
    # every switch: code where the harness has an instruction (or padding GNU as marks as code),
    # data elsewhere in .text
    code = set(img.insn_addrs) | {a for a, _size in img.code_fill}
    for addr, name in mapping:
        assert (addr in code) == (name == "$x"), hex(addr)


def test_a_macro_instruction_maps_to_its_body_line_with_its_call_lines_first(prog):
    src, elf = prog
    img = assemble_file(src)
    first = next(a for a, calls in sorted(img.macro_calls.items()) if [n for n, _ in calls] == ["add_once", "add_twice"])
    assert _key(img.source_at(first)) == ("helper.inc", 3)
    with elf.open("rb") as f:
        dwarf = ELFFile(f).get_dwarf_info()
        cu = next(dwarf.iter_CUs())
        prog_ = dwarf.line_program_for_CU(cu)
        names = [fe.name.decode() for fe in prog_["file_entry"]]
        rows = [(names[st.file - 1], st.line) for st in (en.state for en in prog_.get_entries())
                if st is not None and st.address == first and not st.end_sequence]
    # prog.S's call of add_twice, add_twice's call of add_once (helper.inc:6), then the body line
    call_line = next(n for n, line in enumerate(PROG.splitlines(), 1) if line.strip() == "add_twice x1")
    assert rows == [("prog.S", call_line), ("helper.inc", 6), ("helper.inc", 3)]
    # a break at the call line stops at the expansion, in the harness's debugger as in gdb
    assert img.addr_of(f"prog.S:{call_line}") == first


def test_scenario_elf_has_the_config_and_names_the_patched_sources(world):
    elf, img = world
    back = load_elf(elf)
    cfg = img.addr_of("scenario_config")
    from harness.scenarios.catalog import find_scenario

    for off, raw in config_bytes(find_scenario(SCENARIO, VARIANT).config_values()).items():
        seg = next(s for s in back.segments if s.addr <= cfg + off < s.addr + len(s.data))
        assert seg.data[cfg + off - seg.addr :][: len(raw)] == raw
    patched = dict(variant_overrides(VARIANT))
    entry_s = str(ROOT / "asm" / "kvm" / "entry.S")
    copy = elf.parent / "world-src" / "asm" / "kvm" / "entry.S"
    assert copy.read_text() == patched[entry_s]
    with elf.open("rb") as f:
        dwarf = ELFFile(f).get_dwarf_info()
        prog_ = dwarf.line_program_for_CU(next(dwarf.iter_CUs()))
        dirs = [d.decode() for d in prog_["include_directory"]]
        entry = next(fe for fe in prog_["file_entry"] if fe.name == b"entry.S")
        head = next(fe for fe in prog_["file_entry"] if fe.name == b"head.S")
    assert dirs[entry.dir_index - 1] == str(copy.parent.resolve())  # the variant's text, not the file on disk
    assert dirs[head.dir_index - 1] == str(ROOT / "asm" / "kvm")     # unpatched: the checkout's file


@pytest.mark.parametrize("args, message", [
    (["nowhere.S", "-o", "x.elf"], "nowhere.S: no such file"),
    (["-o", "x.elf"], "give a .S file or --scenario NAME"),
    (["prog.S", "--scenario", SCENARIO, "-o", "x.elf"], "give a .S file or --scenario NAME"),
    (["prog.S", "--variant", VARIANT, "-o", "x.elf"], "--variant applies to --scenario only"),
    (["--scenario", "max-vhe-nothing", "-o", "x.elf"], "no scenario v4.13/max-vhe-nothing"),
    (["--scenario", "", "-o", "x.elf"], "no scenario ''"),  # an empty name is a name (found by the slow CLI fuzz)
    (["--scenario", SCENARIO, "--variant", "v9", "-o", "x.elf"], "no scenario v9/"),
    (["bad.S", "-o", "x.elf"], "bad.S:2:5: cannot assemble"),
    (["prog.elf", "-o", "x.elf"], "build takes a .S source"),
    (["prog.S", "-o", "no/such/dir/x.elf"], "cannot write no/such/dir/x.elf"),
    (["prog.S", "-o", "./prog.S"], "./prog.S is the source itself"),
])
def test_build_bad_input_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "prog.S").write_text("    .text\n    nop\n")
    (tmp_path / "prog.elf").write_bytes(b"\x7fELF")
    (tmp_path / "bad.S").write_text("    .text\n    frob x1\n")
    assert build_main(args) == 2
    err = capsys.readouterr().err
    diag = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("    ")]
    assert len(diag) == 1 and message in diag[0], err
    assert not (tmp_path / "x.elf").exists()


def test_same_source_same_bytes_and_the_debugger_lists_it(prog, tmp_path):
    from harness.debugger.core import Debugger

    src, elf = prog
    again = tmp_path / "again.elf"
    assert build_main([str(src), "-o", str(again)]) == 0
    assert again.read_bytes() == elf.read_bytes()
    d = Debugger()
    d.load_program(str(elf))  # the harness's own debugger on the ELF: labels and source lines
    d.execute("break greet")
    assert "greet" in d.execute("continue")
    listing = Text.from_markup(d.execute("list")).plain
    assert "=>    22      adr     x0, msg" in listing, listing


# ------------------------------------------------------------------ binutils


@needs[READELF]
def test_readelf_shows_sections_and_symbols_without_warnings(prog, world, tmp_path):
    empty = tmp_path / "empty.S"
    empty.write_text("// no statements\n")
    assert build_main([str(empty), "-o", str(tmp_path / "empty.elf")]) == 0
    res = subprocess.run([READELF, "-a", "-W", str(tmp_path / "empty.elf")], capture_output=True, text=True)
    assert res.returncode == 0 and "warning" not in (res.stdout + res.stderr).lower(), res.stderr
    for elf in (prog[1], world[0]):
        res = subprocess.run([READELF, "-a", "-W", str(elf)], capture_output=True, text=True)
        out = res.stdout
        assert res.returncode == 0 and res.stderr == "" and "warning" not in out.lower(), res.stderr
        for section in (".text", ".debug_line", ".debug_info", ".debug_abbrev", ".debug_aranges", ".symtab", ".strtab"):
            assert re.search(rf"\] {re.escape(section)}\s", out), section
        assert "Type:                              EXEC" in out and "Machine:                           AArch64" in out
        assert re.search(r"LOAD\s+0x\w+ 0x0000000040080000 0x0000000040080000", out)
    out = subprocess.run([READELF, "-s", "-W", str(world[0])], capture_output=True, text=True).stdout
    assert re.search(r"NOTYPE\s+LOCAL\s+DEFAULT\s+\d+ __guest_exit$", out, re.M)
    assert "__num_" not in out and "__pool_" not in out  # numeric local labels and literal pools stay out, as in GNU as


def _objdump_locations(elf: Path) -> dict[int, tuple[str | None, int, str, str]]:
    """addr -> (file name, line, word, mnemonic) of each instruction `objdump -dl` shows. objdump
    prints a location only when the line number changes, so the file name is None where it
    printed none (the same line number in another file goes unsaid)."""
    out = subprocess.run([OBJDUMP, "-dl", str(elf)], capture_output=True, text=True, check=True).stdout
    name, line, fresh = None, 0, False
    rows = {}
    for ln in out.splitlines():
        m = re.match(r"^(\S+\.(?:S|inc)):(\d+)", ln)
        if m:
            name, line, fresh = Path(m.group(1)).name, int(m.group(2)), True
            continue
        m = re.match(r"^\s+([0-9a-f]+):\s+([0-9a-f]{8})\s+(\S+)", ln)
        if m:
            rows[int(m.group(1), 16)] = (name if fresh else None, line, m.group(2), m.group(3))
            fresh = False
    return rows


@needs[OBJDUMP]
def test_objdump_dl_shows_the_source_line_of_every_instruction(prog, world):
    for elf, img in ((prog[1], assemble_file(prog[0])), world):
        rows = _objdump_locations(elf)
        words = dict(img.words())
        named = 0
        for addr in img.insn_addrs:
            name, line, word, mnem = rows[addr]
            want = _key(img.source_at(addr))
            assert line == want[1] and name in (None, want[0]), hex(addr)
            named += name is not None
            assert int(word, 16) == words[addr] and mnem != ".word", hex(addr)  # disassembled as code
        assert named > len(img.insn_addrs) // 2
        pools = [a for n, a in img.symbols.items() if n.startswith("__pool_")]
        assert pools and all(rows[a][3] == ".word" for a in pools)  # literal pools dumped as data ($d)
    excerpt = subprocess.run([OBJDUMP, "-dl", str(world[0])], capture_output=True, text=True).stdout
    ge = world[1].symbols["__guest_exit"]
    assert re.search(rf"<__guest_exit>:\n__guest_exit\(\):\n\S+/entry.S:{world[1].source_at(ge).line}\n\s+{ge:x}:", excerpt)


PADDING = """\
    .text
    .global _start
_start:
    nop
    .align  4                   // NOPs after an instruction
    mov     x0, #1
    .word   0x12345678
    .align  4                   // NOPs after data
    mov     x1, #2
    .byte   1
    .align  3                   // zeros to a word boundary (data), then a NOP
    mov     x2, #3
    .balign 16, 0               // an explicit fill: code too for GNU as (udf #0)
    ldr     x3, =0x1122334455667788
    .byte   7
    .ltorg                      // the pool's alignment is code, its entries data
    .p2align 5
    ret
"""


def _objdump_code(elf: Path) -> dict[int, str]:
    """addr -> disassembly of every line `objdump -d` shows as an instruction (not .word/.byte)."""
    out = subprocess.run([OBJDUMP, "-d", str(elf)], capture_output=True, text=True, check=True).stdout
    rows = {}
    for ln in out.splitlines():
        m = re.match(r"^\s+([0-9a-f]+):\t[0-9a-f ]+\t(.*)$", ln)
        if m and not m.group(2).startswith("."):
            rows[int(m.group(1), 16)] = re.sub(r"\s*(<[^>]*>|//.*)", "", m.group(2)).strip()
    return rows


@needs[OBJDUMP]
@pytest.mark.skipif(shutil.which("aarch64-linux-gnu-as") is None, reason="GNU as not installed")
@pytest.mark.parametrize("source", ["padding", "hostile"])
def test_objdump_shows_alignment_padding_in_code_as_gnu_as_marks_it(source, tmp_path):
    # GNU as marks alignment in a code section as code ($x: the NOPs it pads with; the zeros up
    # to a word boundary are $d), so `objdump -d` shows `nop`, not `.word 0xd503201f`.
    if source == "padding":
        src = tmp_path / "padding.S"
        src.write_text(PADDING)
    else:
        src = ROOT / "tests" / "data" / "asm" / "hostile.S"
    img = assemble_file(src)
    ours = _objdump_code(write_elf(img, tmp_path / "ours.elf"))
    gnu_dir = tmp_path / "gnu"
    gnu_dir.mkdir()
    assert ours == _objdump_code(gnu_link(src, img, FEATURES_MAX, gnu_dir))
    text = next(seg for seg in img.segments if seg.name == ".text")
    nops = [a for start, size in img.code_fill for a in range(start, start + size, 4)
            if text.data[a - text.addr : a - text.addr + 4] == bytes.fromhex("1f2003d5")]
    assert nops and all(ours[a] == "nop" for a in nops)


@pytest.mark.slow
@needs[OBJDUMP]
@pytest.mark.skipif(shutil.which("aarch64-linux-gnu-as") is None, reason="GNU as not installed")
@pytest.mark.parametrize("src", project_sources(), ids=lambda s: s.name)
def test_objdump_shows_the_code_of_every_project_source_as_gnu_as_marks_it(src, tmp_path):
    overrides = dict(variant_overrides(src.variant)) if src.variant else None
    kwargs = {"section_addresses": LAYOUT} if src.path == WORLD_S else {}
    img = assemble_file(src.path, features=src.features, overrides=overrides, **kwargs)
    ours = _objdump_code(write_elf(img, tmp_path / "ours.elf"))
    gnu_dir = tmp_path / "gnu"
    gnu_dir.mkdir()
    assert ours == _objdump_code(gnu_link(src.path, img, src.features, gnu_dir, overrides=overrides))



def _symtab(elf: Path) -> dict[str, tuple[int, int, str, str]]:
    """name -> (value, size, type, bind) of the named symbols but the mapping and file symbols."""
    with elf.open("rb") as f:
        return {s.name: (s["st_value"], s["st_size"], s["st_info"]["type"], s["st_info"]["bind"])
                for s in ELFFile(f).get_section_by_name(".symtab").iter_symbols()
                if s.name and s.name not in ("$x", "$d") and s["st_info"]["type"] != "STT_FILE"}


@pytest.mark.skipif(shutil.which("aarch64-linux-gnu-as") is None, reason="GNU as not installed")
def test_symbol_types_and_sizes_are_gnu_as_s(prog, tmp_path):
    # `.type`/`.size` as GNU as gives them (STT_FUNC/STT_OBJECT and st_size; 0 without `.size`),
    # every other label STT_NOTYPE: for the test program and for the world (kvm_call_hyp and
    # host_world_switch are typed and sized in kvm-arm.S).
    overrides = dict(variant_overrides(VARIANT))
    world = assemble_file(WORLD_S, features=FEATURES_MAX, overrides=overrides, section_addresses=LAYOUT)
    for name, src, img, kw in (("prog", prog[0], assemble_file(prog[0]), {}),
                               ("world", WORLD_S, world, {"overrides": overrides})):
        d = tmp_path / name
        d.mkdir()
        ours = _symtab(write_elf(img, d / "ours.elf"))
        gnu = _symtab(gnu_link(src, img, FEATURES_MAX, d, **kw))
        assert {n: gnu.get(n) for n in ours} == ours, name
        assert {n for n, v in ours.items() if v[2] == "STT_FUNC" and v[1]} >= (
            {"_start"} if name == "prog" else {"kvm_call_hyp", "host_world_switch"})


@needs[OBJDUMP]
def test_decoded_line_table_agrees_with_the_harness_for_every_instruction(prog, world):
    for elf, img in ((prog[1], assemble_file(prog[0])), world):
        out = subprocess.run([OBJDUMP, "--dwarf=decodedline", str(elf)], capture_output=True, text=True,
                             check=True).stdout
        last: dict[int, tuple[str, int]] = {}
        for ln in out.splitlines():
            f = ln.split()
            if len(f) >= 3 and f[2].startswith("0x") and f[1].isdigit():
                last[int(f[2], 16)] = (f[0], int(f[1]))  # the address's last row is its line
        assert {a: _key(img.source_at(a)) for a in img.insn_addrs} == {a: last[a] for a in img.insn_addrs}


# ------------------------------------------------------------------ running it


def test_the_elf_runs_under_harness_run_with_the_same_output_as_the_source(prog):
    src, elf = prog
    outs = []
    for program in (src, elf):
        res = subprocess.run([sys.executable, "-m", "harness", "run", str(program)], capture_output=True, text=True,
                             cwd=src.parent, timeout=120)
        assert res.returncode == 0, res.stderr
        outs.append(res.stdout)
    assert outs[0] == outs[1] == "hello elf\n"


@pytest.mark.qemu
@needs["qemu-system-aarch64"]
def test_the_elf_runs_on_qemu_kernel(prog, world):
    from harness.qemu import run_qemu

    run = run_qemu(prog[1])
    assert (run.status, run.text) == ("poweroff", "hello elf\n")
    assert run_qemu(world[0]).status == "poweroff"  # the world switch, VHE, to PSCI SYSTEM_OFF


# ------------------------------------------------------------------ gdb-multiarch on the gdbserver


def gdb_session(tmp_path: Path, variant: str, script: str, connected=None) -> tuple[list[str], str]:
    """gdb-multiarch -batch with `script`, on the command line `gdbserver` prints for SCENARIO under
    `variant` (`connected(argv)` runs while the server is up); gdb and the server must both end."""
    srv = subprocess.Popen([sys.executable, "-m", "harness", "gdbserver", "--port", "0", SCENARIO, "--variant", variant],
                           stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        assert srv.stderr is not None
        srv.stderr.readline()
        argv = shlex.split(srv.stderr.readline().split("connect: ", 1)[1].strip())
        if connected is not None:
            connected(argv)
        path = tmp_path / "session.gdb"
        path.write_text(script)
        res = subprocess.run([*argv, "-q", "-batch", "-x", str(path)], capture_output=True, text=True, timeout=120)
        srv.wait(timeout=30)
    finally:
        srv.terminate()
        srv.wait()
    assert res.returncode == 0, res.stderr
    return argv, res.stdout


@needs["gdb-multiarch"]
def test_gdb_debugs_the_scenario_at_source_level(tmp_path):
    img = scenario_image(SCENARIO, VARIANT)[0]
    ge = img.symbols["__guest_exit"]
    line_ge = img.source_at(ge)
    plain_line = img.source_at(ge + 8).line
    # the first macro expansion in __guest_exit, by its call line in entry.S
    exp_addr, calls = next((a, c) for a, c in sorted(img.macro_calls.items()) if a > ge + 8)
    call_line = calls[-1][1].line
    assert Path(calls[-1][1].file).name == "entry.S"
    assert img.addr_of(f"entry.S:{plain_line}") == ge + 8 and img.addr_of(f"entry.S:{call_line}") == exp_addr

    def connected(argv: list[str]) -> None:
        elf = Path(argv[1])
        assert argv[0] == "gdb-multiarch" and elf.is_file() and argv[2:] == ["-ex", argv[3]]
        assert re.fullmatch(r"target remote 127\.0\.0\.1:\d+", argv[3])

    argv, out = gdb_session(tmp_path, VARIANT, f"""set pagination off
set confirm off
break __guest_exit
break entry.S:{plain_line}
break entry.S:{call_line}
continue
printf "PC=%lx\\n", $pc
info symbol $pc
list
disassemble /s
stepi
printf "PC=%lx\\n", $pc
info line *$pc
continue
printf "PC=%lx\\n", $pc
continue
printf "PC=%lx\\n", $pc
kill
""", connected)
    elf = Path(argv[1])
    pcs = [int(x, 16) for x in re.findall(r"^PC=([0-9a-f]+)$", out, re.M)]
    assert pcs == [ge, ge + 4, ge + 8, exp_addr], out
    assert re.search(rf"Breakpoint 1 at {ge:#x}: file \S+/entry\.S, line {line_ge.line}\.", out), out
    assert re.search(rf"Breakpoint 3 at {exp_addr:#x}: file \S+/entry\.S, line {call_line}\.", out), out
    src = elf.parent / f"{elf.stem}-src" / "asm" / "kvm" / "entry.S"  # the variant's entry.S, written beside the ELF
    assert f"Breakpoint 1, __guest_exit () at {src}:{line_ge.line}\n" in out, out
    assert "__guest_exit in section .hyp.text" in out
    assert f"{line_ge.line}\t{line_ge.text}\n" in out  # `list`: the patched source, as assembled
    assert "Dump of assembler code for function __guest_exit:" in out
    assert re.search(rf"{line_ge.line}\t{re.escape(line_ge.text)}\n=> 0x0*{ge:x} <\+0>:\t", out), out
    nxt = img.source_at(ge + 4)
    assert f'Line {nxt.line} of "{src}" starts at address {ge + 4:#x} <__guest_exit+4>' in out
    body = img.source_at(exp_addr)
    assert re.search(rf"Breakpoint 3, __guest_exit \(\) at \S+/entry\.S:{body.line}\n", out), out
    assert not elf.exists()  # the temporary ELF went with the server



# (variant, the function, the call's return label): a call whose return address has a label of
# its own, per family of the run function (v4.13's C __kvm_vcpu_run, v5.11's VHE split).
NEXT_OVER_BL = [
    ("patch-2017", "host_world_switch", "host_after_call"),        # bl kvm_call_hyp
    ("v4.13", "__kvm_vcpu_run", "vcpu_run_after_guest"),          # bl __guest_enter
    ("v5.11", "__kvm_vcpu_run_vhe", "vcpu_run_after_guest"),      # bl __guest_enter
]


@needs["gdb-multiarch"]
@pytest.mark.parametrize(("variant", "func_name", "after"), NEXT_OVER_BL)
def test_gdb_next_over_bl_stops_at_the_label_after_the_call(tmp_path, variant, func_name, after):
    # The function is STT_FUNC with its `.size`, so gdb takes the label after the `bl` for a place
    # inside it, not a function of its own, and `next` stops there (with every label a function
    # start, it ran on to the end of the program). The callee (kvm_call_hyp, __guest_enter) is
    # typed too; __guest_enter returns there only after the guest ran and exited (__guest_exit).
    img = scenario_image(SCENARIO, variant)[0]
    call = img.symbols[after] - 4
    func = img.symbols[func_name]
    assert func < call and img.label_sizes[func_name] > call + 4 - func
    out = gdb_session(tmp_path, variant, f"""set pagination off
set confirm off
break *{call:#x}
continue
x/i $pc
next
printf "PC=%lx\\n", $pc
info symbol $pc
kill
""")[1]
    assert re.search(rf"=> {call:#x} <{func_name}\+{call - func}>:\tbl\t", out), out
    assert re.findall(r"^PC=([0-9a-f]+)$", out, re.M) == [f"{call + 4:x}"], out
    assert f"{func_name} + {call + 4 - func} in section " in out, out


def _serve(args: list[str], cwd: Path) -> tuple[list[str], int]:
    """Start `gdbserver ARGS --port 0`, read what it prints before serving, stop it (SIGTERM)."""
    srv = subprocess.Popen([sys.executable, "-m", "harness", "gdbserver", "--port", "0", *args],
                           stderr=subprocess.PIPE, text=True, cwd=cwd)
    assert srv.stderr is not None
    lines = [srv.stderr.readline().strip()]
    if lines[0] and "on 127.0.0.1:" in lines[0]:
        lines.append(srv.stderr.readline().strip())
        lines.append(str(Path(shlex.split(lines[1].split("connect: ", 1)[1])[1]).exists()))
        srv.terminate()
    lines += [ln.strip() for ln in srv.stderr.read().splitlines() if ln.strip()]
    return lines, srv.wait()


def test_gdbserver_writes_the_elf_of_a_program_and_removes_it(prog, tmp_path):
    src, elf = prog
    lines, _ = _serve([str(src)], src.parent)
    cmd = shlex.split(lines[1].split("connect: ", 1)[1])
    assert cmd[0] == "gdb-multiarch" and Path(cmd[1]).name == "prog.elf" and lines[2] == "True"
    assert not Path(cmd[1]).parent.exists()  # the temporary directory went with the server
    kept = tmp_path / "kept.elf"
    lines, _ = _serve([str(src), "--elf", str(kept)], src.parent)
    assert shlex.split(lines[1].split("connect: ", 1)[1])[1] == str(kept)
    assert kept.read_bytes() == elf.read_bytes()  # what `build` writes
    lines, _ = _serve([str(elf)], src.parent)  # an ELF is given to gdb as it is
    assert shlex.split(lines[1].split("connect: ", 1)[1])[1] == str(elf)


def test_gdbserver_cannot_write_the_elf_is_one_line_and_exit_2(prog, tmp_path):
    lines, status = _serve([str(prog[0]), "--elf", str(tmp_path / "no" / "dir" / "x.elf")], tmp_path)
    assert status == 2 and len(lines) == 1 and lines[0].startswith("gdbserver: cannot write the ELF:"), lines
