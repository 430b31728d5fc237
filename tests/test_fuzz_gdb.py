"""Fuzz: GDB remote serial protocol packets (issue 13).

Packets generated from the protocol (every packet the stub knows, with ordinary, extreme and
malformed fields) and mutated from valid ones are sent to a stub over a real socket, in a
fuzzkit worker (memory limit, timeout; a crash or hang reported with its input):

- contents: each packet correctly framed; every one gets a reply of the right shape (the
  empty reply, OK, Enn, a stop reply, hex, ...), `k` excepted, which has none;
- framing: a byte stream of frames with good and bad checksums, escapes, run-length marks,
  Ctrl-C bytes, acks, oversized and unterminated frames and noise; afterwards the stub answers a
  sentinel packet.

Either way the stub keeps serving (or has ended the way the protocol says: `k` or `monitor exit`
outside extended mode) and logs no internal error.
"""

from __future__ import annotations

import gc
import os
import re
import socket
import threading
import time
from pathlib import Path

import fuzzkit
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.debugger.core import Debugger
from harness.debugger.gdbconn import checksum, escape, unescape
from harness.debugger.gdbstub import GdbStub

ROOT = Path(__file__).resolve().parents[1]
PROGRAM = str(ROOT / "tests/data/debug/hello.S")
SCENARIO = ("max-vhe-kvm_run-pan1-uao0-hvc", "patch-2017")
SENTINEL = "sentinel-7f3a9c"  # a monitor command no generator produces: its error text marks the end
REPLY_TIMEOUT = 60.0

# ---------------------------------------------------------------- strategies

_hexnum = st.one_of(
    st.integers(0, 0x80).map(lambda v: f"{v:x}"),
    st.sampled_from([0x40080000, 0x4008000C, 0x40080002, 0x4FFFFFFC, 0x50000000, 0x9000000, 0x9000018, 0,
                     (1 << 64) - 4, (1 << 64) - 1, 1 << 64, (1 << 68) - 1]).map(lambda v: f"{v:x}"),
    st.integers(0, (1 << 80)).map(lambda v: f"{v:x}"),
    st.sampled_from(["", "-1", "zz", "0x10", "+5", " 4", "f" * 40, "1_0"]),
)
_hexdata = st.one_of(st.binary(max_size=24).map(bytes.hex), st.sampled_from(["", "4", "zz", "41" * 3000]))
_cmdline = st.one_of(
    st.sampled_from(["pstate", "sysregs", "exceptions", "info registers x0", "break __guest_exit", "break _start",
                     "continue", "stepi", "reverse-stepi", "set *0x09000000=65", "set pstate.el=7",
                     "break 0xffffffffffffffff", "x/4gx 0x10", "inject irq", "run", "help", "quit", "load /"]),
    st.text(max_size=20),
)
_kind = st.sampled_from("0123456")
PACKET = st.one_of(
    st.sampled_from(["?", "g", "s", "c", "bs", "bc", "vCont?", "vCont;c", "vCont;s:1", "vCont;C05", "vCont;t", "vCont;",
                     "vCont;c:-1", "qC", "qfThreadInfo", "qsThreadInfo", "qAttached", "qAttached:1", "qSymbol::",
                     "Hg1", "Hc-1", "Hg0", "T1", "D", "D;1", "!", "vMustReplyEmpty", "qOffsets", "qTStatus",
                     "qSupported:multiprocess+;swbreak+;hwbreak+;qRelocInsn+;fork-events+;vfork-events+;exec-events+",
                     "QStartNoAckMode", "vKill;1", "k", "R00", "i", "X40080000,0:", "qXfer:auxv:read::0,1000",
                     "qXfer:exec-file:read:1:0,fff", "qXfer:threads:read::0,fff", "vFile:open:6a,0,0", "",
                     "vRun;", "vRun;" + b"/nonexistent.S".hex(), "vRun;" + PROGRAM.encode().hex(), "vRun;zz"]),
    st.builds(lambda n: f"p{n}", _hexnum),
    st.builds(lambda n, v: f"P{n}={v}", _hexnum, _hexdata),
    st.builds(lambda v: f"G{v}", _hexdata),
    st.builds(lambda a, n: f"m{a},{n}", _hexnum, _hexnum),
    st.builds(lambda a, n, d: f"M{a},{n}:{d}", _hexnum, _hexnum, _hexdata),
    st.builds(lambda z, k, a, n, c: f"{z}{k},{a},{n}{c}", st.sampled_from("Zz"), _kind, _hexnum, _hexnum,
              st.sampled_from(["", ";X1,0", ";cmds:0,1"])),
    st.builds(lambda c, a: f"{c}{a}", st.sampled_from(["s", "c"]), _hexnum),
    st.builds(lambda o, n: f"qXfer:features:read:target.xml:{o},{n}", _hexnum, _hexnum),
    st.builds(lambda a: f"qXfer:features:read:{a}:0,fff", st.sampled_from(["aarch64-core.xml", "", "../x", "target.xml:"])),
    st.builds(lambda c: "qRcmd," + c.encode().hex(), _cmdline),
    st.builds(lambda c: "qRcmd," + c, _hexdata),
    st.builds(lambda n: "vRun;" + n.encode().hex(), st.text(max_size=16)),
    st.text(max_size=24),
)


@st.composite
def mutated(draw) -> str:
    """A valid packet with a character replaced, inserted or deleted."""
    p = draw(PACKET)
    if not p:
        return p
    i = draw(st.integers(0, len(p) - 1))
    c = draw(st.characters(min_codepoint=0, max_codepoint=255))
    how = draw(st.sampled_from(["replace", "insert", "delete"]))
    return {"replace": p[:i] + c + p[i + 1 :], "insert": p[:i] + c + p[i:], "delete": p[:i] + p[i + 1 :]}[how]


ANY_PACKET = st.one_of(PACKET, mutated())


def frame(body: bytes) -> bytes:
    esc = escape(body)
    return b"$" + esc + b"#" + checksum(esc)


FRAMING_PIECE = st.one_of(
    ANY_PACKET.map(lambda p: frame(p.encode("utf-8"))),
    ANY_PACKET.map(lambda p: b"$" + p.encode("utf-8") + b"#00"),  # bad checksum, unescaped body
    ANY_PACKET.map(lambda p: b"$" + p.encode("utf-8")),  # no '#'
    ANY_PACKET.map(lambda p: b"$" + p.encode("utf-8") + b"#"),  # checksum cut short
    st.sampled_from([b"\x03", b"+", b"-", b"}", b"*", b"#", b"$", b"$#00", b"$}#7d", b"$m0,4*!#00", b"\x03\x03$?#3f",
                     b"$" + b"M" * 0x5000, b"$" + b"g" * 0x4100 + b"#00", b"#ff", b"$$$$"]),
    st.binary(max_size=40),
)


# ---------------------------------------------------------------- worker side

class _Conn:
    """A gdb-side connection: sends frames, collects replies (and O packets) from the stub."""

    def __init__(self, addr: tuple[str, int]) -> None:
        self.sock = socket.create_connection(addr, timeout=REPLY_TIMEOUT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.data = b""
        self.closed = False

    def close(self) -> None:
        self.sock.close()

    def _more(self, until: float) -> bool:
        self.sock.settimeout(max(0.01, until - time.monotonic()))
        try:
            chunk = self.sock.recv(65536)
        except (TimeoutError, ConnectionResetError):
            return False
        if not chunk:
            self.closed = True
            return False
        self.data += chunk
        return True

    def reply(self, timeout: float | None = None) -> tuple[bytes | None, list[bytes]]:
        """The next reply that is not console output (None: the connection closed)."""
        timeout = REPLY_TIMEOUT if timeout is None else timeout
        until = time.monotonic() + timeout
        console = []
        while True:
            m = re.search(rb"\$([^#$]*)#([0-9a-fA-F]{2})", self.data)
            if m:
                self.data = self.data[m.end() :]
                body = m.group(1)
                assert checksum(body) == m.group(2).lower(), f"bad checksum from the stub: {m.group(0)[:60]!r}"
                assert b"*" not in body, f"a run-length mark the stub never sends: {body[:60]!r}"
                body = unescape(body)
                if body.startswith(b"O") and body != b"OK":
                    console.append(body)
                    continue
                return body, console
            if self.closed or not self._more(until):
                if self.closed:
                    return None, console
                raise AssertionError(f"no reply within {timeout:.0f} s (have {self.data[-80:]!r})")


_STOP = re.compile(rb"[TS][0-9a-f]{2}.*|W[0-9a-f]{2}")
_ERR = rb"E[0-9a-f]{2}"
# (packet, the replies it may get): a stop reply, hex, OK, an error, or the empty reply
# (unsupported); a packet that matches none of these forms may get any printable reply
_SHAPES = [
    (r"\?", _STOP.pattern),
    (r"[sc][0-9a-fA-F]*", _STOP.pattern + b"|" + _ERR),
    (r"b[sc]|vCont;.*|vRun;.*", _STOP.pattern + b"|" + _ERR + b"|"),
    (r"g", rb"([0-9a-f]{2})+|" + _ERR),
    (r"[mp].*", rb"([0-9a-f]{2})*|" + _ERR),
    (r"[MGPZz].*", rb"OK|" + _ERR + b"|"),
    (r"qRcmd,.*", rb"OK|" + _ERR),
]


def _check_shape(pkt: str, reply: bytes) -> None:
    assert all(32 <= c < 127 for c in reply), f"{pkt[:40]!r}: a reply with unprintable bytes {reply[:40]!r}"
    for form, shape in _SHAPES:
        if re.fullmatch(form, pkt, re.S):
            assert re.fullmatch(shape, reply), f"{pkt[:40]!r} -> {reply[:60]!r}"
            return


def _serve(target: str, variant: str | None):
    gc.collect()  # the previous example's boards (Unicorn reserves ~1.4 GB of address space each)
    d = Debugger()
    d.load(target, variant)
    log: list[str] = []
    stub = GdbStub(d, log=log.append)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    t = threading.Thread(target=stub.serve, args=(listener,), daemon=True)
    t.start()
    return stub, listener, t, log


def _sentinel(conn: _Conn) -> bool:
    """Ask the sentinel monitor command until it is answered (a NAKed frame is sent again, as
    gdb does); False if the stub closed the connection first."""
    until = time.monotonic() + REPLY_TIMEOUT
    while time.monotonic() < until:
        try:
            # "#00" ends a frame a stream left open (bad checksum: NAKed, resynchronised)
            conn.sock.sendall(b"#00" + frame(b"qRcmd," + SENTINEL.encode().hex().encode()))
        except (BrokenPipeError, ConnectionResetError):
            return False
        resend = time.monotonic() + 10
        while time.monotonic() < resend:
            try:
                reply, console = conn.reply(timeout=max(0.1, resend - time.monotonic()))
            except AssertionError:
                break  # nothing within the wait: send it again
            if reply is None:
                return False
            if any(SENTINEL.encode() in bytes.fromhex(o[1:].decode()) for o in console):
                assert reply == b"OK", reply
                return True
    raise AssertionError(f"the sentinel packet got no answer within {REPLY_TIMEOUT:.0f} s")


def _still_serving(stub: GdbStub, listener, t, log: list[str], conn: _Conn | None) -> None:
    """The property after an example: no internal error; serving, or ended as the protocol says."""
    bugs = [m for m in log if "internal error" in m]
    assert not bugs, bugs[0][:2000]
    if stub.ended_by is None and conn is not None and not conn.closed and _sentinel(conn):
        return
    if stub.ended_by is None:
        until = time.monotonic() + REPLY_TIMEOUT
        while stub.conn is not None and t.is_alive() and time.monotonic() < until:
            time.sleep(0.005)  # the stub is still closing the last connection
        if t.is_alive() and stub.ended_by is None:  # a closed connection (D, k...): a new gdb is served
            c = _Conn(listener.getsockname())
            c.sock.sendall(frame(b"?"))
            reply, _ = c.reply()
            assert reply is not None and _STOP.fullmatch(reply), reply
            c.close()
        else:
            assert stub.ended_by is not None, "the server stopped without a reason"
    else:
        assert stub.ended_by in ("monitor exit", "the program was killed", "gdb detached") or stub.ended_by.startswith(
            "the program ended"), stub.ended_by


def _stop(listener: socket.socket, t: threading.Thread) -> None:
    """End the server thread: a closed listener does not wake a blocked accept(), shutdown does."""
    try:
        listener.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    listener.close()
    t.join(REPLY_TIMEOUT)
    assert not t.is_alive(), "the server thread did not end"


def packet_session(target: str, variant: str | None, packets: list[str]) -> int:
    """Runs in the worker: every well-framed packet gets a reply of the right shape."""
    stub, listener, t, log = _serve(target, variant)
    conn = _Conn(listener.getsockname())
    try:
        noack = False
        for p in packets:
            conn.sock.sendall(frame(p.encode("utf-8")))
            if not noack:
                while not conn.data and conn._more(time.monotonic() + REPLY_TIMEOUT):
                    pass
                assert conn.data[:1] == b"+", f"{p[:40]!r}: no ack, got {conn.data[:20]!r}"
                conn.data = conn.data[1:]
            if p == "k" and stub.extended:
                continue  # k has no reply; in extended mode the connection stays
            reply, _ = conn.reply()
            if reply is None:  # the stub closed the connection: only k (no reply) may
                assert p == "k", f"{p[:40]!r}: connection closed"
                conn.closed = True
                break
            _check_shape(p, reply)
            if p == "QStartNoAckMode" and reply == b"OK":
                noack = True
            if p == "D" or p.startswith("D;") or stub.ended_by is not None:
                conn.closed = True  # detached (or monitor exit): the stub closes this connection
                break
        _still_serving(stub, listener, t, log, conn)
    finally:
        conn.close()
        _stop(listener, t)
    return len(packets)


def stream_session(target: str, variant: str | None, stream: bytes) -> int:
    """Runs in the worker: after any byte stream, the stub answers a sentinel packet."""
    stub, listener, t, log = _serve(target, variant)
    conn = _Conn(listener.getsockname())
    try:
        try:
            conn.sock.sendall(stream)
        except (BrokenPipeError, ConnectionResetError):
            conn.closed = True  # the stub closed it (k, D, monitor exit): checked below
        _still_serving(stub, listener, t, log, conn)
    finally:
        conn.close()
        _stop(listener, t)
    return len(stream)


# ---------------------------------------------------------------- tests

TARGETS = {"program": (PROGRAM, None), "scenario": SCENARIO}


@pytest.fixture(scope="module")
def worker():
    with fuzzkit.Worker(timeout=180) as w:
        yield w


def _settings(n: int):
    # make test: the same examples every run; the slow suite explores new ones each time
    return settings(max_examples=n, deadline=None, database=None, derandomize=os.environ.get("PSTATE_FUZZ_SLOW") != "1",
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                           HealthCheck.data_too_large])


def _contents(w, target: str, packets: list[str]) -> None:
    t = TARGETS[target]
    w.call("test_fuzz_gdb:packet_session", t[0], t[1], packets, what=f"gdbserver {target}: packets {packets!r}").check()


def _framing(w, target: str, pieces: list[bytes]) -> None:
    t = TARGETS[target]
    w.call("test_fuzz_gdb:stream_session", t[0], t[1], b"".join(pieces),
           what=f"gdbserver {target}: stream {b''.join(pieces)[:3000]!r}").check()


PACKETS = st.lists(ANY_PACKET, min_size=1, max_size=10)
STREAM = st.lists(FRAMING_PIECE, min_size=1, max_size=12)


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_gdb_packet_contents(worker, target):
    @_settings(fuzzkit.examples(fast=50, slow=500))
    @given(packets=PACKETS)
    def run(packets):
        _contents(worker, target, packets)

    run()


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_gdb_packet_framing(worker, target):
    @_settings(fuzzkit.examples(fast=50, slow=500))
    @given(pieces=STREAM)
    def run(pieces):
        _framing(worker, target, pieces)

    run()


@pytest.mark.slow
@pytest.mark.parametrize("target", sorted(TARGETS))
def test_gdb_packet_contents_slow(worker, target):
    @_settings(fuzzkit.examples(fast=50, slow=500))
    @given(packets=PACKETS)
    def run(packets):
        _contents(worker, target, packets)

    run()


@pytest.mark.slow
@pytest.mark.parametrize("target", sorted(TARGETS))
def test_gdb_packet_framing_slow(worker, target):
    @_settings(fuzzkit.examples(fast=50, slow=500))
    @given(pieces=STREAM)
    def run(pieces):
        _framing(worker, target, pieces)

    run()


def test_the_property_catches_a_stub_that_stops_answering(worker):
    # a stub that dies on a packet is reported, not passed: `k` in remote mode ends the server
    # legitimately, but a silent connection on `?` would not
    r = worker.call("test_fuzz_gdb:packet_session", PROGRAM, None, ["?", "g", "k"])
    assert r.check().value == 3
    r = worker.call("test_fuzz_gdb:broken_stub_session", PROGRAM)
    assert r.exception and "no reply within" in r.exception


def broken_stub_session(target: str) -> int:
    """A stub that never answers `?`: the session function must report it."""
    global REPLY_TIMEOUT
    saved, REPLY_TIMEOUT = REPLY_TIMEOUT, 1.0
    orig = GdbStub.handle
    GdbStub.handle = lambda self, pkt: (time.sleep(3) or b"T05") if pkt == b"?" else orig(self, pkt)
    try:
        return packet_session(target, None, ["g", "?"])
    finally:
        GdbStub.handle = orig
        REPLY_TIMEOUT = saved
