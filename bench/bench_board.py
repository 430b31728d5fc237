"""Board throughput against raw Unicorn on the same code, in one run (board issue, item 8).

Prints:
- the harness's MIPS on a long loop-heavy program and its ratio to raw Unicorn
  (same code, same memory, no hooks, plain emu_start) — target >= 0.8;
- the MIPS with an instruction trace (every instruction's address recorded) — target >= 1.5.
Each figure is the best of several repetitions, in CPU time (the loop runs in this process's one
thread), to damp the noise of a shared machine.
"""

from __future__ import annotations

import sys
import time

from figures import Figure, report, yardstick
from unicorn import UC_ARCH_ARM64, UC_MODE_ARM, Uc
from unicorn import arm64_const as U

from harness.asm import assemble_text
from harness.machine.board import RAM_BASE, RAM_SIZE, Board

LOOP = """
    .text
    .global _start
_start:
    ldr     x1, =0x40400000        // a 8 KiB working buffer
    ldr     x2, ={iters}
    mov     x3, #0
1:  ldr     x4, [x1, x3, lsl #3]   // load, mix, store: an ordinary loop body
    add     x4, x4, x3
    eor     x5, x4, x2
    str     x5, [x1, x3, lsl #3]
    add     x3, x3, #1
    and     x3, x3, #1023
    subs    x2, x2, #1
    b.ne    1b
done:
    ldr     x0, =0x84000008        // PSCI SYSTEM_OFF
    smc     #0
"""
PER_ITER = 8


def raw_unicorn(image, stop_at: int) -> float:
    uc = Uc(UC_ARCH_ARM64, UC_MODE_ARM)
    uc.ctl_set_cpu_model(U.UC_CPU_ARM64_MAX)
    uc.mem_map(RAM_BASE, RAM_SIZE)
    for seg in image.segments:
        uc.mem_write(seg.addr, bytes(seg.data))
    uc.cpr_write(3, 6, 1, 1, 0, 0x501)
    uc.reg_write(U.UC_ARM64_REG_PSTATE, 0x3C9)
    uc.cpr_write(3, 6, 1, 1, 0, 0x501)
    t = time.process_time()
    uc.emu_start(image.entry, stop_at)
    return time.process_time() - t


def harness(image, **kw) -> tuple[float, int]:
    board = Board("max", **kw)
    board.load(image)
    t = time.process_time()
    result = board.run(max_insns=10**10)
    elapsed = time.process_time() - t
    if result.status != "poweroff":
        sys.exit(f"benchmark program did not power off: {result.status}: {result.message}")
    return elapsed, result.icount


def measure() -> list[Figure]:
    iters = 5_000_000
    image = assemble_text(LOOP.format(iters=iters), "bench-loop.S")
    stop_at = image.addr_of("done")
    insns = iters * PER_ITER
    raw = min(raw_unicorn(image, stop_at) for _ in range(5))
    ours, counted = min(harness(image) for _ in range(5))
    raw_mips, ours_mips = insns / raw / 1e6, insns / ours / 1e6
    print(f"loop program: {insns / 1e6:.0f} M instructions (board counted {counted:,})")
    print(f"raw Unicorn : {raw_mips:8.1f} MIPS")
    print(f"harness     : {ours_mips:8.1f} MIPS   ratio {raw / ours:.2f} (target >= 0.8)")

    t_iters = 200_000
    t_image = assemble_text(LOOP.format(iters=t_iters), "bench-trace.S")
    traced, t_count = min(harness(t_image, trace_insns=True) for _ in range(3))
    trace_mips = t_count / traced / 1e6
    print(f"with --trace-insns: {trace_mips:8.2f} MIPS over {t_count:,} instructions (target >= 1.5)", flush=True)
    return [
        yardstick("bare Unicorn, loop (no hooks)", raw_mips, "MIPS", digits=1),
        Figure("board / bare Unicorn, loop", raw / ours, "x", 0.8, at_most=False,
               note=f"{ours_mips:.1f} MIPS against bare Unicorn's {raw_mips:.1f}"),
        Figure("--trace-insns", trace_mips, "MIPS", 1.5, at_most=False,
               note=f"{trace_mips / raw_mips:.3f} of bare Unicorn's throughput, every instruction's address recorded"),
    ]


def main() -> int:
    return report(measure(), "bench_board")


if __name__ == "__main__":
    sys.exit(main())
