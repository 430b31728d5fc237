"""Each command imports only what it uses (issue 12: `run X.elf` starts within 0.1 s of a bare
`import unicorn`; bench/bench_startup.py times it). Not a timing test: `python -X importtime`
lists every module a real run of the command imported, and these must not be among them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from elfwrite import elf_from_image

from harness.asm import assemble_text

POWER_OFF = """
    .text
    .global _start
_start:
    ldr     x0, =0x84000008        // PSCI SYSTEM_OFF
    smc     #0
"""
ASSEMBLER = ("harness.asm.assembler", "harness.asm.preprocess", "keystone")
REPORTS = ("matplotlib", "harness.trace.plot", "harness.trace.vcd", "vcd")


def imported(*argv: str, cwd: Path) -> set[str]:
    """The modules `python -m harness ARGV` imported, from -X importtime (after checking it ran)."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    p = subprocess.run([sys.executable, "-X", "importtime", "-m", "harness", *argv], cwd=cwd, env=env,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    return {line.rsplit("|", 1)[1].strip() for line in p.stderr.splitlines() if line.startswith("import time:")}


@pytest.fixture(scope="module")
def programs(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("lazy")
    image = assemble_text(POWER_OFF, "off.S")
    (d / "off.S").write_text(POWER_OFF)
    (d / "off.elf").write_bytes(elf_from_image(image))
    (d / "off.bin").write_bytes(b"".join(seg.data for seg in image.segments))
    return {"S": d / "off.S", "elf": d / "off.elf", "bin": d / "off.bin"}


def test_run_elf_imports_no_assembler_and_no_reports(programs):
    mods = imported("run", str(programs["elf"]), cwd=programs["elf"].parent)
    assert "unicorn" in mods and "elftools.elf.elffile" in mods   # it did load and run the ELF
    assert not mods & {*ASSEMBLER, *REPORTS, "rich"}


def test_run_elf_imports_no_capstone(programs):
    assert "capstone" not in imported("run", str(programs["elf"]), cwd=programs["elf"].parent)


def test_run_bin_and_source_import_no_elf_reader(programs):
    bin_mods = imported("run", str(programs["bin"]), "--load-addr", "0x40080000", cwd=programs["bin"].parent)
    assert not bin_mods & {"elftools", *ASSEMBLER, *REPORTS}
    src_mods = imported("run", str(programs["S"]), cwd=programs["S"].parent)
    assert "harness.asm.assembler" in src_mods and "elftools" not in src_mods


def test_scenarios_without_reports_imports_no_matplotlib(tmp_path):
    mods = imported("scenarios", "--no-reports", "--only", "v4.13/max-vhe-kvm_run-pan0-uao0-hvc", cwd=tmp_path)
    assert "harness.scenarios.runner" in mods
    assert not mods & {*REPORTS, "elftools"}
