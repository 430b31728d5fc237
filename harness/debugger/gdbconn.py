"""The GDB remote serial protocol's transport over one TCP connection (as Qiling's GdbSerialConn):
`$body#xx` framing, checksums, `}` escapes, acknowledgements while ack mode is on, and Ctrl-C
(0x03) noticed while the target runs. What the packets mean is the stub's (gdbstub.py).

Noise and acks before a `$` are dropped; a frame with a bad checksum is NAKed (`-`) and gdb sends
it again; a frame longer than MAX_PACKET is refused with E01 and the stream resynchronises on the
next `$`. A closed or failed socket reads as the end of the connection."""

from __future__ import annotations

import select
import socket

MAX_PACKET = 0x4000  # what qSupported offers; longer packets are refused


def checksum(data: bytes) -> bytes:
    return b"%02x" % (sum(data) & 0xFF)


def escape(body: bytes) -> bytes:
    out = bytearray()
    for c in body:
        if c in b"#$}*":
            out += bytes([0x7D, c ^ 0x20])
        else:
            out.append(c)
    return bytes(out)


def unescape(body: bytes) -> bytes:
    out = bytearray()
    it = iter(body)
    for c in it:
        if c == 0x7D:
            out.append(next(it, 0) ^ 0x20)
        else:
            out.append(c)
    return bytes(out)


class GdbConnection:
    """One gdb connection."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.ack = True  # until QStartNoAckMode has been answered
        self.buf = b""

    def close(self) -> None:
        self.sock.close()

    def read_packet(self) -> bytes | None:
        """The next packet's body (unescaped); None when the connection has ended."""
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
                    return unescape(body)
                if len(self.buf) > MAX_PACKET + 16:
                    # oversized: refuse it and resynchronise on the next packet
                    self.buf = b""
                    if self.ack:
                        self._raw(b"+")
                    self.send(b"E01")
                    continue
            data = self._recv()
            if not data:
                return None
            self.buf += data

    def send(self, body: bytes) -> None:
        esc = escape(body)
        self._raw(b"$" + esc + b"#" + checksum(esc))

    def interrupted(self) -> bool:
        """gdb sent Ctrl-C since the last look (other bytes are kept for read_packet)."""
        r, _, _ = select.select([self.sock], [], [], 0)
        if not r:
            return False
        data = self._recv()
        if b"\x03" in data:
            self.buf += data.replace(b"\x03", b"")
            return True
        self.buf += data
        return False

    def _recv(self) -> bytes:
        try:
            return self.sock.recv(65536)
        except OSError:
            return b""

    def _raw(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError:
            pass
