"""Fuzz the program files `python -m harness run` loads: ELFs mutated field by field and byte by
byte (seeds: ELFs GNU as/ld builds, with DWARF, and an ELF written here from an image the
harness assembled), and flat binaries (random bytes and real code) at chosen load addresses.
The property is fuzzkit's: status 0/1/2, one diagnostic line for 2, no traceback, no signal,
bounded time and memory."""

from __future__ import annotations

import itertools
import shutil
import struct
import subprocess
from pathlib import Path

import fuzzkit
import pytest
from elfwrite import elf_from_image
from fuzztwice import twice
from hypothesis import strategies as st

from harness.asm import assemble_text

MAX_INSNS = "2000"
HAVE_GAS = shutil.which("aarch64-linux-gnu-as") is not None and shutil.which("aarch64-linux-gnu-ld") is not None

PROGRAM = """\
    .text
    .global _start
_start:
    adr     x0, vectors
    msr     vbar_el2, x0
    ldr     x1, =0x09000000
    adr     x2, message
1:  ldrb    w3, [x2], #1
    cbz     w3, 2f
    strb    w3, [x1]
    b       1b
2:  svc     #1
    hvc     #2
    ldr     x0, =0x84000008
    smc     #0
    .balign 2048
vectors:
    .rept   16
    mrs     x9, elr_el2
    add     x9, x9, #0
    msr     elr_el2, x9
    eret
    .balign 128
    .endr
    .data
message:
    .asciz  "hello\\n"
value:
    .quad   0x1122334455667788
"""

_counter = itertools.count()


@pytest.fixture(scope="module")
def worker():
    with fuzzkit.Worker() as w:
        yield w


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz_run")


@pytest.fixture(scope="module")
def seeds(workdir) -> list[bytes]:
    image = assemble_text(PROGRAM, "seed.S")
    out = [elf_from_image(image)]
    if HAVE_GAS:
        src = workdir / "seed.s"
        src.write_text(PROGRAM)
        for extra in ([], ["-g"]):
            obj, elf = workdir / "seed.o", workdir / "seed.elf"
            subprocess.run(["aarch64-linux-gnu-as", "-march=armv8.2-a", *extra, "-o", str(obj), str(src)], check=True)
            out.append(obj.read_bytes())  # a relocatable object: must be refused, and mutated
            subprocess.run(["aarch64-linux-gnu-ld", "-Ttext=0x40080000", "-o", str(elf), str(obj)], check=True)
            out.append(elf.read_bytes())
    return out


def run_file(worker, workdir: Path, data: bytes, suffix: str, *extra: str) -> fuzzkit.Result:
    path = workdir / f"p{next(_counter)}{suffix}"
    path.write_bytes(data)
    try:
        r = worker.cli(["run", str(path), "--max-insns", MAX_INSNS, *extra])
        r.what = f"{r.what}  ({len(data)} bytes: {data[:64].hex()}...)"
        return r.check()
    finally:
        path.unlink()


# ---------------------------------------------------------------- ELF mutations

EXTREME = [0, 1, 2, 3, 4, 0x7F, 0x80, 0xFF, 0x100, 0x1000, 0xFFFF, 0x10000, 0x4008_0000, 0x4008_0001, 0x4FFF_FFF0,
           0x5000_0000, 0x7FFF_FFFF, 0xFFFF_FFFF, 0x1_0000_0000, 0x7FFF_FFFF_FFFF_FFFF, 0xFFFF_FFFF_FFFF_FFFF]
# (offset, struct format) of ELF64 header fields; program and section header fields relative to their entry
EHDR_FIELDS = [(4, "B"), (5, "B"), (16, "H"), (18, "H"), (20, "I"), (24, "Q"), (32, "Q"), (40, "Q"), (52, "H"),
               (54, "H"), (56, "H"), (58, "H"), (60, "H"), (62, "H")]
PHDR_FIELDS = [(0, "I"), (4, "I"), (8, "Q"), (16, "Q"), (32, "Q"), (40, "Q"), (48, "Q")]
SHDR_FIELDS = [(0, "I"), (4, "I"), (8, "Q"), (16, "Q"), (24, "Q"), (32, "Q"), (40, "I"), (44, "I"), (56, "Q")]
MASK = {"B": 0xFF, "H": 0xFFFF, "I": 0xFFFF_FFFF, "Q": 0xFFFF_FFFF_FFFF_FFFF}


@st.composite
def mutations(draw, data: bytes) -> bytes:
    buf = bytearray(data)
    phoff, shoff = struct.unpack_from("<QQ", data, 32)
    phnum, shnum = struct.unpack_from("<H", data, 56)[0], struct.unpack_from("<H", data, 60)[0]
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.integers(0, 5))
        if kind <= 2:  # a header field gets an extreme or random value
            if kind == 0 or (phnum == 0 and shnum == 0):
                base, (off, fmt) = 0, draw(st.sampled_from(EHDR_FIELDS))
            elif kind == 1 and phnum:
                base = phoff + 56 * draw(st.integers(0, phnum - 1))
                off, fmt = draw(st.sampled_from(PHDR_FIELDS))
            elif shnum:
                base = shoff + 64 * draw(st.integers(0, shnum - 1))
                off, fmt = draw(st.sampled_from(SHDR_FIELDS))
            else:
                continue
            value = draw(st.one_of(st.sampled_from(EXTREME), st.integers(0, MASK[fmt]))) & MASK[fmt]
            if base + off + struct.calcsize(fmt) <= len(buf):
                struct.pack_into("<" + fmt, buf, base + off, value)
        elif kind == 3 and buf:  # random bytes anywhere
            pos = draw(st.integers(0, len(buf) - 1))
            chunk = draw(st.binary(min_size=1, max_size=16))
            buf[pos : pos + len(chunk)] = chunk
        elif kind == 4:  # truncate or extend
            buf = buf[: draw(st.integers(0, len(buf)))] if draw(st.booleans()) else buf + draw(st.binary(max_size=64))
        else:  # flip bits
            for _ in range(draw(st.integers(1, 8))):
                if buf:
                    pos = draw(st.integers(0, len(buf) - 1))
                    buf[pos] ^= 1 << draw(st.integers(0, 7))
    return bytes(buf)


def _mutated_elfs(worker, workdir, seeds, data):
    seed = data.draw(st.sampled_from(seeds), label="seed")
    mutated = data.draw(mutations(seed), label="mutated")
    run_file(worker, workdir, mutated, data.draw(st.sampled_from([".elf", ".elf", ".bin", ".o"]), label="suffix"))


test_mutated_elfs, test_mutated_elfs_slow = twice(150, 1500, st.data())(_mutated_elfs)


def test_seed_elfs_run(worker, workdir, seeds):
    """The seeds themselves run to the PSCI power-off (and a relocatable object is refused), so the
    mutations start from programs that work."""
    for seed in seeds:
        is_rel = struct.unpack_from("<H", seed, 16)[0] == 1
        r = run_file(worker, workdir, seed, ".elf")
        assert r.status == (2 if is_rel else 0), r.stderr
        if is_rel:
            assert "relocatable" in r.stderr
        else:
            assert r.stdout == "hello\n"


def test_line_program_with_line_range_zero_runs_without_lines(worker, workdir):
    """Found by the slow fuzz: a .debug_line header with line_range 0 made pyelftools divide by
    zero; damaged debug information means a run without source lines, not a traceback."""
    from io import BytesIO

    from elftools.elf.elffile import ELFFile

    from harness.asm.elf import elf_bytes

    data = bytearray(elf_bytes(assemble_text(PROGRAM, "seed.S")))
    line = ELFFile(BytesIO(bytes(data))).get_section_by_name(".debug_line")
    assert struct.unpack_from("<H", data, line["sh_offset"] + 4)[0] == 4  # DWARF 4: line_range at +14
    data[line["sh_offset"] + 14] = 0
    r = run_file(worker, workdir, bytes(data), ".elf")
    assert r.status == 0 and r.stdout == "hello\n", r.stderr


def test_zero_fill_of_an_executable_segment_lists_no_instructions(workdir):
    """Found by the slow fuzz: an ELF without sections whose code segment's p_memsz grew to
    128 MiB listed every zero-fill word as an instruction (32M addresses, gigabytes)."""
    from harness.asm.loader import load_elf

    data = bytearray(elf_from_image(assemble_text(PROGRAM, "seed.S")))
    phoff = struct.unpack_from("<Q", data, 32)[0]
    assert struct.unpack_from("<I", data, phoff + 4)[0] & 1  # the first PT_LOAD is the code
    filesz = struct.unpack_from("<Q", data, phoff + 32)[0]
    struct.pack_into("<Q", data, phoff + 40, 128 << 20)
    path = workdir / "zero-fill.elf"
    path.write_bytes(bytes(data))
    image = load_elf(path)
    assert len(image.segments[0].data) == 128 << 20
    assert 0 < len(image.insn_addrs) <= filesz // 4


# ---------------------------------------------------------------- flat binaries

LOAD_ADDRS = ["0x40080000", "0x40000000", "0x4ffffffc", "0x4fff0000", "0x40080002", "0x3ffffffc", "0x50000000",
              "0", "-4", "0x1_0000_0000", "0xffffffffffffffff", "0x10000000000000000", "abc", "0x", "1e3", "0b100"]


def _flat(worker, workdir, data, load_addr, suffix):
    run_file(worker, workdir, data, suffix, "--load-addr", load_addr)


flat_data = st.one_of(st.binary(max_size=4096),
                      st.builds(lambda code, junk, pos: code[:pos] + junk + code[pos + len(junk):],
                                st.just(b"".join(s.data for s in assemble_text(PROGRAM, "seed.S").segments)),
                                st.binary(min_size=1, max_size=32), st.integers(0, 400)))
test_flat_binaries, test_flat_binaries_slow = twice(100, 1000, flat_data, st.sampled_from(LOAD_ADDRS),
                                                    st.sampled_from([".bin", ".bin", ".elf", ".S", ".txt", ""]))(_flat)
