"""A GDB remote serial protocol stub over the debugger core (so gdb-multiarch gets PSTATE,
the system registers and reverse execution).

Registers: the org.gnu.gdb.aarch64.core feature (x0-x30, sp, pc, and a 32-bit cpsr that is
PSTATE: NZCV, PAN, UAO, SS, IL, DAIF, EL, SPSel) plus org.pstate-harness.sysregs with the
system registers the harness models. Breakpoints (Z0/Z1), write watchpoints (Z2, Z4: the
board sees writes, not reads; Z3 is refused), s/c/vCont, bs/bc (reverse), qRcmd (`monitor
pstate|sysregs|exceptions|exit|<any debugger command>`), D, k, Ctrl-C. The program's UART
output reaches gdb's console as O packets while it runs. A malformed or oversized packet gets
an error reply; the server never dies of it.

One program run, as gdbserver: with `target remote`, once the program has ended (PSCI
SYSTEM_OFF/RESET: the W00 reply) or gdb killed it, the server ends when that connection closes.
With `target extended-remote` the server stays: `run` (vRun) starts the program again from
reset, `kill` (vKill, k) ends it, `monitor exit` ends the server.
"""

from __future__ import annotations

import re
import select
import socket
import traceback
from collections.abc import Callable

from rich.text import Text

from harness.arch.pstate import PState
from harness.debugger import render
from harness.debugger.base import checked_pstate
from harness.debugger.core import Debugger, DebuggerError, Stop
from harness.machine.board import BoardError
from harness.trace import events as ev

MAX_PACKET = 0x4000  # what qSupported offers; longer packets are refused
CORE_REGS = [f"x{i}" for i in range(31)] + ["sp", "pc", "cpsr"]
SYSREGS = ("HCR_EL2", "SCTLR_EL2", "SCTLR_EL1", "SPSR_EL2", "ELR_EL2", "ESR_EL2", "FAR_EL2", "VBAR_EL2",
           "SPSR_EL1", "ELR_EL1", "ESR_EL1", "FAR_EL1", "VBAR_EL1", "TCR_EL2", "TTBR0_EL2", "TTBR1_EL2",
           "TCR_EL1", "TTBR0_EL1", "TTBR1_EL1", "VTTBR_EL2", "SP_EL0", "SP_EL1", "SP_EL2", "TPIDR_EL2")
SIGTRAP, SIGINT = 5, 2
MASK64 = (1 << 64) - 1
O_CHUNK = 1024  # program output bytes per O packet


def target_xml() -> str:
    core = "".join(f'<reg name="{r}" bitsize="64" type="{"code_ptr" if r == "pc" else "data_ptr" if r == "sp" else "int"}"/>'
                   for r in CORE_REGS[:-1])
    flags = ('<flags id="cpsr_flags" size="4"><field name="SP" start="0" end="0"/><field name="EL" start="2" end="3"/>'
             '<field name="F" start="6" end="6"/><field name="I" start="7" end="7"/><field name="A" start="8" end="8"/>'
             '<field name="D" start="9" end="9"/><field name="IL" start="20" end="20"/><field name="SS" start="21" end="21"/>'
             '<field name="PAN" start="22" end="22"/><field name="UAO" start="23" end="23"/>'
             '<field name="V" start="28" end="28"/><field name="C" start="29" end="29"/>'
             '<field name="Z" start="30" end="30"/><field name="N" start="31" end="31"/></flags>')
    sysregs = "".join(f'<reg name="{n.lower()}" bitsize="64" type="uint64" group="system"/>' for n in SYSREGS)
    return ('<?xml version="1.0"?><!DOCTYPE target SYSTEM "gdb-target.dtd"><target version="1.0">'
            "<architecture>aarch64</architecture>"
            f'<feature name="org.gnu.gdb.aarch64.core">{flags}{core}<reg name="cpsr" bitsize="32" type="cpsr_flags"/></feature>'
            f'<feature name="org.pstate-harness.sysregs">{sysregs}</feature></target>')


def checksum(data: bytes) -> bytes:
    return b"%02x" % (sum(data) & 0xFF)


class GdbStub:
    """One debugger session served to one gdb connection at a time."""

    def __init__(self, dbg: Debugger, log: Callable[[str], None] | None = None) -> None:
        self.dbg = dbg
        self.log = log or (lambda _m: None)
        self.sock: socket.socket | None = None
        self.ack = True
        self.buf = b""
        self.xml = target_xml().encode()
        self.extended = False  # gdb said `!` (target extended-remote) on this connection
        self.killed = False  # gdb killed the program (k, vKill); `run` starts it again
        self.ended_by: str | None = None  # why the server ends after this connection
        self._noack_next = False
        self._gdb_bps: set[int] = set()
        dbg.output = self._program_output

    @property
    def alive(self) -> bool:
        """A program to debug: loaded, not powered off, not killed."""
        b = self.dbg.board
        return b is not None and b.off is None and not self.killed

    # ------------------------------------------------------------------ transport

    def serve(self, listener: socket.socket) -> None:
        """Serve connections until the program run is over (see the module docstring), or
        the listener is closed."""
        while self.ended_by is None:
            try:
                conn, addr = listener.accept()
            except OSError:
                return  # the listener was closed
            self.log(f"gdb connected from {addr[0]}:{addr[1]}")
            # no Nagle: the ack and the reply are two small writes, and gdb waits for both
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.sock, self.ack, self.buf, self.extended = conn, True, b"", False
            try:
                self._session()
            finally:
                if self.ended_by is None and not self.extended and not self.alive:
                    b = self.dbg.board
                    self.ended_by = f"the program ended ({b.off})" if b is not None and b.off else "the program was killed"
                conn.close()
                self.sock = None
                self.log("gdb disconnected")

    def _session(self) -> None:
        while self.ended_by is None:
            pkt = self._read_packet()
            if pkt is None:
                return
            reply = self.handle(pkt)
            if reply is None:
                return  # `k` outside extended mode: the connection closes (no reply)
            if pkt != b"k":
                self._send(reply)
            if self._noack_next:
                self.ack, self._noack_next = False, False
            if pkt == b"D" or pkt.startswith(b"D;"):
                return

    def _recv(self) -> bytes:
        if self.sock is None:
            return b""
        try:
            data = self.sock.recv(65536)
        except OSError:
            return b""
        return data

    def _read_packet(self) -> bytes | None:
        while True:
            # drop acks and noise before '$'; a bare Ctrl-C between packets is ignored
            start = self.buf.find(b"$")
            if start < 0:
                self.buf = b""
            else:
                self.buf = self.buf[start:]
                end = self.buf.find(b"#")
                if end >= 0 and len(self.buf) >= end + 3:
                    body, cs = self.buf[1:end], self.buf[end + 1 : end + 3]
                    self.buf = self.buf[end + 3 :]
                    if self.ack:
                        ok = cs.lower() == checksum(body)
                        self._raw(b"+" if ok else b"-")
                        if not ok:
                            continue
                    return _unescape(body)
                if len(self.buf) > MAX_PACKET + 16:
                    # oversized: refuse it and resynchronise on the next packet
                    self.buf = b""
                    if self.ack:
                        self._raw(b"+")
                    self._send(b"E01")
                    continue
            data = self._recv()
            if not data:
                return None
            self.buf += data

    def _raw(self, data: bytes) -> None:
        if self.sock is None:
            return  # packets handled without a connection (tests, fuzzing)
        try:
            self.sock.sendall(data)
        except OSError:
            pass

    def _send(self, body: bytes) -> None:
        out = b"$" + _escape(body) + b"#" + checksum(_escape(body))
        self._raw(out)

    def _console(self, text: str) -> None:
        """gdb prints O packets on its console (used to say why a stop happened)."""
        self._program_output(text.encode())

    def _program_output(self, data: bytes) -> None:
        """Console output (the program's UART bytes, stop reasons) as O packets; gdb accepts
        them while the target runs and before a qRcmd's final reply."""
        for k in range(0, len(data), O_CHUNK):
            self._send(b"O" + data[k : k + O_CHUNK].hex().encode())

    def _interrupted(self) -> bool:
        if self.sock is None:
            return False
        r, _, _ = select.select([self.sock], [], [], 0)
        if not r:
            return False
        data = self._recv()
        if b"\x03" in data:
            self.buf += data.replace(b"\x03", b"")
            return True
        self.buf += data
        return False

    # ------------------------------------------------------------------ packets

    def handle(self, pkt: bytes) -> bytes | None:
        """The reply to one packet (None: close the connection)."""
        try:
            return self._dispatch(pkt.decode("latin-1"))
        except (ValueError, IndexError, KeyError, DebuggerError, BoardError) as e:
            self.log(f"bad packet {pkt[:40]!r}: {e}")
            return b"E02"
        except Exception as e:  # a bug: say so, answer, keep serving
            self.log(f"internal error on packet {pkt[:40]!r}: {type(e).__name__}: {e}\n{traceback.format_exc()}")
            return b"E03"

    def _dispatch(self, p: str) -> bytes | None:
        if p.startswith("qSupported"):
            return (f"PacketSize={MAX_PACKET:x};qXfer:features:read+;swbreak+;hwbreak+;ReverseStep+;"
                    "ReverseContinue+;QStartNoAckMode+;vContSupported+").encode()
        if p == "QStartNoAckMode":
            self._noack_next = True  # after this OK is sent (and acked)
            return b"OK"
        if p.startswith("qXfer:features:read:"):
            annex, _, span = p[len("qXfer:features:read:"):].rpartition(":")
            if annex != "target.xml":
                return b"E00"  # the annex is invalid
            off, length = (_hex(x) for x in span.split(","))
            chunk = self.xml[off : off + length]
            return (b"l" if off + length >= len(self.xml) else b"m") + chunk
        if p.startswith("qXfer:"):
            return b""  # an object this stub does not offer (qSupported names the ones it does)
        if p == "!":
            self.extended = True
            return b"OK"
        if p == "?":
            return b"T05thread:1;" if self.alive else b"W00"
        if p == "qC":
            return b"QC1" if self.alive else b"E01"
        if p == "qfThreadInfo":
            return b"m1" if self.alive else b"l"
        if p == "qsThreadInfo":
            return b"l"
        if p.startswith("qAttached"):
            return b"1"
        if p.startswith("H") or p.startswith("T") or p == "qSymbol::":
            return b"OK"
        if p.startswith("vRun;"):
            return self._run(p)
        if p == "k" or p.startswith("vKill"):
            self.killed = True
            self.log("gdb killed the program")
            if p == "k":
                return b"" if self.extended else None  # k has no reply
            return b"OK"
        if p.startswith("qRcmd,"):
            return self._monitor(bytes.fromhex(p[6:]).decode())
        if p == "D" or p.startswith("D;"):
            return b"OK"
        if p == "vCont?":
            return b"vCont;c;C;s;S"
        if p.startswith("v"):
            if not p.startswith("vCont;"):
                return b""  # vMustReplyEmpty, vFile, ...: not supported
        elif not p or p[0] not in "gGpPmMzZscb":
            return b""  # unsupported: the empty reply
        if not self.alive:
            return b"E01"  # no process: `run` (extended-remote) starts one
        return self._target_packet(p)

    def _target_packet(self, p: str) -> bytes:
        """Packets that need a running program."""
        d = self.dbg
        b = d.board
        assert b is not None
        if p == "g":
            return self._all_regs().encode()
        if p.startswith("G"):
            data = bytes.fromhex(p[1:])
            off = 0
            for i, _name in enumerate(self._reg_names()):
                size = 4 if i == 33 else 8
                if off + size > len(data):
                    break
                self._set_reg(i, int.from_bytes(data[off : off + size], "little"))
                off += size
            return b"OK"
        if p.startswith("p"):
            return self._reg_hex(_hex(p[1:])).encode()
        if p.startswith("P"):
            n_text, v = p[1:].split("=")
            n = _hex(n_text)
            size = 4 if n == 33 else 8
            self._set_reg(n, int.from_bytes(bytes.fromhex(v)[:size], "little"))
            return b"OK"
        if p.startswith("m"):
            addr, length = (_hex(x) for x in p[1:].split(","))
            if length > MAX_PACKET // 2:
                return b"E01"
            try:
                return b.read_mem(addr, length).hex().encode()
            except BoardError:
                return b"E14"  # EFAULT, as gdbserver answers
        if p.startswith("M"):
            head, data = p[1:].split(":")
            addr, length = (_hex(x) for x in head.split(","))
            raw = bytes.fromhex(data)
            if len(raw) != length:
                return b"E01"
            try:
                b.write_mem(addr, raw)  # a store to the UART is output (sent with the next stop)
            except BoardError:
                return b"E14"
            d.new_history()
            return b"OK"
        if p[:2] in ("Z0", "Z1", "z0", "z1", "Z2", "z2", "Z3", "z3", "Z4", "z4"):
            return self._point(p)
        if p.startswith("vCont;"):
            action = p[6:].split(";")[0].split(":")[0]
            if not action or action[0] not in "cCsS":
                return b"E02"
            return self._resume("s" if action[0] in "sS" else "c")
        if p[0] in "sc":
            if len(p) > 1:
                b.pc = _addr(p[1:])
            return self._resume(p[0])
        if p == "bs":
            return self._stop_reply(d.reverse_stepi(1))
        if p == "bc":
            return self._stop_reply(d.reverse_continue())
        return b""

    def _run(self, p: str) -> bytes:
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
        self.killed = False
        self._gdb_bps.clear()  # gdb inserts its breakpoints again
        self.log(f"started {d.target}")
        return b"T05thread:1;"

    def _monitor(self, cmd: str) -> bytes:
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

    # ------------------------------------------------------------------ execution

    def _resume(self, how: str) -> bytes:
        d = self.dbg
        d.interrupt = self._interrupted
        try:
            st = d.stepi(1) if how == "s" else d.cont()
        finally:
            d.interrupt = lambda: False
        return self._stop_reply(st)

    def _stop_reply(self, st: Stop) -> bytes:
        d = self.dbg
        assert d.board is not None
        lines = [Text.from_markup(render.exception(d.board, e)).plain for e in st.exceptions[-3:]]
        if st.message:
            lines.append(st.message)
        if lines:
            self._console("\n".join(lines) + "\n")
        if st.reason in ("poweroff", "reset"):
            return b"W00"  # the process exited with status 0
        if st.reason == "history-start":
            return b"T05replaylog:begin;thread:1;"
        if st.reason == "interrupt":
            return b"T02thread:1;"
        extra = ""
        if st.reason == "breakpoint" and d.board is not None and d.board.pc in self._gdb_bps:
            # only for gdb's own breakpoints: gdb resumes after a swbreak stop it did not ask for
            extra = "swbreak:;"
        elif st.hit is not None and isinstance(st.hit.event, ev.MemoryWrite):
            extra = f"watch:{st.hit.event.addr:x};"
        return f"T05{extra}thread:1;".encode()

    def _point(self, p: str) -> bytes:
        """Ztype,addr,kind[;cond...] and ztype,addr,kind."""
        d = self.dbg
        kind = p[1]
        fields = p[3:].split(";")[0].split(",")
        if p[2:3] != "," or len(fields) != 2:
            raise ValueError("breakpoint packets are Ztype,addr,kind")
        addr, length = _addr(fields[0]), _hex(fields[1])
        insert = p[0] == "Z"
        if kind in "01":
            if insert:
                d.add_breakpoint(hex(addr))  # the board checks the address
                self._gdb_bps.add(addr)
            else:
                self._gdb_bps.discard(addr)
                d.delete_at(addr, "break")
            return b"OK"
        if kind == "3":
            return b""  # read watchpoints: the board hooks writes only
        if insert:
            d.add_watch(f"*{addr:#x} {length}")
        else:
            d.delete_at(addr, "mem")
        return b"OK"

    # ------------------------------------------------------------------ registers

    def _reg_names(self) -> list[str]:
        return CORE_REGS + [n.lower() for n in SYSREGS]

    def _reg_value(self, n: int) -> tuple[int, int]:
        b = self.dbg.board
        assert b is not None
        if n < 31:
            return b.reg(n), 8
        if n == 31:
            return b.sp, 8
        if n == 32:
            return b.pc, 8
        if n == 33:
            return b.pstate().to_bits() & 0xFFFFFFFF, 4
        name = SYSREGS[n - 34]
        try:
            return b.read_sysreg(name), 8
        except Exception:
            return 0, 8

    def _reg_hex(self, n: int) -> str:
        if not 0 <= n < 34 + len(SYSREGS):
            raise ValueError(f"no register {n}")
        v, size = self._reg_value(n)
        return v.to_bytes(size, "little").hex()

    def _all_regs(self) -> str:
        return "".join(self._reg_hex(n) for n in range(34 + len(SYSREGS)))

    def _set_reg(self, n: int, v: int) -> None:
        b = self.dbg.board
        assert b is not None
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


def _unescape(body: bytes) -> bytes:
    out = bytearray()
    it = iter(body)
    for c in it:
        if c == 0x7D:
            out.append(next(it, 0) ^ 0x20)
        else:
            out.append(c)
    return bytes(out)


def _escape(body: bytes) -> bytes:
    out = bytearray()
    for c in body:
        if c in b"#$}*":
            out += bytes([0x7D, c ^ 0x20])
        else:
            out.append(c)
    return bytes(out)
