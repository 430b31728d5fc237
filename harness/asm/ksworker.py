"""Keystone in a child process: keystone 0.9.2 calls abort() on some inputs (facts §7),
which would kill the assembling Python process.  Protocol, one JSON object per line:
  request  {"syms": {name: addr}, "items": [[text, addr], ...]}
  replies  one line per item, streamed: {"hex": "..."} or {"err": "..."}
so a crash names the statement it happened on."""

from __future__ import annotations

import ctypes
import json
import sys

from keystone import KS_ARCH_ARM64, KS_MODE_LITTLE_ENDIAN, Ks, KsError


def _die_with_parent() -> None:
    """keystone can loop forever on some input; should the assembling process die meanwhile (killed
    on a timeout), the kernel ends this worker too instead of leaving it spinning (Linux)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL
    except (OSError, AttributeError):
        pass


def main() -> None:
    _die_with_parent()
    ks = Ks(KS_ARCH_ARM64, KS_MODE_LITTLE_ENDIAN)
    syms: dict[str, int] = {}

    def resolve(name: bytes, value: ctypes.POINTER(ctypes.c_uint64)) -> bool:  # type: ignore[valid-type]
        addr = syms.get(name.decode())
        if addr is None:
            return False
        value[0] = addr
        return True

    ks.sym_resolver = resolve
    out = sys.stdout
    for line in sys.stdin:
        req = json.loads(line)
        syms = req.get("syms", syms)
        for text, addr in req["items"]:
            try:
                enc, _ = ks.asm(text, addr, as_bytes=True)
                out.write(json.dumps({"hex": (enc or b"").hex()}) + "\n")
            except KsError as e:
                out.write(json.dumps({"err": str(e)}) + "\n")
            out.flush()


if __name__ == "__main__":
    main()
