"""What the debugger shows, as rich markup: pure functions of the board's state and of what they
are given. Nothing here changes the board or the session (the caller remembers what it showed,
e.g. the PSTATE the next stop highlights changes against)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from rich.markup import escape

from harness.arch.pstate import (
    PSTATE_FIELDS as PSTATE_FIELDS,  # the names `watch`/`set pstate.F` take
)
from harness.arch.pstate import VIEW_ORDER, PState
from harness.arch.regs import BY_NAME
from harness.arch.syndrome import decode_esr
from harness.debugger.base import DebuggerError
from harness.machine import decode
from harness.machine.board import Board, BoardError
from harness.trace import events as ev

if TYPE_CHECKING:
    from harness.debugger.execution import Stop
    from harness.debugger.points import Breakpoint, Watch

# The PSTATE line, in the order it shows the fields: (label, PState attribute), every row of
# harness.arch.regs.PSTATE in its view order. Stops, `info pstate`, `info registers`.
PSTATE_LINE = tuple((f.label, f.key) for f in VIEW_ORDER)

SYSREG_GROUPS = {
    "el2": ("HCR_EL2", "SCTLR_EL2", "VBAR_EL2", "ELR_EL2", "SPSR_EL2", "ESR_EL2", "FAR_EL2", "TCR_EL2",
            "TTBR0_EL2", "TTBR1_EL2", "MAIR_EL2", "VTTBR_EL2", "VTCR_EL2", "CPTR_EL2", "MDCR_EL2", "TPIDR_EL2",
            "SP_EL2"),
    "el1": ("SCTLR_EL1", "VBAR_EL1", "ELR_EL1", "SPSR_EL1", "ESR_EL1", "FAR_EL1", "TCR_EL1", "TTBR0_EL1",
            "TTBR1_EL1", "MAIR_EL1", "CPACR_EL1", "TPIDR_EL1", "SP_EL1", "SP_EL0"),
    "el3": ("SCR_EL3", "SCTLR_EL3", "VBAR_EL3", "ELR_EL3", "SPSR_EL3", "ESR_EL3"),
    "vhe": ("HCR_EL2", "SCTLR_EL2", "SCTLR_EL1", "TCR_EL2", "TTBR0_EL2", "TTBR1_EL2", "VBAR_EL2", "SPSR_EL2",
            "ELR_EL2", "SP_EL0"),
}


# ---------------------------------------------------------------- PSTATE and stops

def pstate_fields(ps: PState, before: PState | None) -> str:
    """`EL=2 SPSel=1 N=0 ...`, the fields that differ from `before` highlighted."""
    parts = []
    for label, attr in PSTATE_LINE:
        val = getattr(ps, attr)
        changed = before is not None and getattr(before, attr) != val
        parts.append(f"[bold reverse yellow]{label}={val}[/]" if changed else f"{label}={val}")
    return " ".join(parts)


def pstate_line(ps: PState, before: PState | None) -> str:
    return "PSTATE " + pstate_fields(ps, before)


def pstate_info(ps: PState, before: PState | None) -> str:
    """`info pstate`: the value and the mode, then the fields."""
    return f"PSTATE {ps.to_bits():#010x}: {ps.mode_name}  " + pstate_fields(ps, before)


def where(b: Board, before: PState | None) -> str:
    """Location, instruction, and PSTATE with the fields changed since `before` highlighted."""
    pc = b.pc
    try:
        word = b.word_at(pc)
        insn = decode.disasm_text(word, pc)
    except Exception:
        word, insn = 0, "(no memory here)"
    return (f"[cyan]{pc:#018x}[/] {escape(b.location(pc))}\n    {word:08x}  {escape(insn)}\n"
            f"    {pstate_line(b.pstate(), before)}   icount {b.icount:,}")


def exception(b: Board, e: ev.Event) -> str:
    """An exception entry or return: type, cause, ELs, where, ESR decoded."""
    if isinstance(e, ev.ExceptionEntry):
        esr = f" ESR {e.esr:#010x} ({escape(decode_esr(e.esr))})" if e.esr is not None else ""
        far = f" FAR {e.far:#x}" if e.far is not None else ""
        return (f"[magenta]exception[/] {e.exc_type} {escape(e.cause)} EL{e.from_el} -> EL{e.to_el} at "
                f"{escape(b.location(e.pc))}, vector +{e.vector_offset:#x}{esr}{far}")
    assert isinstance(e, ev.ExceptionReturn)
    ill = " [red]illegal return (PSTATE.IL set)[/]" if e.illegal else ""
    return f"[magenta]eret[/] EL{e.from_el} -> EL{e.to_el} to {escape(b.location(e.elr))}, SPSR {e.spsr:#x}{ill}"


def stop(b: Board, st: Stop, before: PState | None) -> str:
    """Why it stopped, the last exceptions on the way, and where."""
    lines = [f"[bold]{escape(st.message)}[/]"] if st.message else []
    lines += [exception(b, e) for e in st.exceptions[-3:]]
    lines.append(where(b, before))
    return "\n".join(lines)


def exceptions(b: Board, n: int) -> str:
    """`info exceptions`: the last n entries and returns."""
    evs = [e for e in b.events if isinstance(e, ev.ExceptionEntry | ev.ExceptionReturn)]
    if not evs:
        return "no exceptions taken yet"
    return "\n".join(f"#{e.icount:<10} " + exception(b, e) for e in evs[-n:])


# ---------------------------------------------------------------- registers

def registers(b: Board) -> str:
    """`info registers`: x0-x30, sp, pc, PSTATE."""
    rows = ["   ".join(f"x{k:<2} {b.reg(k):#018x}" for k in (n, n + 1) if k < 31) for n in range(0, 31, 2)]
    rows.append(f"sp  {b.sp:#018x}   pc  {b.pc:#018x} {escape(b.location(b.pc))}")
    rows.append(pstate_line(b.pstate(), None))
    return "\n".join(rows)


def core_register(name: str, value: int, where: str = "") -> str:
    """`info registers xN`: hex, decimal, and for the pc its location."""
    return f"{name:<4} {value:#018x} {value}" + (f" {escape(where)}" if where else "")


def sysreg(name: str, value: int) -> str:
    return f"{name:<12} {value:#018x}{sysreg_note(name, value)}"


def sysreg_note(name: str, v: int) -> str:
    """The register decoded by its table in harness.arch.regs (the fields that are set)."""
    if name in BY_NAME:
        return "  " + BY_NAME[name].describe(v)
    if name.startswith("ESR_EL") and v:
        return f"  {decode_esr(v)}"
    if name.startswith("SPSR_EL"):
        return "  " + PState.from_bits(v).describe()
    return ""


# ---------------------------------------------------------------- breakpoints, memory, code, source

def breakpoints(bps: Iterable[Breakpoint], watches: Iterable[Watch]) -> str:
    rows = [f"{bp.num:<4} {'tbreak' if bp.temporary else 'break':<8} {bp.addr:#x} {escape(bp.where)}  hits {bp.hits}"
            for bp in bps]
    rows += [f"{w.num:<4} {w.kind:<8} {escape(w.describe())}  hits {w.hits}" for w in watches]
    return "\n".join(["Num  Type     What"] + rows) if rows else "no breakpoints, watchpoints or catchpoints"


def memory(b: Board, addr: int, data: bytes, size: int, form: str) -> str:
    """`x/NFU`: 16 bytes a row, each row labelled with its address and location."""
    vals = [int.from_bytes(data[k : k + size], "little") for k in range(0, len(data), size)]
    per = max(1, 16 // size)
    rows = []
    for k in range(0, len(vals), per):
        a = addr + k * size
        cells = " ".join(f"{v:#0{2 * size + 2}x}" if form == "x" else str(v) for v in vals[k : k + per])
        rows.append(f"{a:#x} <{escape(b.location(a))}>: {cells}")
    return "\n".join(rows)


def disassembly(b: Board, addr: int, count: int) -> str:
    """count instructions from addr, with their labels and source lines; PC marked."""
    rows: list[str] = []
    last_src = None
    for k in range(count):
        a = addr + 4 * k
        try:
            word = b.word_at(a)
        except BoardError as e:
            if not rows:
                raise DebuggerError(f"nothing to disassemble: {e}") from None
            rows.append(f"   {a:#x}: (no memory here)")
            break
        sym = b.image.symbol_at(a) if b.image is not None else None
        src = b.image.source_at(a) if b.image is not None else None
        if src is not None and (src.file, src.line) != last_src:
            rows.append(f"[dim]{escape(str(src))}: {escape(src.text.strip())}[/]")
            last_src = (src.file, src.line)
        mark = "=>" if a == b.pc else "  "
        rows.append(f"{mark} {a:#x} <{escape(sym or '')}>: {word:08x}  {escape(decode.disasm_text(word, a))}")
    return "\n".join(rows)


def source(text: list[str], first: int, file: str, current: tuple[str, int] | None) -> str:
    """Ten lines of `text` from line `first`; the PC's line (`current`) marked."""
    rows = []
    for n in range(first, min(len(text), first + 9) + 1):
        mark = "=>" if current == (file, n) else "  "
        rows.append(f"{mark} {n:>5}  {escape(text[n - 1])}")
    return "\n".join(rows)


def help_text(usage: Mapping[str, str]) -> str:
    return "\n".join(f"{name:<18} {escape(text)}" for name, text in usage.items())
