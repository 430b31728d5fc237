"""Instruction encodings the rules and the tools recognise without a disassembler (Arm ARM C4,
"A64 Instruction Set Encoding"), shared by the assembler's checks and the board."""

from __future__ import annotations

ERET = 0xD69F03E0


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


def unprivileged_ldst(word: int) -> tuple[int, int, int, bool] | None:
    """(Rn, Rt, simm9, is_store) of an LDTR/STTR-family word (C4.1.4, "Load/store unprivileged").

    capstone 5.0.7 cannot decode the loads when Rt == Rn (e.g. 0xf8400800, `ldtr x0, [x0]`)."""
    if word & 0x3B200C00 != 0x38000800:
        return None
    imm9 = (word >> 12) & 0x1FF
    simm9 = imm9 - 0x200 if imm9 & 0x100 else imm9
    opc = (word >> 22) & 3
    return (word >> 5) & 31, word & 31, simm9, opc == 0
