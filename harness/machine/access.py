"""The Board's interface to its users (debugger, GDB stub, scenarios), a thin facade over its
collaborators: registers, PSTATE and system registers (sysport), memory (bus), addresses and
labels (the loaded image), memory watches, the instruction trace, and snapshots."""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass, field

from unicorn import UC_HOOK_MEM_WRITE, Uc
from unicorn import arm64_const as U

from harness.arch.exceptions import SysCtx
from harness.arch.pstate import PState
from harness.machine import decode
from harness.machine.bus import BusError
from harness.machine.interrupts import Injection
from harness.machine.sysport import X_REGS, SysregError
from harness.trace import events as ev


class BoardError(Exception):
    """Bad configuration or input for the board (one clear line)."""


@dataclass
class BoardState:
    """Everything needed to put the board back where it was (reverse stepping)."""

    context: object  # Unicorn context with memory snapshot
    icount: int
    n_events: int
    n_uart: int
    injections: list[Injection] = field(default_factory=list)
    n_trace: int = 0
    off: str | None = None


class BoardAccess:
    """What a Board shows and lets its users change (mixed into Board, whose attributes it uses)."""

    @property
    def pc(self) -> int:
        return self.port.pc()

    @pc.setter
    def pc(self, value: int) -> None:
        self.uc.reg_write(U.UC_ARM64_REG_PC, value)

    @property
    def icount(self) -> int:
        return self.ic.count

    @property
    def uart(self) -> bytearray:
        return self.bus.uart

    def pstate(self) -> PState:
        return self.port.pstate()

    def pc_pstate_hcr(self) -> tuple[int, PState, int]:
        """(PC, PSTATE, HCR_EL2) read at once: for a walk that needs all three at every step."""
        return self.port.pc_pstate_hcr()

    def set_pstate(self, new: PState) -> None:
        """Write PSTATE as an exception entry/return would: bank SP, rebuild hflags."""
        self.port.set_pstate(new)

    def read_sysreg(self, name: str) -> int:
        try:
            return self.port.read_sysreg(name)
        except SysregError as e:
            raise BoardError(str(e)) from None

    def write_sysreg(self, name: str, value: int) -> None:
        try:
            self.port.write_sysreg(name, value)
        except SysregError as e:
            raise BoardError(str(e)) from None

    def reg(self, n: int) -> int:
        return self.port.reg(X_REGS[n])

    def set_reg(self, n: int, value: int) -> None:
        self.uc.reg_write(X_REGS[n], value & 0xFFFF_FFFF_FFFF_FFFF)

    @property
    def sp(self) -> int:
        return self.uc.reg_read(U.UC_ARM64_REG_SP)

    @sp.setter
    def sp(self, value: int) -> None:
        self.uc.reg_write(U.UC_ARM64_REG_SP, value & 0xFFFF_FFFF_FFFF_FFFF)

    def sysctx(self) -> SysCtx:
        return self.port.sysctx()

    # ------------------------------------------------------------------ accesses the user asks for

    def read_mem(self, addr: int, size: int) -> bytes:
        """Read [addr, addr+size) (physical) for the debugger, the stub or a scenario's set-up:
        RAM directly, device registers through their model; anything else is a BoardError."""
        try:
            return self.bus.read(addr, size)
        except BusError as e:
            raise BoardError(str(e)) from None

    def write_mem(self, addr: int, data: bytes) -> None:
        """Write (physical) as read_mem reads (a device register write is the device's)."""
        try:
            self.bus.write(addr, data)
        except BusError as e:
            raise BoardError(str(e)) from None

    @staticmethod
    def check_code_addr(addr: int, what: str = "address") -> int:
        """An address an instruction can be at (a breakpoint, an injection point): 64-bit, 4-aligned."""
        if not 0 <= addr < 1 << 64:
            raise BoardError(f"{what} {addr:#x} is not a 64-bit address")
        if addr % 4:
            raise BoardError(f"{what} {addr:#x} is not 4-byte aligned: no instruction starts there")
        return addr

    def read_u64(self, pa: int) -> int:
        return self.bus.read_u64(pa)

    def word_at(self, addr: int) -> int:
        return struct.unpack("<I", self.read_mem(addr, 4))[0]

    def location(self, addr: int) -> str:
        """`label+0x10 (file.S:12)` or the bare address."""
        if self.image is None:
            return f"{addr:#x}"
        sym = self.image.symbol_at(addr)
        src = self.image.source_at(addr)
        text = sym or f"{addr:#x}"
        if src is not None:
            text += f" ({src.file}:{src.line})"
        return text

    def resolve(self, loc: str) -> int:
        if self.image is None:
            raise BoardError(f"no program loaded to resolve {loc!r}")
        try:
            return self.image.addr_of(loc)
        except KeyError as e:
            raise BoardError(str(e).strip("'\"")) from None

    def _label(self, pc: int) -> str | None:
        return self.image.symbol_at(pc) if self.image is not None else None

    # -- memory watches

    def add_mem_watch(self, addr: int, size: int = 8) -> int:
        """Emit a MemoryWrite event for every write into [addr, addr+size) (physical addresses
        as Unicorn reports them; identity-mapped programs see their VAs). Returns a handle."""
        if size < 1:
            raise BoardError(f"a memory watch needs a length of at least 1 byte, not {size}")
        if not (0 <= addr < 1 << 64 and size <= (1 << 64) - addr):
            raise BoardError(f"{addr:#x}+{size:#x} is not a 64-bit address range")
        return self.uc.hook_add(UC_HOOK_MEM_WRITE, self._on_mem_write, None, addr, addr + size - 1)

    def remove_mem_watch(self, handle: int) -> None:
        self.uc.hook_del(handle)

    def _on_mem_write(self, uc: Uc, access: int, addr: int, size: int, value: int, _ud: object) -> None:
        pc = self._store_pc(uc.reg_read(U.UC_ARM64_REG_PC), addr)
        ic = self.ic.at(pc)
        self.emu.store_at = (pc, ic)
        try:
            self.emit(ev.MemoryWrite(ic, pc, addr, size, value & ((1 << (8 * size)) - 1)))
        finally:
            self.emu.store_at = None

    def _store_pc(self, pc: int, addr: int) -> int:
        """The store that writes `addr`. In a memory hook Unicorn's PC is the last one its block
        synced, an earlier instruction when the block began at a PC written in a hook (exception
        entry, an MRS/MSR the board completed): check it, and search on through the block."""
        st = self.ic.state
        start, end = st.last_addr, st.last_addr + st.last_size
        stop = end if start <= pc < end else pc + 4
        first = None
        for a in range(pc, stop, 4):
            acc = decode.mem_access(self.exc.code_word(a), a, self.uc.reg_read)
            if acc is not None and acc.write:
                if acc.va <= addr < acc.va + 64:  # (64: DC ZVA, the widest)
                    return a
                first = a if first is None else first
        return pc if first is None else first

    # -- the instruction trace

    def trace_not_executed(self, addr: int) -> None:
        """The instruction at `addr`, traced last, did not retire (a stop before it, a fault)."""
        if self._trace is not None:
            self._trace.drop_last(addr)

    def trace_executed(self, addr: int) -> None:
        """An instruction the board performed itself, in the instruction trace."""
        if self._trace is not None:
            self._trace.append(addr)

    def trace_lines(self) -> Iterable[str]:
        """The instruction trace: icount, address, word, disassembly, label."""
        if self._trace is None:
            return
        for i, addr in enumerate(self._trace.addresses()):
            try:
                word = self.exc.code_word(addr)
            except Exception:
                word = 0
            yield f"{i}\t{addr:#x}\t{word:08x}\t{decode.disasm_text(word, addr)}\t{self._label(addr) or ''}"

    # -- snapshots

    def save_state(self) -> BoardState:
        """A snapshot of CPU and memory (copy-on-write in Unicorn: ~20 us).

        Unicorn keeps memory snapshots as a stack: restoring one discards those
        taken after it, which is what reverse execution needs."""
        self.port.snapshot_memory()
        return BoardState(
            self.uc.context_save(),
            self.icount,
            len(self.events),
            len(self.uart),
            self.irq.snapshot(),
            len(self._trace) if self._trace is not None else 0,
            self.off,
        )

    def restore_state(self, state: BoardState) -> None:
        self.uc.context_restore(state.context)
        self.ic.set(state.icount)
        del self.events[state.n_events :]
        del self.uart[state.n_uart :]
        if self._trace is not None:
            self._trace.truncate(state.n_trace)
        self.irq.restore(state.injections)
        self.port.rebuild_hflags()
        self.port.flush_tlb()
        self.stopped = None
        self.off = state.off
