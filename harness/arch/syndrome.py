"""Exception syndromes: ESR_ELx = EC[31:26] IL[25] ISS[24:0] (Arm ARM D13.2.37; facts §4).

The syn_* helpers return a whole ESR value with IL=1 (32-bit instruction)."""

from __future__ import annotations

from enum import Enum, IntEnum


class EC(IntEnum):
    UNKNOWN = 0x00
    WFX = 0x01
    ILLEGAL_STATE = 0x0E
    SVC64 = 0x15
    HVC64 = 0x16
    SMC64 = 0x17
    SYS64 = 0x18
    IABT_LOW = 0x20
    IABT_CUR = 0x21
    PC_ALIGN = 0x22
    DABT_LOW = 0x24
    DABT_CUR = 0x25
    SP_ALIGN = 0x26
    SERROR = 0x2F
    BRK = 0x3C


_EC_TEXT = {
    EC.UNKNOWN: "unknown reason / UNDEFINED",
    EC.WFX: "WFI/WFE trapped",
    EC.ILLEGAL_STATE: "Illegal Execution state",
    EC.SVC64: "SVC",
    EC.HVC64: "HVC",
    EC.SMC64: "SMC",
    EC.SYS64: "MSR/MRS/SYS trapped",
    EC.IABT_LOW: "instruction abort, lower EL",
    EC.IABT_CUR: "instruction abort, same EL",
    EC.PC_ALIGN: "PC alignment fault",
    EC.DABT_LOW: "data abort, lower EL",
    EC.DABT_CUR: "data abort, same EL",
    EC.SP_ALIGN: "SP alignment fault",
    EC.SERROR: "SError interrupt",
    EC.BRK: "BRK",
}


class FaultType(Enum):
    ADDRESS_SIZE = 0x00
    TRANSLATION = 0x04
    ACCESS_FLAG = 0x08
    PERMISSION = 0x0C
    ALIGNMENT = 0x21


def make_esr(ec: int, iss: int, il: int = 1) -> int:
    return (ec & 0x3F) << 26 | (il & 1) << 25 | (iss & 0x1FFFFFF)


def syn_uncategorized() -> int:
    return make_esr(EC.UNKNOWN, 0)


def syn_svc(imm16: int) -> int:
    return make_esr(EC.SVC64, imm16 & 0xFFFF)


def syn_hvc(imm16: int) -> int:
    return make_esr(EC.HVC64, imm16 & 0xFFFF)


def syn_smc(imm16: int) -> int:
    return make_esr(EC.SMC64, imm16 & 0xFFFF)


def syn_brk(imm16: int) -> int:
    return make_esr(EC.BRK, imm16 & 0xFFFF)


def syn_wfx(is_wfe: bool, cv: int = 1, cond: int = 0xE) -> int:
    """ISS: CV[24], COND[23:20], TI[0] (AArch64 callers report CV=1, COND=0b1110)."""
    return make_esr(EC.WFX, (cv & 1) << 24 | (cond & 0xF) << 20 | int(is_wfe))


def syn_sysreg_trap(reg_encoding: tuple[int, int, int, int, int], rt: int, is_read: bool) -> int:
    """ISS: Op0[21:20] Op2[19:17] Op1[16:14] CRn[13:10] Rt[9:5] CRm[4:1] Direction[0]."""
    op0, op1, crn, crm, op2 = reg_encoding
    iss = op0 << 20 | op2 << 17 | op1 << 14 | crn << 10 | (rt & 31) << 5 | crm << 1 | int(is_read)
    return make_esr(EC.SYS64, iss)


def syn_data_abort(same_el: bool, wnr: bool, dfsc: int, *, s1ptw: bool = False, cm: bool = False) -> int:
    """ISV=0 (no instruction syndrome, as for stage-1 faults): CM[8] S1PTW[7] WnR[6] DFSC[5:0]."""
    iss = int(cm) << 8 | int(s1ptw) << 7 | int(wnr) << 6 | (dfsc & 0x3F)
    return make_esr(EC.DABT_CUR if same_el else EC.DABT_LOW, iss)


def syn_inst_abort(same_el: bool, ifsc: int, *, s1ptw: bool = False) -> int:
    return make_esr(EC.IABT_CUR if same_el else EC.IABT_LOW, int(s1ptw) << 7 | (ifsc & 0x3F))


def syn_serror(iss: int = 0) -> int:
    return make_esr(EC.SERROR, iss)


def fault_status_code(fault: FaultType, level: int) -> int:
    """DFSC/IFSC: translation 0x04+L, access flag 0x08+L, permission 0x0C+L, address size 0x00+L."""
    if fault is FaultType.ALIGNMENT:
        return 0x21
    return fault.value + (level & 3)


def _fsc_text(fsc: int) -> str:
    kind = {0x00: "address size fault", 0x04: "translation fault", 0x08: "access flag fault", 0x0C: "permission fault"}
    if fsc == 0x21:
        return "alignment fault"
    if fsc == 0x10:
        return "synchronous external abort"
    if (fsc & ~3) in kind:
        return f"{kind[fsc & ~3]}, level {fsc & 3}"
    return "other"


def decode_esr(esr: int) -> str:
    """One line a kernel developer can read, e.g. 'EC=0x25 (data abort, same EL) IL=1 WnR=1 DFSC=0x0e (permission fault, level 2)'."""
    ec = (esr >> 26) & 0x3F
    il = (esr >> 25) & 1
    iss = esr & 0x1FFFFFF
    try:
        name = _EC_TEXT[EC(ec)]
    except ValueError:
        name = "?"
    text = f"EC=0x{ec:02x} ({name}) IL={il}"
    if ec in (EC.SVC64, EC.HVC64, EC.SMC64, EC.BRK):
        text += f" imm16=0x{iss & 0xFFFF:x}"
    elif ec in (EC.DABT_CUR, EC.DABT_LOW):
        text += f" WnR={(iss >> 6) & 1}"
        if (iss >> 7) & 1:
            text += " S1PTW=1"
        text += f" DFSC=0x{iss & 0x3F:02x} ({_fsc_text(iss & 0x3F)})"
    elif ec in (EC.IABT_CUR, EC.IABT_LOW):
        text += f" IFSC=0x{iss & 0x3F:02x} ({_fsc_text(iss & 0x3F)})"
    elif ec == EC.WFX:
        text += " WFE" if iss & 1 else " WFI"
    elif ec == EC.SYS64:
        op0, op2, op1 = (iss >> 20) & 3, (iss >> 17) & 7, (iss >> 14) & 7
        crn, rt, crm = (iss >> 10) & 0xF, (iss >> 5) & 0x1F, (iss >> 1) & 0xF
        text += f" {'MRS' if iss & 1 else 'MSR'} S{op0}_{op1}_C{crn}_C{crm}_{op2} Rt=x{rt}"
    elif iss:
        text += f" ISS=0x{iss:x}"
    return text
