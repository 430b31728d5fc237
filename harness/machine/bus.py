"""The board's physical address space as the user sees it: RAM, and the device registers (a
PL011 UART data register), one model for the program's accesses (Unicorn MMIO) and the
user's (read_mem/write_mem)."""

from __future__ import annotations

import struct
from collections.abc import Callable

from unicorn import Uc

from harness.memmap import RAM_BASE, UART_BASE, UART_SIZE


class BusError(Exception):
    """An access the address space cannot serve (one line)."""


class Bus:
    def __init__(self, uc: Uc, ram_size: int, uart_sink: Callable[[bytes], None] | None) -> None:
        self.uc = uc
        self.ram_size = ram_size
        self.uart = bytearray()
        self._uart_sink = uart_sink
        for _name, base, size, read, write in self.devices:
            uc.mmio_map(base, size, read.__get__(self), None, write.__get__(self), None)

    def _uart_read(self, uc: Uc, offset: int, size: int, _ud: object) -> int:
        return 0  # FR: transmit FIFO never full

    def _uart_write(self, uc: Uc, offset: int, size: int, value: int, _ud: object) -> None:
        if offset == 0:
            b = bytes([value & 0xFF])
            self.uart += b
            if self._uart_sink is not None:
                self._uart_sink(b)

    # Device registers: (name, base, size, read, write), the accessors unbound (bound ones
    # here would tie the Bus in a reference cycle).
    devices = (("the PL011 UART", UART_BASE, UART_SIZE, _uart_read, _uart_write),)

    def read(self, addr: int, size: int) -> bytes:
        """Read [addr, addr+size) (physical): RAM directly, device registers through their model."""
        dev = self._user_range(addr, size)
        if dev is None:
            return bytes(self.uc.mem_read(addr, size)) if size else b""
        _name, base, _size, read, _write = dev
        return (read(self, self.uc, addr - base, size, None) & ((1 << 8 * size) - 1)).to_bytes(size, "little")

    def write(self, addr: int, data: bytes) -> None:
        """Write (physical) as read() reads. A device register write is the device's: a byte
        to the UART data register is output. Never uc.mem_write into MMIO: once a snapshot
        exists Unicorn copies the page on write, and an MMIO page has no RAM to copy (SIGSEGV)."""
        dev = self._user_range(addr, len(data))
        if dev is None:
            if data:
                self.uc.mem_write(addr, bytes(data))
            return
        _name, base, _size, _read, write = dev
        write(self, self.uc, addr - base, len(data), int.from_bytes(data, "little"), None)

    def read_u64(self, pa: int) -> int:
        return struct.unpack("<Q", self.uc.mem_read(pa, 8))[0]

    def _user_range(self, addr: int, size: int):
        """None for RAM, the device for its registers; BusError for anything else."""
        if not (0 <= addr < 1 << 64 and 0 <= size <= (1 << 64) - addr):
            raise BusError(f"{addr:#x}+{size:#x} is not a 64-bit address range")
        end = addr + size
        if RAM_BASE <= addr and end <= RAM_BASE + self.ram_size:
            return None
        for dev in self.devices:
            name, base, length = dev[:3]
            if base <= addr and end <= base + length:
                if size not in (1, 2, 4, 8) or addr % size:
                    raise BusError(f"the registers of {name} take aligned accesses of 1, 2, 4 or 8 bytes, "
                                   f"not {size} at {addr:#x}")
                return dev
        devices = ", ".join(f"{n} {b:#x}..{b + k:#x}" for n, b, k, _r, _w in self.devices)
        raise BusError(f"no memory at {addr:#x}" + (f"..{end:#x}" if size > 1 else "")
                       + f" (RAM is {RAM_BASE:#x}..{RAM_BASE + self.ram_size:#x}, {devices})")
