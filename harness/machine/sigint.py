"""Ctrl-C during a run: stop the board at once and keep what it recorded.

Python runs a SIGINT handler only between bytecodes of the main thread, and a run spends its
time inside Unicorn's emu_start (a C call) with no Python hook firing on a plain loop: the
handler would wait for the end of the run. Python's C-level handler does write the signal
number to the wakeup fd at once, so a helper thread waiting on it calls Board.interrupt(),
which Unicorn allows from another thread (it is how its own timeouts stop a run)."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol


class _Interruptible(Protocol):
    def interrupt(self) -> None: ...


_QUIT = b"\xff"  # not a signal number: tells the helper thread to end


@contextmanager
def stop_on_sigint(board: _Interruptible) -> Iterator[None]:
    """Within the block, Ctrl-C (SIGINT) calls board.interrupt(); a second one raises
    KeyboardInterrupt as usual. Outside the main thread it does nothing (signals go there)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    rfd, wfd = os.pipe()
    os.set_blocking(wfd, False)

    def watch() -> None:
        while True:
            data = os.read(rfd, 64)
            if not data or _QUIT in data:
                return
            if signal.SIGINT in data:
                board.interrupt()

    def on_sigint(_sig: int, _frame: object) -> None:
        board.interrupt()  # (the thread has done it already when the run was inside Unicorn)
        signal.signal(signal.SIGINT, signal.default_int_handler)

    old_handler = signal.signal(signal.SIGINT, on_sigint)
    old_fd = signal.set_wakeup_fd(wfd, warn_on_full_buffer=False)
    thread = threading.Thread(target=watch, name="sigint-watch", daemon=True)
    thread.start()
    try:
        yield
    finally:
        signal.set_wakeup_fd(old_fd)
        signal.signal(signal.SIGINT, old_handler)
        os.write(wfd, _QUIT)
        thread.join(1)
        os.close(rfd)
        os.close(wfd)
