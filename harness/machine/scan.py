"""The static scan of a loaded image: the addresses the board hooks, because Unicorn does not
handle their instructions faithfully (ERET, WFI/WFE, MSR to PSTATE fields) or because the user
asked for them (labels). Nothing else gets a Python hook (DESIGN.md, Speed)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from harness.arch.pstate import PSTATE_SYSREG_FIELDS
from harness.arch.sysregs import by_encoding, decode_msr_imm
from harness.machine import decode

# The PSTATE registers an MSR writes (NZCV changes with every flag-setting instruction anyway).
_PSTATE_SYSREGS = set(PSTATE_SYSREG_FIELDS) - {"NZCV", "CURRENTEL"}


@dataclass
class HookPlan:
    eret_at: set[int] = field(default_factory=set)
    wfx_at: set[int] = field(default_factory=set)
    supply_at: dict[int, str] = field(default_factory=dict)   # MSR (immediate) to a supplied PSTATE field
    observe_at: dict[int, str] = field(default_factory=dict)  # other PSTATE writes: checked after
    labels_at: dict[int, str] = field(default_factory=dict)

    def addresses(self) -> Iterable[int]:
        yield from self.eret_at
        yield from self.wfx_at
        yield from self.supply_at
        yield from self.observe_at
        yield from self.labels_at


def scan(image, supplied: frozenset[str] | set[str], label_events: bool | Iterable[str]) -> HookPlan:
    plan = HookPlan()
    for addr, word in _code_words(image):
        if word >> 24 != 0xD5 and word != decode.ERET:
            continue  # every instruction looked for below is ERET or in the 0xd5 system space
        if word == decode.ERET:
            plan.eret_at.add(addr)
        elif decode.is_wfx(word)[0]:
            # QEMU (and so Unicorn) checks SCTLR_EL1.nTWx for EL0 in host; Arm: SCTLR_EL2's
            plan.wfx_at.add(addr)
        elif (decode_msr_imm(word) or ("",))[0] in supplied:
            plan.supply_at[addr] = decode.disasm_text(word, addr)
        elif _pstate_write(word):
            plan.observe_at[addr] = decode.disasm_text(word, addr)
    if label_events:
        _scan_labels(image, plan, label_events)
    return plan


def _scan_labels(image, plan: HookPlan, label_events: bool | Iterable[str]) -> None:
    wanted = None if label_events is True else set(label_events)
    for name, addr in sorted(image.symbols.items(), key=lambda kv: (kv[1], kv[0])):
        if wanted is None and image.is_local_symbol(name):
            continue  # numeric labels and pool entries: not events (a loop on `1:` would log each pass)
        if name.startswith(".L") or (wanted is not None and name not in wanted):
            continue
        if wanted is None and not _in_code(image, addr):
            continue
        plan.labels_at.setdefault(addr, name)


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


def _in_code(image, addr: int) -> bool:
    return any("x" in s.flags and s.addr <= addr < s.addr + len(s.data) for s in image.segments)


def _pstate_write(word: int) -> bool:
    if decode_msr_imm(word) is not None:
        return True
    ops = decode.sysreg_operands(word)
    if ops is None or ops[2]:
        return False
    reg = by_encoding(*ops[0])
    return reg is not None and reg.name in _PSTATE_SYSREGS
