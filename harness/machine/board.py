"""The emulated board: a QEMU `virt`-compatible AArch64 machine on Unicorn.

Unicorn executes instructions; this module supplies what its copy of QEMU
leaves out, by calling the pure-Python architecture model in `harness.arch`:

- exception entry for every synchronous exception Unicorn reports, and for
  injected IRQ/FIQ/SError (AArch64.TakeException);
- a check of every ERET against AArch64.ExceptionReturn (the Arm result wins);
- VHE's E2H register redirection and the *_EL12/*_EL02 aliases;
- EL3 firmware (PSCI through SMC), a PL011 data register, RAM.

No Python code runs per instruction unless an instruction trace is asked for:
a static scan of the loaded image finds the instructions that matter (ERET,
MSR to PSTATE fields, labels, breakpoints) and only those addresses are hooked;
a native block hook counts instructions (see icount.py).
"""

from __future__ import annotations

import ctypes
import dataclasses
import gc
import struct
from array import array
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from unicorn import (
    UC_ARCH_ARM64,
    UC_CTL_CONTEXT_CPU,
    UC_CTL_CONTEXT_MEMORY,
    UC_CTL_CONTEXT_MODE,
    UC_CTL_TLB_FLUSH,
    UC_ERR_FETCH_UNMAPPED,
    UC_ERR_READ_UNMAPPED,
    UC_ERR_WRITE_UNMAPPED,
    UC_HOOK_CODE,
    UC_HOOK_INSN,
    UC_HOOK_INTR,
    UC_HOOK_MEM_UNMAPPED,
    UC_HOOK_MEM_WRITE,
    UC_MEM_FETCH_UNMAPPED,
    UC_MEM_WRITE_UNMAPPED,
    UC_MODE_ARM,
    Uc,
    UcError,
)
from unicorn import arm64_const as U

from harness.arch import pagetable, syndrome
from harness.arch.cause import Cause
from harness.arch.exceptions import (
    ExceptionType,
    SysCtx,
    async_masked,
    exception_return,
    route_async,
    route_sync,
    take_exception,
    wfx_trap_target,
)
from harness.arch.features import QEMU_ID_FIELDS, Features
from harness.arch.pstate import (
    PSTATE_SYSREG_FIELDS,
    PState,
    msr_immediate,
    read_pstate_sysreg,
    write_pstate_sysreg,
)
from harness.arch.record import QEMU_EXCEPTIONS, ExceptionRecord, QemuException, record_from_insn
from harness.arch.regs import BY_NAME, HCR_EL2, PSTATE, SCR_EL3
from harness.arch.syndrome import EC
from harness.arch.sysregs import SYSREGS, SysReg, by_encoding, decode_msr_imm, lookup
from harness.machine import decode
from harness.machine.icount import ICounter
from harness.memmap import DEFAULT_LOAD, RAM_BASE, RAM_SIZE, UART_BASE, UART_SIZE
from harness.trace import events as ev
from harness.trace.events import StopReason

DEFAULT_MAX_INSNS = 50_000_000
SCR_EL3_FIRMWARE = SCR_EL3.pack(NS=1, HCE=1, RW=1)  # 0x501: EL3 is firmware, EL2 and EL1 AArch64, non-secure

PSCI_SYSTEM_OFF = 0x8400_0008
PSCI_SYSTEM_RESET = 0x8400_0009
PSCI_NOT_SUPPORTED = (1 << 64) - 1

CPU_MODELS = {"max": U.UC_CPU_ARM64_MAX, "a57": U.UC_CPU_ARM64_A57}

_UNTIL = 0xFFFF_FFFF_FFFF_F000  # an address no program reaches: runs end through our stops
_LOOP_REPEATS = 16  # identical exception entries in a row, each within _LOOP_GAP instructions
_LOOP_GAP = 8
_MMU_REGS = ("SCTLR", "TCR", "TTBR0", "TTBR1", "MAIR", "HCR")
# The PSTATE registers an MSR writes (NZCV changes with every flag-setting instruction anyway).
_PSTATE_SYSREGS = set(PSTATE_SYSREG_FIELDS) - {"NZCV", "CURRENTEL"}
_ID_REGS = ("ID_AA64MMFR1_EL1", "ID_AA64MMFR2_EL1", "ID_AA64PFR0_EL1", "ID_AA64PFR1_EL1")

_SP_BANK = (U.UC_ARM64_REG_SP_EL0, U.UC_ARM64_REG_SP_EL1, U.UC_ARM64_REG_SP_EL2, U.UC_ARM64_REG_SP_EL3)
_X = [getattr(U, f"UC_ARM64_REG_X{i}") for i in range(29)] + [U.UC_ARM64_REG_X29, U.UC_ARM64_REG_X30]


# Debug switches that make the emulated architecture deliberately wrong, so tests can show
# that verdicts follow from what the CPU did (scenarios issue, item 5).
QUIRKS = {
    "keep_uao_on_entry": "exception entry leaves PSTATE.UAO alone (Arm: cleared on every entry)",
    "no_pan_on_entry": "exception entry never sets PSTATE.PAN (Arm: set when SPAN==0 in EL1 / EL2&0 host)",
    "dit_cleared_on_entry": "exception entry clears PSTATE.DIT, as QEMU 7.2 does (Arm: DIT is left as it was)",
    "ssbs_kept_on_entry": "exception entry leaves PSTATE.SSBS alone (Arm: SSBS = SCTLR_ELx.DSSBS of the target EL)",
}


# Unicorn reserves 1 GiB for translated code by default; the programs here need a few MiB at most
# (a 2M-instruction .rept runs with this), and 1.3 GB of address space per board is what made
# boards kept for a scenario matrix, or left to the collector, run out of memory.
TCG_BUFFER = 64 << 20


def _new_uc(cpu: str, ram_size: int) -> Uc:
    """A Uc with RAM mapped. A Uc is freed only by the cyclic garbage collector (the binding's hook
    wrappers refer to it), at some later time, unless its Board is close()d: when memory runs out,
    boards nobody holds any more are collected and the board is made again."""
    for attempt in (0, 1):
        try:
            uc = Uc(UC_ARCH_ARM64, UC_MODE_ARM)
            uc.ctl_set_cpu_model(CPU_MODELS[cpu])
            uc.ctl_set_tcg_buffer_size(TCG_BUFFER)
            uc.mem_map(RAM_BASE, ram_size)
            return uc
        except (UcError, MemoryError) as e:
            if attempt:
                raise BoardError(f"no memory for another board ({ram_size >> 20} MiB of RAM): {e}") from None
            gc.collect()
    raise AssertionError("unreachable")


class BoardError(Exception):
    """Bad configuration or input for the board (one clear line)."""


@dataclass
class RunResult:
    status: StopReason
    message: str
    pc: int
    label: str | None
    icount: int
    uart: bytes
    events: list[ev.Event]

    @property
    def ok(self) -> bool:
        return self.status in ev.PROGRAM_ENDED


@dataclass
class _Injection:
    kind: ExceptionType
    at_icount: int | None = None
    at_addr: int | None = None
    armed: bool = False  # reached its trigger, waiting until unmasked
    note: str = ""  # copied into the ExceptionEntry event, to tell this injection from others


@dataclass
class BoardState:
    """Everything needed to put the board back where it was (reverse stepping)."""

    context: object  # Unicorn context with memory snapshot
    icount: int
    n_events: int
    n_uart: int
    injections: list[_Injection] = field(default_factory=list)
    n_trace: int = 0
    off: str | None = None


class Board:
    def __init__(
        self,
        cpu: str = "max",
        *,
        ram_size: int = RAM_SIZE,
        trace_insns: bool = False,
        label_events: bool | Iterable[str] = False,
        uart_sink: Callable[[bytes], None] | None = None,
        quirks: Iterable[str] = (),
    ) -> None:
        if cpu not in CPU_MODELS:
            raise BoardError(f"unknown CPU model {cpu!r} (choose from {', '.join(CPU_MODELS)})")
        self.quirks = frozenset(quirks)
        for q in self.quirks - QUIRKS.keys():
            raise BoardError(f"unknown architecture quirk {q!r} (known: {', '.join(sorted(QUIRKS))})")
        self.cpu = cpu
        if not 0 < ram_size <= RAM_SIZE or ram_size % 0x1000:
            raise BoardError(f"RAM size {ram_size:#x}: a multiple of 4 KiB up to {RAM_SIZE >> 20} MiB")
        self.uc = uc = _new_uc(cpu, ram_size)
        self.ram_size = ram_size
        # Device registers: (name, base, size, read, write), the one model for the program's
        # accesses (Unicorn MMIO) and the user's (read_mem/write_mem).
        self._devices = (("the PL011 UART", UART_BASE, UART_SIZE, self._uart_read, self._uart_write),)
        for _name, base, size, read, write in self._devices:
            uc.mmio_map(base, size, read, None, write, None)
        # The ID registers read as QEMU 7.2's for the CPU model, and the PSTATE fields they
        # promise that Unicorn's CPU lacks (DIT, SSBS on max: facts §8) the board supplies.
        native = {n: self._cpr(SYSREGS[n]) for n in _ID_REGS}
        self._id_values = {n: BY_NAME[n].replace(native[n], **v) for n, v in QEMU_ID_FIELDS[cpu].items()}
        self.features = Features.from_id_regs(cpu, *(self._id_values.get(n, v) for n, v in native.items()))
        self._supplied = self.features.pstate_fields - Features.from_id_regs(cpu, *native.values()).pstate_fields
        self._supplied_regs = {n for n, keys in PSTATE_SYSREG_FIELDS.items() if set(keys) <= self._supplied}
        self.uart = bytearray()
        self._uart_sink = uart_sink
        self.events: list[ev.Event] = []
        self.image = None
        self._ic = ICounter(uc)
        self._trace: array | None = array("Q") if trace_insns else None
        self._label_events = label_events
        self._hooks_by_addr: dict[int, int] = {}
        self._eret_at: set[int] = set()
        self._wfx_at: set[int] = set()
        self._supply_at: dict[int, str] = {}  # MSR (immediate) to a supplied PSTATE field
        self._observe_at: dict[int, str] = {}
        self.off: str | None = None  # why the board is off (PSCI SYSTEM_OFF/RESET): it refuses to run
        self._labels_at: dict[int, str] = {}
        self._breakpoints: set[int] = set()
        self._injections: list[_Injection] = []
        self._stop: ev.Stop | None = None
        self._action: tuple[str, int] | None = None  # (what, pc) a hook asked the run loop to do
        self._check: _PendingCheck | None = None
        self._snapshots = False
        self._store_in_hook: tuple[int, int] | None = None
        self._resume_after: tuple[int, int] | None = None
        self._in_emu = False
        self._counted_tbs = False
        # Debugger watch: called with every event; a non-empty string stops the run with that message.
        self.stop_on_event: Callable[[ev.Event], str | None] | None = None
        self._stepping = False
        self._step_retired = True
        self._unmapped: tuple[int, int, int] | None = None
        self._interrupt = False  # set by interrupt(), from a signal handler or another thread
        self._loop_key: tuple | None = None
        self._loop_count = 0
        self._loop_icount = 0
        uc.hook_add(UC_HOOK_INTR, self._on_intr)
        uc.hook_add(UC_HOOK_INSN, self._on_mrs, None, 1, 0, U.UC_ARM64_INS_MRS)
        uc.hook_add(UC_HOOK_INSN, self._on_msr, None, 1, 0, U.UC_ARM64_INS_MSR)
        uc.hook_add(UC_HOOK_MEM_UNMAPPED, self._on_unmapped)
        if trace_insns:
            uc.hook_add(UC_HOOK_CODE, self._on_trace)
        self.reset()

    def close(self) -> None:
        """Give Unicorn's memory back now (RAM and translation buffer, ~330 MB of address space).
        The hooks make the Board and its Uc a cycle that only a full garbage collection would
        otherwise free (30-80 ms), at some later time; a closed board cannot run again."""
        uc = self.__dict__.pop("uc", None)
        self._ic = None
        if uc is not None:
            uc._Uc__finalizer()  # Unicorn's own release (uc_close), run now instead of at collection

    # ------------------------------------------------------------------ set-up

    def reset(self, entry: int = DEFAULT_LOAD, el: int = 2) -> None:
        """Reset like `qemu-system-aarch64 -M virt,virtualization=on`: ELxh, DAIF masked."""
        if el not in (1, 2):
            raise BoardError(f"cannot start at EL{el}: choose EL1 or EL2")
        self.off = None
        self.write_sysreg("SCR_EL3", SCR_EL3_FIRMWARE)
        # EL1 must be AArch64 when a program starts there (QEMU's -kernel boot does the same).
        self.write_sysreg("HCR_EL2", HCR_EL2.RW.mask if el == 1 else 0)
        self.set_pstate(PState(el=el, sp=1))
        self.uc.reg_write(U.UC_ARM64_REG_PC, entry)

    def load(self, image, *, entry: int | None = None, el: int = 2) -> None:
        """Copy an Image (harness.asm) into RAM, scan it, reset to its entry point."""
        for seg in image.segments:
            if seg.addr < RAM_BASE or seg.addr + len(seg.data) > RAM_BASE + self.ram_size:
                raise BoardError(
                    f"segment {seg.name} at {seg.addr:#x}+{len(seg.data):#x} lies outside RAM "
                    f"{RAM_BASE:#x}..{RAM_BASE + self.ram_size:#x}"
                )
            self.uc.mem_write(seg.addr, bytes(seg.data))
        self.image = image
        self._scan(image)
        self.reset(image.entry if entry is None else entry, el)

    def _scan(self, image) -> None:
        """Hook only the instructions Unicorn does not handle faithfully (DESIGN.md, Speed)."""
        for addr, word in self._code_words(image):
            if word >> 24 != 0xD5 and word != decode.ERET:
                continue  # every instruction looked for below is ERET or in the 0xd5 system space
            if word == decode.ERET:
                self._eret_at.add(addr)
                self._hook_addr(addr)
            elif decode.is_wfx(word)[0]:
                # QEMU (and so Unicorn) checks SCTLR_EL1.nTWx for EL0 in host; Arm: SCTLR_EL2's
                self._wfx_at.add(addr)
                self._hook_addr(addr)
            elif (decode_msr_imm(word) or ("",))[0] in self._supplied:
                self._supply_at[addr] = decode.disasm_text(word, addr)
                self._hook_addr(addr)
            elif self._pstate_write(word):
                self._observe_at[addr] = decode.disasm_text(word, addr)
                self._hook_addr(addr)
        if self._label_events:
            wanted = None if self._label_events is True else set(self._label_events)
            for name, addr in sorted(image.symbols.items(), key=lambda kv: (kv[1], kv[0])):
                if wanted is None and image.is_local_symbol(name):
                    continue  # numeric labels and pool entries: not events (a loop on `1:` would log each pass)
                if name.startswith(".L") or (wanted is not None and name not in wanted):
                    continue
                if wanted is None and not self._in_code(image, addr):
                    continue
                self._labels_at.setdefault(addr, name)
                self._hook_addr(addr)

    @staticmethod
    def _code_words(image) -> Iterable[tuple[int, int]]:
        words = getattr(image, "words", None)
        if words is not None:
            yield from words()
            return
        for seg in image.segments:
            if "x" in seg.flags:
                data = bytes(seg.data)
                for off in range(0, len(data) - 3, 4):
                    yield seg.addr + off, int.from_bytes(data[off : off + 4], "little")

    @staticmethod
    def _in_code(image, addr: int) -> bool:
        return any("x" in s.flags and s.addr <= addr < s.addr + len(s.data) for s in image.segments)

    @staticmethod
    def _pstate_write(word: int) -> bool:
        if decode_msr_imm(word) is not None:
            return True
        ops = decode.sysreg_operands(word)
        if ops is None or ops[2]:
            return False
        reg = by_encoding(*ops[0])
        return reg is not None and reg.name in _PSTATE_SYSREGS

    def _hook_addr(self, addr: int) -> None:
        if addr not in self._hooks_by_addr:
            self._hooks_by_addr[addr] = self.uc.hook_add(UC_HOOK_CODE, self._on_code, None, addr, addr)

    def add_breakpoint(self, addr: int) -> None:
        self.check_code_addr(addr, "breakpoint address")
        self._breakpoints.add(addr)
        self._hook_addr(addr)
        self._uncache(addr)

    def _uncache(self, addr: int) -> None:
        # A cached block would not see a new hook. The end is inclusive-safe at the top of memory.
        self.uc.ctl_remove_cache(addr, min(addr + 4, (1 << 64) - 1))

    def remove_breakpoint(self, addr: int) -> None:
        self._breakpoints.discard(addr)

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
        pc = uc.reg_read(U.UC_ARM64_REG_PC)
        ic = self._ic.at(pc)
        self._store_in_hook = (pc, ic)
        try:
            self._emit(ev.MemoryWrite(ic, pc, addr, size, value & ((1 << (8 * size)) - 1)))
        finally:
            self._store_in_hook = None

    def inject(self, kind: str | ExceptionType, *, at_icount: int | None = None, at: int | str | None = None,
               note: str = "") -> None:
        """Make IRQ/FIQ/SError pending at the instruction boundary where the count reaches
        `at_icount` (the current count: this boundary), or where execution reaches address or
        label `at` (before that instruction). It is taken at that boundary when the masking and
        routing rules (route_async, async_masked) let it, else at the first later boundary
        where they do (after an MSR DAIF*, an ERET, or a change the user made): before
        instruction N+1 for a boundary N, in `run` and `step` alike. `note` goes into the
        ExceptionEntry event of its entry (to tell this injection from others)."""
        if isinstance(kind, str):
            try:
                kind = {"irq": ExceptionType.IRQ, "fiq": ExceptionType.FIQ, "serror": ExceptionType.SERROR}[kind.lower()]
            except KeyError:
                raise BoardError(f"cannot inject {kind!r}: choose irq, fiq or serror") from None
        if (at_icount is None) == (at is None):
            raise BoardError("inject needs exactly one of an instruction count or a location")
        self._refuse_if_off("inject")
        inj = _Injection(kind, note=note)
        if at is not None:
            inj.at_addr = self.check_code_addr(self.resolve(at) if isinstance(at, str) else at, "injection point")
            self._hook_addr(inj.at_addr)
            self._uncache(inj.at_addr)
        else:
            if at_icount < self.icount:
                raise BoardError(f"cannot inject at instruction {at_icount:,}: the board is at {self.icount:,}")
            inj.at_icount = at_icount
        self._injections.append(inj)

    def resolve(self, loc: str) -> int:
        if self.image is None:
            raise BoardError(f"no program loaded to resolve {loc!r}")
        try:
            return self.image.addr_of(loc)
        except KeyError as e:
            raise BoardError(str(e).strip("'\"")) from None

    # ------------------------------------------------------------------ state access

    @property
    def pc(self) -> int:
        return self.uc.reg_read(U.UC_ARM64_REG_PC)

    @pc.setter
    def pc(self, value: int) -> None:
        self.uc.reg_write(U.UC_ARM64_REG_PC, value)

    @property
    def icount(self) -> int:
        return self._ic.count

    def pstate(self) -> PState:
        return PState.from_bits(self.uc.reg_read(U.UC_ARM64_REG_PSTATE))

    def set_pstate(self, new: PState) -> None:
        """Write PSTATE as an exception entry/return would: bank SP, rebuild hflags."""
        uc = self.uc
        old = self.pstate()
        old_bank = old.el if old.sp else 0
        new_bank = new.el if new.sp else 0
        if old_bank != new_bank:
            uc.reg_write(_SP_BANK[old_bank], uc.reg_read(U.UC_ARM64_REG_SP))
        uc.reg_write(U.UC_ARM64_REG_PSTATE, new.to_bits())
        if old_bank != new_bank:
            uc.reg_write(U.UC_ARM64_REG_SP, uc.reg_read(_SP_BANK[new_bank]))
        self._rebuild_hflags()

    def _flush_tlb(self) -> None:
        # UC_CTL_TLB_FLUSH has no wrapper in the Python binding of Unicorn 2.1.4.
        self.uc._Uc__ctl_w(UC_CTL_TLB_FLUSH)

    def _rebuild_hflags(self) -> None:
        # A CP_REG write makes Unicorn call arm_rebuild_hflags (facts §7); SCR_EL3 is ours, so rewrite it.
        scr = SYSREGS["SCR_EL3"]
        self.uc.cpr_write(scr.op0, scr.op1, scr.crn, scr.crm, scr.op2, self._cpr(scr))

    def _cpr(self, reg: SysReg) -> int:
        return self.uc.cpr_read(reg.op0, reg.op1, reg.crn, reg.crm, reg.op2)

    def read_sysreg(self, name: str) -> int:
        reg = self._sysreg(name)
        if reg.name.startswith("SP_EL"):
            n = int(reg.name[-1])
            ps = self.pstate()
            if (ps.el if ps.sp else 0) == n:
                return self.uc.reg_read(U.UC_ARM64_REG_SP)
            return self.uc.reg_read(_SP_BANK[n])
        if reg.name in PSTATE_SYSREG_FIELDS:
            return read_pstate_sysreg(self.pstate(), reg.name)
        return self._id_values[reg.name] if reg.name in self._id_values else self._cpr(reg)

    def write_sysreg(self, name: str, value: int) -> None:
        reg = self._sysreg(name)
        if reg.name.startswith("SP_EL"):
            n = int(reg.name[-1])
            ps = self.pstate()
            self.uc.reg_write(U.UC_ARM64_REG_SP if (ps.el if ps.sp else 0) == n else _SP_BANK[n], value)
            return
        self.uc.cpr_write(reg.op0, reg.op1, reg.crn, reg.crm, reg.op2, value)
        if any(reg.name.startswith(p) for p in _MMU_REGS):
            self._flush_tlb()  # raw CP_REG writes skip QEMU's TLB flush (facts §7)

    @staticmethod
    def _sysreg(name: str) -> SysReg:
        try:
            reg = lookup(name)
        except KeyError as e:
            raise BoardError(str(e).strip("'\"")) from None
        return SYSREGS.get(reg.alias_of, reg) if reg.alias_of else reg

    def reg(self, n: int) -> int:
        return self.uc.reg_read(_X[n])

    def set_reg(self, n: int, value: int) -> None:
        self.uc.reg_write(_X[n], value & 0xFFFF_FFFF_FFFF_FFFF)

    @property
    def sp(self) -> int:
        return self.uc.reg_read(U.UC_ARM64_REG_SP)

    @sp.setter
    def sp(self, value: int) -> None:
        self.uc.reg_write(U.UC_ARM64_REG_SP, value & 0xFFFF_FFFF_FFFF_FFFF)

    def sysctx(self) -> SysCtx:
        r = self._cpr
        s = SYSREGS
        return SysCtx(
            hcr_el2=r(s["HCR_EL2"]),
            scr_el3=r(s["SCR_EL3"]),
            sctlr_el1=r(s["SCTLR_EL1"]),
            sctlr_el2=r(s["SCTLR_EL2"]),
            sctlr_el3=r(s["SCTLR_EL3"]),
            vbar_el1=r(s["VBAR_EL1"]),
            vbar_el2=r(s["VBAR_EL2"]),
            vbar_el3=r(s["VBAR_EL3"]),
        )

    # ------------------------------------------------------------------ accesses the user asks for

    def read_mem(self, addr: int, size: int) -> bytes:
        """Read [addr, addr+size) (physical) for the debugger, the stub or a scenario's set-up:
        RAM directly, device registers through their model; anything else is a BoardError."""
        dev = self._user_range(addr, size)
        if dev is None:
            return bytes(self.uc.mem_read(addr, size)) if size else b""
        _name, base, _size, read, _write = dev
        return (read(self.uc, addr - base, size, None) & ((1 << 8 * size) - 1)).to_bytes(size, "little")

    def write_mem(self, addr: int, data: bytes) -> None:
        """Write (physical) as read_mem reads. A device register write is the device's: a byte
        to the UART data register is output. Never uc.mem_write into MMIO: once a snapshot
        exists Unicorn copies the page on write, and an MMIO page has no RAM to copy (SIGSEGV)."""
        dev = self._user_range(addr, len(data))
        if dev is None:
            if data:
                self.uc.mem_write(addr, bytes(data))
            return
        _name, base, _size, _read, write = dev
        write(self.uc, addr - base, len(data), int.from_bytes(data, "little"), None)

    def _user_range(self, addr: int, size: int):
        """None for RAM, the device for its registers; BoardError for anything else."""
        if not (0 <= addr < 1 << 64 and 0 <= size <= (1 << 64) - addr):
            raise BoardError(f"{addr:#x}+{size:#x} is not a 64-bit address range")
        end = addr + size
        if RAM_BASE <= addr and end <= RAM_BASE + self.ram_size:
            return None
        for dev in self._devices:
            name, base, length = dev[:3]
            if base <= addr and end <= base + length:
                if size not in (1, 2, 4, 8) or addr % size:
                    raise BoardError(f"the registers of {name} take aligned accesses of 1, 2, 4 or 8 bytes, "
                                     f"not {size} at {addr:#x}")
                return dev
        devices = ", ".join(f"{n} {b:#x}..{b + k:#x}" for n, b, k, _r, _w in self._devices)
        raise BoardError(f"no memory at {addr:#x}" + (f"..{end:#x}" if size > 1 else "")
                         + f" (RAM is {RAM_BASE:#x}..{RAM_BASE + self.ram_size:#x}, {devices})")

    @staticmethod
    def check_code_addr(addr: int, what: str = "address") -> int:
        """An address an instruction can be at (a breakpoint, an injection point): 64-bit, 4-aligned."""
        if not 0 <= addr < 1 << 64:
            raise BoardError(f"{what} {addr:#x} is not a 64-bit address")
        if addr % 4:
            raise BoardError(f"{what} {addr:#x} is not 4-byte aligned: no instruction starts there")
        return addr

    def _read_u64(self, pa: int) -> int:
        return struct.unpack("<Q", self.uc.mem_read(pa, 8))[0]

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

    # ------------------------------------------------------------------ running

    def run(self, max_insns: int = DEFAULT_MAX_INSNS) -> RunResult:
        """Run until the program powers off or the board stops it."""
        self._refuse_if_off("run")
        budget = self.icount + max_insns
        self._stop = None
        while self._stop is None:
            if self._interrupt:
                self._interrupted()
                break
            self._run_until(budget)
        return self._result()

    def interrupt(self) -> None:
        """End the current run at once (safe from a signal handler or another thread): it stops
        with status "interrupt", with everything recorded so far."""
        self._interrupt = True
        ic, uc = self._ic, self.__dict__.get("uc")
        if ic is not None and uc is not None:  # (not closed)
            ic.state.limit = 0  # the native block hook stops before the next block
            uc.emu_stop()

    def _interrupted(self) -> None:
        self._interrupt = False
        self._halt(StopReason.INTERRUPT, "interrupted")

    def step(self, n: int = 1) -> RunResult | None:
        """Execute n instructions (exceptions taken count as the faulting instruction's step;
        an interrupt taken at the boundary before an instruction is a step of its own)."""
        self._refuse_if_off("step")
        self._stop = None
        for _ in range(n):
            if self._stop is not None:
                break
            if not self._at_boundary():
                self._step_one()
                self._at_boundary()
        return self._result() if self._stop is not None else None

    def _refuse_if_off(self, what: str) -> None:
        if self.off is not None:
            raise BoardError(f"cannot {what}: the program has ended ({self.off}); load it again to start over")

    def _result(self) -> RunResult:
        st = self._stop
        assert st is not None
        return RunResult(st.reason, st.message, st.pc, self._label(st.pc), st.icount, bytes(self.uart), self.events)

    def _label(self, pc: int) -> str | None:
        return self.image.symbol_at(pc) if self.image is not None else None

    def _run_until(self, budget: int) -> None:
        self._at_boundary()  # an interrupt pending now (injected now, or unmasked by the user)
        if self._stop is not None:
            return
        limit = budget
        for inj in self._injections:
            if inj.at_icount is not None and not inj.armed and self.icount < inj.at_icount < limit:
                limit = inj.at_icount
        st = self._ic.state
        st.limit = limit
        st.hit = 0
        self._action = None
        if self._interrupt:  # arrived before the limit was set, which overwrote its limit 0
            st.limit = 0
        self._emu(self.pc)
        if self._stop is not None:
            return
        if self._interrupt:
            # stopped between blocks: before an uncounted block (hit) or after a counted one
            if st.hit:
                self._ic.set(st.count)
            else:
                self._ic.settle(self.pc)
            self._interrupted()
            return
        if self._action is not None:
            what, pc = self._action
            self._action = None
            if what == "breakpoint":
                self._halt(StopReason.BREAKPOINT, f"breakpoint at {self.location(pc)}")
                return
            if what == "wfx":
                self._wfx_in_host(pc)
                return
            if what == "supply":
                self._supply(pc)
                return
            if what == "inject":
                # Taken before the labelled instruction; if masked it stays armed and is taken
                # after the ERET or PSTATE write that unmasks it (both are observe points).
                self._at_boundary()
                return
            self._step_one()  # runs the hooked ERET / PSTATE write natively
            self._at_boundary()
            return
        if st.hit:
            self._ic.set(st.count)
            # The native hook stopped before a block that would pass the limit: finish exactly,
            # each boundary processed as in step().
            while self.icount < limit and self._stop is None:
                if not self._at_boundary():
                    self._step_one()
            self._at_boundary()
            if self._stop is not None:
                return
            if self.icount >= budget and self._stop is None:
                self._halt(StopReason.BUDGET, f"instruction budget of {budget:,} exceeded{self._last_exceptions()}")
            return
        # emu_start returned on its own: WFI with nothing to wake it, in Unicorn's model.
        self._ic.settle(self.pc)
        self._wfi_sleep()

    def _wfi_sleep(self) -> None:
        """A WFI/WFE that did not trap, PC after it: wake on an interrupt or sleep forever."""
        if self._at_boundary():
            return
        if self._pending_wakeup():
            return
        self._halt(StopReason.HALTED, "WFI/WFE with no interrupt pending: the CPU would sleep forever")

    def _emu(self, pc: int, count: int = 0) -> None:
        if count and not self._counted_tbs:
            # Unicorn adds its count hook without dropping blocks translated in free run,
            # and those never call it: a count=1 "step" would then run on (verified).
            self.uc.ctl_flush_tb()
        self._counted_tbs = bool(count)  # leaving count mode, Unicorn flushes by itself
        self._resume_after = None
        self._in_emu = True
        try:
            self.uc.emu_start(pc, _UNTIL, 0, count)
        except UcError as e:
            if e.errno in (UC_ERR_READ_UNMAPPED, UC_ERR_WRITE_UNMAPPED, UC_ERR_FETCH_UNMAPPED) and self._unmapped:
                access, addr, at = self._unmapped
                self._ic.settle(at)
                self._step_retired = False  # the access faulted: the instruction did not retire
                self._halt(StopReason.UNMAPPED, self._unmapped_message(access, addr), pc=at)
            else:
                self._halt(StopReason.ERROR, f"Unicorn stopped: {e}")
        except _HarnessFault as e:
            self._halt(StopReason.ERROR, str(e))
        finally:
            self._in_emu = False
        if self._resume_after is not None:
            self.pc, icount = self._resume_after
            if not self._stepping:
                self._ic.set(icount)

    def _unmapped_message(self, access: int, addr: int) -> str:
        """What was accessed; a fetch from an exception vector names the exception that led there."""
        # the last event that is not a stop (a debugger steps again at the vector), if no
        # instruction has run since
        last = next((e for e in reversed(self.events) if not isinstance(e, ev.Stop)), None)
        if (access == UC_MEM_FETCH_UNMAPPED and isinstance(last, ev.ExceptionEntry) and last.vector == addr
                and last.icount == self.icount):
            what = _EXCEPTION_NAMES.get(last.cause, last.cause)
            esr = f" (ESR {last.esr:#010x}: {syndrome.decode_esr(last.esr)})" if last.esr is not None else ""
            return (f"{what} at {self.location(last.pc)} taken to EL{last.to_el}, whose vector "
                    f"VBAR_EL{last.to_el}+{last.vector_offset:#x} = {addr:#x} is unmapped{esr}")
        kind = {UC_MEM_WRITE_UNMAPPED: "write to", UC_MEM_FETCH_UNMAPPED: "fetch from"}.get(access, "read from")
        return f"{kind} unmapped address {addr:#x}"

    def _step_one(self) -> None:
        """One instruction with count=1 (the native counter is corrected after it)."""
        pc = self.pc
        before = self.icount
        # a limit left by the last run would stop this step's block before it executes
        self._ic.state.limit = (1 << 64) - 1
        self._stepping = True
        self._step_retired = True
        self._check = None
        try:
            self._emu(pc, 1)
        finally:
            self._stepping = False
        action = self._action[0] if self._action is not None else None
        self._action = None  # in a step, hooks only record (an armed injection waits for _at_boundary)
        self._ic.set(before + (1 if self._step_retired else 0))
        if action == "wfx":
            self._wfx_in_host(pc)
            return
        if action == "supply":
            self._supply(pc)
            return
        if action == "eret_by_board":
            self._eret_by_board(pc)
            return
        check, self._check = self._check, None
        if check is not None and self._stop is None:
            check.finish(self)

    # ------------------------------------------------------------------ hooks

    def _on_code(self, uc: Uc, addr: int, size: int, _ud: object) -> None:
        if addr in self._labels_at:
            ic = self._ic.at(addr)
            last = self.events[-1] if self.events else None
            # A stop before this instruction makes the hook run again when it executes.
            if not (isinstance(last, ev.LabelReached) and last.pc == addr and last.icount == ic):
                self._emit(ev.LabelReached(ic, addr, self._labels_at[addr], uc.reg_read(U.UC_ARM64_REG_PSTATE)))
        for inj in self._injections:
            if inj.at_addr == addr and not inj.armed:
                inj.armed = True
                self._stop_before(addr, "inject")
                return
        if addr in self._breakpoints and not self._stepping:
            self._stop_before(addr, "breakpoint")
            return
        if addr in self._wfx_at and self._host_el0():
            self._stop_before(addr, "wfx")
            return
        if addr in self._supply_at:
            self._stop_before(addr, "supply")
            return
        if addr in self._eret_at or addr in self._observe_at:
            if self._stepping:
                if addr in self._eret_at and self._eret_to_aarch32():
                    self._stop_before(addr, "eret_by_board")
                else:
                    self._check = self._pending_check(addr)
            else:
                self._stop_before(addr, "observe")

    def _stop_before(self, addr: int, what: str) -> None:
        if self._stepping:
            self._step_retired = False
        else:
            self._ic.settle(addr)
        if self._trace is not None and len(self._trace) and self._trace[-1] == addr:
            self._trace.pop()  # it did not execute; the step that runs it will record it
        self._action = (what, addr)
        self.uc.emu_stop()

    def _on_trace(self, uc: Uc, addr: int, size: int, _ud: object) -> None:
        self._trace.append(addr)

    def _on_unmapped(self, uc: Uc, access: int, addr: int, size: int, value: int, _ud: object) -> bool:
        self._unmapped = (access, addr, uc.reg_read(U.UC_ARM64_REG_PC))
        return False

    def _uart_read(self, uc: Uc, offset: int, size: int, _ud: object) -> int:
        return 0  # FR: transmit FIFO never full

    def _uart_write(self, uc: Uc, offset: int, size: int, value: int, _ud: object) -> None:
        if offset == 0:
            b = bytes([value & 0xFF])
            self.uart += b
            if self._uart_sink is not None:
                self._uart_sink(b)

    # ------------------------------------------------------------------ exceptions

    def _on_intr(self, uc: Uc, intno: int, _ud: object) -> None:
        try:
            self._exception_from_unicorn(intno)
        except _HarnessFault as e:
            self._halt(StopReason.ERROR, str(e))
        except Exception as e:  # a bug here must stop the run with a reason, not vanish in Unicorn
            self._halt(StopReason.ERROR, f"internal error while handling QEMU exception {intno}: {type(e).__name__}: {e}")

    def _exception_from_unicorn(self, intno: int) -> None:
        """Derive what QEMU decided (facts §7): an ExceptionRecord from QEMU's exception number
        (record.QEMU_EXCEPTIONS), and perform AArch64.TakeException for it."""
        q = QEMU_EXCEPTIONS.get(intno)
        pc = self.pc
        ps = self.pstate()
        self._check = None
        next_pc_reported = q is not None and q.next_pc
        if next_pc_reported:
            insn_addr = pc - 4
        else:
            insn_addr = pc
            if self._stepping:
                self._step_retired = False
        # the block hook counted the whole block this instruction starts or sits in (when
        # stepping too): retired = instructions before it, plus it for SVC/HVC/SMC
        self._ic.settle(pc)
        # The sysreg write the hook recorded did not happen if the MSR itself faulted.
        if self.events and isinstance(self.events[-1], ev.SysregWrite) and self.events[-1].pc == insn_addr:
            self.events.pop()
        if q is None:
            self._halt(StopReason.UNHANDLED, f"Unicorn reported QEMU exception {intno}, which the board does not model")
            return
        if q.syndrome == "firmware":
            self._firmware_smc()
            return
        ctx = self.sysctx()
        if q.syndrome in ("iabt", "dabt"):
            rec = self._abort_record(q, pc, ps, ctx)
        else:
            rec = record_from_insn(q, self._code_word(insn_addr), ps, ctx, self.features)
        target = rec.target_el(ps.el, ctx, self.features)
        if target == 3:
            self._halt(StopReason.UNHANDLED, f"{rec.cause} at {self.location(insn_addr)} is routed to EL3, where only PSCI firmware runs")
            return
        self._take(ExceptionType.SYNC, target, rec.esr(ps.el, target), rec.vaddress, pc, rec.cause, rec.note, at=insn_addr)

    def _abort_record(self, q: QemuException, pc: int, ps: PState, ctx: SysCtx) -> ExceptionRecord:
        """An instruction or data abort at `pc`: FAR and the fault status from a page-table walk."""
        if q.syndrome == "iabt":
            tr = self._translate(pc, ps, ctx, pagetable.Access(el=ps.el, fetch=True))
            fsc, note = self._fault_code(tr, "instruction abort", pc)
            return ExceptionRecord(q.ec, fsc, q.cause, vaddress=pc, note=note)
        word = self._code_word(pc)
        acc = decode.mem_access(word, pc, self.uc.reg_read)
        if acc is None:
            raise _HarnessFault(f"data abort at {self.location(pc)} from an instruction the board cannot decode ({word:#010x})")
        tr = self._translate(acc.va, ps, ctx, pagetable.Access(el=ps.el, write=acc.write, unprivileged=acc.unprivileged))
        fsc, note = self._fault_code(tr, "data abort", pc)
        return ExceptionRecord(q.ec, fsc | (1 << 6 if acc.write else 0), q.cause, vaddress=acc.va, note=note)

    def _translate(self, va: int, ps: PState, ctx: SysCtx, access: pagetable.Access) -> pagetable.Translation:
        regime = pagetable.regime_for(ps.el, ctx)
        return pagetable.translate(self._read_u64, regime, self._mmu_regs(ctx), va, access, ps)

    def _mmu_regs(self, ctx: SysCtx) -> dict[str, int]:
        regs = {"HCR_EL2": ctx.hcr_el2, "SCTLR_EL1": ctx.sctlr_el1, "SCTLR_EL2": ctx.sctlr_el2}
        names = ["TTBR0_EL1", "TTBR1_EL1", "TCR_EL1", "TTBR0_EL2", "TCR_EL2"]
        if self.features.has_vhe:
            names.append("TTBR1_EL2")  # only a VHE CPU has it; reading it elsewhere makes Unicorn warn
        for name in names:
            regs[name] = self._cpr(SYSREGS[name])
        return regs

    def _fault_code(self, tr: pagetable.Translation, what: str, pc: int) -> tuple[int, str]:
        if tr.fault is None:
            # Unicorn faulted where our walker sees none: say so rather than invent a cause.
            msg = f"Unicorn raised a {what} at {self.location(pc)} that the page-table model does not explain ({tr.reason})"
            self._emit(ev.ModelMismatch(self.icount, pc, msg))
            return 0x21, msg  # reported as an alignment fault, the one cause the walker cannot see
        return syndrome.fault_status_code(tr.fault, tr.level), tr.reason

    def _code_word(self, va: int) -> int:
        """The instruction word at a virtual address (page tables walked when the MMU is on)."""
        ps = self.pstate()
        ctx = self.sysctx()
        tr = self._translate(va, ps, ctx, pagetable.Access(el=ps.el, fetch=True))
        pa = tr.pa if tr.pa is not None else va
        return self.word_at(pa)

    def _take(
        self, kind: ExceptionType, target: int, esr: int | None, far: int | None, elr: int, cause: Cause,
        note: str = "", at: int | None = None,
    ) -> None:
        """AArch64.TakeException; `at` is the instruction that caused it (event pc), default ELR."""
        ps = self.pstate()
        ctx = self.sysctx()
        entry = take_exception(ps, target, kind, ctx, self.features, preferred_return=elr, esr=esr, far=far)
        if self.quirks:
            entry = self._apply_quirks(ps, entry)
        t = entry.target_el
        self._cpr_write(f"SPSR_EL{t}", entry.spsr)
        self._cpr_write(f"ELR_EL{t}", entry.elr)
        if entry.esr is not None:
            self._cpr_write(f"ESR_EL{t}", entry.esr)
        if entry.far is not None:
            self._cpr_write(f"FAR_EL{t}", entry.far)
        self.set_pstate(entry.pstate)
        self.pc = entry.vector
        icount = self.icount
        self._emit(
            ev.ExceptionEntry(
                icount, elr if at is None else at, kind.name.lower(), cause, ps.el, t, ps.to_bits(), entry.pstate.to_bits(),
                entry.spsr, entry.elr, entry.esr, entry.far, entry.vector, entry.vector_offset, note,
            )
        )
        key = (t, entry.vector, entry.elr, entry.esr)
        if key == self._loop_key and icount - self._loop_icount <= _LOOP_GAP:
            self._loop_count += 1
        else:
            self._loop_key, self._loop_count = key, 1
        self._loop_icount = icount
        if self._loop_count >= _LOOP_REPEATS:
            self._halt(
                StopReason.LOOP,
                f"exception loop: {cause} at {self.location(entry.elr)} entered the EL{t} vector "
                f"{self.location(entry.vector)} {self._loop_count} times without progress",
                pc=entry.elr,
            )

    def _apply_quirks(self, before: PState, entry):
        pstate = entry.pstate
        if "keep_uao_on_entry" in self.quirks:
            pstate = pstate.replace(uao=before.uao)
        if "no_pan_on_entry" in self.quirks:
            pstate = pstate.replace(pan=before.pan)
        if "dit_cleared_on_entry" in self.quirks:
            pstate = pstate.replace(dit=0)
        if "ssbs_kept_on_entry" in self.quirks:
            pstate = pstate.replace(ssbs=before.ssbs)
        return dataclasses.replace(entry, pstate=pstate)

    def _host_el0(self) -> bool:
        if self.pstate().el:
            return False
        hcr = self._cpr(SYSREGS["HCR_EL2"])
        return HCR_EL2.E2H.isset(hcr) and HCR_EL2.TGE.isset(hcr)

    def _supply(self, addr: int) -> None:
        """MSR (immediate) to a PSTATE field Unicorn's CPU lacks but the model has (DIT, SSBS:
        facts §8), not yet executed: the board performs it (msr_immediate) and moves on."""
        before = self.pstate()
        name, imm = decode_msr_imm(self._code_word(addr))
        self.set_pstate(msr_immediate(before, name, imm))
        self.pc = addr + 4
        self._ic.set(self.icount + 1)
        _PendingCheck(addr, before, self._supply_at[addr], 0, 0, None).finish(self)

    def _wfx_in_host(self, addr: int) -> None:
        """WFI/WFE at EL0 in host, not yet executed: the Arm rule decides (wfx_trap_target)."""
        is_wfe = decode.is_wfx(self._code_word(addr))[1]
        target = wfx_trap_target(0, self.sysctx(), is_wfe=is_wfe)
        if target is not None:
            esr = syndrome.make_esr(EC.WFX, syndrome.syn_wfx(is_wfe) & 0x1FFFFFF, 1)
            self._take(ExceptionType.SYNC, target, esr, None, addr, Cause.WFX_TRAP)
            return
        self.pc = addr + 4
        self._ic.set(self.icount + 1)
        self._wfi_sleep()

    def _eret_to_aarch32(self) -> bool:
        """SPSR_ELx.M[4] of an ERET about to run: a return to AArch32. This PE has no AArch32,
        so it is an illegal return (AArch64.ExceptionReturn); Unicorn's QEMU would switch to
        AArch32 instead (HCR_EL2.RW=0 makes EL1 AArch32 there) and run A32 code the board cannot
        follow, so the board performs it."""
        el = self.pstate().el
        return el > 0 and PSTATE.nRW.isset(self._cpr(SYSREGS[f"SPSR_EL{el}"]))

    def _eret_by_board(self, addr: int) -> None:
        check = self._pending_check(addr)
        self._ic.set(self.icount + 1)
        if self._trace is not None:
            self._trace.append(addr)
        check.finish(self, native=False)

    def _illegal_state(self, pc: int) -> None:
        ps = self.pstate()
        target = route_sync(EC.ILLEGAL_STATE, ps.el, self.sysctx(), self.features)
        self._take(ExceptionType.SYNC, target, syndrome.make_esr(EC.ILLEGAL_STATE, 0), None, pc, Cause.ILLEGAL_STATE)

    def _cpr_write(self, name: str, value: int) -> None:
        reg = SYSREGS[name]
        self.uc.cpr_write(reg.op0, reg.op1, reg.crn, reg.crm, reg.op2, value)

    def _firmware_smc(self) -> None:
        """EL3 firmware: PSCI through SMC, as QEMU's virt board provides it."""
        fn = self.reg(0) & 0xFFFF_FFFF
        if fn == PSCI_SYSTEM_OFF:
            self.off = "PSCI SYSTEM_OFF"
            self._halt(StopReason.POWEROFF, "PSCI SYSTEM_OFF")
        elif fn == PSCI_SYSTEM_RESET:
            self.off = "PSCI SYSTEM_RESET"
            self._halt(StopReason.RESET, "PSCI SYSTEM_RESET")
        else:
            self.set_reg(0, PSCI_NOT_SUPPORTED)

    def _at_boundary(self) -> bool:
        """At an instruction boundary: arm the injections that are due (their count reached, or
        the PC at their address) and take every armed one that routing (route_async) and masking
        (async_masked) no longer hold back, in order; taking one can leave another takeable (one
        routed to a higher EL). True when one was taken.

        What can make a held-back interrupt takeable: a PSTATE write (MSR DAIF*, ERET), hooked
        as observe points, or a change the user made, hence this runs before each run or step.
        Not exception entry (it sets D, A, I and F and never lowers the EL), and not an HCR_EL2
        write: that happens at EL2, where route_async sends every interrupt to EL2 anyway."""
        taken = False
        while self._injections and self._stop is None:
            pc, ic = self.pc, self.icount
            for inj in self._injections:
                if inj.at_addr == pc or (inj.at_icount is not None and inj.at_icount <= ic):
                    inj.armed = True
            if not self._take_unmasked():
                break
            taken = True
        return taken

    def _take_unmasked(self) -> bool:
        ps = self.pstate()
        ctx = self.sysctx()
        for inj in self._injections:
            if not inj.armed:
                continue
            target = route_async(inj.kind, ps.el, ctx)
            if async_masked(inj.kind, target, ps, ctx):
                continue
            self._injections.remove(inj)
            name = inj.kind.name.lower()
            if target == 3:
                self._halt(StopReason.UNHANDLED, f"{name} at {self.location(self.pc)} is routed to EL3, where only PSCI firmware runs")
                return False
            esr = syndrome.syn_serror() if inj.kind is ExceptionType.SERROR else None
            self._take(inj.kind, target, esr, None, self.pc, Cause(name), inj.note)
            return True
        return False

    def _pending_wakeup(self) -> bool:
        """WFI waits for the next scheduled interrupt: time passes, so it arrives now."""
        waiting = [i for i in self._injections if i.at_icount is not None and not i.armed]
        armed = [i for i in self._injections if i.armed]
        if not waiting and not armed:
            return False
        for inj in waiting:
            inj.armed = True
        self._at_boundary()
        return True  # a masked interrupt still wakes WFI; execution goes on after it

    def _emit(self, event: ev.Event) -> None:
        self.events.append(event)
        if self.stop_on_event is not None and self._stop is None:
            why = self.stop_on_event(event)
            if why:
                if self._store_in_hook is not None:
                    # Unicorn stops with the store done but PC still on it: resume after it.
                    pc, ic = self._store_in_hook
                    self._resume_after = (pc + 4, ic + 1)
                    self._halt(StopReason.WATCH, why, pc=pc + 4)
                else:
                    self._halt(StopReason.WATCH, why, pc=self.pc)

    def _halt(self, reason: StopReason, message: str, pc: int | None = None) -> None:
        if self._stop is not None:
            return
        at = self.pc if pc is None else pc
        self._stop = ev.Stop(self.icount, at, reason, message)
        self.events.append(self._stop)  # not _emit: a stop is final
        if self._in_emu:
            # outside emu_start a stop request would linger and end the next one at once
            self.uc.emu_stop()

    def _last_exceptions(self) -> str:
        last = [e for e in self.events[-200:] if isinstance(e, ev.ExceptionEntry)][-3:]
        if not last:
            return ""
        return "; last exceptions: " + ", ".join(
            f"{e.cause} EL{e.from_el}->EL{e.to_el} at {self.location(e.elr)}" for e in last
        )

    # ------------------------------------------------------------------ ERET and PSTATE writes

    def _pending_check(self, addr: int) -> _PendingCheck:
        ps = self.pstate()
        if addr in self._eret_at and ps.el > 0:
            ctx = self.sysctx()
            spsr = self._cpr(SYSREGS[f"SPSR_EL{ps.el}"])
            elr = self._cpr(SYSREGS[f"ELR_EL{ps.el}"])
            expected = exception_return(ps, spsr, elr, ctx, self.features)
            return _PendingCheck(addr, ps, "eret", spsr, elr, expected)
        return _PendingCheck(addr, ps, self._observe_at.get(addr, "eret"), 0, 0, None)

    # ------------------------------------------------------------------ system registers (VHE)

    def _redirect(self, cp) -> tuple[SysReg, SysReg] | None:
        """(named register, register actually accessed) when VHE changes the target."""
        reg = by_encoding(cp.op0, cp.op1, cp.crn, cp.crm, cp.op2)
        if reg is None or not (reg.alias_of or reg.e2h_redirect):
            return None
        if self.pstate().el != 2:
            return None
        if not HCR_EL2.E2H.isset(self._cpr(SYSREGS["HCR_EL2"])):
            return None  # E2H==0: *_EL12 stays UNDEFINED (QEMU raises it), EL1 names stay EL1
        return reg, SYSREGS[reg.alias_of or reg.e2h_redirect]

    def _on_mrs(self, uc: Uc, reg: int, cp, _ud: object) -> int:
        value = self._supplied_read(cp)
        if value is None:
            hit = self._redirect(cp)
            if hit is None:
                return 0
            value = self._cpr(hit[1])
        if reg not in (U.UC_ARM64_REG_XZR, U.UC_ARM64_REG_INVALID):
            uc.reg_write(reg, value)
        # Returning 1 skips the instruction but does not advance the PC (facts §7).
        uc.reg_write(U.UC_ARM64_REG_PC, uc.reg_read(U.UC_ARM64_REG_PC) + 4)
        return 1

    def _supplied_read(self, cp) -> int | None:
        """MRS of an ID register (QEMU 7.2's fields) or of a PSTATE field the board supplies;
        None for the rest. ID registers are UNDEFINED at EL0: Unicorn decides there."""
        named = by_encoding(cp.op0, cp.op1, cp.crn, cp.crm, cp.op2)
        if named is None:
            return None
        if named.name in self._supplied_regs:
            return read_pstate_sysreg(self.pstate(), named.name)
        if named.name in self._id_values and self.pstate().el > 0:
            return self._id_values[named.name]
        return None

    def _on_msr(self, uc: Uc, reg: int, cp, _ud: object) -> int:
        pc = uc.reg_read(U.UC_ARM64_REG_PC)
        named = by_encoding(cp.op0, cp.op1, cp.crn, cp.crm, cp.op2)
        name = named.name if named is not None else f"S{cp.op0}_{cp.op1}_C{cp.crn}_C{cp.crm}_{cp.op2}"
        hit = self._redirect(cp)
        ic = self._ic.at(pc)
        self._emit(ev.SysregWrite(ic, pc, name, cp.val, hit[1].name if hit else None))
        if name in self._supplied_regs:
            self.set_pstate(write_pstate_sysreg(self.pstate(), name, cp.val))  # a PSTATE field we supply
            uc.reg_write(U.UC_ARM64_REG_PC, pc + 4)
            return 1
        if hit is None:
            return 0
        target = hit[1]
        uc.cpr_write(target.op0, target.op1, target.crn, target.crm, target.op2, cp.val)
        if any(target.name.startswith(p) for p in _MMU_REGS):
            self._flush_tlb()
        uc.reg_write(U.UC_ARM64_REG_PC, pc + 4)
        return 1

    # ------------------------------------------------------------------ snapshots

    def save_state(self) -> BoardState:
        """A snapshot of CPU and memory (copy-on-write in Unicorn: ~20 us).

        Unicorn keeps memory snapshots as a stack: restoring one discards those
        taken after it, which is what reverse execution needs."""
        if not self._snapshots:
            # Context mode CPU|MEMORY makes context_save snapshot RAM as well.
            self.uc._Uc__ctl_w(UC_CTL_CONTEXT_MODE, (ctypes.c_int, UC_CTL_CONTEXT_CPU | UC_CTL_CONTEXT_MEMORY))
            self._snapshots = True
        return BoardState(
            self.uc.context_save(),
            self.icount,
            len(self.events),
            len(self.uart),
            [dataclasses.replace(i) for i in self._injections],
            len(self._trace) if self._trace is not None else 0,
            self.off,
        )

    def restore_state(self, state: BoardState) -> None:
        self.uc.context_restore(state.context)
        self._ic.set(state.icount)
        del self.events[state.n_events :]
        del self.uart[state.n_uart :]
        if self._trace is not None:
            del self._trace[state.n_trace :]
        self._injections = [dataclasses.replace(i) for i in state.injections]
        self._rebuild_hflags()
        self._flush_tlb()
        self._stop = None
        self.off = state.off

    def trace_lines(self) -> Iterable[str]:
        """The instruction trace: icount, address, word, disassembly, label."""
        if self._trace is None:
            return
        for i, addr in enumerate(self._trace):
            try:
                word = self._code_word(addr)
            except Exception:
                word = 0
            yield f"{i}\t{addr:#x}\t{word:08x}\t{decode.disasm_text(word, addr)}\t{self._label(addr) or ''}"


_EXCEPTION_NAMES = {  # ExceptionEntry.cause, as a stop message names it
    Cause.UNDEFINED: "UNDEFINED instruction", Cause.ILLEGAL_STATE: "Illegal Execution state exception",
    Cause.SVC: "SVC", Cause.HVC: "HVC", Cause.BRK: "BRK", Cause.SMC_TRAP: "SMC trapped by HCR_EL2.TSC",
    Cause.WFX_TRAP: "trapped WFI/WFE", Cause.SYSREG_TRAP: "trapped system register access",
    Cause.DATA_ABORT: "data abort", Cause.INST_ABORT: "instruction abort", Cause.IRQ: "IRQ", Cause.FIQ: "FIQ",
    Cause.SERROR: "SError",
}


class _HarnessFault(Exception):
    """The board cannot model what Unicorn did; the run stops with this message."""


@dataclass
class _PendingCheck:
    """State captured just before an ERET or a PSTATE write, checked just after it."""

    addr: int
    before: PState
    insn: str
    spsr: int
    elr: int
    expected: object  # ExceptionReturn | None

    def finish(self, board: Board, *, native: bool = True) -> None:
        """`native`: Unicorn ran the instruction; otherwise the board performs the return itself."""
        after = board.pstate()
        pc = board.pc
        if self.expected is None:
            changes = {k: [a, b] for k, (a, b) in self.before.diff(after).items()}
            board._emit(ev.PStateChange(board.icount - 1, self.addr, self.insn, self.before.to_bits(), after.to_bits(), changes))
            return
        exp = self.expected
        supplied = {k: getattr(exp.pstate, k) for k in board._supplied}
        if any(getattr(after, k) != v for k, v in supplied.items()):
            # Unicorn's CPU lacks these fields (its ERET drops them): the board supplies them
            after = after.replace(**supplied)
            board.set_pstate(after)
        qemu_pstate = qemu_pc = None
        note = exp.reason or ""
        if not native:
            note = (note + "; " if note else "") + (
                "performed by the board: Unicorn's QEMU would enter AArch32, which this PE does not implement")
            board.set_pstate(exp.pstate)
            board.pc = exp.pc
        elif exp.pstate != after or exp.pc != pc:
            # QEMU 5.0's helper disagrees with AArch64.ExceptionReturn: the Arm result wins.
            qemu_pstate, qemu_pc = after.to_bits(), pc
            fields = ", ".join(f"{k} {a}->{b}" for k, (a, b) in after.diff(exp.pstate).items())
            note = (note + "; " if note else "") + f"Unicorn's ERET differed ({fields or 'pc'}); Arm result applied"
            board.set_pstate(exp.pstate)
            board.pc = exp.pc
        board._emit(
            ev.ExceptionReturn(
                board.icount - 1, self.addr, self.before.el, exp.pstate.el, self.before.to_bits(),
                exp.pstate.to_bits(), self.spsr, self.elr, exp.illegal, qemu_pstate, qemu_pc, note,
            )
        )
        if exp.pstate.il:
            # With PSTATE.IL=1 the next instruction takes an Illegal Execution state exception
            # (D1.4.4); Unicorn's translator never raises it, so the board does.
            board._illegal_state(exp.pc)


def run_program(image, *, cpu: str = "max", max_insns: int = DEFAULT_MAX_INSNS, el: int = 2, **board_kwargs) -> RunResult:
    """Load an Image on a fresh board and run it to completion."""
    board = Board(cpu, **board_kwargs)
    try:
        board.load(image, el=el)
        return board.run(max_insns)
    finally:
        board.close()
