"""harness.arch, pure Python: each expectation is a rule of arm-pstate-facts.md (§ named)."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.arch import pagetable as pt
from harness.arch.exceptions import (
    ExceptionType,
    SysCtx,
    async_masked,
    exception_return,
    qemu_exception_return,
    route_async,
    route_sync,
    take_exception,
    vector_offset,
)
from harness.arch.features import FEATURES_A57, FEATURES_MAX, Features
from harness.arch.pstate import PState, msr_immediate, read_pstate_sysreg, write_pstate_sysreg
from harness.arch.record import QEMU_EXCEPTIONS, ExceptionRecord, record_from_insn
from harness.arch.regs import HCR_EL2, SCTLR, hcr_el2_eff
from harness.arch.syndrome import (
    EC,
    FaultType,
    decode_esr,
    fault_status_code,
    syn_data_abort,
    syn_hvc,
    syn_svc,
)
from harness.arch.sysregs import (
    SYSREGS,
    UnknownSysReg,
    access_trap,
    decode_msr_imm,
    encode_mrs,
    encode_msr_imm,
    lookup,
)
from harness.qemu import GNU_AS_MARCH

E2H, TGE, RW, IMO, TSC, TWI = (HCR_EL2[n].mask for n in ("E2H", "TGE", "RW", "IMO", "TSC", "TWI"))
SPAN = SCTLR.SPAN.mask
VHE_HOST = SysCtx(hcr_el2=E2H | TGE | RW, vbar_el2=0x4000_0800)
VHE_GUEST = SysCtx(hcr_el2=E2H | RW, vbar_el2=0x4000_0800)
NVHE = SysCtx(hcr_el2=RW, vbar_el1=0x4000_1000, vbar_el2=0x4000_0800)


def test_arch_never_imports_unicorn():
    import harness.arch  # noqa: F401 - the import itself is the check below

    out = subprocess.run(
        [sys.executable, "-c", "import sys, harness.arch.pagetable, harness.arch.exceptions; print('unicorn' in sys.modules)"],
        capture_output=True, text=True, check=True,
    )
    assert out.stdout.strip() == "False"


@given(st.integers(0, (1 << 32) - 1))
def test_pstate_bits_round_trip(value):
    # SPSR layout, facts §1.1 and §8: N Z C V 31:28, DIT 24, UAO 23, PAN 22, SS 21, IL 20,
    # SSBS 12, BTYPE 11:10, D A I F 9:6, M[4] 4, M[3:2] (EL) and M[0] (SP) survive; bit 1 (M[1]),
    # 5, 13-19 and 25-27 are not PSTATE fields here.
    mask = 0xF1F01FDD
    assert PState.from_bits(value).to_bits() == value & mask


def test_pstate_describe_and_diff():
    a = PState(el=2, pan=1)
    assert a.mode_name == "EL2h" and "PAN=1" in a.describe()
    assert a.diff(a.replace(pan=0, uao=1)) == {"pan": (1, 0), "uao": (0, 1)}


@pytest.mark.parametrize(
    "target, ctx, span, expect_pan",
    [
        (1, NVHE, 0, 1),  # §1.6: EL1 with SPAN=0 sets PAN
        (1, NVHE, 1, 0),  # SPAN=1 leaves it
        (2, VHE_HOST, 0, 1),  # EL2 with E2H=1, TGE=1, SPAN=0 sets it
        (2, VHE_HOST, 1, 0),
        (2, VHE_GUEST, 0, 0),  # E2H=1, TGE=0: a VHE guest exit leaves PAN alone (§1.6 consequence)
        (2, NVHE, 0, 0),  # E2H=0: never
    ],
)
def test_take_exception_pan_rule(target, ctx, span, expect_pan):
    ctx = SysCtx(**{**ctx.__dict__, "sctlr_el1": SPAN * span, "sctlr_el2": SPAN * span})
    before = PState(el=1, sp=1, pan=0, uao=1, d=0, a=0, i=0, f=0, n=1)
    e = take_exception(before, target, ExceptionType.SYNC, ctx, FEATURES_MAX, preferred_return=0x1234, esr=syn_svc(1))
    assert e.pstate.pan == expect_pan
    assert e.pstate.uao == 0  # §1.2
    assert (e.pstate.el, e.pstate.sp, e.pstate.daif, e.pstate.il, e.pstate.ss) == (target, 1, 0xF, 0, 0)  # §1.4-1.5
    assert e.spsr == before.to_bits() and e.elr == 0x1234 and e.esr == syn_svc(1)
    assert e.pstate.n == 1  # NZCV untouched


def test_take_exception_without_pan_or_uao_leaves_them():
    e = take_exception(PState(el=1, pan=0, uao=0), 1, ExceptionType.SYNC, NVHE, FEATURES_A57, preferred_return=0)
    assert (e.pstate.pan, e.pstate.uao) == (0, 0)


@pytest.mark.parametrize(
    "kind, from_el, target, sp, offset",
    [
        (ExceptionType.SYNC, 1, 1, 0, 0x000),
        (ExceptionType.IRQ, 1, 1, 1, 0x280),
        (ExceptionType.FIQ, 0, 1, 0, 0x500),
        (ExceptionType.SERROR, 1, 2, 1, 0x580),
        (ExceptionType.SYNC, 1, 2, 1, 0x400),
    ],
)
def test_vector_offsets(kind, from_el, target, sp, offset):
    # §1.7: base 0x000/0x200 same EL SP0/SPx, 0x400 lower EL; +0x80 per type.
    assert vector_offset(kind, from_el, target, PState(el=from_el, sp=sp)) == offset
    e = take_exception(PState(el=from_el, sp=sp), target, kind, NVHE, FEATURES_MAX, preferred_return=0)
    assert e.vector == NVHE.vbar(target) + offset
    assert e.esr is None or kind in (ExceptionType.SYNC, ExceptionType.SERROR)


def test_sync_routing():
    # §1 routing reminders
    assert route_sync(EC.SVC64, 0, NVHE, FEATURES_MAX) == 1
    assert route_sync(EC.SVC64, 0, VHE_HOST, FEATURES_MAX) == 2
    assert route_sync(EC.HVC64, 1, NVHE, FEATURES_MAX) == 2
    assert route_sync(EC.SMC64, 1, NVHE, FEATURES_MAX) == 3
    assert route_sync(EC.SMC64, 1, SysCtx(hcr_el2=RW | TSC), FEATURES_MAX) == 2
    assert route_sync(EC.WFX, 1, SysCtx(hcr_el2=RW | TWI), FEATURES_MAX) == 2
    assert route_sync(EC.WFX, 0, SysCtx(hcr_el2=RW | TWI, sctlr_el1=0), FEATURES_MAX) == 1  # nTWI=0 first
    assert route_sync(EC.DABT_LOW, 0, NVHE, FEATURES_MAX) == 1
    assert route_sync(EC.DABT_LOW, 0, VHE_HOST, FEATURES_MAX) == 2
    assert route_sync(EC.DABT_CUR, 2, NVHE, FEATURES_MAX) == 2


def test_async_routing_and_masking():
    assert route_async(ExceptionType.IRQ, 1, SysCtx(hcr_el2=RW | IMO)) == 2
    assert route_async(ExceptionType.IRQ, 1, NVHE) == 1
    assert route_async(ExceptionType.SERROR, 1, SysCtx(hcr_el2=RW | (1 << 5))) == 2
    # A target above the current EL is not masked by PSTATE; the same EL is.
    assert not async_masked(ExceptionType.IRQ, 2, PState(el=1, i=1), NVHE)
    assert async_masked(ExceptionType.IRQ, 1, PState(el=1, i=1), NVHE)
    assert not async_masked(ExceptionType.IRQ, 1, PState(el=1, i=0), NVHE)
    assert async_masked(ExceptionType.IRQ, 1, PState(el=2, i=0), NVHE)  # never to a lower EL


def test_exception_return_restores_pan_and_uao():
    # §2: ERET restores PSTATE from SPSR, PAN and UAO included.
    spsr = PState(el=1, sp=1, pan=1, uao=1, d=0, a=0, i=1, f=0).to_bits()
    r = exception_return(PState(el=2), spsr, 0x8000, NVHE, FEATURES_MAX)
    assert not r.illegal and r.pc == 0x8000
    assert (r.pstate.el, r.pstate.pan, r.pstate.uao, r.pstate.daif) == (1, 1, 1, 0b0010)


@pytest.mark.parametrize(
    "spsr_ps, ctx, words",
    [
        (PState(el=3), NVHE, "above"),
        (PState(el=0, sp=1), NVHE, "EL0"),
        (PState(el=1), VHE_HOST, "TGE"),
        (PState(el=1), SysCtx(hcr_el2=0), "AArch32"),
    ],
)
def test_illegal_returns_keep_el_set_il_and_still_restore_pan(spsr_ps, ctx, words):
    spsr = spsr_ps.replace(pan=1).to_bits()
    r = exception_return(PState(el=2, pan=0), spsr, 0x10, ctx, FEATURES_MAX)
    assert r.illegal and words in r.reason
    assert (r.pstate.el, r.pstate.il, r.pstate.pan) == (2, 1, 1)  # §2: Arm still restores PAN
    q = qemu_exception_return(PState(el=2, pan=0), spsr, 0x10, ctx, FEATURES_MAX)
    assert q.pstate.pan == 0  # QEMU 5.0's helper does not: the board reports the difference


DSSBS, DIT_BIT, SSBS_BIT = SCTLR.DSSBS.mask, 1 << 24, 1 << 12


@pytest.mark.parametrize("target, ctx", [(1, NVHE), (2, NVHE), (2, VHE_HOST), (2, VHE_GUEST)])
@pytest.mark.parametrize("dit, ssbs, btype, dssbs", [(1, 0, 1, 1), (0, 1, 2, 0), (1, 1, 3, 0)])
def test_take_exception_dit_ssbs_btype(target, ctx, dit, ssbs, btype, dssbs):
    # §8 (AArch64.TakeException): SPSR holds DIT (24), SSBS (12) and BTYPE (11:10); DIT is not
    # assigned, SSBS = SCTLR[target].DSSBS (bit 44), BTYPE = 00.
    ctx = SysCtx(**{**ctx.__dict__, "sctlr_el1": DSSBS * dssbs if target == 1 else 0,
                    "sctlr_el2": DSSBS * dssbs if target == 2 else DSSBS * (1 - dssbs)})
    before = PState(el=1, sp=1, dit=dit, ssbs=ssbs, btype=btype)
    e = take_exception(before, target, ExceptionType.SYNC, ctx, FEATURES_MAX, preferred_return=0)
    assert e.spsr & (DIT_BIT | SSBS_BIT | 0xC00) == dit * DIT_BIT | ssbs * SSBS_BIT | btype << 10
    assert (e.pstate.dit, e.pstate.ssbs, e.pstate.btype) == (dit, dssbs, 0)
    # GetPSRFromPSTATE: a PE without the extensions has none of those bits in SPSR
    e = take_exception(PState(el=1, dit=1, ssbs=1, btype=1), 1, ExceptionType.SYNC, NVHE, FEATURES_A57,
                       preferred_return=0)
    assert e.spsr & (DIT_BIT | SSBS_BIT | 0xC00) == 0


def test_exception_return_loads_dit_ssbs_btype_and_an_illegal_one_keeps_them():
    # §8 / SetPSTATEFromPSR: a legal return loads DIT, SSBS and BTYPE from SPSR; on an illegal
    # one they are UNKNOWN and the harness keeps them (as QEMU 7.2), while PAN is still loaded.
    spsr = PState(el=1, sp=1, dit=1, ssbs=1, btype=2, pan=1).to_bits()
    r = exception_return(PState(el=2, dit=0, ssbs=0, btype=0), spsr, 0x40, NVHE, FEATURES_MAX)
    assert not r.illegal and (r.pstate.dit, r.pstate.ssbs, r.pstate.btype, r.pstate.el) == (1, 1, 2, 1)
    bad = PState(el=3, dit=1, ssbs=1, btype=2, pan=1).to_bits()
    r = exception_return(PState(el=2, dit=0, ssbs=1, btype=0), bad, 0x40, NVHE, FEATURES_MAX)
    assert r.illegal and (r.pstate.dit, r.pstate.ssbs, r.pstate.btype, r.pstate.pan, r.pstate.il) == (0, 1, 0, 1, 1)


def test_pstate_msr_forms():
    # §8 and C5.2: the register forms hold each field at its SPSR bit; MSR (immediate) takes imm[0]
    # for a one-bit field and sets/clears D:A:I:F from imm[3:0] for DAIFSet/DAIFClr.
    ps = PState(el=0, sp=0, dit=1, ssbs=0, n=1)
    assert read_pstate_sysreg(ps, "DIT") == DIT_BIT and read_pstate_sysreg(ps, "SSBS") == 0
    assert read_pstate_sysreg(ps, "NZCV") == 1 << 31 and read_pstate_sysreg(ps, "CURRENTEL") == 0
    assert write_pstate_sysreg(ps, "SSBS", SSBS_BIT | DIT_BIT).replace() == ps.replace(ssbs=1)
    assert msr_immediate(ps, "dit", 0).dit == 0 and msr_immediate(ps, "ssbs", 1).ssbs == 1
    assert msr_immediate(PState(d=0, a=0, i=0, f=0), "daifset", 0b0110).daif == 0b0110
    assert msr_immediate(PState(), "daifclr", 0b0011).daif == 0b1100
    assert encode_msr_imm("dit", 1) == 0xD503415F and encode_msr_imm("ssbs", 1) == 0xD503413F
    assert decode_msr_imm(0xD503405F) == ("dit", 0)


def test_effective_hcr_el2():
    # HCR_EL2's field descriptions (QEMU's arm_hcr_el2_eff): with TGE=1 and E2H=0, FMO/IMO/AMO
    # behave as 1; with TGE=1 and E2H=1 the virtualization traps (TWI, IMO, ...) behave as 0;
    # TGE=1 also turns off TSC, TVM and TRVM; nothing applies while EL2 is disabled (SCR_EL3.NS=0).
    imo, fmo, amo, tvm = HCR_EL2.IMO.mask, HCR_EL2.FMO.mask, HCR_EL2.AMO.mask, HCR_EL2.TVM.mask
    assert hcr_el2_eff(RW | TGE, 0x501) & (imo | fmo | amo) == imo | fmo | amo
    assert hcr_el2_eff(RW | TGE | E2H | TWI | imo, 0x501) & (TWI | imo) == 0
    assert hcr_el2_eff(RW | TGE | TSC | tvm, 0x501) & (TSC | tvm) == 0
    assert hcr_el2_eff(RW | TWI | TSC, 0x501) == RW | TWI | TSC
    assert hcr_el2_eff(RW | TWI, 0x500) == 0
    assert HCR_EL2.describe(0x4_8800_0000) == "TGE RW E2H"  # facts §6: the VHE host's RW|TGE|E2H


def test_sysreg_traps_and_the_exception_record():
    # HCR_EL2.TVM traps EL1 writes, TRVM EL1 reads of the virtual memory controls (EC 0x18, to
    # EL2); not at EL2, not with TGE=1. QEMU's exception numbers (facts §7) give the classes.
    tvm, trvm = HCR_EL2.TVM.mask, HCR_EL2.TRVM.mask
    sctlr = SYSREGS["SCTLR_EL1"]
    assert access_trap(sctlr, 1, False, SysCtx(hcr_el2=RW | tvm)) == 2
    assert access_trap(sctlr, 1, True, SysCtx(hcr_el2=RW | tvm)) is None
    assert access_trap(sctlr, 1, True, SysCtx(hcr_el2=RW | trvm)) == 2
    assert access_trap(sctlr, 2, False, SysCtx(hcr_el2=RW | tvm)) is None
    assert access_trap(SYSREGS["VBAR_EL1"], 1, False, SysCtx(hcr_el2=RW | tvm)) is None
    assert {n: (q.ec, q.cause) for n, q in QEMU_EXCEPTIONS.items() if n in (2, 4, 11)} == {
        2: (EC.SVC64, "svc"), 4: (EC.DABT_LOW, "data_abort"), 11: (EC.HVC64, "hvc")}
    svc = record_from_insn(QEMU_EXCEPTIONS[2], 0xD4000661, PState(el=0), NVHE, FEATURES_MAX)  # svc #0x33
    assert svc.esr(0, svc.target_el(0, NVHE, FEATURES_MAX)) == 0x56000033
    msr = 0xD5181000  # msr sctlr_el1, x0
    trap = record_from_insn(QEMU_EXCEPTIONS[1], msr, PState(el=1), SysCtx(hcr_el2=RW | tvm), FEATURES_MAX)
    assert (trap.cause, trap.ec, trap.target) == ("sysreg_trap", EC.SYS64, 2)
    wfi = record_from_insn(QEMU_EXCEPTIONS[1], 0xD503207F, PState(el=1), SysCtx(hcr_el2=RW | TWI), FEATURES_MAX)
    assert (wfi.cause, wfi.target, wfi.esr(1, 2)) == ("wfx_trap", 2, 0x07E00000)  # EC 0x01, IL, CV=1, COND=0xE
    udf = record_from_insn(QEMU_EXCEPTIONS[1], 0x00001234, PState(el=1), NVHE, FEATURES_MAX)
    assert (udf.cause, udf.esr(1, udf.target_el(1, NVHE, FEATURES_MAX))) == ("undefined", 0x02000000)
    dabt = ExceptionRecord(EC.DABT_LOW, 0x0E, "data_abort", vaddress=0x40)
    assert dabt.esr(1, 1) == 0x9600000E and dabt.esr(0, 1) == 0x9200000E  # §4: same EL 0x25, lower 0x24


def test_syndromes_match_qemu_examples():
    # §4: hvc #0 from EL1 -> 0x5a000000; LDR to a PAN-protected 2 MiB block -> 0x9600000e; STR -> 0x9600004e
    assert syn_hvc(0) == 0x5A000000
    dfsc = fault_status_code(FaultType.PERMISSION, 2)
    assert syn_data_abort(True, False, dfsc) == 0x9600000E
    assert syn_data_abort(True, True, dfsc) == 0x9600004E
    assert fault_status_code(FaultType.TRANSLATION, 3) == 0x07 and fault_status_code(FaultType.ACCESS_FLAG, 1) == 0x09
    assert "permission fault, level 2" in decode_esr(0x9600004E) and "WnR=1" in decode_esr(0x9600004E)


def test_sysreg_table_and_encodings():
    # §5 encodings
    assert encode_msr_imm("pan", 1) == 0xD500419F and encode_msr_imm("uao", 0) == 0xD500407F
    assert encode_mrs(0, lookup("pan")) == 0xD5384260 and encode_mrs(0, lookup("UAO")) == 0xD5384280
    assert encode_mrs(0, lookup("sctlr_el12")) == 0xD53D1000
    assert decode_msr_imm(0xD500419F) == ("pan", 1)
    assert lookup("s3_0_c1_c0_0") is SYSREGS["SCTLR_EL1"]
    # VHE: EL1 names redirect to EL2, *_EL12 name the EL1 registers
    for el1, el2 in [("SCTLR_EL1", "SCTLR_EL2"), ("VBAR_EL1", "VBAR_EL2"), ("TTBR1_EL1", "TTBR1_EL2"),
                     ("CONTEXTIDR_EL1", "CONTEXTIDR_EL2"), ("CPACR_EL1", "CPTR_EL2"), ("ELR_EL1", "ELR_EL2")]:
        assert SYSREGS[el1].e2h_redirect == el2
        assert SYSREGS[el1[:-1] + "12"].alias_of == el1
    with pytest.raises(UnknownSysReg, match="unknown system register 'FOO_EL1'"):
        lookup("FOO_EL1")


@pytest.mark.skipif(shutil.which("aarch64-linux-gnu-as") is None, reason="GNU binutils for aarch64 not installed")
def test_sysreg_encodings_agree_with_gnu_as(tmp_path):
    names = [n for n, r in SYSREGS.items() if not r.readonly and n not in ("CURRENTEL",)]
    src = "".join(f"mrs x0, {n.lower()}\n" for n in names)
    (tmp_path / "r.S").write_text(src)
    subprocess.run(["aarch64-linux-gnu-as", GNU_AS_MARCH, "-o", tmp_path / "r.o", tmp_path / "r.S"], check=True)
    subprocess.run(["aarch64-linux-gnu-objcopy", "-O", "binary", "-j", ".text", tmp_path / "r.o", tmp_path / "r.bin"], check=True)
    data = (tmp_path / "r.bin").read_bytes()
    for k, n in enumerate(names):
        assert int.from_bytes(data[4 * k : 4 * k + 4], "little") == encode_mrs(0, SYSREGS[n]), n


def test_features_from_id_registers():
    f = Features.from_id_regs("x", id_aa64mmfr1=(2 << 20) | (1 << 8), id_aa64mmfr2=1 << 4)
    assert (f.has_pan, f.has_vhe, f.has_uao) == (True, True, True)
    assert f.caps == {"ARM64_HAS_PAN", "ARM64_HAS_UAO", "ARM64_HAS_VIRT_HOST_EXTN"}
    assert Features.from_id_regs("v80", 0, 0).caps == frozenset()
    # facts §8, QEMU 7.2 max: ID_AA64PFR0_EL1 = 0x1201001120110222 (DIT=1), PFR1 = 0x1000021
    # (BT=1, SSBS=2, MTE=0): DIT, SSBS and BTYPE, no TCO
    q = Features.from_id_regs("q", 0, 0, 0x1201001120110222, 0x1000021)
    assert (q.has_dit, q.has_ssbs, q.has_bti) == (True, True, True)
    assert q.pstate_fields >= {"dit", "ssbs", "btype"} and "dit" not in FEATURES_A57.pstate_fields


# --- stage-1 walker on an in-memory table: 39-bit VA, L1 -> L2 -> L3
MEM: dict[int, int] = {}
L1, L2, L3 = 0x1000, 0x2000, 0x3000
MEM[L1 + 8 * 1] = pt.table_desc(L2)  # 1 GiB..2 GiB
MEM[L2 + 8 * 0] = pt.block_desc(0x4000_0000, 2, ap=pt.AP_RW_EL1)  # kernel block
MEM[L2 + 8 * 1] = pt.block_desc(0x4020_0000, 2, ap=pt.AP_RW_ANY, pxn=1)  # user block
MEM[L2 + 8 * 2] = pt.table_desc(L3)
MEM[L3 + 8 * 0] = pt.page_desc(0x4040_0000, ap=pt.AP_RO_ANY)
MEM[L3 + 8 * 1] = pt.page_desc(0x4040_1000, af=0)
REGS = {"SCTLR_EL1": 1, "TCR_EL1": 25 | (1 << 23), "TTBR0_EL1": L1, "SCTLR_EL2": 1, "TCR_EL2": 25, "TTBR0_EL2": L1}


def walk(va, el=1, regime=pt.Regime.EL10, pstate=None, hcr=0, **acc):
    regs = dict(REGS, HCR_EL2=hcr)
    return pt.translate(lambda a: MEM.get(a, 0), regime, regs, va, pt.Access(el=el, **acc), pstate or PState(el=el))


def test_walker_translates_and_reports_fault_levels():
    assert walk(0x4000_1234).pa == 0x4000_1234
    assert walk(0x4040_0010).pa == 0x4040_0010 and walk(0x4040_0010).level == 3
    t = walk(0x4060_0000)  # L2 index 3: invalid
    assert (t.fault, t.level) == (FaultType.TRANSLATION, 2)
    t = walk(0x8000_0000)  # L1 index 2: invalid
    assert (t.fault, t.level) == (FaultType.TRANSLATION, 1)
    t = walk(0x4040_1000)
    assert (t.fault, t.level) == (FaultType.ACCESS_FLAG, 3)
    assert walk(1 << 40).fault == FaultType.TRANSLATION  # outside the 39-bit range


def test_permissions_pan_and_unprivileged_accesses():
    # §3: PAN faults privileged data accesses to AP[1]=1 pages in EL1&0 and EL2&0, not fetches, not EL2.
    assert walk(0x4020_0000, pstate=PState(el=1, pan=1)).fault == FaultType.PERMISSION
    assert walk(0x4020_0000, pstate=PState(el=1, pan=0)).fault is None
    assert walk(0x4020_0000, el=2, regime=pt.Regime.EL2, pstate=PState(el=2, pan=1)).fault is None
    host = E2H | TGE
    assert walk(0x4020_0000, el=2, regime=pt.Regime.EL20, hcr=host, pstate=PState(el=2, pan=1)).fault == FaultType.PERMISSION
    # LDTR at EL1 with UAO=0 is an EL0 access: the kernel block faults, the user block does not (PAN ignored).
    assert walk(0x4000_0000, unprivileged=True, pstate=PState(el=1, uao=0)).fault == FaultType.PERMISSION
    assert walk(0x4020_0000, unprivileged=True, pstate=PState(el=1, uao=0, pan=1)).fault is None
    # UAO=1 makes it privileged: the kernel block is fine, PAN applies to the user block.
    assert walk(0x4000_0000, unprivileged=True, pstate=PState(el=1, uao=1)).fault is None
    assert walk(0x4020_0000, unprivileged=True, write=True, pstate=PState(el=1, uao=1, pan=1)).fault == FaultType.PERMISSION
    # At EL2 with TGE=0 (VHE guest context) LDTR is privileged.
    assert walk(0x4000_0000, el=2, regime=pt.Regime.EL20, hcr=E2H, unprivileged=True, pstate=PState(el=2)).fault is None
    # Writes to read-only, fetches from PXN / EL0-writable memory at EL1.
    assert walk(0x4040_0000, write=True).fault == FaultType.PERMISSION
    assert walk(0x4020_0000, fetch=True).fault == FaultType.PERMISSION
    assert walk(0x4000_0000, fetch=True).fault is None
    assert walk(0x4000_0000, el=0, pstate=PState(el=0)).fault == FaultType.PERMISSION


def test_msr_immediate_range_follows_field_width() -> None:
    # C6.2.195 MSR (immediate): PAN/UAO/SPSel are one bit (#0/#1); DAIFSet/DAIFClr take a 4-bit mask.
    assert encode_msr_imm("daifset", 15) == 0xD5034FDF
    for field in ("pan", "uao", "spsel"):
        with pytest.raises(ValueError):
            encode_msr_imm(field, 2)
