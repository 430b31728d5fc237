"""A wheel carries everything the commands need: built from the checkout, installed with its
dependencies into a fresh venv, and run from a directory that is not the checkout."""

from __future__ import annotations

import fnmatch
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from harness.scenarios.scenario import matrix

ROOT = Path(__file__).resolve().parents[1]

HELLO = """\
#include "arm64_defs.S"
#include "board.S"
    .text
    .global _start
_start:
    mov     w1, #'o'
    uart_putc w1, x2
    mov     w1, #'k'
    uart_putc w1, x2
    psci_system_off
"""


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["NO_COLOR"] = "1"
    return env


def _run(cmd: list, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    p = subprocess.run([str(c) for c in cmd], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)
    print(f"$ {' '.join(map(str, cmd))}  (in {cwd}) -> {p.returncode}\n{p.stdout[-2000:]}{p.stderr[-2000:]}")
    return p


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, Path]:
    """(the venv's bin/, a working directory outside the checkout)."""
    tmp = tmp_path_factory.mktemp("wheel")
    dist = tmp / "dist"
    p = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", dist, ROOT], tmp)
    assert p.returncode == 0, p.stderr
    (wheel,) = dist.glob("pstate_harness-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    tracked = subprocess.run(["git", "ls-files", "asm", "scenarios"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
    shipped = {f"harness/data/{name}" for name in tracked}
    assert shipped <= names, f"missing from the wheel: {sorted(shipped - names)[:5]}"
    assert any(n.startswith("harness/machine/_icount") and n.endswith(".so") for n in names)
    venv = tmp / "venv"
    assert _run([sys.executable, "-m", "venv", venv], tmp).returncode == 0
    p = _run([venv / "bin" / "python", "-m", "pip", "install", "-q", wheel], tmp)
    assert p.returncode == 0, p.stderr
    work = tmp / "elsewhere"
    work.mkdir()
    return venv / "bin", work


@pytest.mark.slow
def test_installed_package_is_imported_not_the_checkout(installed):
    bin_dir, work = installed
    p = _run([bin_dir / "python", "-c", "import harness.data as d; print(d.ASM_DIR)"], work)
    assert p.returncode == 0
    asm = Path(p.stdout.strip())
    assert asm.is_relative_to(bin_dir.parent) and not asm.is_relative_to(ROOT / "asm")


@pytest.mark.slow
def test_installed_selftest(installed):
    bin_dir, work = installed
    p = _run([bin_dir / "pstate-harness", "selftest"], work)
    assert p.returncode == 0
    assert "runs passed" in p.stdout and "FAIL" not in p.stdout


@pytest.mark.slow
def test_installed_scenarios(installed):
    bin_dir, work = installed
    p = _run([bin_dir / "pstate-harness", "scenarios", "--no-reports", "--only", "v4.13/max-vhe-*"], work)
    assert p.returncode == 0
    n = sum(1 for s in matrix(["v4.13"]) if fnmatch.fnmatchcase(s.id, "v4.13/max-vhe-*"))
    assert f"{n} scenarios" in p.stdout and "A1" in p.stdout
    assert not (work / "reports").exists()


@pytest.mark.slow
def test_installed_user_example_and_reports(installed):
    """The worked TOML example ships too; reports go under the current directory."""
    bin_dir, work = installed
    p = _run([bin_dir / "pstate-harness", "scenarios", "--only", "user/*", "--reports", "out"], work)
    assert p.returncode == 0
    assert "late-pan-reset-vhe-guest-pan0" in p.stdout
    assert (work / "out" / "report.html").is_file()


@pytest.mark.slow
def test_installed_run(installed):
    bin_dir, work = installed
    (work / "ok.S").write_text(HELLO)
    p = _run([bin_dir / "pstate-harness", "run", "ok.S"], work)
    assert p.returncode == 0 and p.stdout == "ok"
