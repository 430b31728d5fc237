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
from harness.arch.pstate import PState
from harness.arch.regs import HCR_EL2, SCTLR
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
