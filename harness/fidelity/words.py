"""The harness's assembler against GNU as: every instruction word of every project source.

Our pipeline (preprocessor, Python layout, keystone, own encodings) must give the words
`aarch64-linux-gnu-as -march=armv8.5-a` (harness.qemu.GNU_AS_MARCH) gives for the text `expand_for_gnu_as` produces,
with each section linked where ours put it. The world-switch models are checked once per
code variant (the variant diffs are applied in memory, as the scenarios do).
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from harness.arch.features import FEATURES_A57, FEATURES_MAX, Features
from harness.data import ASM_DIR
from harness.qemu import GNU_AS_MARCH

_INCLUDE = re.compile(r'^\s*(?:\.include|#include)\s+"([^"]+)"', re.M)


@dataclass(frozen=True)
class Source:
    """One thing to assemble: a file, for a CPU's features, optionally with a code variant."""

    path: Path
    features: Features = FEATURES_MAX
    variant: str = ""

    @property
    def name(self) -> str:
        root = ASM_DIR.parent
        rel = self.path.relative_to(root) if self.path.is_relative_to(root) else self.path
        return f"{rel}" + (f" [{self.variant}]" if self.variant else "") + f" ({self.features.name})"


def project_sources() -> list[Source]:
    """Every asm/**/*.S program for both CPUs, world.S once more per code variant. Files other
    sources include (asm/include, the parts of world.S) are checked as part of those."""
    from harness.scenarios.world import WORLD_S, variant_names

    files = sorted(ASM_DIR.rglob("*.S"))
    included = {p.parent / name for p in files for name in _INCLUDE.findall(p.read_text())}
    out = [Source(p, f) for p in files if "include" not in p.parts and p not in included
           for f in (FEATURES_MAX, FEATURES_A57)]
    out += [Source(WORLD_S, FEATURES_MAX, v) for v in variant_names() if v != "v4.13"]
    return out


def gnu_link(src: Path, ours, features: Features, tmp: Path, *, overrides: Mapping[str, str] | None = None,
             debug: bool = False) -> Path:
    """Assemble expand_for_gnu_as(src) with GNU as; link each section where `ours` put it."""
    from harness.asm import expand_for_gnu_as

    text, _locs = expand_for_gnu_as(src, features=features, overrides=overrides)
    exp = tmp / "expanded.S"
    exp.write_text(text)
    obj, elf, lds = tmp / "out.o", tmp / "out.elf", tmp / "link.ld"
    subprocess.run(["aarch64-linux-gnu-as", GNU_AS_MARCH, *(["-g"] if debug else []), "-o", obj, exp],
                   check=True, capture_output=True, text=True)
    lds.write_text("SECTIONS {\n" + "".join(f"  {s.name} {s.addr:#x} : {{ *({s.name}) }}\n" for s in ours.segments)
                   + "}\n")
    subprocess.run(["aarch64-linux-gnu-ld", "-e", "_start", "-T", lds, "-o", elf, obj], check=True,
                   capture_output=True, text=True)
    return elf


def compare_words(src: Source) -> tuple[int, list[str]]:
    """(instructions compared, one line per word that differs) for one source."""
    from harness.asm import AsmError, assemble_file, load_elf
    from harness.scenarios.world import LAYOUT, WORLD_S, variant_overrides

    overrides = dict(variant_overrides(src.variant)) if src.variant else None
    kwargs = {"section_addresses": LAYOUT} if src.path == WORLD_S else {}
    try:
        ours = assemble_file(src.path, features=src.features, overrides=overrides, **kwargs)
    except AsmError as e:
        return 0, [f"{src.name}: harness assembler: {str(e).splitlines()[0]}"]
    with tempfile.TemporaryDirectory(prefix="words-") as tmp:
        try:
            gnu = load_elf(gnu_link(src.path, ours, src.features, Path(tmp), overrides=overrides))
        except subprocess.CalledProcessError as e:
            first = next((ln for ln in (e.stderr or "").splitlines() if "Error" in ln), str(e))
            return 0, [f"{src.name}: GNU as/ld: {first}"]
    return diff_words(ours, gnu)


def diff_words(ours, gnu) -> tuple[int, list[str]]:
    """Compare every instruction statement of `ours` with the word at its address in `gnu`."""
    theirs = {}
    for seg in gnu.segments:
        for off in range(0, len(seg.data) - 3, 4):
            theirs[seg.addr + off] = int.from_bytes(seg.data[off : off + 4], "little")
    bad, n = [], 0
    for addr, word in ours.words():
        n += 1
        got = theirs.get(addr)
        if got != word:
            loc = ours.source_at(addr)
            where = f"{loc.file}:{loc.line}: {loc.text.strip()}" if loc else f"{addr:#x}"
            bad.append(f"{where}: harness {word:08x}, GNU as " + (f"{got:08x}" if got is not None else "nothing"))
    return n, bad
