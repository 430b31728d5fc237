"""The board's memory map (QEMU `virt`): where RAM is, where programs are placed, the UART.

One place for the numbers the assembler lays images out in and the board maps, so a size the
assembler accepts always fits the RAM the board has."""

RAM_BASE = 0x4000_0000
RAM_SIZE = 256 << 20
RAM_END = RAM_BASE + RAM_SIZE
DEFAULT_LOAD = 0x4008_0000  # where -kernel images go on QEMU virt, and `.S` programs here
UART_BASE = 0x0900_0000  # PL011 data register
UART_SIZE = 0x1000
