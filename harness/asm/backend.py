"""The keystone back end: keystone in a child process (ksworker.py: keystone 0.9.2 aborts the process on some
loops forever on others), and the answers it gave, kept for the next assembly."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from harness.asm.image import AsmError
from harness.asm.statement import Stmt

KEYSTONE_TIMEOUT = 10.0  # seconds for one statement (it takes microseconds; it loops forever on some input)
CACHE_LIMIT = 200_000  # answers kept between assemblies
# What keystone's answer for a statement depends on: (text, address if it matters, symbols named).
Key = tuple[str, int | None, tuple]


class Keystone:
    """Encodes statements, one plain instruction each, in a worker process it restarts when
    keystone crashed or hung; a crash or a hang is an error at the statement it happened on."""

    def __init__(self, timeout: float = KEYSTONE_TIMEOUT) -> None:
        self.timeout = timeout
        self.cache: dict[Key, bytes] = {}
        self.sent = 0  # statements handed to keystone so far
        self._proc: subprocess.Popen | None = None

    def start(self) -> subprocess.Popen:
        if self._proc is None or self._proc.poll() is not None:
            # Run as a script, so the child imports keystone only (not the harness packages).
            self._proc = subprocess.Popen(
                [sys.executable, str(Path(__file__).with_name("ksworker.py"))], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            )
        return self._proc

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
        self._proc = None

    def encode_words(self, wanted: Mapping[Key, tuple[int, Stmt]], symbols: dict[str, int]) -> dict[Key, int]:
        """The word for each key (with the address and statement of a use of it): from the cache,
        or from one batch for those not in it. An answer that is not one word (keystone drops
        `.inst` silently, facts §7) is an error at that statement."""
        if len(self.cache) > CACHE_LIMIT:
            self.cache.clear()
        todo = [k for k in wanted if k not in self.cache]
        results = self.encode([(k[0], wanted[k][0]) for k in todo], symbols, [wanted[k][1] for k in todo])
        self.cache.update(zip(todo, results, strict=True))
        words = {}
        for key, (_addr, st) in wanted.items():
            enc = self.cache[key]
            if len(enc) != 4:
                what = "dropped the statement (no bytes)" if not enc else f"produced {len(enc)} bytes"
                raise AsmError(f"keystone {what} for {key[0]!r}", st.loc, st.via)
            words[key] = int.from_bytes(enc, "little")
        return words

    def encode(self, items: list[tuple[str, int]], symbols: dict[str, int], stmts: list[Stmt]) -> list[bytes]:
        """keystone's bytes for each (text, address), `stmts[k]` the statement item k came from."""
        out: list[bytes] = []
        start = 0
        self.sent += len(items)
        while start < len(items):
            replies, hung = self._request(items[start:], symbols)
            for k, rep in enumerate(replies):
                st = stmts[start + k]
                if "err" in rep:
                    raise AsmError(f"cannot assemble {st.text!r} ({rep['err']})", st.loc, st.via)
                out.append(bytes.fromhex(rep["hex"]))
            start += len(replies)
            if start < len(items):
                st = stmts[start]
                self.stop()
                if hung:
                    raise AsmError(f"keystone gave no answer in {self.timeout:.0f} s for {st.text!r}", st.loc, st.via)
                raise AsmError(f"keystone crashed (abort) on {st.text!r}", st.loc, st.via)
        return out

    def _request(self, items: list[tuple[str, int]], symbols: dict[str, int]) -> tuple[list[dict], bool]:
        """keystone's replies, in order, and whether it hung: the replies stop short when it
        aborted (the worker died) or gave no answer for `timeout` seconds (it loops forever on
        some inputs, e.g. `%`; the worker is then killed)."""
        request = (json.dumps({"syms": symbols, "items": items}) + "\n").encode()
        for attempt in (0, 1):
            proc = self.start()
            assert proc.stdin is not None and proc.stdout is not None
            try:
                proc.stdin.write(request)
                proc.stdin.flush()
                break
            except BrokenPipeError:  # it died after its last reply (an abort we have not seen yet)
                self.stop()
                if attempt:
                    return [], False
        replies: list[dict] = []
        fd = proc.stdout.fileno()
        pending = b""
        while len(replies) < len(items):
            ready, _, _ = select.select([fd], [], [], self.timeout)
            if not ready:
                self.stop()
                return replies, True
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break  # keystone aborted the worker on the next item
            *lines, pending = (pending + chunk).split(b"\n")
            replies.extend(json.loads(line) for line in lines)
        return replies, False


KEYSTONE = Keystone()  # the one worker assemblies share
