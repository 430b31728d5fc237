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

The Board keeps the run loop and the hook wiring; what it shows its users (state, memory,
watches, the trace, snapshots) is the facade in access.py; its collaborators are the system-register
port (sysport.py), the exception unit (excunit.py), the interrupt controller (interrupts.py),
the system instructions it completes (sysinsns.py), the address space (bus.py), and the run
state the hooks and the loop share (runstate.py).
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from unicorn import (
    UC_ARCH_ARM64,
    UC_ERR_FETCH_UNMAPPED,
    UC_ERR_READ_UNMAPPED,
    UC_ERR_WRITE_UNMAPPED,
    UC_HOOK_CODE,
    UC_HOOK_INSN,
    UC_HOOK_INTR,
    UC_HOOK_MEM_UNMAPPED,
    UC_MODE_ARM,
    Uc,
    UcError,
)
from unicorn import arm64_const as U

from harness.arch.exceptions import ExceptionType
from harness.arch.features import QEMU_ID_FIELDS, Features
from harness.arch.pstate import PSTATE_SYSREG_FIELDS, PState
from harness.arch.regs import BY_NAME, HCR_EL2, SCR_EL3
from harness.machine.access import BoardAccess, BoardError
from harness.machine.access import BoardState as BoardState  # (its users import it from here)
from harness.machine.bus import Bus
from harness.machine.excunit import ExceptionUnit, HarnessFault
from harness.machine.icount import ICounter, InsnTrace
from harness.machine.interrupts import Injection, InterruptController
from harness.machine.runstate import Action, Emu, Mode
from harness.machine.scan import HookPlan, scan
from harness.machine.sysinsns import PendingCheck, SysInsns
from harness.machine.sysport import SysregPort, uc_release
from harness.memmap import DEFAULT_LOAD, RAM_BASE, RAM_SIZE
from harness.trace import events as ev
from harness.trace.events import StopReason

DEFAULT_MAX_INSNS = 50_000_000
SCR_EL3_FIRMWARE = SCR_EL3.pack(NS=1, HCE=1, RW=1)  # 0x501: EL3 is firmware, EL2 and EL1 AArch64, non-secure

CPU_MODELS = {"max": U.UC_CPU_ARM64_MAX, "a57": U.UC_CPU_ARM64_A57}

_UNTIL = 0xFFFF_FFFF_FFFF_F000  # an address no program reaches: runs end through our stops
_ID_REGS = ("ID_AA64MMFR1_EL1", "ID_AA64MMFR2_EL1", "ID_AA64PFR0_EL1", "ID_AA64PFR1_EL1")

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
    """A Uc with RAM mapped. A Board that is close()d frees its Uc at once; one dropped without
    close() waits for the cyclic collector: when memory runs out, boards nobody holds any more
    are collected and the board is made again."""
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


class Board(BoardAccess):
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
        self.bus = Bus(uc, ram_size, uart_sink)
        self.port = SysregPort(uc)
        self._identify(cpu)
        self.events: list[ev.Event] = []
        self.image = None
        self.ic = ICounter(uc, self._check_at_block)
        self._block_error: BaseException | None = None  # raised in _check_at_block, re-raised after the run
        self.emu = Emu()
        self.exc = ExceptionUnit(self)
        self.irq = InterruptController(self)
        self.insns = SysInsns(self)
        self.check: PendingCheck | None = None  # an ERET or PSTATE write stepped, checked after it
        self._label_events = label_events
        self._hooks_by_addr: dict[int, int] = {}
        self.plan = HookPlan()  # the addresses the static scan hooks, and why
        self.off: str | None = None  # why the board is off (PSCI SYSTEM_OFF/RESET): it refuses to run
        self._breakpoints: set[int] = set()
        self.stopped: ev.Stop | None = None
        self._counted_tbs = False
        # Debugger watch: called with every event; a non-empty string stops the run with that message.
        self.stop_on_event: Callable[[ev.Event], str | None] | None = None
        self._interrupt = False  # set by interrupt(), from a signal handler or another thread
        uc.hook_add(UC_HOOK_INTR, self.exc.on_intr)
        uc.hook_add(UC_HOOK_INSN, self.insns.on_mrs, None, 1, 0, U.UC_ARM64_INS_MRS)
        uc.hook_add(UC_HOOK_INSN, self.insns.on_msr, None, 1, 0, U.UC_ARM64_INS_MSR)
        uc.hook_add(UC_HOOK_MEM_UNMAPPED, self._on_unmapped)
        # before the scan's hooks, so that a stop before an instruction can take it back
        self._trace = InsnTrace(uc) if trace_insns else None
        self.reset()

    def _identify(self, cpu: str) -> None:
        """The ID registers read as QEMU 7.2's for the CPU model, and the PSTATE fields they
        promise that Unicorn's CPU lacks (DIT, SSBS on max: facts §8) the board supplies."""
        native = {n: self.port.read(n) for n in _ID_REGS}
        self.port.id_values = {n: BY_NAME[n].replace(native[n], **v) for n, v in QEMU_ID_FIELDS[cpu].items()}
        self.features = Features.from_id_regs(cpu, *(self.port.id_values.get(n, v) for n, v in native.items()))
        self.supplied = self.features.pstate_fields - Features.from_id_regs(cpu, *native.values()).pstate_fields
        self.supplied_regs = {n for n, keys in PSTATE_SYSREG_FIELDS.items() if set(keys) <= self.supplied}

    def close(self) -> None:
        """Give Unicorn's memory back now (RAM and translation buffer, ~330 MB of address space)
        and break every reference cycle (hooks, collaborators), so nothing waits for the cyclic
        collector; a closed board cannot run again."""
        uc = self.__dict__.pop("uc", None)
        self.ic = None
        for name in ("exc", "irq", "insns", "port", "bus", "stop_on_event"):
            self.__dict__.pop(name, None)
        if uc is not None:
            uc_release(uc)

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
        self.plan = plan = scan(image, self.supplied, self._label_events)
        for addr in sorted(set(plan.addresses())):
            self._hook_addr(addr)
        self.reset(image.entry if entry is None else entry, el)

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

    def inject(self, kind: str | ExceptionType, *, at_icount: int | None = None, at: int | str | None = None,
               note: str = "") -> None:
        """Make IRQ/FIQ/SError pending at the instruction boundary where the count reaches
        `at_icount` (the current count: this boundary), or where execution reaches address or
        label `at` (before that instruction). It is taken at that boundary when the masking and
        routing rules (route_async, async_masked) let it, else at the first later boundary
        where they do (after an MSR DAIF*, an ERET, or a change the user made): before
        instruction N+1 for a boundary N, in `run` and `step` alike. `note` goes into the
        ExceptionEntry event of its entry (to tell this injection from others)."""
        exc_type = self.irq.kind(kind)
        if exc_type is None:
            raise BoardError(f"cannot inject {kind!r}: choose irq, fiq or serror")
        if (at_icount is None) == (at is None):
            raise BoardError("inject needs exactly one of an instruction count or a location")
        self._refuse_if_off("inject")
        inj = Injection(exc_type, note=note)
        if at is not None:
            inj.at_addr = self.check_code_addr(self.resolve(at) if isinstance(at, str) else at, "injection point")
            self._hook_addr(inj.at_addr)
            self._uncache(inj.at_addr)
        else:
            if at_icount < self.icount:
                raise BoardError(f"cannot inject at instruction {at_icount:,}: the board is at {self.icount:,}")
            inj.at_icount = at_icount
        self.irq.add(inj)

    # ------------------------------------------------------------------ running

    def run(self, max_insns: int = DEFAULT_MAX_INSNS) -> RunResult:
        """Run until the program powers off or the board stops it."""
        self._refuse_if_off("run")
        budget = self.icount + max_insns
        self.stopped = None
        while self.stopped is None:
            if self._interrupt:
                self._interrupted()
                break
            self._run_until(budget)
        return self._result()

    def interrupt(self) -> None:
        """End the current run at once (safe from a signal handler or another thread): it stops
        with status "interrupt", with everything recorded so far."""
        self._interrupt = True
        ic, uc = self.ic, self.__dict__.get("uc")
        if ic is not None and uc is not None:  # (not closed)
            ic.state.limit = 0  # the native block hook stops before the next block
            uc.emu_stop()

    def _interrupted(self) -> None:
        self._interrupt = False
        self.halt(StopReason.INTERRUPT, "interrupted")

    def step(self, n: int = 1) -> RunResult | None:
        """Execute n instructions (exceptions taken count as the faulting instruction's step;
        an interrupt taken at the boundary before an instruction is a step of its own)."""
        self._refuse_if_off("step")
        self.stopped = None
        for _ in range(n):
            if self.stopped is not None:
                break
            if not self.irq.at_boundary():
                self._step_one()
                self.irq.at_boundary()
        return self._result() if self.stopped is not None else None

    def _refuse_if_off(self, what: str) -> None:
        if self.off is not None:
            raise BoardError(f"cannot {what}: the program has ended ({self.off}); load it again to start over")

    def _result(self) -> RunResult:
        st = self.stopped
        assert st is not None
        return RunResult(st.reason, st.message, st.pc, self._label(st.pc), st.icount, bytes(self.uart), self.events)

    def _run_until(self, budget: int) -> None:
        """One free run of emu_start up to the next injection count or the budget, and what a
        hook stopped it for."""
        self.irq.at_boundary()  # an interrupt pending now (injected now, or unmasked by the user)
        if self.stopped is not None:
            return
        limit = self.irq.next_due(self.icount, budget)
        st = self.ic.state
        st.limit = limit
        st.hit = 0
        self.emu.action = None
        if self._interrupt:  # arrived before the limit was set, which overwrote its limit 0
            st.limit = 0
        self._emu(self.pc)
        if self.stopped is not None:
            return
        if self._interrupt:
            # stopped between blocks: before an uncounted block (hit) or after a counted one
            if st.hit:
                self.ic.set(st.count)
            else:
                self.ic.settle(self.pc)
            self._interrupted()
            return
        action, at = self.emu.take_action()
        if action is Action.OBSERVED and st.hit:
            self.ic.set(st.count)
            check, self.check = self.check, None
            if check is not None:
                check.finish(self)
            self.irq.at_boundary()
        elif action is not None and action is not Action.OBSERVED:
            self._act(action, at)
        elif st.hit:
            self.ic.set(st.count)
            self._finish_to(limit, budget)
        else:
            # emu_start returned on its own: WFI with nothing to wake it, in Unicorn's model.
            self.ic.settle(self.pc)
            self.wfi_sleep()

    def _act(self, action: Action, at: int) -> None:
        """What a code hook stopped the free run for, before the instruction at `at`."""
        if action is Action.BREAKPOINT:
            self.halt(StopReason.BREAKPOINT, f"breakpoint at {self.location(at)}")
        elif action is Action.WFX:
            self.exc.wfx_in_host(at)
        elif action is Action.SUPPLY:
            self.insns.supply(at)
        elif action is Action.INJECT:
            # Taken before the labelled instruction; if masked it stays armed and is taken
            # after the ERET or PSTATE write that unmasks it (both are observe points).
            self.irq.at_boundary()
        else:
            self._step_one()  # runs the hooked ERET / PSTATE write natively
            self.irq.at_boundary()

    def _finish_to(self, limit: int, budget: int) -> None:
        """The native hook stopped before a block that would pass `limit`: finish exactly,
        each boundary processed as in step()."""
        while self.icount < limit and self.stopped is None:
            if not self.irq.at_boundary():
                self._step_one()
        self.irq.at_boundary()
        if self.stopped is None and self.icount >= budget:
            self.halt(StopReason.BUDGET, f"instruction budget of {budget:,} exceeded{self.exc.last_exceptions()}")

    def wfi_sleep(self) -> None:
        """A WFI/WFE that did not trap, PC after it: wake on an interrupt or sleep forever."""
        if self.irq.at_boundary():
            return
        if self.irq.wakeup():
            return
        self.halt(StopReason.HALTED, "WFI/WFE with no interrupt pending: the CPU would sleep forever")

    def _emu(self, pc: int, count: int = 0) -> None:
        emu = self.emu
        if count and not self._counted_tbs:
            # Unicorn adds its count hook without dropping blocks translated in free run,
            # and those never call it: a count=1 "step" would then run on (verified).
            self.uc.ctl_flush_tb()
        self._counted_tbs = bool(count)  # leaving count mode, Unicorn flushes by itself
        emu.resume_after = None
        emu.mode = Mode.STEPPING if count else Mode.RUNNING
        self.ic.state.pending = 0  # (one a run that ended before the next block left)
        try:
            self.uc.emu_start(pc, _UNTIL, 0, count)
        except UcError as e:
            if e.errno in (UC_ERR_READ_UNMAPPED, UC_ERR_WRITE_UNMAPPED, UC_ERR_FETCH_UNMAPPED) and emu.unmapped:
                access, addr, at = emu.unmapped
                self.ic.settle(at)
                emu.retired = False  # the access faulted: the instruction did not retire
                self.halt(StopReason.UNMAPPED, self.exc.unmapped_message(access, addr), pc=at)
            else:
                self.halt(StopReason.ERROR, f"Unicorn stopped: {e}")
        except HarnessFault as e:
            self.halt(StopReason.ERROR, str(e))
        finally:
            stepping = emu.mode is Mode.STEPPING
            emu.mode = Mode.IDLE
        if self._block_error is not None:
            err, self._block_error = self._block_error, None
            raise err
        if emu.resume_after is not None:
            self.pc, icount = emu.resume_after
            if not stepping:
                self.ic.set(icount)

    def _step_one(self) -> None:
        """One instruction with count=1 (the native counter is corrected after it)."""
        pc = self.pc
        before = self.icount
        # a limit left by the last run would stop this step's block before it executes
        self.ic.state.limit = (1 << 64) - 1
        self.emu.retired = True
        self.emu.step_from = pc
        self.check = None
        self._emu(pc, 1)
        # in a step, hooks only record (an armed injection waits for at_boundary)
        action, _at = self.emu.take_action()
        self.ic.set(before + (1 if self.emu.retired else 0))
        if action is Action.WFX:
            self.exc.wfx_in_host(pc)
        elif action is Action.SUPPLY:
            self.insns.supply(pc)
        elif action is Action.ERET_BY_BOARD:
            self.insns.eret_by_board(pc)
        else:
            check, self.check = self.check, None
            if check is not None and self.stopped is None:
                check.finish(self)

    # ------------------------------------------------------------------ hooks

    def _on_code(self, uc: Uc, addr: int, size: int, _ud: object) -> None:
        if addr in self.plan.labels_at:
            ic = self.ic.at(addr)
            last = self.events[-1] if self.events else None
            # A stop before this instruction makes the hook run again when it executes.
            if not (isinstance(last, ev.LabelReached) and last.pc == addr and last.icount == ic):
                self.emit(ev.LabelReached(ic, addr, self.plan.labels_at[addr], self.port.reg(U.UC_ARM64_REG_PSTATE)))
        stepping = self.emu.mode is Mode.STEPPING
        if self.irq.at_addr(addr):
            self._stop_before(addr, Action.INJECT)
        elif addr in self._breakpoints and not stepping:
            self._stop_before(addr, Action.BREAKPOINT)
        elif addr in self.plan.wfx_at and self._host_el0():
            self._stop_before(addr, Action.WFX)
        elif addr in self.plan.supply_at:
            self._stop_before(addr, Action.SUPPLY)
        elif addr in self.plan.eret_at or addr in self.plan.observe_at:
            if not stepping:
                self._observe(addr)
            elif addr in self.plan.eret_at and self.insns.eret_to_aarch32():
                self._stop_before(addr, Action.ERET_BY_BOARD)
            else:
                self.check = self.insns.pending_check(addr)

    def _observe(self, addr: int) -> None:
        """An ERET or PSTATE write in a free run. QEMU ends a translation block after each; when
        this one does, it runs natively and the native counter calls _check_at_block at the
        next block (no single step, whose count mode would make Unicorn drop every translated
        block when the free run resumes)."""
        st = self.ic.state
        to_aarch32 = addr in self.plan.eret_at and self.insns.eret_to_aarch32()  # the board performs it
        if st.last_size and st.last_addr + st.last_size == addr + 4 and not to_aarch32:
            self.check = self.insns.pending_check(addr)
            st.pending = 1
            self.emu.request(Action.OBSERVED, addr)
        else:
            self._stop_before(addr, Action.OBSERVE)

    def _check_at_block(self, addr: int) -> int:
        """The native counter, at the block after an ERET / PSTATE write that ended its own
        (_observe), before counting it. When the check only records (Unicorn's result is the Arm
        one, IL clear) and nothing else is due (no injection, stop, interrupt or watch), finish
        it here and let the run go on: 0. Otherwise 1: the run stops before this block and the
        run loop finishes the check (Action.OBSERVED), since a state written from a block hook
        would not be the one the block was translated for."""
        try:
            check = self.check
            if (check is None or self.stopped is not None or self._interrupt or self.stop_on_event is not None
                    or self.pc != addr or self.irq.pending and self.irq.due(addr, self.ic.state.count)):
                return 1
            exp = check.expected
            if exp is not None and (exp.pstate.il or exp.pc != addr or exp.pstate != self.port.pstate()):
                return 1
            self.ic.set(self.ic.state.count)  # the count is exact here (the last block ended at the check)
            self.check = None
            self.emu.take_action()
            check.finish(self)
            return 0
        except BaseException as e:  # a ctypes callback cannot raise: re-raised after emu_start
            self._block_error = e
            return 1

    def _host_el0(self) -> bool:
        if self.port.pstate().el:
            return False
        hcr = self.port.read("HCR_EL2")
        return HCR_EL2.E2H.isset(hcr) and HCR_EL2.TGE.isset(hcr)

    def _stop_before(self, addr: int, action: Action) -> None:
        if self.emu.mode is Mode.STEPPING:
            self.emu.retired = False
        else:
            self.ic.settle(addr)
        self.trace_not_executed(addr)  # the step that runs it will record it
        self.emu.request(action, addr)
        self.uc.emu_stop()

    def _on_unmapped(self, uc: Uc, access: int, addr: int, size: int, value: int, _ud: object) -> bool:
        self.emu.unmapped = (access, addr, uc.reg_read(U.UC_ARM64_REG_PC))
        return False

    def emit(self, event: ev.Event) -> None:
        self.events.append(event)
        if self.stop_on_event is not None and self.stopped is None:
            why = self.stop_on_event(event)
            if why:
                store = self.emu.store_at
                if store is not None:
                    # Unicorn stops with the store done but PC still on it: resume after it.
                    pc, ic = store
                    self.emu.resume_after = (pc + 4, ic + 1)
                    self.halt(StopReason.WATCH, why, pc=pc + 4)
                else:
                    self.halt(StopReason.WATCH, why, pc=self.pc)

    def halt(self, reason: StopReason, message: str, pc: int | None = None) -> None:
        if self.stopped is not None:
            return
        at = self.pc if pc is None else pc
        self.stopped = ev.Stop(self.icount, at, reason, message)
        self.events.append(self.stopped)  # not emit: a stop is final
        if self.emu.mode is not Mode.IDLE:
            # outside emu_start a stop request would linger and end the next one at once
            self.uc.emu_stop()



def run_program(image, *, cpu: str = "max", max_insns: int = DEFAULT_MAX_INSNS, el: int = 2, **board_kwargs) -> RunResult:
    """Load an Image on a fresh board and run it to completion."""
    board = Board(cpu, **board_kwargs)
    try:
        board.load(image, el=el)
        return board.run(max_insns)
    finally:
        board.close()
