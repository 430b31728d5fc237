"""The differential run: generate, build once with GNU as, run on QEMU and on the harness,
compare case by case under the reviewed exclusions, and check the keystone words."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from harness.fidelity import program
from harness.fidelity.cases import Case, exhaustive, sampled
from harness.fidelity.compare import CaseOutput, Exclusion, Verdict, compare, load_exclusions, parse
from harness.qemu import QemuRun, gnu_build, qemu_version, run_qemu

CASES_PER_PROGRAM = 500  # ~40 KiB of table; the text must end below the test pages


def select_cases(samples: int, seed: int, quick: bool = False) -> list[Case]:
    """The exhaustive slices then `samples` seeded random cases (quick: every 8th exhaustive)."""
    ex = exhaustive()
    if quick:
        ex = ex[::8]
    seen = set(ex)
    return ex + [c for c in sampled(samples, seed) if c not in seen]


@dataclass
class CaseResult:
    num: int
    case: Case
    verdict: Verdict
    qemu: CaseOutput | None
    ours: CaseOutput | None


@dataclass
class ProgramRun:
    source: Path
    cases: int
    qemu: QemuRun | None
    ours: QemuRun
    words: int
    word_errors: list[str]


@dataclass
class FidelityResult:
    qemu_version: str
    results: list[CaseResult] = field(default_factory=list)
    harness_only: list[CaseResult] = field(default_factory=list)
    programs: list[ProgramRun] = field(default_factory=list)
    exclusions: list[Exclusion] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(r.verdict.status == status for r in self.results)

    def exclusion_counts(self) -> dict[str, int]:
        """Cases each reviewed exclusion left out or masked."""
        counts = {e.name: 0 for e in self.exclusions}
        for r in self.results + self.harness_only:
            names = set(r.verdict.masked)
            if r.verdict.status == "excluded":
                names.add(r.verdict.detail.split()[0])
            for n in names:
                counts[n] += 1
        return counts

    @property
    def compared(self) -> int:
        return sum(r.verdict.status in ("agree", "differ", "missing") for r in self.results)

    @property
    def problems(self) -> list[str]:
        out = []
        for p in self.programs:
            if p.qemu is not None and p.qemu.status != "poweroff":
                out.append(f"{p.source.name} on QEMU: {p.qemu.status}")
            if p.ours.status != "poweroff":
                out.append(f"{p.source.name} on the harness: {p.ours.status}")
            out += [f"{p.source.name}: {e}" for e in p.word_errors]
        for r in self.results + self.harness_only:
            out += [f"C{r.num} {r.case.id}: {v}" for v in r.verdict.arm_violations]
        return out

    @property
    def ok(self) -> bool:
        return not self.problems and self.count("differ") == 0 and self.count("missing") == 0


def run(cases: list[Case], build_dir: Path, progress: Callable[[str], None] | None = None,
        exclusions: list[Exclusion] | None = None, quirks: tuple[str, ...] = ()) -> FidelityResult:
    """Run `cases` (numbered in order) on both emulators; harness-only ones on the harness.
    `quirks` runs the harness on a deliberately wrong architecture (to see the test fail)."""
    exclusions = load_exclusions() if exclusions is None else exclusions
    build_dir.mkdir(parents=True, exist_ok=True)
    numbered = list(enumerate(cases))
    on_qemu = [all(e.qemu or not e.applies(c) for e in exclusions) for _n, c in numbered]
    both = [nc for nc, q in zip(numbered, on_qemu, strict=True) if q]
    alone = [nc for nc, q in zip(numbered, on_qemu, strict=True) if not q]
    chunks = [("qemu", both[i : i + CASES_PER_PROGRAM]) for i in range(0, len(both), CASES_PER_PROGRAM)]
    chunks += [("alone", alone[i : i + CASES_PER_PROGRAM]) for i in range(0, len(alone), CASES_PER_PROGRAM)]
    result = FidelityResult(qemu_version(), exclusions=exclusions)

    built = []
    for k, (where, chunk) in enumerate(chunks):
        src = build_dir / f"fidelity-{k:02d}{'-harness-only' if where == 'alone' else ''}.S"
        src.write_text(program.source(chunk, f"fidelity program {k}"))
        built.append((where, chunk, src, gnu_build(src)))
    # QEMU runs in parallel processes while the harness runs here
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {src: pool.submit(run_qemu, elf) for where, _c, src, elf in built if where == "qemu"}
        for where, chunk, src, elf in built:
            if progress:
                progress(f"{src.name}: {len(chunk)} cases")
            ours = program.run_board(elf, quirks=quirks)
            nwords, werr = program.check_words(src, elf)
            q = futures[src].result() if where == "qemu" else None
            result.programs.append(ProgramRun(src, len(chunk), q, ours, nwords, werr))
            ours_by = parse(ours.text)
            q_by = parse(q.text) if q is not None else {}
            for n, c in chunk:
                if where == "qemu":
                    v = compare(c, q_by.get(n), ours_by.get(n), exclusions)
                    result.results.append(CaseResult(n, c, v, q_by.get(n), ours_by.get(n)))
                else:
                    ex = next(e for e in exclusions if not e.qemu and e.applies(c))
                    v = Verdict("excluded" if n in ours_by else "missing", ex.name)
                    result.harness_only.append(CaseResult(n, c, v, None, ours_by.get(n)))
    return result
