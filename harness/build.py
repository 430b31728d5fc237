"""`python -m harness build`: an ELF with symbols and DWARF line information for a program the
harness assembles, or for the world-switch program of a scenario.

    python -m harness build FILE.S -o FILE.elf [--cpu max|a57] [-D NAME[=VALUE]]
    python -m harness build --scenario NAME [--variant V] -o world.elf

A scenario's ELF is world.S assembled as the scenario runs it (its variant, the features of its
CPU model) with its `scenario_config` block filled in; the exceptions the board injects for the
irq and serror exits are not in the file. A variant's patched sources are written beside the ELF
(`<stem>-src/`) and the DWARF names them, so gdb lists the lines that were assembled.
Exit status: 0, or 2 for bad input (one line).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from harness.asm import AsmError, Image, Segment
from harness.asm.elf import write_elf
from harness.cli import ArgumentParser, define_arg
from harness.text import one_line

EXIT_OK, EXIT_BAD_INPUT = 0, 2


def _features(cpu: str):
    """The features the board reads from the CPU model's ID registers (what `run` and the
    scenarios assemble for)."""
    from harness.machine import Board

    board = Board(cpu)
    try:
        return board.features
    finally:
        board.close()


def program_image(path: Path, cpu: str = "max", defines: dict[str, int | str] | None = None) -> Image:
    from harness.asm import assemble_file

    if path.suffix.lower() not in (".s", ".asm"):
        raise AsmError(f"{path}: build takes a .S source (an ELF or a .bin is already built)")
    if not path.is_file():
        raise AsmError(f"{path}: no such file")
    return assemble_file(path, features=_features(cpu), defines=defines)


def scenario_image(name: str, variant: str | None = None) -> tuple[Image, str]:
    """The world-switch program of a scenario (built-in or from the user's TOML files), with its
    scenario_config written in; and its id."""
    from harness.scenarios.catalog import find_scenario
    from harness.scenarios.patch import PatchError
    from harness.scenarios.world import assemble_world, config_bytes

    try:
        scenario = find_scenario(name, variant)
        image = assemble_world(scenario.variant, _features(scenario.cpu), scenario.diff)
    except (ValueError, PatchError) as e:
        raise AsmError(str(e)) from None
    base = image.addr_of("scenario_config")
    segments = []
    for seg in image.segments:
        data = bytearray(seg.data)
        for off, raw in config_bytes(scenario.config_values()).items():
            k = base + off - seg.addr
            if 0 <= k and k + len(raw) <= len(data):
                data[k : k + len(raw)] = raw
        segments.append(Segment(seg.name, seg.addr, bytes(data), seg.flags))
    # a copy: assemble_world's image is cached and shared by every run of the variant
    return dataclasses.replace(image, segments=segments), scenario.id


def main(argv: list[str] | None = None) -> int:
    ap = ArgumentParser(prog="python -m harness build", description="Write an ELF with symbols and DWARF line information.")
    ap.add_argument("source", nargs="?", help="a .S program (or --scenario)")
    ap.add_argument("--scenario", metavar="NAME", help="the world-switch program of this scenario")
    ap.add_argument("--variant", help="code variant of the scenario (default v4.13)")
    ap.add_argument("-o", "--output", required=True, metavar="FILE.elf", help="the ELF to write")
    ap.add_argument("--cpu", choices=("max", "a57"), default="max", help="CPU features for ALTERNATIVEs (.S input)")
    ap.add_argument("-D", dest="defines", type=define_arg, action="append", default=[], metavar="NAME[=VALUE]",
                    help="preprocessor define (.S input)")
    args = ap.parse_args(argv)
    if (args.source is None) == (args.scenario is None):
        print("build: give a .S file or --scenario NAME (one of them)", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.variant and not args.scenario:
        print("build: --variant applies to --scenario only", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.source and Path(args.source).resolve() == Path(args.output).resolve():
        print(one_line(f"build: {args.output} is the source itself"), file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        if args.scenario is not None:
            image, what = scenario_image(args.scenario, args.variant)
        else:
            image, what = program_image(Path(args.source), args.cpu, dict(args.defines)), args.source
        out = write_elf(image, args.output)
    except AsmError as e:
        print(str(e), file=sys.stderr)  # an assembler diagnostic quotes the source line below it
        return EXIT_BAD_INPUT
    except OSError as e:
        print(one_line(f"build: cannot write {args.output}: {e.strerror}"), file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"{out}: {what}, {len(image.lines)} source lines, {len(image.insn_addrs)} instructions")
    return EXIT_OK
