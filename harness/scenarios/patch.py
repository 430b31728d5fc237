"""Apply a code variant (a unified diff against the v4.13 models) in memory, like `patch -p1`.

Hand-written on purpose (checked against whatthepatch 1.0.7, unidiff 1.0.1, patch-ng 1.19.1):
whatthepatch accepts a truncated hunk or one longer than its header and applies it as nothing,
and finds a hunk only at its stated line; unidiff only parses, and its errors name no line;
patch-ng patches files on disk and reports failures through logging as a bare False. Here every
error is one line with the diff's file:line, a hunk is found where its context is when the line
numbers drift (as `patch` does), and a diff can only touch files under the models' root."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from harness.textfile import TextFileError, read_text

_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
MAX_DIFF_BYTES = 1 << 20


class PatchError(Exception):
    """A diff that is malformed or does not apply: one line naming the diff file and line."""


@dataclass
class _Hunk:
    line: int           # line of the @@ header in the diff (for errors)
    old_start: int
    old: list[str] = field(default_factory=list)   # context + removed lines
    new: list[str] = field(default_factory=list)   # context + added lines
    added_at: list[int | None] = field(default_factory=list)  # per new line: its diff line if added


def _lines(text: str) -> list[str]:
    """Lines split at \\n only (so line numbers are an editor's), without a trailing \\r."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [s[:-1] if s.endswith("\r") else s for s in lines]


def _target(path: Path, n: int, name: str, root: Path) -> Path:
    name = name.split("\t")[0].strip()
    for prefix in ("a/", "b/"):
        if name.startswith(prefix):
            name = name[len(prefix):]
            break
    if name.startswith("asm/"):
        name = name[len("asm/"):]
    if not name or "\0" in name:
        raise PatchError(f"{path}:{n}: '+++' names no file")
    target = (root / name).resolve()
    if not target.is_relative_to(root.resolve()):
        raise PatchError(f"{path}:{n}: {name[:80]!r} is outside {root.name}/: a variant patches the models only")
    return target


def parse_diff(path: Path, root: Path) -> dict[Path, list[_Hunk]]:
    """Hunks per target file; paths in the diff are relative to `root` (asm/), with optional a/ b/."""
    try:
        lines = _lines(read_text(path, limit=MAX_DIFF_BYTES))
    except TextFileError as e:
        raise PatchError(str(e)) from None
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
                hunk.added_at.append(n if tag == "+" else None)
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
            current = files.setdefault(_target(path, n, text[4:], root), [])
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
        if text.startswith("@@"):
            raise PatchError(f"{path}:{n}: malformed hunk header (want '@@ -L,N +L,N @@')")
        if text.strip() and hunk is None and current is not None:
            raise PatchError(f"{path}:{n}: unexpected line outside a hunk: {text.strip()[:60]!r}")
    if hunk is not None and remaining != (0, 0):
        raise PatchError(f"{path}:{len(lines)}: diff ends inside a hunk (expected {remaining[0]} more old and "
                         f"{remaining[1]} more new lines)")
    if not any(files.values()):
        raise PatchError(f"{path}:1: not a unified diff (no '+++ file' header followed by an @@ hunk)")
    return files


def _find(stripped: list[str], old: list[str], hint: int) -> int | None:
    """Where `old` occurs, nearest to the header's line number (whitespace at line ends ignored)."""
    want = [s.rstrip() for s in old]
    span = len(want)
    for delta in range(len(stripped) + 1):
        for start in (hint - delta, hint + delta) if delta else (hint,):
            if 0 <= start <= len(stripped) - span and stripped[start:start + span] == want:
                return start
    return None


def apply_diff(path: Path, root: Path, sources: dict[str, str] | None = None,
               added_at: dict[str, list[int | None]] | None = None) -> dict[str, str]:
    """Patched texts {absolute path: text} of every file the diff touches. `added_at`, when
    given, receives per file and patched line the diff line that added it (None: not added)."""
    out: dict[str, str] = {}
    for target, hunks in parse_diff(path, root).items():
        key = str(target)
        where = f"{path}:{hunks[0].line if hunks else 1}"
        if sources and key in sources:
            text = sources[key]
        else:
            try:
                missing = not target.exists()
            except OSError as e:   # a name too long
                raise PatchError(f"{where}: cannot patch {target.name[:60]!r}: {e.strerror}") from None
            if missing and hunks and not any(h.old for h in hunks):
                text = ""  # a new file (--- /dev/null, @@ -0,0 +1,N @@)
            elif missing:
                raise PatchError(f"{where}: {target.relative_to(root.resolve())} does not exist")
            else:
                try:
                    text = read_text(target)
                except TextFileError as e:
                    raise PatchError(f"{where}: cannot patch {target.name}: {str(e).rsplit(': ', 1)[-1]}") from None
        lines = _lines(text)
        stripped = [s.rstrip() for s in lines]
        origin: list[int | None] = [None] * len(lines)
        shift = 0
        for h in hunks:
            at = _find(stripped, h.old, max(h.old_start - 1 + shift, 0))
            if at is None:
                first = next((s for s in h.old if s.strip()), "")
                raise PatchError(f"{path}:{h.line}: hunk does not apply to {target.name} "
                                 f"(its lines starting {first.strip()[:60]!r} are not there)")
            lines[at:at + len(h.old)] = h.new
            stripped[at:at + len(h.old)] = [s.rstrip() for s in h.new]
            origin[at:at + len(h.old)] = h.added_at
            shift += len(h.new) - len(h.old)
        out[key] = "\n".join(lines) + "\n"
        if added_at is not None:
            added_at[key] = origin
    return out


def diff_line_of(path: Path, root: Path, file: str, line: int, sources: dict[str, str] | None = None) -> int | None:
    """The line of the diff that added line `line` of the patched `file` (None if it did not);
    `sources` as for apply_diff (the texts of the variant the diff applies to)."""
    origins: dict[str, list[int | None]] = {}
    apply_diff(path, root, sources, added_at=origins)
    origin = origins.get(str(Path(file).resolve()), [])
    return origin[line - 1] if 0 < line <= len(origin) else None
