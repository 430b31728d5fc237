"""A GDB remote serial protocol stub over the debugger core (so gdb-multiarch gets PSTATE,
the system registers and reverse execution).

Registers: the org.gnu.gdb.aarch64.core feature (x0-x30, sp, pc, and a 32-bit cpsr that is
PSTATE: every field of harness.arch.regs.PSTATE) plus org.pstate-harness.sysregs with the
system registers the harness models. Breakpoints (Z0/Z1), write watchpoints (Z2, Z4: the
board sees writes, not reads; Z3 is refused), s/c/vCont, bs/bc (reverse), qRcmd (`monitor
pstate|sysregs|exceptions|exit|<any debugger command>`), D, k, Ctrl-C. The program's UART
output reaches gdb's console as O packets while it runs. A malformed or oversized packet gets
an error reply; the server never dies of it.

One program run, as gdbserver: with `target remote`, the server ends when gdb detaches (D:
`detach`, `quit`, the end of `gdb -batch`), kills the program (k), or when the connection
closes after the program has ended (PSCI SYSTEM_OFF/RESET: the W00 reply). A connection lost
without any of these (gdb itself killed) leaves the program as it is for the next gdb, as
gdbserver reopens its connection. With `target extended-remote` the server stays: `run` (vRun)
starts the program again from reset, `kill` (vKill, k) ends it, `monitor exit` ends the server.

Structure: each packet has a handler method registered with `@packet(NAME, prefix=, live=)` (a
`live` one needs a program); framing, acks and Ctrl-C are the transport's (gdbconn.py).
"""

from __future__ import annotations

import re
import socket
import traceback
from collections.abc import Callable
from dataclasses import dataclass

from rich.text import Text

from harness.arch.pstate import PState
from harness.arch.regs import PSTATE
from harness.debugger import render
from harness.debugger.base import MASK64, checked_pstate
from harness.debugger.core import Debugger, DebuggerError, Stop
from harness.debugger.gdbconn import MAX_PACKET, GdbConnection
from harness.machine.board import Board, BoardError
from harness.trace import events as ev
from harness.trace.events import PROGRAM_ENDED, StopReason

CORE_REGS = [f"x{i}" for i in range(31)] + ["sp", "pc", "cpsr"]
SYSREGS = ("HCR_EL2", "SCTLR_EL2", "SCTLR_EL1", "SPSR_EL2", "ELR_EL2", "ESR_EL2", "FAR_EL2", "VBAR_EL2",
           "SPSR_EL1", "ELR_EL1", "ESR_EL1", "FAR_EL1", "VBAR_EL1", "TCR_EL2", "TTBR0_EL2", "TTBR1_EL2",
           "TCR_EL1", "TTBR0_EL1", "TTBR1_EL1", "VTTBR_EL2", "SP_EL0", "SP_EL1", "SP_EL2", "TPIDR_EL2")
O_CHUNK = 1024  # program output bytes per O packet


def target_xml() -> str:
    core = "".join(f'<reg name="{r}" bitsize="64" type="{"code_ptr" if r == "pc" else "data_ptr" if r == "sp" else "int"}"/>'
                   for r in CORE_REGS[:-1])
    # every field of regs.PSTATE, by bit, named as gdb's own aarch64 cpsr flags name them
    flags = ('<flags id="cpsr_flags" size="4">'
             + "".join(f'<field name="{f.name}" start="{f.lsb}" end="{f.msb}"/>' for f in sorted(PSTATE, key=lambda f: f.lsb))
             + "</flags>")
    sysregs = "".join(f'<reg name="{n.lower()}" bitsize="64" type="uint64" group="system"/>' for n in SYSREGS)
    return ('<?xml version="1.0"?><!DOCTYPE target SYSTEM "gdb-target.dtd"><target version="1.0">'
            "<architecture>aarch64</architecture>"
            f'<feature name="org.gnu.gdb.aarch64.core">{flags}{core}<reg name="cpsr" bitsize="32" type="cpsr_flags"/></feature>'
            f'<feature name="org.pstate-harness.sysregs">{sysregs}</feature></target>')


Reply = bytes | None  # None: close the connection without a reply


@dataclass(frozen=True)
class Handler:
    fn: Callable[[GdbStub, str], Reply]
    live: bool  # needs a program to debug: E01 without one (`run` in extended-remote starts one)


_EXACT: dict[str, Handler] = {}
_PREFIX: list[tuple[str, Handler]] = []  # longest prefix first
_UNKNOWN = Handler(lambda _stub, _p: b"", live=False)  # the empty reply: not supported
_UNKNOWN_LIVE = Handler(lambda _stub, _p: b"", live=True)
_LIVE_LETTERS = "gGpPmMzZscb"  # unknown packets of these kinds are about the program


def packet(*names: str, prefix: bool = False, live: bool = False) -> Callable:
    """Register the decorated method as the handler of packets named (or, with prefix,
    starting with) each of names."""

    def register(fn: Callable[[GdbStub, str], Reply]) -> Callable[[GdbStub, str], Reply]:
        for name in names:
            if prefix:
                _PREFIX.append((name, Handler(fn, live)))
                _PREFIX.sort(key=lambda kv: -len(kv[0]))
            else:
                _EXACT[name] = Handler(fn, live)
        return fn

    return register


def handler_for(p: str) -> Handler:
    h = _EXACT.get(p) or next((h for name, h in _PREFIX if p.startswith(name)), None)
    if h is not None:
        return h
    return _UNKNOWN_LIVE if p and p[0] in _LIVE_LETTERS else _UNKNOWN


class GdbStub:
    """One debugger session served to one gdb connection at a time: a table of packet handlers
    (`@packet`) over a GdbConnection."""

    def __init__(self, dbg: Debugger, log: Callable[[str], None] | None = None) -> None:
        self.dbg = dbg
        self.log = log or (lambda _m: None)
        self.conn: GdbConnection | None = None  # the gdb being served
        self.xml = target_xml().encode()
        self.extended = False  # gdb said `!` (target extended-remote) on this connection
        self.killed = False  # gdb killed the program (k, vKill); `run` starts it again
        self.ended_by: str | None = None  # why the server ends after this connection
        self._noack_next = False
        dbg.output = self._program_output

    @property
    def alive(self) -> bool:
        """A program to debug: loaded, not powered off, not killed."""
        b = self.dbg.board
        return b is not None and b.off is None and not self.killed

    # ------------------------------------------------------------------ connections

    def serve(self, listener: socket.socket) -> None:
        """Serve connections until the program run is over (see the module docstring), or
        the listener is closed."""
        while self.ended_by is None:
            try:
                sock, addr = listener.accept()
            except OSError:
                return  # the listener was closed
            self.log(f"gdb connected from {addr[0]}:{addr[1]}")
            # no Nagle: the ack and the reply are two small writes, and gdb waits for both
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = self.conn = GdbConnection(sock)
            self.extended = False
            try:
                self._session(conn)
            finally:
                if self.ended_by is None and not self.extended and not self.alive:
                    b = self.dbg.board
                    self.ended_by = f"the program ended ({b.off})" if b is not None and b.off else "the program was killed"
                conn.close()
                self.conn = None
                self.log("gdb disconnected" if self.ended_by or self.extended
                         else "gdb disconnected without detaching: waiting for it to connect again")

    def _session(self, conn: GdbConnection) -> None:
        while self.ended_by is None:
            pkt = conn.read_packet()
            if pkt is None:
                return
            reply = self.handle(pkt)
            if reply is None:
                return  # `k` outside extended mode: the connection closes (no reply)
            if pkt != b"k":
                conn.send(reply)
            if self._noack_next:
                conn.ack, self._noack_next = False, False
            if pkt == b"D" or pkt.startswith(b"D;"):
                return

    def _console(self, text: str) -> None:
        """gdb prints O packets on its console (used to say why a stop happened)."""
        self._program_output(text.encode())

    def _program_output(self, data: bytes) -> None:
        """Console output (the program's UART bytes, stop reasons) as O packets; gdb accepts
        them while the target runs and before a qRcmd's final reply."""
        if self.conn is None:
            return  # packets handled without a connection (tests, fuzzing)
        for k in range(0, len(data), O_CHUNK):
            self.conn.send(b"O" + data[k : k + O_CHUNK].hex().encode())

    def _interrupted(self) -> bool:
        return self.conn is not None and self.conn.interrupted()

    # ------------------------------------------------------------------ packets

    def handle(self, pkt: bytes) -> Reply:
        """The reply to one packet (None: close the connection)."""
        p = pkt.decode("latin-1")
        try:
            h = handler_for(p)
            if h.live and not self.alive:
                return b"E01"  # no process: `run` (extended-remote) starts one
            return h.fn(self, p)
        except (ValueError, IndexError, KeyError, DebuggerError, BoardError) as e:
            self.log(f"bad packet {pkt[:40]!r}: {e}")
            return b"E02"
        except Exception as e:  # a bug: say so, answer, keep serving
            self.log(f"internal error on packet {pkt[:40]!r}: {type(e).__name__}: {e}\n{traceback.format_exc()}")
            return b"E03"

    @packet("qSupported", prefix=True)
    def _supported(self, p: str) -> Reply:
        return (f"PacketSize={MAX_PACKET:x};qXfer:features:read+;swbreak+;hwbreak+;ReverseStep+;"
                "ReverseContinue+;QStartNoAckMode+;vContSupported+").encode()

    @packet("QStartNoAckMode")
    def _no_ack(self, p: str) -> Reply:
        self._noack_next = True  # after this OK is sent (and acked)
        return b"OK"

    @packet("qXfer:features:read:", prefix=True)
    def _features(self, p: str) -> Reply:
        annex, _, span = p[len("qXfer:features:read:"):].rpartition(":")
        if annex != "target.xml":
            return b"E00"  # the annex is invalid
        off, length = (_hex(x) for x in span.split(","))
        chunk = self.xml[off : off + length]
        return (b"l" if off + length >= len(self.xml) else b"m") + chunk

    @packet("!")
    def _extended_mode(self, p: str) -> Reply:
        self.extended = True
        return b"OK"

    @packet("?")
    def _status(self, p: str) -> Reply:
        return b"T05thread:1;" if self.alive else b"W00"

    @packet("qC")
    def _current_thread(self, p: str) -> Reply:
        return b"QC1" if self.alive else b"E01"

    @packet("qfThreadInfo")
    def _threads(self, p: str) -> Reply:
        return b"m1" if self.alive else b"l"

    @packet("vRun;", prefix=True)
    def _run(self, p: str) -> Reply:
        """vRun;PROGRAM[;ARG]...: start the program again from reset (an empty name: the one
        loaded), or the program or scenario gdb names."""
        args = [bytes.fromhex(a).decode() for a in p[5:].split(";")]
        d = self.dbg
        try:
            if args[0]:
                d.load(args[0])
            else:
                d.restart()
        except DebuggerError as e:
            self.log(f"run: {e}")
            self._console(f"run: {e}\n")
            return b"E01"
        self.killed = False  # (the reload dropped gdb's breakpoints: gdb inserts them again)
        self.log(f"started {d.target}")
        return b"T05thread:1;"

    @packet("k")
    @packet("vKill", prefix=True)
    def _kill(self, p: str) -> Reply:
        self.killed = True
        self.log("gdb killed the program")
        if p == "k":
            return b"" if self.extended else None  # k has no reply
        return b"OK"

    @packet("D")
    @packet("D;", prefix=True)
    def _detach(self, p: str) -> Reply:
        """gdb detaches (`detach`, or `quit` and the end of `gdb -batch`, since qAttached says
        the program was there before gdb). With `target remote` that ends the server, as
        gdbserver exits; the program is not run on, as there is no one to see it."""
        if not self.extended:
            self.ended_by = "gdb detached"
        return b"OK"

    @packet("qRcmd,", prefix=True)
    def _monitor(self, p: str) -> Reply:
        cmd = bytes.fromhex(p[6:]).decode()
        if cmd.strip() in ("exit", "quit"):
            self.ended_by = "monitor exit"
            self._console("gdbserver exits\n")
            return b"OK"
        alias = {"pstate": "info pstate", "sysregs": "info sysregs", "exceptions": "info exceptions"}
        words = cmd.split(None, 1)
        if words and words[0] in alias:
            cmd = alias[words[0]] + (" " + words[1] if len(words) > 1 else "")
        try:
            out = Text.from_markup(self.dbg.execute(cmd)).plain
        except DebuggerError as e:
            out = f"error: {e}"
        self._console(out + "\n")
        return b"OK"

    # ------------------------------------------------------------------ the program's state

    @packet("g", live=True)
    def _read_registers(self, p: str) -> Reply:
        return "".join(self._reg_hex(n) for n in range(34 + len(SYSREGS))).encode()

    @packet("G", prefix=True, live=True)
    def _write_registers(self, p: str) -> Reply:
        data = bytes.fromhex(p[1:])
        off = 0
        for n in range(34 + len(SYSREGS)):
            size = 4 if n == 33 else 8
            if off + size > len(data):
                break
            self._set_reg(n, int.from_bytes(data[off : off + size], "little"))
            off += size
        return b"OK"

    @packet("p", prefix=True, live=True)
    def _read_register(self, p: str) -> Reply:
        return self._reg_hex(_hex(p[1:])).encode()

    @packet("P", prefix=True, live=True)
    def _write_register(self, p: str) -> Reply:
        n_text, v = p[1:].split("=")
        n = _hex(n_text)
        self._set_reg(n, int.from_bytes(bytes.fromhex(v)[: 4 if n == 33 else 8], "little"))
        return b"OK"

    @packet("m", prefix=True, live=True)
    def _read_memory(self, p: str) -> Reply:
        addr, length = (_hex(x) for x in p[1:].split(","))
        if length > MAX_PACKET // 2:
            return b"E01"
        try:
            return self._board.read_mem(addr, length).hex().encode()
        except BoardError:
            return b"E14"  # EFAULT, as gdbserver answers

    @packet("M", prefix=True, live=True)
    def _write_memory(self, p: str) -> Reply:
        head, data = p[1:].split(":")
        addr, length = (_hex(x) for x in head.split(","))
        raw = bytes.fromhex(data)
        if len(raw) != length:
            return b"E01"
        try:
            self._board.write_mem(addr, raw)  # a store to the UART is output (sent with the next stop)
        except BoardError:
            return b"E14"
        self.dbg.new_history()
        return b"OK"

    @packet("Z", "z", prefix=True, live=True)
    def _point(self, p: str) -> Reply:
        """Ztype,addr,kind[;cond...] and ztype,addr,kind: breakpoints (0, 1), write watchpoints
        (2, and 4 as 2: the board sees writes, not reads; 3 is refused)."""
        kind = p[1:2]
        if not kind or kind not in "01234":
            return b""
        fields = p[3:].split(";")[0].split(",")
        if p[2:3] != "," or len(fields) != 2:
            raise ValueError("breakpoint packets are Ztype,addr,kind")
        addr, length = _addr(fields[0]), _hex(fields[1])
        if kind == "3":
            return b""  # read watchpoints: the board hooks writes only
        what = "break" if kind in "01" else "mem"
        if p[0] == "Z":
            self.dbg.gdb_insert(addr, what, length)  # the board checks the address and length
        else:
            self.dbg.gdb_remove(addr, what)
        return b"OK"

    # ------------------------------------------------------------------ execution

    @packet("vCont;", prefix=True, live=True)
    def _vcont(self, p: str) -> Reply:
        action = p[6:].split(";")[0].split(":")[0]
        if not action or action[0] not in "cCsS":
            return b"E02"
        return self._resume("s" if action[0] in "sS" else "c")

    @packet("s", "c", prefix=True, live=True)
    def _step_or_continue(self, p: str) -> Reply:
        if len(p) > 1:
            self._board.pc = _addr(p[1:])
        return self._resume(p[0])

    @packet("bs", live=True)
    def _reverse_step(self, p: str) -> Reply:
        return self._stop_reply(self.dbg.reverse_stepi(1))

    @packet("bc", live=True)
    def _reverse_continue(self, p: str) -> Reply:
        return self._stop_reply(self.dbg.reverse_continue())

    def _resume(self, how: str) -> bytes:
        d = self.dbg
        d.interrupt = self._interrupted
        try:
            st = d.stepi(1) if how == "s" else d.cont()
        finally:
            d.interrupt = lambda: False
        return self._stop_reply(st)

    def _stop_reply(self, st: Stop) -> bytes:
        b = self._board
        lines = [Text.from_markup(render.exception(b, e)).plain for e in st.exceptions[-3:]]
        why = self._stop_why(st)
        if why:
            lines.append(why)
        if lines:
            self._console("\n".join(lines) + "\n")
        if st.reason in PROGRAM_ENDED:
            return b"W00"  # the process exited with status 0
        if st.reason == StopReason.HISTORY_START:
            return b"T05replaylog:begin;thread:1;"
        if st.reason == StopReason.INTERRUPT:
            return b"T02thread:1;"
        extra = ""
        if st.reason == StopReason.BREAKPOINT and any(not bp.num for bp in st.breakpoints):
            # only for gdb's own breakpoints: gdb resumes after a swbreak stop it did not ask for
            extra = "swbreak:;"
        elif st.hit is not None and isinstance(st.hit.event, ev.MemoryWrite):
            extra = f"watch:{st.hit.event.addr:x};"
        return f"T05{extra}thread:1;".encode()

    @staticmethod
    def _stop_why(st: Stop) -> str:
        """Why the program stopped, for gdb's console. gdb reports a stop at its own breakpoints
        and watchpoints itself, under its own numbers: those are not echoed. The debugger's own
        points (`monitor break`, `monitor watch`) are named as `monitor` ones, where they are."""
        if st.reason == StopReason.BREAKPOINT:
            return ", ".join(f"monitor {bp.title} at {bp.where}" for bp in st.breakpoints if bp.num)
        if st.hit is not None:
            return "" if not st.hit.watch.num else f"monitor {st.message}"
        return st.message

    # ------------------------------------------------------------------ registers

    @property
    def _board(self) -> Board:
        """The board of a packet that needs a program (`live`)."""
        assert self.dbg.board is not None
        return self.dbg.board

    def _reg_hex(self, n: int) -> str:
        """Register n of the target description as gdb reads it (cpsr 4 bytes, the rest 8)."""
        if not 0 <= n < 34 + len(SYSREGS):
            raise ValueError(f"no register {n}")
        b = self._board
        if n == 33:
            return (b.pstate().to_bits() & 0xFFFFFFFF).to_bytes(4, "little").hex()
        if n < 33:
            v = b.reg(n) if n < 31 else b.sp if n == 31 else b.pc
        else:
            try:
                v = b.read_sysreg(SYSREGS[n - 34])
            except Exception:
                v = 0
        return v.to_bytes(8, "little").hex()

    def _set_reg(self, n: int, v: int) -> None:
        b = self._board
        if n < 0:
            raise ValueError(f"no register {n}")
        if n < 31:
            b.set_reg(n, v)
        elif n == 31:
            b.sp = v
        elif n == 32:
            b.pc = v
        elif n == 33:
            b.set_pstate(checked_pstate(PState.from_bits(v)))
        elif 34 <= n < 34 + len(SYSREGS):
            b.write_sysreg(SYSREGS[n - 34], v)
        else:
            raise ValueError(f"no register {n}")
        self.dbg.new_history()


# constant replies
for _name, _reply in {"qsThreadInfo": b"l", "qSymbol::": b"OK", "vCont?": b"vCont;c;C;s;S"}.items():
    packet(_name)(lambda _stub, _p, r=_reply: r)
for _name, _reply in {"qAttached": b"1", "H": b"OK", "T": b"OK"}.items():
    packet(_name, prefix=True)(lambda _stub, _p, r=_reply: r)


def _hex(text: str) -> int:
    """A hex field of a packet (digits only, as the protocol writes them)."""
    if not re.fullmatch(r"[0-9a-fA-F]{1,32}", text):
        raise ValueError(f"not a hex number: {text[:24]!r}")
    return int(text, 16)


def _addr(text: str) -> int:
    v = _hex(text)
    if v > MASK64:
        raise ValueError(f"{text} is not a 64-bit address")
    return v
