"""The reference toolchain: GNU binutils for aarch64 builds bare-metal ELFs, and
qemu-system-aarch64 (-M virt,virtualization=on) runs them. One place for both, used by
`selftest --qemu`, the ELF-vs-QEMU test and the differential fidelity run."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from harness.data import ASM_DIR

INCLUDE_DIR = ASM_DIR / "include"
LINK_ADDR = 0x4008_0000
TOOLS = ("aarch64-linux-gnu-as", "aarch64-linux-gnu-ld", "qemu-system-aarch64")
# v8.5-A: DIT (v8.4), SSBS and BTI (v8.5) as QEMU 7.2's max implements them; every v8.2 source too.
GNU_AS_MARCH = "-march=armv8.5-a"
QEMU_CPU = {"max": "max", "a57": "cortex-a57"}
# without -nic none QEMU looks for a network ROM Debian's package does not ship
QEMU_ARGS = ("-M", "virt,virtualization=on", "-m", "256", "-nographic", "-monitor", "none",
             "-serial", "stdio", "-nic", "none")


class BuildError(Exception):
    """GNU as or ld rejected a program (the message is their first error line)."""


def missing_tools() -> list[str]:
    return [t for t in TOOLS if shutil.which(t) is None]


def gnu_build(src: Path, out_dir: Path | None = None) -> Path:
    """Assemble `src` with GNU as (GNU_AS_MARCH) and link it at LINK_ADDR; returns the ELF
    (in out_dir, default beside src)."""
    out = (out_dir or src.parent) / src.stem
    obj, elf = out.with_suffix(".o"), out.with_suffix(".elf")
    for cmd in (
        ["aarch64-linux-gnu-as", GNU_AS_MARCH, "-I", str(INCLUDE_DIR), "-o", str(obj), str(src)],
        ["aarch64-linux-gnu-ld", f"-Ttext={LINK_ADDR:#x}", "-o", str(elf), str(obj)],
    ):
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode:
            lines = proc.stderr.strip().splitlines()
            first = next((ln for ln in lines if "Error" in ln), lines[0] if lines else "failed")
            raise BuildError(f"{Path(cmd[0]).name}: {first}")
    return elf


@dataclass
class QemuRun:
    """What QEMU printed, and how the run ended."""

    text: str
    status: str  # "poweroff", or why not
    seconds: float


def run_qemu(elf: Path, cpu: str = "max", timeout: float = 60.0) -> QemuRun:
    start = time.perf_counter()
    cmd = ["qemu-system-aarch64", *QEMU_ARGS, "-cpu", QEMU_CPU[cpu], "-kernel", str(elf)]
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        return QemuRun((e.stdout or b"").decode("utf-8", "replace"), f"timeout after {timeout:.0f} s",
                       time.perf_counter() - start)
    status = "poweroff" if proc.returncode == 0 else f"qemu exit status {proc.returncode}"
    return QemuRun(proc.stdout.decode("utf-8", "replace"), status, time.perf_counter() - start)


def qemu_version() -> str:
    """'7.2' from `qemu-system-aarch64 --version`."""
    out = subprocess.run(["qemu-system-aarch64", "--version"], capture_output=True, text=True).stdout
    m = re.search(r"version (\d+\.\d+)", out)
    return m.group(1) if m else "unknown"
