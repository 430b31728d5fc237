"""Run scenarios on the board: one Board and one boot per (variant, CPU, VHE), then each
configuration from a snapshot taken where the vcpu thread starts (`host_main`)."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterable
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
    """A board booted up to SNAPSHOT_LABEL for one (variant, cpu, vhe, quirks)."""

    def __init__(self, scenario: Scenario, quirks: tuple[str, ...]) -> None:
        self.board = _board_with_world(scenario, quirks=quirks, label_events=list(LABELS))
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


def _board_with_world(scenario: Scenario, *, quirks: tuple[str, ...] = (), **board_kwargs) -> Board:
    try:
        board = Board(scenario.cpu, quirks=quirks, **board_kwargs)
    except BoardError as e:
        raise ScenarioError(f"{scenario.id}: {e}") from None
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
) -> list[ScenarioRun]:
    """Run each scenario (in the order given); boots are shared where they can be.

    Every image is assembled first, so a user diff that does not assemble is a ScenarioError
    (bad_input) before anything runs. Without `stopped`, a boot that fails raises ScenarioError.
    With it, a variant whose boot, or whose first scenario on a boot, fails is stopped there:
    it is appended to `stopped` once, with the count of its scenarios not run, and the run goes
    on with the other variants."""
    scenarios = list(scenarios)
    for sc in {(s.variant, s.diff, s.cpu): s for s in scenarios}.values():
        _world(sc, _FEATURES[sc.cpu])
    last = {(s.variant, s.diff, s.cpu, s.vhe): i for i, s in enumerate(scenarios)}
    booted: dict[tuple, _Booted] = {}
    dead: dict[tuple, StoppedVariant] = {}
    out = []
    try:
        for i, sc in enumerate(scenarios):
            variant = (sc.variant, sc.diff)
            key = (sc.variant, sc.diff, sc.cpu, sc.vhe)
            if variant in dead:
                dead[variant].skipped += 1
                continue
            first = key not in booted
            if first:
                try:
                    booted[key] = _Booted(sc, quirks)
                except ScenarioError as e:
                    if stopped is None or e.bad_input:
                        raise
                    dead[variant] = StoppedVariant(sc.variant, str(e), None, skipped=1)
                    stopped.append(dead[variant])
                    continue
            run = booted[key].run(sc)
            out.append(run)
            if progress is not None:
                progress(run)
            if first and stopped is not None and (not run.ok or run.observations.failures):
                dead[variant] = StoppedVariant(sc.variant, f"{sc.id}: {run.status}: {run.message}", run)
                stopped.append(dead[variant])
            if i == last[key]:   # no later scenario boots from it
                booted.pop(key).board.close()
    finally:
        for boot in booted.values():
            boot.board.close()
        booted.clear()
        # close() released Unicorn's memory; the binding's MMIO callbacks still tie each closed
        # Board in a cycle, collected once here
        gc.collect()
    return out


def load_scenario_board(scenario: Scenario, *, quirks: tuple[str, ...] = (), **board_kwargs) -> Board:
    """A Board with the scenario's program loaded and configured, at reset (for the debugger)."""
    board = _board_with_world(scenario, quirks=quirks, **board_kwargs)
    base = board.image.addr_of("scenario_config")
    for off, data in config_bytes(scenario.config_values()).items():
        board.write_mem(base + off, data)
    if scenario.exit in ("irq", "serror"):
        board.inject(scenario.exit, at=scenario.irq_point)
    return board
