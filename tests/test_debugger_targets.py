"""What the debugger loads and lists: a flat .bin at --load-addr (the option and parsing `run`
has), and `list` showing a variant's patched source, which is what ran."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from rich.text import Text

from harness.asm import load_program
from harness.data import source_path
from harness.debugger import cli as debug_cli
from harness.debugger import gdbcli as gdb_cli
from harness.debugger.core import Debugger, DebuggerError

ROOT = Path(__file__).resolve().parents[1]
HELLO = ROOT / "tests/data/debug/hello.S"  # prints "hello, world", calls leaf, powers off
LOAD = 0x40100000  # not the default 0x40080000: a .bin placed there proves the option was used


def plain(markup: str) -> str:
    return Text.from_markup(markup).plain


def flat_hello(directory: Path, name: str = "hello.bin") -> Path:
    """hello.S assembled at LOAD, written as a flat binary (one segment: code, literals, string)."""
    image = load_program(HELLO, load_addr=LOAD)
    assert len(image.segments) == 1 and image.segments[0].addr == LOAD
    out = directory / name
    out.write_bytes(image.segments[0].data)
    return out


@pytest.fixture
def hello_bin(tmp_path: Path) -> Path:
    return flat_hello(tmp_path)


def harness(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *args], input=stdin, capture_output=True, text=True,
                          cwd=ROOT, timeout=120)


# ---- a flat binary at --load-addr


def test_debug_runs_a_flat_binary_at_its_load_address(hello_bin: Path):
    res = harness("debug", str(hello_bin), "--load-addr", f"{LOAD:#x}", "--no-color",
                  stdin="info registers pc\nstepi 3\ninfo registers pc\nrun\ninfo registers pc\n")
    assert res.returncode == 0, res.stderr
    pcs = [int(ln.split()[1], 16) for ln in res.stdout.splitlines() if ln.startswith("pc ")]
    # from the load address; `run` starts it again there (the reload keeps the address)
    assert pcs[:2] == [LOAD, LOAD + 12] and res.stdout.count("hello, world") == 1
    assert f"starting program {hello_bin}" in res.stdout and "PSCI SYSTEM_OFF" in res.stdout


def test_load_and_run_commands_take_a_load_address(hello_bin: Path):
    d = Debugger()
    out = plain(d.execute(f"load {hello_bin} --load-addr {LOAD:#x}"))
    assert out.startswith(f"loaded program {hello_bin}") and d.board.pc == LOAD
    d.execute("stepi")
    d.execute("run")  # the same program, at the same address, from the start
    assert d.board.off is not None and d.board.read_mem(LOAD, 4) == hello_bin.read_bytes()[:4]
    out = plain(d.execute(f"run {hello_bin} --load-addr 0x40200000"))
    assert "PSCI SYSTEM_OFF" in out and d.board.read_mem(0x40200000, 4) == hello_bin.read_bytes()[:4]


@pytest.fixture(scope="module")
def hello_elf(tmp_path_factory) -> Path:
    from harness.asm.elf import write_elf

    return write_elf(load_program(HELLO), tmp_path_factory.mktemp("elf") / "hello.elf")


@pytest.mark.parametrize("cmd, msg", [
    ("load {bin}", "a flat binary needs a load address"),
    ("load {bin} --load-addr", "--load-addr needs a value"),
    ("load {bin} --load-addr 0x40080002", "--load-addr: 0x40080002 is not 4-byte aligned"),
    ("load {bin} --load-addr 0x1000", "--load-addr: 0x1000 is outside RAM"),
    ("load {bin} --load-addr nope", "--load-addr: not a number: 'nope'"),
    ("run {bin} --load-addr 0x40080000 extra", "run [PROGRAM [--load-addr ADDR]]"),
    ("load {elf} --load-addr 0x40080000", "an ELF is placed by its program headers"),
])
def test_bad_load_addresses_in_commands_are_one_line(hello_bin: Path, hello_elf: Path, cmd: str, msg: str):
    d = Debugger()
    with pytest.raises(DebuggerError) as e:
        d.execute(cmd.format(bin=hello_bin, elf=hello_elf))
    assert msg in str(e.value) and "\n" not in str(e.value)


MAINS = {"debug": debug_cli.main, "gdbserver": gdb_cli.main}


def _main(command: str, args: list[str], capsys) -> tuple[int, str]:
    """The command's main in this process: (exit status, stderr)."""
    try:
        status = MAINS[command](args)
    except SystemExit as e:  # argparse's usage errors
        status = e.code
    return status, capsys.readouterr().err


@pytest.mark.parametrize("command", ["debug", "gdbserver"])
def test_bad_load_addr_on_the_command_line_is_one_line(hello_bin: Path, command: str, capsys):
    for value, msg in (("0x40080002", "is not 4-byte aligned"), ("0x10", "is outside RAM"),
                       ("0x50000000", "is outside RAM"), ("zz", "not a number: 'zz'"), ("", "not a number: ''")):
        status, err = _main(command, [str(hello_bin), "--load-addr", value], capsys)
        assert status == 2 and err.count("\n") == 1, err
        assert "--load-addr" in err and msg in err and "Traceback" not in err


@pytest.mark.parametrize("command", ["debug", "gdbserver"])
def test_load_addr_that_cannot_apply_is_one_line(hello_bin: Path, hello_elf: Path, command: str, capsys):
    for args, msg in (([str(hello_bin)], "a flat binary needs a load address (load_addr=, or --load-addr)"),
                      ([str(hello_elf), "--load-addr", "0x40080000"], "an ELF is placed by its program headers"),
                      (["max-vhe-kvm_run-pan1-uao0-hvc", "--load-addr", "0x40080000"],
                       "a load address applies to a .S or .bin program, not a scenario")):
        status, err = _main(command, args, capsys)
        assert status == 2 and err.count("\n") == 1 and msg in err, err


def test_the_exit_status_of_a_bad_load_addr(hello_bin: Path):
    res = harness("gdbserver", str(hello_bin), "--load-addr", "0x3")
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "not 4-byte aligned" in res.stderr


# ---- `list` shows the text that was assembled


def test_list_under_a_variant_shows_the_patched_source():
    """v4.16's diff adds kvm_arm_vhe_guest_enter()'s `msr daifset, #0xf` after host_before_call
    in kvm-arm.S; the file on disk (v4.13) has `ldr x0, =__kvm_vcpu_run` there instead."""
    on_disk = source_path("asm/kvm/kvm-arm.S").read_text().splitlines()
    assert not any("kvm_arm_vhe_guest_enter" in ln for ln in on_disk)
    d = Debugger()
    d.load("max-vhe-kvm_run-pan1-uao0-hvc", "v4.16")
    patched = d.board.image.source_texts["asm/kvm/kvm-arm.S"].splitlines()
    n = next(i for i, ln in enumerate(patched, 1) if "kvm_arm_vhe_guest_enter" in ln)
    assert on_disk[n - 1] != patched[n - 1]  # a line the diff changed
    # by address: the instruction of that line, which ran (listed from five lines above it)
    addr = d.board.image.addr_of(f"kvm-arm.S:{n}")
    assert d.board.image.source_at(addr).line == n
    out = plain(d.execute(f"list *{addr:#x}"))
    assert f"{n:>5}  {patched[n - 1]}" in out
    assert out.splitlines()[0].split()[0] == str(n - 5)
    # by FILE:LINE: that line of that file, as gdb lists it
    out = plain(d.execute(f"list kvm-arm.S:{n}"))
    assert f"{n:>5}  {patched[n - 1]}" in out and f"{n + 1:>5}  {patched[n]}" in out
    # and on: `list` goes on in the patched text, which is longer than the file on disk
    d.execute(f"list kvm-arm.S:{len(patched) - 4}")
    with pytest.raises(DebuggerError, match=f"out of range: asm/kvm/kvm-arm.S has {len(patched)} lines"):
        d.execute("list")
    assert len(patched) > len(on_disk)


def test_list_of_the_base_variant_reads_the_file():
    d = Debugger()
    d.load("max-vhe-kvm_run-pan1-uao0-hvc")
    assert "asm/kvm/kvm-arm.S" not in d.board.image.source_texts
    on_disk = source_path("asm/kvm/kvm-arm.S").read_text().splitlines()
    out = plain(d.execute("list kvm-arm.S:20"))
    assert f"   20  {on_disk[19]}" in out
