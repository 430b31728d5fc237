"""Breakpoints, watchpoints and catchpoints: one numbering, as gdb's. Each watch kind is a small
class whose `hit(event)` says why a board event stops execution (or None); NZCV watches compare
PSTATE before and after each instruction instead, since any instruction may set the flags.

The points gdb inserts through the stub (Z packets: its breakpoints, the step-resume ones of
`next`, its watchpoints) are gdb's: gdb numbers and reports them, and inserts and removes them
around every resume. They take no number here (num 0), `info breakpoints` and `delete` leave
them alone, and a reload drops them (gdb inserts them again in the new program)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

from harness.arch.cause import Cause
from harness.arch.pstate import PState
from harness.debugger.base import DebuggerError
from harness.debugger.render import PSTATE_FIELDS
from harness.machine.board import Board, BoardError
from harness.trace import events as ev

# `catch exception FILTER`: the causes each filter catches ("sync": every synchronous one)
CATCH_FILTERS: dict[str, frozenset[Cause]] = {
    "svc": frozenset({Cause.SVC}), "hvc": frozenset({Cause.HVC}), "smc": frozenset({Cause.SMC_TRAP}),
    "brk": frozenset({Cause.BRK}), "undefined": frozenset({Cause.UNDEFINED}), "wfx": frozenset({Cause.WFX_TRAP}),
    "sysreg": frozenset({Cause.SYSREG_TRAP}), "abort": frozenset({Cause.DATA_ABORT, Cause.INST_ABORT}),
    "data_abort": frozenset({Cause.DATA_ABORT}), "inst_abort": frozenset({Cause.INST_ABORT}),
    "illegal_state": frozenset({Cause.ILLEGAL_STATE}), "irq": frozenset({Cause.IRQ}), "fiq": frozenset({Cause.FIQ}),
    "serror": frozenset({Cause.SERROR}),
}
SYNC_CAUSES = frozenset(c for c in Cause if not c.is_async)
FLAGS = ("n", "z", "c", "v")


@dataclass
class Breakpoint:
    num: int  # 0: gdb's (see the module docstring)
    addr: int
    where: str
    temporary: bool = False
    hits: int = 0

    @property
    def title(self) -> str:
        if not self.num:
            return "gdb's breakpoint"
        return f"{'temporary ' if self.temporary else ''}breakpoint {self.num}"


@dataclass(eq=False)
class Watch:
    """A watch- or catchpoint."""

    kind: ClassVar[str]  # as `info breakpoints` shows it
    num: int  # 0: gdb's (see the module docstring)
    hits: int = field(default=0, init=False)

    @property
    def title(self) -> str:
        return f"watchpoint {self.num}" if self.num else "gdb's watchpoint"

    def hit(self, e: ev.Event) -> str | None:
        """Why this event stops execution, or None."""
        return None

    def describe(self) -> str:
        raise NotImplementedError


@dataclass(eq=False, kw_only=True)
class PStateWatch(Watch):
    """A PSTATE field other than NZCV: changed only by exception entry/return and MSR."""

    kind: ClassVar[str] = "pstate"
    field: str

    def hit(self, e: ev.Event) -> str | None:
        if isinstance(e, ev.ExceptionEntry | ev.ExceptionReturn | ev.PStateChange):
            return self.change(PState.from_bits(e.pstate_before), PState.from_bits(e.pstate_after))
        return None

    def change(self, before: PState, after: PState) -> str | None:
        old, new = getattr(before, self.field), getattr(after, self.field)
        return f"{self.title}: pstate.{self.field} {old} -> {new}" if old != new else None

    def describe(self) -> str:
        return f"watch pstate.{self.field}"


@dataclass(eq=False)
class FlagWatch(PStateWatch):
    """N, Z, C or V: compared after every instruction (`change`), so it needs single steps."""

    def hit(self, e: ev.Event) -> str | None:
        return None


@dataclass(eq=False, kw_only=True)
class SysregWatch(Watch):
    """A system register written by MSR (directly or through a VHE redirection/alias) or by
    exception entry (SPSR, ELR, ESR, FAR of the target EL)."""

    kind: ClassVar[str] = "sysreg"
    name: str

    def hit(self, e: ev.Event) -> str | None:
        if isinstance(e, ev.SysregWrite) and self.name in (e.name, e.redirected_to):
            return f"{self.title}: {self.name} written with {e.value:#x} by {e.name}"
        if isinstance(e, ev.ExceptionEntry):
            el = e.to_el
            value = {f"SPSR_EL{el}": e.spsr, f"ELR_EL{el}": e.elr, f"ESR_EL{el}": e.esr, f"FAR_EL{el}": e.far}.get(self.name)
            if value is not None:
                return f"{self.title}: {self.name} = {value:#x} by exception entry"
        return None

    def describe(self) -> str:
        return f"watch {self.name}"


@dataclass(eq=False, kw_only=True)
class MemWatch(Watch):
    """Writes into [addr, addr+length): the board hooks the range (`handle`)."""

    kind: ClassVar[str] = "mem"
    addr: int
    length: int
    handle: int
    location: Callable[[int], str]  # the board's: names the storing instruction

    def hit(self, e: ev.Event) -> str | None:
        # the board reports writes into any watched range: this watch's is one of them
        if not isinstance(e, ev.MemoryWrite) or not (e.addr < self.addr + self.length and self.addr < e.addr + max(e.size, 1)):
            return None
        return f"{self.title}: *{e.addr:#x} = {e.value:#x} ({e.size} bytes) at {self.location(e.pc)}"

    def describe(self) -> str:
        return f"watch *{self.addr:#x} {self.length}"


@dataclass(eq=False, kw_only=True)
class CatchException(Watch):
    kind: ClassVar[str] = "catch-exception"
    what: str = ""  # the filter as given ("": every exception)
    el: int | None = None  # the target EL, if given

    def hit(self, e: ev.Event) -> str | None:
        if not isinstance(e, ev.ExceptionEntry) or (self.el is not None and self.el != e.to_el):
            return None
        causes = SYNC_CAUSES if self.what == "sync" else CATCH_FILTERS.get(self.what)
        if causes is None or e.cause in causes:
            return f"catchpoint {self.num}: {e.cause} EL{e.from_el} -> EL{e.to_el}"
        return None

    def describe(self) -> str:
        return "catch exception" + (f" {self.what}" if self.what else "") + (f" el{self.el}" if self.el is not None else "")


@dataclass(eq=False)
class CatchEret(Watch):
    kind: ClassVar[str] = "catch-eret"

    def hit(self, e: ev.Event) -> str | None:
        if not isinstance(e, ev.ExceptionReturn):
            return None
        return f"catchpoint {self.num}: eret EL{e.from_el} -> EL{e.to_el}" + (" (illegal)" if e.illegal else "")

    def describe(self) -> str:
        return "catch eret"


def pstate_field(name: str) -> str:
    """The PState attribute a user names in `watch`/`set pstate.NAME` (SPSel is sp)."""
    fld = {"spsel": "sp"}.get(name.lower(), name.lower())
    if fld not in PSTATE_FIELDS:
        raise DebuggerError(f"no PSTATE field {name} (fields: {', '.join(PSTATE_FIELDS)})")
    return fld


def watch_pstate(num: int, name: str) -> PStateWatch:
    fld = pstate_field(name)
    return (FlagWatch if fld in FLAGS else PStateWatch)(num, field=fld)


def catch(num: int, args: list[str]) -> Watch:
    """`catch exception [FILTER] [elN]` or `catch eret`."""
    if not args:
        raise DebuggerError("catch exception [CAUSE] [elN] | catch eret")
    if args[0] == "eret":
        return CatchEret(num)
    if args[0] != "exception":
        raise DebuggerError(f"catch {args[0]}: only exception and eret")
    what, el = "", None
    for a in args[1:]:
        if a.lower() in ("el0", "el1", "el2", "el3"):
            el = int(a[2])
        elif a.lower() in CATCH_FILTERS or a.lower() == "sync":
            what = a.lower()
        else:
            raise DebuggerError(f"catch exception: unknown {a} (causes: {', '.join(CATCH_FILTERS)}; elN)")
    return CatchException(num, what=what, el=el)


@dataclass(frozen=True)
class Hit:
    """A watch- or catchpoint that stopped execution, and the event that made it (None for an
    NZCV watch, which compares PSTATE around an instruction)."""

    watch: Watch
    message: str
    event: ev.Event | None = None


class Points:
    """The session's breakpoints and watch/catchpoints, kept in step with the board's hooks.
    Breakpoints outlive a reload of the target; watches are the loaded board's and go with it."""

    def __init__(self) -> None:
        self.board: Board | None = None
        self.breakpoints: dict[int, Breakpoint] = {}
        self.watches: dict[int, Watch] = {}
        self.next_num = 1  # the number the next one gets (a refused one takes none)
        self.gdb_breakpoints: list[Breakpoint] = []  # gdb's, unnumbered (the module docstring)
        self.gdb_watches: list[MemWatch] = []

    def attach(self, board: Board | None) -> None:
        """A new board (None: drop the old one): the breakpoints go onto it, the watches and
        gdb's points go."""
        self.watches.clear()
        self.gdb_breakpoints.clear()
        self.gdb_watches.clear()
        self.board = board
        for bp in self.breakpoints.values():
            if board is not None:
                board.add_breakpoint(bp.addr)

    def add(self, p: Breakpoint | Watch) -> None:
        if isinstance(p, Breakpoint):
            self.breakpoints[p.num] = p
        else:
            self.watches[p.num] = p
        self.next_num += 1

    def add_breakpoint(self, board: Board, addr: int, temporary: bool = False, by_gdb: bool = False) -> Breakpoint:
        try:
            board.add_breakpoint(addr)  # checks the address first
        except BoardError as e:
            raise DebuggerError(str(e)) from None
        bp = Breakpoint(0 if by_gdb else self.next_num, addr, board.location(addr), temporary)
        if by_gdb:
            self.gdb_breakpoints.append(bp)
        else:
            self.add(bp)
        return bp

    def mem_watch(self, board: Board, addr: int, length: int, by_gdb: bool = False) -> MemWatch:
        """A watch on writes to [addr, addr+length), hooked on the board (to be added; gdb's
        is added here)."""
        try:
            handle = board.add_mem_watch(addr, length)
        except BoardError as e:
            raise DebuggerError(f"watch: {e}") from None
        w = MemWatch(0 if by_gdb else self.next_num, addr=addr, length=length, handle=handle, location=board.location)
        if by_gdb:
            self.gdb_watches.append(w)
        return w

    def remove_gdb(self, addr: int, kind: str) -> None:
        """Remove gdb's breakpoint (kind "break") or write watch ("mem") at addr, if it has one."""
        if kind == "break":
            bp = next((bp for bp in self.gdb_breakpoints if bp.addr == addr), None)
            if bp is not None:
                self.gdb_breakpoints.remove(bp)
                if self.board is not None and addr not in self.addrs():
                    self.board.remove_breakpoint(addr)
            return
        w = next((w for w in self.gdb_watches if w.addr == addr), None)
        if w is not None:
            self.gdb_watches.remove(w)
            if self.board is not None:
                self.board.remove_mem_watch(w.handle)

    def delete(self, nums: list[int]) -> None:
        """Delete these, in order (an unknown number is refused when reached)."""
        for n in nums:
            if n in self.breakpoints:
                bp = self.breakpoints.pop(n)
                if self.board is not None and bp.addr not in self.addrs():
                    self.board.remove_breakpoint(bp.addr)
            elif n in self.watches:
                w = self.watches.pop(n)
                if isinstance(w, MemWatch) and self.board is not None:
                    self.board.remove_mem_watch(w.handle)
            else:
                raise DebuggerError(f"no breakpoint or watchpoint {n}")

    def addrs(self) -> set[int]:
        return {bp.addr for bp in self.breakpoints.values()} | {bp.addr for bp in self.gdb_breakpoints}

    def at(self, addr: int) -> list[Breakpoint]:
        return [bp for bp in [*self.breakpoints.values(), *self.gdb_breakpoints] if bp.addr == addr]

    def flags(self) -> list[FlagWatch]:
        return [w for w in self.watches.values() if isinstance(w, FlagWatch)]

    def first_hit(self, e: ev.Event, count: bool = True) -> Hit | None:
        """The first watch- or catchpoint the event triggers (its hit counted, if count)."""
        for w in [*self.watches.values(), *self.gdb_watches]:
            why = w.hit(e)
            if why:
                w.hits += count
                return Hit(w, why, e)
        return None

    @staticmethod
    def flag_change(flags: list[FlagWatch], before: PState, after: PState) -> Hit | None:
        for w in flags:
            why = w.change(before, after)
            if why:
                return Hit(w, why)
        return None
