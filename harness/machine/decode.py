"""Capstone decoding the board needs to derive what Unicorn does not report:
syndromes (immediates, sysreg operands) and the virtual address of a faulting access."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from unicorn import arm64_const as U

from harness.arch.insn import ERET, imm16, is_wfx, sysreg_operands, unprivileged_ldst

__all__ = ["ERET", "MemAccess", "disasm", "disasm_text", "imm16", "is_wfx", "mem_access", "sysreg_operands",
           "unprivileged_ldst"]



@lru_cache(maxsize=2)
def _capstone(detail: bool):
    """A capstone decoder, made on first use: `run X.elf` of a program with nothing to
    disassemble never imports capstone (issue 12 start-up)."""
    import capstone

    cs = capstone.Cs(capstone.CS_ARCH_ARM64, capstone.CS_MODE_ARM)
    cs.detail = detail
    return cs


_UNPRIV = re.compile(r"^(ld|st)tr(b|h|sb|sh|sw)?$")
# Loads whose data operand is also written: atomics, exclusives count as reads except the store forms.
_STORE = re.compile(r"^(st|swp|cas|ld(add|clr|eor|set|smax|smin|umax|umin))")


@lru_cache(maxsize=65536)
def disasm(word: int, addr: int = 0) -> tuple[str, str]:
    """(mnemonic, operands) of one instruction word, ("", ".inst 0x...") when undecodable."""
    for _a, _s, mnem, ops in _capstone(False).disasm_lite(word.to_bytes(4, "little"), addr, 1):
        return mnem, ops
    return "", f".inst 0x{word:08x}"


def disasm_text(word: int, addr: int = 0) -> str:
    mnem, ops = disasm(word, addr)
    return f"{mnem} {ops}".strip() if mnem else ops


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


def mem_access(word: int, pc: int, read_reg: Callable[[int], int]) -> MemAccess | None:
    """The virtual address a load/store at `pc` accesses, from its operands and the registers."""
    op = _mem_operand(word)
    if op is None:
        return None
    base, disp, index, index_w, sxtw, lsl, write, unpriv = op
    va = read_reg(base) + disp
    if index is not None:
        idx = read_reg(index)
        if index_w:
            idx &= 0xFFFFFFFF
            if sxtw and idx & 0x80000000:
                idx -= 1 << 32
        va += idx << lsl
    return MemAccess(va & 0xFFFFFFFFFFFFFFFF, write, unpriv)


@lru_cache(maxsize=4096)
def _mem_operand(word: int) -> tuple | None:
    """The memory operand of a load/store word (decoded once per word: the registers vary, the
    operand does not): (base, disp, index, index is W, SXTW, LSL amount, write, unprivileged)."""
    insns = list(_capstone(True).disasm(word.to_bytes(4, "little"), 0, 1))
    if not insns:
        unpriv = unprivileged_ldst(word)
        if unpriv is None:
            return None
        rn, _rt, simm9, store = unpriv
        return (U.UC_ARM64_REG_SP if rn == 31 else _uc_reg(f"x{rn}")), simm9, None, False, False, 0, store, True
    from capstone import arm64_const as A

    insn = insns[0]
    mnem = insn.mnemonic
    for op in insn.operands:
        if op.type != A.ARM64_OP_MEM:
            continue
        if op.mem.base == 0:
            return None
        # Post-indexed forms access [base]; capstone puts the post-increment in a separate operand.
        index = index_w = sxtw = None
        lsl = 0
        if op.mem.index:
            idx_name = insn.reg_name(op.mem.index)
            index, index_w, sxtw = _uc_reg(idx_name), idx_name.startswith("w"), op.ext == A.ARM64_EXT_SXTW
            if op.shift.type == A.ARM64_SFT_LSL:
                lsl = op.shift.value
        return (_uc_reg(insn.reg_name(op.mem.base)), op.mem.disp, index, bool(index_w), bool(sxtw), lsl,
                bool(_STORE.match(mnem)), bool(_UNPRIV.match(mnem)))
    return None
