"""Where the project's non-Python files are: the asm/ sources and the scenarios/ TOML examples.

A wheel carries copies of the top-level asm/ and scenarios/ inside this package (setup.py
puts them here at build time); they are found through importlib.resources. An editable
checkout has no copies: it reads the top-level folders, so an edit there counts at once."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

_CHECKOUT = Path(__file__).resolve().parents[2]


def data_dir(name: str) -> Path:
    """The folder `name` (asm or scenarios) of the installed package, else of the checkout."""
    shipped = files(__name__) / name
    if shipped.is_dir():
        return Path(str(shipped))  # a wheel installs files, so this is a real folder
    return _CHECKOUT / name


ASM_DIR = data_dir("asm")
SCENARIOS_DIR = data_dir("scenarios")

# What the commands write goes under the current directory, as the README's commands show.
REPORTS_DIR = Path("reports")
FIDELITY_JSON = REPORTS_DIR / "fidelity.json"   # `fidelity` saves it, `scenarios` quotes it


def source_name(path: Path) -> str | None:
    """`asm/<relative path>` for a file of the project's asm/ (installed or not), else None:
    so messages, evidence and reports name the models alike wherever the package lives."""
    p = path.resolve()
    return str(p.relative_to(ASM_DIR.parent)) if p.is_relative_to(ASM_DIR) else None


def source_path(name: str) -> Path:
    """The file a name from `source_name` (or any path the assembler showed) refers to."""
    p = Path(name)
    if p.is_absolute() or p.exists() or p.parts[:1] != ("asm",):
        return p.absolute()
    return ASM_DIR.parent / p
