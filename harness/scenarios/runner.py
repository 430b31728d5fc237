"""Run scenarios on the board: one Board and one boot per (variant, CPU, VHE), then each
configuration from a snapshot taken where the vcpu thread starts (`host_main`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from harness.asm import AsmError
from harness.machine import Board, BoardError, BoardState
from harness.scenarios.observe import observe
from harness.scenarios.patch import PatchError
from harness.scenarios.scenario import Scenario
from harness.scenarios.world import LABELS, assemble_world, config_bytes
from harness.trace import events as ev

MAX_INSNS = 200_000          # a scenario runs ~2,500 instructions; more means it is lost
SNAPSHOT_LABEL = "host_main"  # everything before depends only on variant, CPU and VHE


class ScenarioError(Exception):
    """The harness could not build or start a scenario (one line)."""


@dataclass
class ScenarioRun:
    scenario: Scenario
    status: str                   # poweroff when the program ran to its end
    message: str
    icount: int
    events: list[ev.Event]
    observations: dict
    seconds: float = 0.0
    labels: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "poweroff"

    def to_json(self) -> dict:
        return {"id": self.scenario.id, "variant": self.scenario.variant, "config_id": self.scenario.config_id,
                "config": self.scenario.to_json(), "status": self.status, "message": self.message,
                "icount": self.icount, "observations": self.observations}


class _Booted:
    """A board booted up to SNAPSHOT_LABEL for one (variant, cpu, vhe, quirks)."""

    def __init__(self, scenario: Scenario, quirks: tuple[str, ...]) -> None:
        try:
            self.board = Board(scenario.cpu, label_events=list(LABELS), quirks=quirks)
            self.image = assemble_world(scenario.variant, self.board.features, scenario.diff)
            self.board.load(self.image)
        except (AsmError, PatchError, BoardError) as e:
            raise ScenarioError(f"{scenario.id}: {e}") from None
        self.config_addr = self.image.addr_of("scenario_config")
        self._write_config(scenario)
        stop = self.image.addr_of(SNAPSHOT_LABEL)
        self.board.add_breakpoint(stop)
        r = self.board.run(MAX_INSNS)
        self.board.remove_breakpoint(stop)
        if r.status != "breakpoint":
            raise ScenarioError(f"{scenario.id}: boot did not reach {SNAPSHOT_LABEL}: {r.status}: {r.message}")
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


def run_scenarios(
    scenarios: Iterable[Scenario],
    *,
    quirks: tuple[str, ...] = (),
    progress: Callable[[ScenarioRun], None] | None = None,
) -> list[ScenarioRun]:
    """Run each scenario (in the order given); boots are shared where they can be."""
    booted: dict[tuple, _Booted] = {}
    out = []
    for sc in scenarios:
        run = booted_for(booted, sc, quirks).run(sc)
        out.append(run)
        if progress is not None:
            progress(run)
    return out


def load_scenario_board(scenario: Scenario, *, quirks: tuple[str, ...] = (), **board_kwargs) -> Board:
    """A Board with the scenario's program loaded and configured, at reset (for the debugger)."""
    try:
        board = Board(scenario.cpu, quirks=quirks, **board_kwargs)
        image = assemble_world(scenario.variant, board.features, scenario.diff)
        board.load(image)
    except (AsmError, PatchError, BoardError) as e:
        raise ScenarioError(f"{scenario.id}: {e}") from None
    base = image.addr_of("scenario_config")
    for off, data in config_bytes(scenario.config_values()).items():
        board.write_mem(base + off, data)
    if scenario.exit in ("irq", "serror"):
        board.inject(scenario.exit, at=scenario.irq_point)
    return board
