"""Every scenario the project knows, and the one way to pick some of them.

The catalogue is the built-in matrix (every configuration under v4.13 and each asm/variants diff)
plus what the user's TOML files add (scenarios/*.toml unless named): every configuration under
each `matrix = true` variant, and the user's own scenarios. `scenarios`, the debugger and any
later command select through `Catalog.select` and look one up through `find_scenario`, so a
filter means the same everywhere and applies alike to built-in and user scenarios."""

from __future__ import annotations

import argparse
import fnmatch
from dataclasses import dataclass, field, replace
from pathlib import Path

from harness.scenarios.scenario import Scenario, configurations, matrix
from harness.scenarios.user import UserFile, UserFileError, UserScenario, load_all
from harness.scenarios.world import variant_names


class SelectionError(ValueError):
    """A filter or a name that selects nothing (bad input: one line)."""


@dataclass(frozen=True)
class Selection:
    """The filters of `scenarios` (each empty/None: no restriction; several values: any of them)."""

    only: tuple[str, ...] = ()       # globs on the scenario id
    variants: tuple[str, ...] = ()   # built-in or user variant names
    vhe: bool | None = None          # True: VHE only; False: non-VHE only
    cpus: tuple[str, ...] = ()

    def keeps(self, s: Scenario) -> bool:
        return ((not self.variants or s.variant in self.variants)
                and (not self.cpus or s.cpu in self.cpus)
                and (self.vhe is None or s.vhe == self.vhe)
                and (not self.only or any(fnmatch.fnmatchcase(s.id, g) for g in self.only)))


@dataclass
class Catalog:
    user_files: list[UserFile] = field(default_factory=list)

    @classmethod
    def load(cls, paths: list[Path] | None = None) -> Catalog:
        """Built-in scenarios plus the user files (default: every scenarios/*.toml). A name defined
        twice across files is refused (UserFileError naming both places)."""
        files = load_all(paths)
        variants: dict[str, str] = {}
        scenarios: dict[str, str] = {}
        for uf in files:
            for name, where in uf.variant_where.items():
                if name in variants:
                    raise UserFileError(f"{where}: variant {name!r} is already defined at {variants[name]}")
                variants[name] = where
            for us in uf.scenarios:
                if us.scenario.id in scenarios:
                    raise UserFileError(f"{us.where}: scenario {us.scenario.id[5:]!r} is already defined at "
                                        f"{scenarios[us.scenario.id]}")
                scenarios[us.scenario.id] = us.where
        return cls(files)

    def variants(self) -> dict[str, str | None]:
        """Every variant name -> its diff (None: a built-in variant, found by name)."""
        out: dict[str, str | None] = {v: None for v in variant_names()}
        out.update({name: str(diff) for uf in self.user_files for name, diff in uf.variants.items()})
        return out

    @property
    def user_scenarios(self) -> list[UserScenario]:
        return [us for uf in self.user_files for us in uf.scenarios]

    def scenarios(self, *, every_variant: bool = False) -> list[Scenario]:
        """Built-in matrix, then every configuration under each user `matrix = true` variant (under
        every user variant if `every_variant`), then the user scenarios; variant-major, so runs
        sharing a boot are adjacent."""
        out = matrix()
        for uf in self.user_files:
            for name, diff in uf.variants.items():
                if every_variant or name in uf.matrix_variants:
                    out += [replace(c, variant=name, diff=str(diff)) for c in configurations()]
        return out + [us.scenario for us in self.user_scenarios]

    def select(self, sel: Selection) -> list[Scenario]:
        """The scenarios `sel` keeps, in catalogue order; SelectionError for an unknown variant or
        when nothing is left."""
        known = self.variants()
        for v in sel.variants:
            if v not in known:
                raise SelectionError(f"unknown variant {v!r} (known: {', '.join(known)})")
        out = [s for s in self.scenarios() if sel.keeps(s)]
        if not out:
            raise SelectionError("no scenario matches the filters")
        return out


def add_selection_arguments(ap: argparse.ArgumentParser) -> None:
    """The filters, the architecture quirks and the user files, as `scenarios` and `explore` take
    them (one meaning everywhere: see `selection_of`)."""
    from harness.machine.board import QUIRKS
    from harness.scenarios.scenario import CPUS

    ap.add_argument("--only", metavar="GLOB", action="append", default=[],
                    help="scenario ids matching GLOB, e.g. 'patch-2017/max-vhe-*' (repeatable)")
    ap.add_argument("--variant", action="append", default=[], help="only this code variant (repeatable)")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--vhe", action="store_true", help="only VHE scenarios")
    mode.add_argument("--nvhe", action="store_true", help="only non-VHE scenarios")
    ap.add_argument("--cpu", choices=CPUS, action="append", default=[], help="only this CPU model")
    ap.add_argument("--arch-quirk", choices=sorted(QUIRKS), action="append", default=[],
                    help="run on a deliberately wrong architecture (to see which verdicts depend on a rule)")
    ap.add_argument("--user", metavar="FILE.toml", action="append", type=Path,
                    help="user scenarios/variants (default: every scenarios/*.toml)")


def selection_of(args: argparse.Namespace) -> tuple[Catalog, list[Scenario]]:
    """The catalogue (built-in plus the user files) and the scenarios the filters of
    `add_selection_arguments` keep; UserFileError or SelectionError (bad input, one line)."""
    catalog = Catalog.load(args.user)
    return catalog, catalog.select(Selection(only=tuple(args.only), variants=tuple(args.variant),
                                             vhe=True if args.vhe else False if args.nvhe else None,
                                             cpus=tuple(args.cpu)))


def find_scenario(name: str, variant: str | None = None, user: list[Path] | None = None) -> Scenario:
    """One scenario by id, as `scenarios --json` lists them (`v4.13/max-vhe-...`, `MYFIX/max-...`,
    `user/NAME`), or a configuration id (`max-vhe-...`) under `variant` (default v4.13), or a user
    scenario's bare NAME. Any configuration under any user variant is found, `matrix = true` or
    not. Built-in ids are found without reading TOML; the others from the same files as
    `scenarios` (scenarios/*.toml unless `user` names them). SelectionError if none."""
    if not name or name != name.strip():
        raise SelectionError(f"no scenario {name!r}")
    wants = [name] if "/" in name else [f"{variant or 'v4.13'}/{name}"]
    if "/" not in name and variant is None:
        wants.append(f"user/{name}")
    every = {s.id: s for s in matrix()}
    if not any(w in every for w in wants):
        try:
            every.update({s.id: s for s in Catalog.load(user).scenarios(every_variant=True)})
        except UserFileError as e:
            raise SelectionError(str(e)) from None
    found = next((every[w] for w in wants if w in every), None)
    if found is None:
        config = wants[0].split("/", 1)[1]
        close = sorted(i.split("/")[0] for i in every if i.split("/", 1)[1] == config)
        hint = f" (variants: {', '.join(close)})" if close else " (python -m harness scenarios --json lists them)"
        raise SelectionError(f"no scenario {wants[0]}{hint}")
    if variant is not None and found.variant != variant:
        raise SelectionError(f"scenario {found.id} is under variant {found.variant}, not --variant {variant}")
    return found
