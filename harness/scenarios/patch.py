"""Apply a code variant (a unified diff against the v4.13 models) in memory, like `patch -p1`."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


class PatchError(Exception):
    """A diff that is malformed or does not apply: one line naming the diff file and line."""


@dataclass
class _Hunk:
    line: int           # line of the @@ header in the diff (for errors)
    old_start: int
    old: list[str] = field(default_factory=list)   # context + removed lines
    new: list[str] = field(default_factory=list)   # context + added lines


def _target(name: str, root: Path) -> Path:
    name = name.split("\t")[0].strip()
    for prefix in ("a/", "b/"):
        if name.startswith(prefix):
            name = name[len(prefix):]
            break
    if name.startswith("asm/"):
        name = name[len("asm/"):]
    return (root / name).resolve()


def parse_diff(path: Path, root: Path) -> dict[Path, list[_Hunk]]:
    """Hunks per target file; paths in the diff are relative to `root` (asm/), with optional a/ b/."""
    try:
        lines = path.read_text().splitlines()
    except OSError as e:
        raise PatchError(f"{path}: cannot read: {e.strerror}") from None
    files: dict[Path, list[_Hunk]] = {}
    current: list[_Hunk] | None = None
    hunk: _Hunk | None = None
    remaining = (0, 0)
    for n, text in enumerate(lines, 1):
        if hunk is not None and remaining != (0, 0):
            tag, body = (text[:1], text[1:]) if text else (" ", "")
            if tag == "\\":  # "\ No newline at end of file"
                continue
            if tag not in " -+":
                raise PatchError(f"{path}:{n}: hunk ends early (expected {remaining[0]} more old and "
                                 f"{remaining[1]} more new lines)")
            old_left, new_left = remaining
            if tag in " -":
                hunk.old.append(body)
                old_left -= 1
            if tag in " +":
                hunk.new.append(body)
                new_left -= 1
            if old_left < 0 or new_left < 0:
                raise PatchError(f"{path}:{n}: hunk is longer than its @@ header says")
            remaining = (old_left, new_left)
            continue
        if hunk is not None and text[:1] in " -+" and not text.startswith(("--- ", "+++ ")):
            raise PatchError(f"{path}:{n}: hunk is longer than its @@ header says")
        if text.startswith("--- "):
            continue
        if text.startswith("+++ "):
            current = files.setdefault(_target(text[4:], root), [])
            hunk = None
            continue
        m = _HUNK.match(text)
        if m:
            if current is None:
                raise PatchError(f"{path}:{n}: hunk before any '+++ file' header")
            hunk = _Hunk(n, int(m.group(1)))
            current.append(hunk)
            remaining = (int(m.group(2) or 1), int(m.group(4) or 1))
            continue
        if text.strip() and hunk is None and current is not None:
            raise PatchError(f"{path}:{n}: unexpected line outside a hunk: {text.strip()[:60]}")
    if hunk is not None and remaining != (0, 0):
        raise PatchError(f"{path}:{len(lines)}: diff ends inside a hunk")
    if not files and any(line.strip() for line in lines):
        raise PatchError(f"{path}:1: not a unified diff (no '+++' header)")
    return files


def _find(lines: list[str], old: list[str], hint: int) -> int | None:
    """Where `old` occurs, nearest to the header's line number (whitespace at line ends ignored)."""
    want = [s.rstrip() for s in old]
    stripped = [s.rstrip() for s in lines]
    span = len(want)
    for delta in range(len(lines) + 1):
        for start in (hint - delta, hint + delta) if delta else (hint,):
            if 0 <= start <= len(lines) - span and stripped[start:start + span] == want:
                return start
    return None


def apply_diff(path: Path, root: Path, sources: dict[str, str] | None = None) -> dict[str, str]:
    """Patched texts {absolute path: text} of every file the diff touches."""
    out: dict[str, str] = {}
    for target, hunks in parse_diff(path, root).items():
        key = str(target)
        if sources and key in sources:
            text = sources[key]
        elif not target.exists() and hunks and not any(h.old for h in hunks):
            text = ""  # a new file (--- /dev/null, @@ -0,0 +1,N @@)
        else:
            try:
                text = target.read_text()
            except OSError:
                raise PatchError(f"{path}:{hunks[0].line if hunks else 1}: {target} does not exist") from None
        lines = text.splitlines()
        shift = 0
        for h in hunks:
            at = _find(lines, h.old, max(h.old_start - 1 + shift, 0))
            if at is None:
                first = next((s for s in h.old if s.strip()), "")
                raise PatchError(f"{path}:{h.line}: hunk does not apply to {target.name} "
                                 f"(its lines starting {first.strip()!r} are not there)")
            lines[at:at + len(h.old)] = h.new
            shift += len(h.new) - len(h.old)
        out[key] = "\n".join(lines) + "\n"
    return out
