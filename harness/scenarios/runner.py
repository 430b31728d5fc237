"""Run scenarios on the board: one Board and one boot per (variant, CPU, VHE), then each
configuration from a snapshot taken where the vcpu thread starts (`host_main`). With jobs > 1,
worker processes assemble the images and run a (variant, CPU) each; the results are those of one
process, in the order given."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from harness.arch.features import FEATURES_A57, FEATURES_MAX, Features
from harness.asm import AsmError, Image
from harness.machine import Board, BoardError, BoardState
from harness.scenarios.observe import Observations, observe
from harness.scenarios.patch import PatchError, diff_line_of
from harness.scenarios.scenario import Scenario
from harness.scenarios.world import (
    ASM_DIR,
    IRQ_POINTS,
    LABELS,
    assemble_world,
    config_bytes,
    variant_overrides,
    variant_preamble,
)
from harness.trace import events as ev

MAX_INSNS = 200_000          # a scenario runs ~2,500 instructions; more means it is lost
SNAPSHOT_LABEL = "host_main"  # everything before depends only on variant, CPU and VHE
# Labels the runner itself writes, stops or injects at (a variant must keep them).
REQUIRED_LABELS = (SNAPSHOT_LABEL, "scenario_config", "kvm_exit_code", *IRQ_POINTS.values())


_FEATURES = {f.name: f for f in (FEATURES_MAX, FEATURES_A57)}   # what Board(cpu).features reads


class ScenarioError(Exception):
    """The harness could not build or start a scenario (one line). `bad_input`: the cause is
    the user's (a user variant's diff that does not assemble), not the harness's."""

    def __init__(self, message: str, *, bad_input: bool = False) -> None:
        super().__init__(message)
        self.bad_input = bad_input


@dataclass
class StoppedVariant:
    """A variant the runner gave up on: a boot failed, or the first scenario on a boot did;
    `skipped` of its scenarios were not run (the others would only repeat the failure)."""

    variant: str
    message: str            # one line: what failed first
    run: ScenarioRun | None  # the failed first scenario (None: a boot failed)
    skipped: int = 0


@dataclass
class ScenarioRun:
    scenario: Scenario
    status: str                   # poweroff when the program ran to its end
    message: str
    icount: int
    events: list[ev.Event]
    observations: Observations
    seconds: float = 0.0
    labels: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "poweroff"

    def to_json(self) -> dict:
        return {"id": self.scenario.id, "variant": self.scenario.variant, "config_id": self.scenario.config_id,
                "config": self.scenario.to_json(), "axes": self.scenario.axes(), "status": self.status, "message": self.message,
                "icount": self.icount, "observations": self.observations.to_json()}


class _Booted:
    """A board booted up to SNAPSHOT_LABEL for one (variant, cpu, vhe, quirks); `image`: the
    scenario's world, when it is already assembled."""

    def __init__(self, scenario: Scenario, quirks: tuple[str, ...], image: Image | None = None) -> None:
        self.board = _board_with_world(scenario, quirks=quirks, image=image, label_events=list(LABELS))
        self.image = self.board.image
        self.config_addr = self.image.addr_of("scenario_config")
        self._write_config(scenario)
        stop = self.image.addr_of(SNAPSHOT_LABEL)
        self.board.add_breakpoint(stop)
        r = self.board.run(MAX_INSNS)
        self.board.remove_breakpoint(stop)
        if r.status != "breakpoint":
            raise ScenarioError(f"{scenario.variant} ({scenario.cpu}, {'vhe' if scenario.vhe else 'nvhe'}): boot did "
                                f"not reach {SNAPSHOT_LABEL}: {r.status}: {r.message} at {self.board.location(r.pc)}")
        self.state: BoardState = self.board.save_state()
        self.labels = {name: self.image.addr_of(name) for name in LABELS if name in self.image.symbols}

    def _write_config(self, scenario: Scenario) -> None:
        for off, data in config_bytes(scenario.config_values()).items():
            self.board.write_mem(self.config_addr + off, data)

    def start(self, scenario: Scenario) -> Board:
        """The board at host_main, configured for `scenario` (its exit interrupt scheduled)."""
        b = self.board
        b.restore_state(self.state)
        self._write_config(scenario)
        if scenario.exit in ("irq", "serror"):
            b.inject(scenario.exit, at=scenario.irq_point)
        return b

    def exit_code(self) -> int:
        """What __kvm_vcpu_run returned to the host (-1 until the host stored it)."""
        return int.from_bytes(self.board.read_mem(self.image.addr_of("kvm_exit_code"), 8), "little", signed=True)

    def run(self, scenario: Scenario) -> ScenarioRun:
        b = self.start(scenario)
        t0 = time.perf_counter()
        r = b.run(MAX_INSNS)
        seconds = time.perf_counter() - t0
        events = list(b.events)
        exit_code = self.exit_code()
        obs = observe(scenario, events, self.labels, b.location, exit_code, has_pan=b.features.has_pan)
        message = r.message if r.status == "poweroff" else f"{r.message} at {b.location(r.pc)}"
        return ScenarioRun(scenario, r.status, message, r.icount, events, obs, seconds, self.labels)


def booted_for(cache: dict[tuple, _Booted], scenario: Scenario, quirks: tuple[str, ...] = ()) -> _Booted:
    """The shared boot of a scenario's (variant, CPU, VHE), made on first use."""
    key = (scenario.variant, scenario.diff, scenario.cpu, scenario.vhe, quirks)
    if key not in cache:
        cache[key] = _Booted(scenario, quirks)
    return cache[key]


def _world(scenario: Scenario, features: Features) -> Image:
    """world.S for the scenario's variant; a user diff that does not apply or assemble is bad
    input, named by the diff's line where the diff added the offending line."""
    try:
        image = assemble_world(scenario.variant, features, scenario.diff)
    except (AsmError, PatchError) as e:
        if scenario.diff is None:
            raise ScenarioError(f"{scenario.variant}: {e}") from None
        where = scenario.diff
        if isinstance(e, AsmError) and e.file and e.line:
            base = variant_preamble(scenario.variant, scenario.diff)[1]
            n = diff_line_of(Path(scenario.diff), ASM_DIR, e.file, e.line, dict(variant_overrides(base)))
            if n:
                where += f":{n}"
        first = str(e).splitlines()[0]
        raise ScenarioError(f"{where}: variant {scenario.variant} ({features.name}): {first}", bad_input=True) from None
    missing = [name for name in REQUIRED_LABELS if name not in image.symbols]
    if missing:
        raise ScenarioError(f"{scenario.diff or scenario.variant}: variant {scenario.variant} removes "
                            f"{', '.join(missing)}, which the runner needs", bad_input=scenario.diff is not None)
    return image


def _board_with_world(scenario: Scenario, *, quirks: tuple[str, ...] = (), image: Image | None = None,
                      **board_kwargs) -> Board:
    try:
        board = Board(scenario.cpu, quirks=quirks, **board_kwargs)
    except BoardError as e:
        raise ScenarioError(f"{scenario.id}: {e}") from None
    if image is None:
        image = _world(scenario, board.features)
    try:
        board.load(image)
    except BoardError as e:
        raise ScenarioError(f"{scenario.id}: {e}", bad_input=scenario.diff is not None) from None
    return board


def run_scenarios(
    scenarios: Iterable[Scenario],
    *,
    quirks: tuple[str, ...] = (),
    progress: Callable[[ScenarioRun], None] | None = None,
    stopped: list[StoppedVariant] | None = None,
    jobs: int = 1,
) -> list[ScenarioRun]:
    """Run each scenario (in the order given); boots are shared where they can be.

    Every image is assembled first, so a user diff that does not assemble is a ScenarioError
    (bad_input) before anything runs. Without `stopped`, a boot that fails raises ScenarioError.
    With it, a variant whose boot, or whose first scenario on a boot, fails is stopped there:
    it is appended to `stopped` once, with the count of its scenarios not run, and the run goes
    on with the other variants. `jobs` > 1: in that many worker processes, with the same result."""
    scenarios = list(scenarios)
    stop = stopped is not None
    groups: dict[tuple, list[Scenario]] = {}   # per image: (variant, diff, CPU), in order
    for s in scenarios:
        groups.setdefault((s.variant, s.diff, s.cpu), []).append(s)
    jobs = _workers(jobs, len(groups))
    if jobs <= 1:
        images = {k: _world(g[0], _FEATURES[k[2]]) for k, g in groups.items()}
        return _replay(scenarios, _run_group(scenarios, images, quirks, stop), stopped, progress)
    with _pool(jobs) as pool:
        try:
            return _run_pooled(pool, scenarios, groups, quirks, stopped, progress)
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)   # a failure or Ctrl-C: do not wait for the rest
            raise


def _run_pooled(pool, scenarios: list[Scenario], groups: dict[tuple, list[Scenario]], quirks: tuple[str, ...],
                stopped: list[StoppedVariant] | None, progress: Callable[[ScenarioRun], None] | None) -> list[ScenarioRun]:
    """run_scenarios in worker processes: the images assembled, then a (variant, diff, CPU) per task."""
    images = {}
    for k, got in zip(groups, pool.map(_assemble_task, [g[0] for g in groups.values()]), strict=True):
        if isinstance(got, tuple):   # the first image (in order) that does not assemble
            raise ScenarioError(got[0], bad_input=got[1])
        images[k] = got
    tasks = [(g, {k: images[k]}, quirks, stopped is not None) for k, g in groups.items()]
    results = pool.map(_group_task, tasks)
    by_group: dict[tuple, Iterator] = {}

    def outcomes() -> Iterator:   # in the order of `scenarios`, each group's as it arrives
        for s in scenarios:
            k = (s.variant, s.diff, s.cpu)
            while k not in by_group:
                g = next(results)
                by_group[(g[0][0], g[0][1], g[0][2])] = iter(g[1])
            yield next(by_group[k])

    return _replay(scenarios, outcomes(), stopped, progress)


@dataclass
class _BootFailed:
    message: str
    bad_input: bool


def _run_group(scenarios: list[Scenario], images: dict[tuple, Image], quirks: tuple[str, ...],
               stop: bool) -> Iterator[tuple[ScenarioRun, bool] | _BootFailed | None]:
    """Per scenario, in order: (its run, whether it was the first on its boot), _BootFailed, or
    None when its variant stopped earlier here (with `stop`: see run_scenarios)."""
    last = {(s.variant, s.diff, s.cpu, s.vhe): i for i, s in enumerate(scenarios)}
    booted: dict[tuple, _Booted] = {}
    dead: set[tuple] = set()
    try:
        for i, sc in enumerate(scenarios):
            variant = (sc.variant, sc.diff)
            key = (sc.variant, sc.diff, sc.cpu, sc.vhe)
            if variant in dead:
                yield None
                continue
            first = key not in booted
            if first:
                try:
                    booted[key] = _Booted(sc, quirks, images[key[:3]])
                except ScenarioError as e:
                    dead.add(variant)
                    yield _BootFailed(str(e), e.bad_input)
                    continue
            run = booted[key].run(sc)
            if first and stop and (not run.ok or run.observations.failures):
                dead.add(variant)
            if i == last[key]:   # no later scenario boots from it
                booted.pop(key).board.close()
            yield run, first
    finally:
        for b in booted.values():
            b.board.close()
        booted.clear()


def _replay(scenarios: list[Scenario], outcomes: Iterable, stopped: list[StoppedVariant] | None,
            progress: Callable[[ScenarioRun], None] | None) -> list[ScenarioRun]:
    """The runs of _run_group's outcomes, in order; a variant stops where one process would stop it."""
    dead: dict[tuple, StoppedVariant] = {}
    out = []
    for sc, got in zip(scenarios, outcomes, strict=True):
        variant = (sc.variant, sc.diff)
        if variant in dead:
            dead[variant].skipped += 1
            continue
        assert got is not None, f"{sc.id}: skipped, but its variant is not stopped"
        if isinstance(got, _BootFailed):
            if stopped is None or got.bad_input:
                raise ScenarioError(got.message, bad_input=got.bad_input)
            dead[variant] = StoppedVariant(sc.variant, got.message, None, skipped=1)
            stopped.append(dead[variant])
            continue
        run, first = got
        out.append(run)
        if progress is not None:
            progress(run)
        if first and stopped is not None and (not run.ok or run.observations.failures):
            dead[variant] = StoppedVariant(sc.variant, f"{sc.id}: {run.status}: {run.message}", run)
            stopped.append(dead[variant])
    return out


# ---------------------------------------------------------------- worker processes (jobs > 1)

def default_jobs() -> int:
    """The number of cores this process may run on (the default of -j)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _workers(jobs: int, tasks: int) -> int:
    """How many worker processes to start: none (1: run here) for one task, or inside a daemonic
    process (a multiprocessing worker, such as the fuzz suite's), which may not have children."""
    import multiprocessing

    return 1 if tasks <= 1 or multiprocessing.current_process().daemon else min(jobs, tasks)


def _pool(workers: int):
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # spawn: a fresh interpreter per worker, nothing of this process's Unicorn state inherited
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))


def pool_map(fn: Callable, tasks: list, jobs: int) -> Iterator:
    """fn over tasks, in order; in up to `jobs` worker processes (see _workers)."""
    jobs = _workers(jobs, len(tasks))
    if jobs <= 1:
        yield from map(fn, tasks)
        return
    with _pool(jobs) as pool:
        yield from pool.map(fn, tasks, chunksize=1)


def _assemble_task(sc: Scenario) -> Image | tuple[str, bool]:
    try:
        return _world(sc, _FEATURES[sc.cpu])
    except ScenarioError as e:   # (an exception's keyword arguments do not survive pickling)
        return str(e), e.bad_input


def _group_task(args: tuple) -> tuple[tuple, list]:
    scenarios, images, quirks, stop = args
    sc = scenarios[0]
    return (sc.variant, sc.diff, sc.cpu), list(_run_group(scenarios, images, quirks, stop))


def load_scenario_board(scenario: Scenario, *, quirks: tuple[str, ...] = (), **board_kwargs) -> Board:
    """A Board with the scenario's program loaded and configured, at reset (for the debugger)."""
    board = _board_with_world(scenario, quirks=quirks, **board_kwargs)
    base = board.image.addr_of("scenario_config")
    for off, data in config_bytes(scenario.config_values()).items():
        board.write_mem(base + off, data)
    if scenario.exit in ("irq", "serror"):
        board.inject(scenario.exit, at=scenario.irq_point)
    return board
