"""Fuzz support: run harness entry points in a child worker under a memory limit and a timeout.

Every fuzz suite checks the same property on each generated input: the entry point finishes
with exit status 0, 1 or 2; for 2, stderr holds one diagnostic line (an assembler diagnostic
may quote the offending source line below it, indented, as compilers do); no traceback; no
signal death; bounded time and memory.

A worker process is started once per suite and runs many examples in-process (a fresh
interpreter per example would cost 0.3 s of imports each). It is spawned (not forked) with
RLIMIT_AS set, so an unbounded allocation fails inside it instead of eating the machine; the
parent kills it on a timeout and starts a new one, so a hang or a crash is reported with the
input that caused it and the next example still runs.

    with Worker() as w:
        r = w.cli(["run", str(path), "--max-insns", "1000"])
        r.check()           # AssertionError naming the input and what went wrong

`Worker.call("module:function", *args)` runs any importable function (a debugger session, a
GDB stub fed raw packets): its return value comes back as `Result.value` and an exception that
escapes it as `Result.exception` (a failure of the property).
"""

from __future__ import annotations

import gc
import importlib
import io
import multiprocessing as mp
import os
import resource
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field

# The board maps 256 MiB of guest RAM and Unicorn reserves its code buffer: ~1.4 GB of
# address space per Board. The cap leaves room for a few boards and stops runaway allocations.
MEM_LIMIT = 6 << 30
MAX_RSS = 2 << 30  # resident memory a single example may reach (checked after each example)
TIMEOUT = 30.0


def examples(fast: int = 200, slow: int = 2000) -> int:
    """Examples per surface: `fast` in `make test`, `slow` when PSTATE_FUZZ_SLOW=1 (the slow suite)
    or an explicit PSTATE_FUZZ_EXAMPLES."""
    if "PSTATE_FUZZ_EXAMPLES" in os.environ:
        return int(os.environ["PSTATE_FUZZ_EXAMPLES"])
    return slow if os.environ.get("PSTATE_FUZZ_SLOW") == "1" else fast


@dataclass
class Result:
    what: str                     # the input, for messages
    status: int | None = None     # exit status (cli) or 0 for a call that returned
    stdout: str = ""
    stderr: str = ""
    value: object = None          # what a call returned
    exception: str | None = None  # a traceback that escaped the entry point
    died: str | None = None       # "signal N", "timeout after Ts", ...
    seconds: float = 0.0
    max_rss: int = 0              # bytes, the worker's peak resident set so far
    notes: list[str] = field(default_factory=list)

    def problems(self, *, statuses: tuple[int, ...] = (0, 1, 2)) -> list[str]:
        out = []
        if self.died:
            out.append(f"worker died: {self.died}")
        if self.exception:
            out.append(f"exception escaped:\n{self.exception}")
        if self.status is not None and self.status not in statuses:
            out.append(f"exit status {self.status} (expected one of {statuses})")
        if "Traceback (most recent call last)" in self.stderr + self.stdout:
            out.append("a traceback was printed")
        if self.status == 2:
            lines = [ln for ln in self.stderr.splitlines() if ln.strip()]
            diag = [ln for ln in lines if not ln.startswith("    ")]
            if len(diag) != 1 or len(lines) > 2:
                out.append(f"status 2 wants one diagnostic line on stderr, got {len(lines)}: {lines[:4]!r}")
        if self.max_rss > MAX_RSS:
            out.append(f"resident memory reached {self.max_rss >> 20} MiB")
        return out

    def check(self, **kw) -> Result:
        probs = self.problems(**kw)
        if probs:
            raise AssertionError(
                f"input: {self.what}\n" + "\n".join(probs)
                + f"\n--- stdout (head)\n{self.stdout[:2000]}\n--- stderr (head)\n{self.stderr[:2000]}"
            )
        return self


# ---------------------------------------------------------------- child side

def _limit_memory() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    lim = MEM_LIMIT if hard == resource.RLIM_INFINITY else min(MEM_LIMIT, hard)
    resource.setrlimit(resource.RLIMIT_AS, (lim, hard))


def _resolve(target: str):
    mod, _, name = target.partition(":")
    return getattr(importlib.import_module(mod), name)


def _run_one(job: tuple) -> dict:
    kind, target, args, kwargs = job
    out_f = tempfile.TemporaryFile()
    err_f = tempfile.TemporaryFile()
    saved = os.dup(1), os.dup(2)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(out_f.fileno(), 1)
    os.dup2(err_f.fileno(), 2)
    # Python-level streams go to the same files (text written by print() and by rich).
    old_streams = sys.stdout, sys.stderr, sys.stdin
    sys.stdout = io.TextIOWrapper(os.fdopen(os.dup(1), "wb"), encoding="utf-8", errors="replace", write_through=True)
    sys.stderr = io.TextIOWrapper(os.fdopen(os.dup(2), "wb"), encoding="utf-8", errors="replace", write_through=True)
    stdin_text = kwargs.pop("_stdin", None)
    sys.stdin = io.StringIO(stdin_text or "")
    res: dict = {"status": None, "value": None, "exception": None}
    t0 = time.perf_counter()
    try:
        fn = _resolve(target)
        if kind == "cli":
            try:
                res["status"] = int(fn(list(args)) or 0)
            except SystemExit as e:
                code = e.code
                res["status"] = code if isinstance(code, int) else (0 if code is None else 1)
        else:
            res["value"] = fn(*args, **kwargs)
            res["status"] = 0
    except BaseException:  # noqa: BLE001 - anything escaping is exactly what we look for
        res["exception"] = traceback.format_exc()
    finally:
        res["seconds"] = time.perf_counter() - t0
        for s in (sys.stdout, sys.stderr):
            try:
                s.flush()
                s.close()
            except Exception:
                pass
        sys.stdout, sys.stderr, sys.stdin = old_streams
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])
    for key, f in (("stdout", out_f), ("stderr", err_f)):
        f.seek(0)
        res[key] = f.read(200_000).decode("utf-8", "replace")
        f.close()
    res["max_rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    # A Board and its Unicorn hooks form a reference cycle that holds ~1.4 GB of address space:
    # collect it now, or a few examples later the next Board fails under RLIMIT_AS.
    gc.collect()
    return res


def _serve(conn) -> None:
    _limit_memory()
    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        if job is None:
            return
        conn.send(_run_one(job))


# ---------------------------------------------------------------- parent side

class Worker:
    """A child process that runs examples one at a time (see the module docstring)."""

    def __init__(self, *, timeout: float = TIMEOUT, cli_target: str = "harness.cli:main") -> None:
        self.timeout = timeout
        self.cli_target = cli_target
        self._ctx = mp.get_context("spawn")
        self._proc = None
        self._conn = None

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _start(self) -> None:
        parent, child = self._ctx.Pipe()
        self._proc = self._ctx.Process(target=_serve, args=(child,), daemon=True)
        self._proc.start()
        child.close()
        self._conn = parent

    def close(self) -> None:
        if self._proc is None:
            return
        try:
            self._conn.send(None)
        except (BrokenPipeError, OSError):
            pass
        self._proc.join(2)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join()
        self._proc = self._conn = None

    def _submit(self, what: str, job: tuple, timeout: float | None) -> Result:
        if self._proc is None or not self._proc.is_alive():
            self._start()
        limit = self.timeout if timeout is None else timeout
        t0 = time.perf_counter()
        self._conn.send(job)
        if not self._conn.poll(limit):
            self._proc.kill()
            self._proc.join()
            self._proc = None
            return Result(what, died=f"timeout after {limit:.0f} s", seconds=time.perf_counter() - t0)
        try:
            res = self._conn.recv()
        except EOFError:
            self._proc.join()
            code = self._proc.exitcode
            self._proc = None
            died = f"signal {-code}" if code is not None and code < 0 else f"exit {code}"
            return Result(what, died=died, seconds=time.perf_counter() - t0)
        return Result(what, **res)

    def cli(self, argv: list[str], *, stdin: str | None = None, timeout: float | None = None) -> Result:
        """`python -m harness ARGV` in the worker."""
        return self._submit(" ".join(argv), ("cli", self.cli_target, tuple(argv), {"_stdin": stdin}), timeout)

    def call(self, target: str, *args, timeout: float | None = None, what: str | None = None, **kwargs) -> Result:
        """`module:function(*args, **kwargs)` in the worker."""
        return self._submit(what or f"{target}{args!r}", ("call", target, args, kwargs), timeout)
