"""Capstone decoding the board needs to derive what Unicorn does not report:
syndromes (immediates, sysreg operands) and the virtual address of a faulting access."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import capstone
from capstone import arm64_const as A
from unicorn import arm64_const as U

_cs = capstone.Cs(capstone.CS_ARCH_ARM64, capstone.CS_MODE_ARM)
_cs.detail = True
_cs_lite = capstone.Cs(capstone.CS_ARCH_ARM64, capstone.CS_MODE_ARM)

ERET = 0xD69F03E0
_UNPRIV = re.compile(r"^(ld|st)tr(b|h|sb|sh|sw)?$")
# Loads whose data operand is also written: atomics, exclusives count as reads except the store forms.
_STORE = re.compile(r"^(st|swp|cas|ld(add|clr|eor|set|smax|smin|umax|umin))")


@lru_cache(maxsize=65536)
def disasm(word: int, addr: int = 0) -> tuple[str, str]:
    """(mnemonic, operands) of one instruction word, ("", ".inst 0x...") when undecodable."""
    for _a, _s, mnem, ops in _cs_lite.disasm_lite(word.to_bytes(4, "little"), addr, 1):
        return mnem, ops
    return "", f".inst 0x{word:08x}"


def disasm_text(word: int, addr: int = 0) -> str:
    mnem, ops = disasm(word, addr)
    return f"{mnem} {ops}".strip() if mnem else ops


def imm16(word: int) -> int:
    """imm16 of SVC/HVC/SMC/BRK/HLT (bits [20:5])."""
    return (word >> 5) & 0xFFFF


def sysreg_operands(word: int) -> tuple[tuple[int, int, int, int, int], int, bool] | None:
    """For an MRS/MSR (register) word: (op0, op1, CRn, CRm, op2), Rt, is_read."""
    if (word & 0xFFD00000) != 0xD5100000:
        return None
    is_read = bool(word & (1 << 21))
    op0 = 2 + ((word >> 19) & 1)
    op1 = (word >> 16) & 7
    crn = (word >> 12) & 0xF
    crm = (word >> 8) & 0xF
    op2 = (word >> 5) & 7
    return (op0, op1, crn, crm, op2), word & 0x1F, is_read


def is_wfx(word: int) -> tuple[bool, bool]:
    """(is WFI or WFE, is WFE)."""
    if word == 0xD503207F:
        return True, False
    if word == 0xD503205F:
        return True, True
    return False, False


@dataclass(frozen=True)
class MemAccess:
    va: int
    write: bool
    unprivileged: bool  # LDTR/STTR family


_UC_REG: dict[str, int] = {}


def _uc_reg(name: str) -> int:
    reg = _UC_REG.get(name)
    if reg is None:
        reg = getattr(U, "UC_ARM64_REG_" + name.upper())
        _UC_REG[name] = reg
    return reg


def unprivileged_ldst(word: int) -> tuple[int, int, int, bool] | None:
    """(Rn, Rt, simm9, is_store) of an LDTR/STTR-family word (C4.1.4, "Load/store unprivileged").

    capstone 5.0.7 cannot decode the loads when Rt == Rn (e.g. 0xf8400800, `ldtr x0, [x0]`)."""
    if word & 0x3B200C00 != 0x38000800:
        return None
    imm9 = (word >> 12) & 0x1FF
    simm9 = imm9 - 0x200 if imm9 & 0x100 else imm9
    opc = (word >> 22) & 3
    return (word >> 5) & 31, word & 31, simm9, opc == 0


def mem_access(word: int, pc: int, read_reg: Callable[[int], int]) -> MemAccess | None:
    """The virtual address a load/store at `pc` accesses, from its operands and the registers."""
    insns = list(_cs.disasm(word.to_bytes(4, "little"), pc, 1))
    if not insns:
        unpriv = unprivileged_ldst(word)
        if unpriv is None:
            return None
        rn, _rt, simm9, store = unpriv
        base = read_reg(U.UC_ARM64_REG_SP if rn == 31 else _uc_reg(f"x{rn}"))
        return MemAccess((base + simm9) & 0xFFFFFFFFFFFFFFFF, store, True)
    insn = insns[0]
    mnem = insn.mnemonic
    for op in insn.operands:
        if op.type != A.ARM64_OP_MEM:
            continue
        base = op.mem.base
        if base == 0:
            return None
        va = read_reg(_uc_reg(insn.reg_name(base)))
        # Post-indexed forms access [base]; capstone puts the post-increment in a separate operand.
        va += op.mem.disp
        if op.mem.index:
            idx_name = insn.reg_name(op.mem.index)
            idx = read_reg(_uc_reg(idx_name))
            if idx_name.startswith("w"):
                idx &= 0xFFFFFFFF
                if op.ext in (A.ARM64_EXT_SXTW,) and idx & 0x80000000:
                    idx -= 1 << 32
            if op.shift.type == A.ARM64_SFT_LSL:
                idx <<= op.shift.value
            va += idx
        return MemAccess(va & 0xFFFFFFFFFFFFFFFF, bool(_STORE.match(mnem)), bool(_UNPRIV.match(mnem)))
    return None
