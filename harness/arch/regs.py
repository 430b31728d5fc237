"""Register fields, declared once: one table per register (name, bits, meaning), in the manner
of pwndbg's BitFlags tables (pwndbg/lib/regs.py). Every view derives from these tables: PState
and its SPSR image (pstate.py), the rules' bit tests (exceptions.py, pagetable.py, the board),
the debugger's decoded lines and notes, the GDB target description's cpsr flags, observations
and the tests' constants. Bit positions are those of the Arm ARM's register descriptions
(DDI 0487, D19 "AArch64 System Register Descriptions"); `facts §N` is
shared/reference/arm-pstate-facts.md.

Adding a PSTATE field is one line in PSTATE below (its SPSR bits, its reset value and the
feature that implements it) plus its entry/return rule in exceptions.py."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Field:
    name: str  # as the Arm ARM spells it
    lsb: int
    width: int = 1
    meaning: str = ""
    key: str = ""  # the Python name (PState attribute); default name.lower()
    label: str = ""  # the name a human view shows; default name
    reset: int = 0  # PSTATE: the value at the board's reset (EL2h, DAIF masked)
    feature: str = ""  # PSTATE: the Features flag that implements it ("" = every AArch64 PE)

    def __post_init__(self) -> None:
        if not self.key:
            object.__setattr__(self, "key", self.name.lower())
        if not self.label:
            object.__setattr__(self, "label", self.name)

    @property
    def msb(self) -> int:
        return self.lsb + self.width - 1

    @property
    def max(self) -> int:
        return (1 << self.width) - 1

    @property
    def mask(self) -> int:
        """The field's bits in the register (a one-bit field: its bit)."""
        return self.max << self.lsb

    def get(self, value: int) -> int:
        """The field's value in a register value."""
        return (value >> self.lsb) & self.max

    def of(self, v: int) -> int:
        """`v` placed at the field's bits."""
        return (v & self.max) << self.lsb

    def isset(self, value: int) -> bool:
        return bool(value & self.mask)


class Register:
    """A register's fields, by Arm name: REG.NAME is the Field (HCR_EL2.E2H.mask)."""

    def __init__(self, name: str, *fields: Field) -> None:
        self.name = name
        self.fields = fields
        self._by_name = {f.name: f for f in fields} | {f.key: f for f in fields}

    @classmethod
    def parse(cls, name: str, table: str) -> Register:
        """A register from a text table, one field a line: `BITS NAME meaning`, BITS being
        `n` or `msb:lsb` (as the Arm ARM's field tables print them)."""
        fields = []
        for line in table.strip().splitlines():
            bits, fname, *meaning = line.split(maxsplit=2)
            msb, _, lsb = bits.partition(":")
            low = int(lsb or msb)
            fields.append(Field(fname, low, int(msb) - low + 1, meaning[0] if meaning else ""))
        return cls(name, *fields)

    def __getattr__(self, name: str) -> Field:
        try:
            return self.__dict__["_by_name"][name]
        except KeyError:
            raise AttributeError(f"{self.__dict__.get('name', 'register')} has no field {name}") from None

    def __getitem__(self, name: str) -> Field:
        return self._by_name[name]

    def __contains__(self, name: str) -> bool:
        return name in self._by_name

    def __iter__(self) -> Iterator[Field]:
        return iter(self.fields)

    def mask(self, *names: str) -> int:
        """The bits of the named fields together."""
        out = 0
        for n in names:
            out |= self._by_name[n].mask
        return out

    def pack(self, **values: int) -> int:
        """A register value from field values by name or key (the others 0)."""
        out = 0
        for n, v in values.items():
            out |= self._by_name[n].of(v)
        return out

    def replace(self, value: int, **values: int) -> int:
        """`value` with the named fields set to new values."""
        for n, v in values.items():
            f = self._by_name[n]
            value = (value & ~f.mask) | f.of(v)
        return value

    def describe(self, value: int) -> str:
        """The fields that are set, in table order: one-bit fields by name, wider ones as
        NAME=value (e.g. 'VM SWIO BSU=1 TWI RW')."""
        parts = []
        for f in self.fields:
            v = f.get(value)
            if v:
                parts.append(f.label if f.width == 1 else f"{f.label}={v}")
        return " ".join(parts)


# PSTATE, as the SPSR_ELx of an exception taken from AArch64 holds it (GetPSRFromPSTATE; facts
# §1.1 and §8). Order: PState's field order (observations and W2 list fields in it).
PSTATE = Register(
    "PSTATE",
    Field("N", 31, meaning="negative condition flag"),
    Field("Z", 30, meaning="zero condition flag"),
    Field("C", 29, meaning="carry condition flag"),
    Field("V", 28, meaning="overflow condition flag"),
    Field("UAO", 23, meaning="user access override: LDTR/STTR act as privileged accesses", feature="has_uao"),
    Field("PAN", 22, meaning="privileged access never: privileged data accesses to EL0 pages fault",
          feature="has_pan"),
    Field("SS", 21, meaning="software step"),
    Field("IL", 20, meaning="illegal execution state"),
    Field("D", 9, reset=1, meaning="debug exceptions masked"),
    Field("A", 8, reset=1, meaning="SError interrupts masked"),
    Field("I", 7, reset=1, meaning="IRQ interrupts masked"),
    Field("F", 6, reset=1, meaning="FIQ interrupts masked"),
    Field("EL", 2, 2, reset=2, meaning="M[3:2]: exception level"),
    Field("SP", 0, key="sp", label="SPSel", reset=1, meaning="M[0]: SP_ELx (1) or SP_EL0 (0) selected"),
    Field("nRW", 4, meaning="M[4]: execution state, 0 = AArch64"),
    Field("DIT", 24, meaning="data independent timing", feature="has_dit"),
    Field("SSBS", 12, meaning="speculative store bypass safe", feature="has_ssbs"),
    Field("BTYPE", 10, 2, meaning="branch type of the last indirect branch (BTI)", feature="has_bti"),
)
# SPSR bits that are not PSTATE fields but that the exception-return rules read.
SPSR_M1 = Field("M1", 1, meaning="M[1]: reserved in AArch64; an ERET with it set is illegal")

HCR_EL2 = Register.parse("HCR_EL2", """
    0      VM        stage 2 translation enabled
    1      SWIO      set/way invalidation override
    2      PTW       protected table walk
    3      FMO       physical FIQ routed to EL2
    4      IMO       physical IRQ routed to EL2
    5      AMO       physical SError routed to EL2
    6      VF        virtual FIQ pending
    7      VI        virtual IRQ pending
    8      VSE       virtual SError pending
    9      FB        force broadcast
    11:10  BSU       barrier shareability upgrade
    12     DC        default cacheability
    13     TWI       trap WFI at EL0/EL1 to EL2
    14     TWE       trap WFE at EL0/EL1 to EL2
    15     TID0      trap ID group 0
    16     TID1      trap ID group 1
    17     TID2      trap ID group 2
    18     TID3      trap ID group 3
    19     TSC       trap SMC at EL1 to EL2
    20     TIDCP     trap IMPLEMENTATION DEFINED functionality
    21     TACR      trap auxiliary control registers
    22     TSW       trap data cache set/way instructions
    23     TPCP      trap cache maintenance to point of coherency/persistence
    24     TPU       trap cache maintenance to point of unification
    25     TTLB      trap TLB maintenance
    26     TVM       trap EL1 writes of the virtual memory controls
    27     TGE       trap general exceptions from EL0 to EL2
    28     TDZ       trap DC ZVA
    29     HCD       HVC instruction disable
    30     TRVM      trap EL1 reads of the virtual memory controls
    31     RW        EL1 is AArch64
    32     CD        stage 2 data access cacheability disable
    33     ID        stage 2 instruction access cacheability disable
    34     E2H       EL2 host: VHE (EL2 runs the host kernel, E2H register redirection)
    35     TLOR      trap LOR registers
    36     TERR      trap error record accesses
    37     TEA       route synchronous external aborts to EL2
    38     MIOCNCE   mismatched inner/outer cacheable non-coherency enable
    40     APK       trap pointer authentication key registers
    41     API       trap pointer authentication instructions
    42     NV        nested virtualization
    43     NV1       nested virtualization
    44     AT        trap address translation instructions
    45     NV2       nested virtualization (memory redirection)
    46     FWB       stage 2 forced write-back
    47     FIEN      fault injection enable
    49     TID4      trap ID group 4
    50     TICAB     trap IC IALLUIS/IALLU
    52     TOCU      trap cache maintenance to point of unification (outer)
    53     EnSCXT    enable SCXTNUM access
    54     TTLBIS    trap inner shareable TLB maintenance
    55     TTLBOS    trap outer shareable TLB maintenance
    58     TID5      trap ID group 5
""")

# SCTLR_EL1, and SCTLR_EL2 with the EL1 layout it has under E2H=1 (with E2H=0 most of the
# EL0-related bits are RES1 there, at the same positions).
SCTLR = Register.parse("SCTLR_ELx", """
    0      M         stage 1 MMU enabled
    1      A         alignment checking
    2      C         data cacheability
    3      SA        SP alignment check
    4      SA0       SP alignment check at EL0
    5      CP15BEN   AArch32 CP15 barriers enabled
    6      nAA       non-aligned access
    7      ITD       AArch32 IT disable
    8      SED       AArch32 SETEND disable
    9      UMA       EL0 access to DAIF
    10     EnRCTX    EL0 speculation restriction instructions
    11     EOS       exception exit is context synchronizing
    12     I         instruction cacheability
    13     EnDB      pointer authentication (DB key)
    14     DZE       EL0 DC ZVA
    15     UCT       EL0 access to CTR_EL0
    16     nTWI      0: EL0 WFI traps
    18     nTWE      0: EL0 WFE traps
    19     WXN       write implies execute-never
    20     TSCXT     trap EL0 SCXTNUM access
    21     IESB      implicit error synchronization barrier
    22     EIS       exception entry is context synchronizing
    23     SPAN      0: exception entry sets PSTATE.PAN (facts §1.6)
    24     E0E       EL0 data big-endian
    25     EE        data big-endian
    26     UCI       EL0 cache maintenance
    27     EnDA      pointer authentication (DA key)
    28     nTLSMD    no trap load/store multiple to device
    29     LSMAOE    load/store multiple atomicity and ordering
    30     EnIB      pointer authentication (IB key)
    31     EnIA      pointer authentication (IA key)
    35     BT0       PAC branch type compatibility at EL0
    36     BT        PAC branch type compatibility
    37     ITFSB     tag check fault synchronization
    39:38  TCF0      tag check fault at EL0
    41:40  TCF       tag check fault
    42     ATA0      allocation tag access at EL0
    43     ATA       allocation tag access
    44     DSSBS     PSTATE.SSBS on exception entry to this EL (facts §8)
    57     EPAN      enhanced PAN
""")

SCR_EL3 = Register.parse("SCR_EL3", """
    0      NS        EL0/EL1 (and EL2) are non-secure
    1      IRQ       physical IRQ routed to EL3
    2      FIQ       physical FIQ routed to EL3
    3      EA        external aborts and SError routed to EL3
    7      SMD       SMC disabled
    8      HCE       HVC enabled
    9      SIF       secure instruction fetch
    10     RW        the next lower EL is AArch64
    11     ST        secure EL1 access to the physical timer
    12     TWI       trap WFI to EL3
    13     TWE       trap WFE to EL3
    14     TLOR      trap LOR registers
    15     TERR      trap error record accesses
    16     APK       trap pointer authentication key registers
    17     API       trap pointer authentication instructions
    18     EEL2      secure EL2 enabled
    19     EASE      external aborts to the SError vector
    20     NMEA      non-maskable external aborts
    21     FIEN      fault injection enable
""")

# ISR_EL1: which asynchronous exceptions are pending (read-only; exceptions.isr_el1 computes it).
ISR_EL1 = Register.parse("ISR_EL1", """
    6      F         FIQ pending (virtual FIQ when HCR_EL2.FMO routes it, at EL1)
    7      I         IRQ pending (virtual IRQ when HCR_EL2.IMO routes it, at EL1)
    8      A         SError pending (virtual SError when HCR_EL2.AMO routes it, at EL1)
""")

# The ID register fields the harness reads or supplies (4-bit feature fields).
ID_AA64PFR0_EL1 = Register.parse("ID_AA64PFR0_EL1", """
    3:0    EL0
    7:4    EL1
    11:8   EL2
    15:12  EL3
    19:16  FP
    23:20  AdvSIMD
    27:24  GIC
    31:28  RAS
    35:32  SVE
    39:36  SEL2
    43:40  MPAM
    47:44  AMU
    51:48  DIT       FEAT_DIT: PSTATE.DIT
    59:56  CSV2
    63:60  CSV3
""")
ID_AA64PFR1_EL1 = Register.parse("ID_AA64PFR1_EL1", """
    3:0    BT        FEAT_BTI: PSTATE.BTYPE
    7:4    SSBS      FEAT_SSBS: 1 PSTATE.SSBS, 2 also its MSR/MRS
    11:8   MTE       FEAT_MTE: PSTATE.TCO
    15:12  RAS_frac
    19:16  MPAM_frac
""")
ID_AA64MMFR1_EL1 = Register.parse("ID_AA64MMFR1_EL1", """
    3:0    HAFDBS
    7:4    VMIDBits
    11:8   VH        FEAT_VHE
    15:12  HPDS
    19:16  LO
    23:20  PAN       FEAT_PAN
""")
ID_AA64MMFR2_EL1 = Register.parse("ID_AA64MMFR2_EL1", """
    3:0    CnP
    7:4    UAO       FEAT_UAO
    11:8   LSM
    15:12  IESB
""")

# The registers a view can decode by name (the debugger's notes).
BY_NAME: dict[str, Register] = {
    "HCR_EL2": HCR_EL2, "SCTLR_EL1": SCTLR, "SCTLR_EL2": SCTLR, "SCTLR_EL3": SCTLR, "SCR_EL3": SCR_EL3,
    "ID_AA64PFR0_EL1": ID_AA64PFR0_EL1, "ID_AA64PFR1_EL1": ID_AA64PFR1_EL1,
    "ID_AA64MMFR1_EL1": ID_AA64MMFR1_EL1, "ID_AA64MMFR2_EL1": ID_AA64MMFR2_EL1,
}

# HCR_EL2 bits that behave as 0 (or, for FMO/IMO/AMO without E2H, as 1) while TGE=1: the
# HCR_EL2 field descriptions, as QEMU's arm_hcr_el2_eff (target/arm/helper.c) lists them.
_TGE_E2H_CLEARS = HCR_EL2.mask(
    "VM", "FMO", "IMO", "AMO", "BSU", "DC", "TWI", "TWE", "TID0", "TID2", "TPCP", "TPU", "TDZ", "CD", "ID",
    "MIOCNCE", "TID4", "TICAB", "TOCU", "EnSCXT", "TTLBIS", "TTLBOS", "TID5",
)
_TGE_CLEARS = HCR_EL2.mask(
    "SWIO", "PTW", "VF", "VI", "VSE", "FB", "TID1", "TID3", "TSC", "TACR", "TSW", "TTLB", "TVM", "HCD", "TRVM",
    "TLOR",
)
# Bits an AArch32 EL2 has (HCR plus HCR2): the rest behave as 0.
_AA32_VALID = ((1 << 32) - 1) & ~HCR_EL2.mask("RW", "TDZ") | HCR_EL2.mask(
    "CD", "ID", "TERR", "TEA", "MIOCNCE", "TID4", "TICAB", "TOCU", "TTLBIS")


def hcr_el2_eff(hcr: int, scr: int) -> int:
    """The value of HCR_EL2 "for all purposes other than a direct read": 0 while EL2 is not
    enabled (SCR_EL3.NS=0, no Secure EL2), the AArch32 fields only for an AArch32 EL2
    (SCR_EL3.RW=0), and TGE's overrides (FMO/IMO/AMO as 1 without E2H; the virtualization
    traps as 0). Written after QEMU's arm_hcr_el2_eff; RW is left as written."""
    if not SCR_EL3.NS.isset(scr):
        return 0
    if not SCR_EL3.RW.isset(scr):
        hcr &= _AA32_VALID
    if HCR_EL2.TGE.isset(hcr):
        if HCR_EL2.E2H.isset(hcr):
            hcr &= ~_TGE_E2H_CLEARS
        else:
            hcr |= HCR_EL2.mask("FMO", "IMO", "AMO")
        hcr &= ~_TGE_CLEARS
    return hcr
