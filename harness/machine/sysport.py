"""The system-register port: every access the board makes to a system register, PSTATE or the
banked stack pointers, the VHE redirection Unicorn's QEMU copy compiles out (facts §7), the TLB
flush and hflags rebuild its raw writes need, and every call into the Unicorn binding's private
API (name-mangled `_Uc__*` methods, the `_uch` handle) kept in this one module."""

from __future__ import annotations

import ctypes

from unicorn import (
    UC_CTL_CONTEXT_CPU,
    UC_CTL_CONTEXT_MEMORY,
    UC_CTL_CONTEXT_MODE,
    UC_CTL_TLB_FLUSH,
    Uc,
    UcError,
)
from unicorn import arm64_const as U
from unicorn.unicorn_py3.unicorn import uclib as _uclib

from harness.arch.exceptions import SysCtx
from harness.arch.pstate import PSTATE_SYSREG_FIELDS, PState, read_pstate_sysreg
from harness.arch.regs import HCR_EL2
from harness.arch.sysregs import SYSREGS, SysReg, by_encoding, lookup

_MMU_REGS = ("SCTLR", "TCR", "TTBR0", "TTBR1", "MAIR", "HCR")
SP_BANK = (U.UC_ARM64_REG_SP_EL0, U.UC_ARM64_REG_SP_EL1, U.UC_ARM64_REG_SP_EL2, U.UC_ARM64_REG_SP_EL3)
X_REGS = [getattr(U, f"UC_ARM64_REG_X{i}") for i in range(29)] + [U.UC_ARM64_REG_X29, U.UC_ARM64_REG_X30]


_reg_read = _uclib.uc_reg_read
_reg_write = _uclib.uc_reg_write
_reg_read_batch = _uclib.uc_reg_read_batch
_CP_REG = U.UC_ARM64_REG_CP_REG
_PC = U.UC_ARM64_REG_PC
_PSTATE = U.UC_ARM64_REG_PSTATE
# The registers SysCtx holds, read in one uc_reg_read_batch call.
_SYSCTX = ("HCR_EL2", "SCR_EL3", "SCTLR_EL1", "SCTLR_EL2", "SCTLR_EL3", "VBAR_EL1", "VBAR_EL2", "VBAR_EL3")


class _CpReg(ctypes.Structure):  # uc_arm64_cp_reg
    _fields_ = [("crn", ctypes.c_uint32), ("crm", ctypes.c_uint32), ("op0", ctypes.c_uint32),
                ("op1", ctypes.c_uint32), ("op2", ctypes.c_uint32), ("val", ctypes.c_uint64)]


class SysregError(Exception):
    """An unknown system-register name (one line)."""


def uc_handle(uc: Uc) -> object:
    """The uc_engine handle, for calling libunicorn directly (the native instruction counter)."""
    return uc._uch


def uc_release(uc: Uc) -> None:
    """Unicorn's own release (uc_close), now instead of at garbage collection; the binding's
    hook and MMIO wrappers, which refer to the Uc and its owner, are dropped with it. Each is a
    ctypes.cast of a CFUNCTYPE, and cast shares one `_objects` dict between the two that holds
    the source: a cycle only the collector would break, so empty it."""
    uc._Uc__finalizer()
    held = list(uc._callbacks.values()) + [f for pair in uc._mmio_callbacks.values() for f in pair]
    uc._callbacks.clear()
    uc._mmio_callbacks.clear()
    for fptr in held:
        objects = getattr(fptr, "_objects", None)
        if isinstance(objects, dict):
            objects.clear()


def flushes_tlb(reg: SysReg) -> bool:
    """Raw CP_REG writes skip QEMU's TLB flush (facts §7): these registers need one after."""
    return reg.name.startswith(_MMU_REGS)


def named(cp) -> SysReg | None:
    """The register an MRS/MSR hook's operand names."""
    return by_encoding(cp.op0, cp.op1, cp.crn, cp.crm, cp.op2)


class SysregPort:
    """System registers, PSTATE and SP of one Uc."""

    def __init__(self, uc: Uc, id_values: dict[str, int] | None = None) -> None:
        self.uc = uc
        self.id_values = id_values or {}
        self._snapshots = False
        # Straight to libunicorn with buffers made once: the binding's reg_read builds a ctypes
        # object and looks up the register class on every call (~660 reads per scenario).
        self._uch = uc_handle(uc)
        self._u64 = ctypes.c_uint64()
        self._u64_ref = ctypes.byref(self._u64)
        self._cps: dict[SysReg, tuple[_CpReg, object]] = {}
        n = len(_SYSCTX)
        self._ctx_regs = [_CpReg(r.crn, r.crm, r.op0, r.op1, r.op2, 0) for r in map(SYSREGS.__getitem__, _SYSCTX)]
        self._ctx_ids = (ctypes.c_int * n)(*([_CP_REG] * n))
        self._ctx_ptrs = (ctypes.c_void_p * n)(*(ctypes.addressof(c) for c in self._ctx_regs))
        # PC, PSTATE and HCR_EL2 in one batch (a walk that reads them at every step)
        self._walk_vals = (ctypes.c_uint64 * 2)()
        self._walk_hcr = _CpReg(*(getattr(SYSREGS["HCR_EL2"], f) for f in ("crn", "crm", "op0", "op1", "op2")), 0)
        self._walk_ids = (ctypes.c_int * 3)(_PC, _PSTATE, _CP_REG)
        self._walk_ptrs = (ctypes.c_void_p * 3)(ctypes.addressof(self._walk_vals), ctypes.addressof(self._walk_vals) + 8,
                                                ctypes.addressof(self._walk_hcr))

    # -- raw access

    def _cp(self, reg: SysReg) -> tuple[_CpReg, object]:
        cp = self._cps.get(reg)
        if cp is None:
            st = _CpReg(reg.crn, reg.crm, reg.op0, reg.op1, reg.op2, 0)
            cp = self._cps[reg] = (st, ctypes.byref(st))
        return cp

    def cpr(self, reg: SysReg) -> int:
        st, ref = self._cp(reg)
        err = _reg_read(self._uch, _CP_REG, ref)
        if err:
            raise UcError(err)
        return st.val

    def cpr_write(self, reg: SysReg, value: int) -> None:
        st, ref = self._cp(reg)
        st.val = value
        err = _reg_write(self._uch, _CP_REG, ref)
        if err:
            raise UcError(err)

    def reg(self, reg_id: int) -> int:
        """A 64-bit core register (PC, PSTATE, SP, Xn)."""
        err = _reg_read(self._uch, reg_id, self._u64_ref)
        if err:
            raise UcError(err)
        return self._u64.value

    def read(self, name: str) -> int:
        """A register by its table name (no aliases, no supplied values)."""
        return self.cpr(SYSREGS[name])

    def write(self, name: str, value: int) -> None:
        self.cpr_write(SYSREGS[name], value)

    def flush_tlb(self) -> None:
        # UC_CTL_TLB_FLUSH has no wrapper in the Python binding of Unicorn 2.1.4.
        self.uc._Uc__ctl_w(UC_CTL_TLB_FLUSH)

    def rebuild_hflags(self) -> None:
        # A CP_REG write makes Unicorn call arm_rebuild_hflags (facts §7); SCR_EL3 is ours, so rewrite it.
        scr = SYSREGS["SCR_EL3"]
        self.cpr_write(scr, self.cpr(scr))

    def snapshot_memory(self) -> None:
        """Make context_save snapshot RAM as well (context mode CPU|MEMORY), once."""
        if not self._snapshots:
            self.uc._Uc__ctl_w(UC_CTL_CONTEXT_MODE, (ctypes.c_int, UC_CTL_CONTEXT_CPU | UC_CTL_CONTEXT_MEMORY))
            self._snapshots = True

    # -- PSTATE and SP

    def pc(self) -> int:
        return self.reg(_PC)

    def pstate(self) -> PState:
        return PState.from_bits(self.reg(_PSTATE))

    def set_pstate(self, new: PState) -> None:
        """Write PSTATE as an exception entry/return would: bank SP, rebuild hflags."""
        uc = self.uc
        old = self.pstate()
        old_bank = old.el if old.sp else 0
        new_bank = new.el if new.sp else 0
        if old_bank != new_bank:
            uc.reg_write(SP_BANK[old_bank], uc.reg_read(U.UC_ARM64_REG_SP))
        uc.reg_write(U.UC_ARM64_REG_PSTATE, new.to_bits())
        if old_bank != new_bank:
            uc.reg_write(U.UC_ARM64_REG_SP, uc.reg_read(SP_BANK[new_bank]))
        self.rebuild_hflags()

    def pc_pstate_hcr(self) -> tuple[int, PState, int]:
        """(PC, PSTATE, HCR_EL2) in one uc_reg_read_batch call."""
        err = _reg_read_batch(self._uch, self._walk_ids, self._walk_ptrs, 3)
        if err:
            raise UcError(err)
        return self._walk_vals[0], PState.from_bits(self._walk_vals[1]), self._walk_hcr.val

    def sysctx(self) -> SysCtx:
        err = _reg_read_batch(self._uch, self._ctx_ids, self._ctx_ptrs, len(_SYSCTX))
        if err:
            raise UcError(err)
        return SysCtx(*(c.val for c in self._ctx_regs))

    # -- by name, as the user and the set-up see them

    @staticmethod
    def resolve(name: str) -> SysReg:
        try:
            reg = lookup(name)
        except KeyError as e:
            raise SysregError(str(e).strip("'\"")) from None
        return SYSREGS.get(reg.alias_of, reg) if reg.alias_of else reg

    def _sp_target(self, reg: SysReg) -> int:
        n = int(reg.name[-1])
        ps = self.pstate()
        return U.UC_ARM64_REG_SP if (ps.el if ps.sp else 0) == n else SP_BANK[n]

    def read_sysreg(self, name: str) -> int:
        reg = self.resolve(name)
        if reg.name.startswith("SP_EL"):
            return self.uc.reg_read(self._sp_target(reg))
        if reg.name in PSTATE_SYSREG_FIELDS:
            return read_pstate_sysreg(self.pstate(), reg.name)
        return self.id_values[reg.name] if reg.name in self.id_values else self.cpr(reg)

    def write_sysreg(self, name: str, value: int) -> None:
        reg = self.resolve(name)
        if reg.name.startswith("SP_EL"):
            self.uc.reg_write(self._sp_target(reg), value)
            return
        self.cpr_write(reg, value)
        if flushes_tlb(reg):
            self.flush_tlb()

    # -- VHE

    def redirect(self, cp) -> tuple[SysReg, SysReg] | None:
        """(named register, register actually accessed) when VHE changes the target."""
        reg = named(cp)
        if reg is None or not (reg.alias_of or reg.e2h_redirect):
            return None
        if self.pstate().el != 2:
            return None
        if not HCR_EL2.E2H.isset(self.read("HCR_EL2")):
            return None  # E2H==0: *_EL12 stays UNDEFINED (QEMU raises it), EL1 names stay EL1
        return reg, SYSREGS[reg.alias_of or reg.e2h_redirect]
