/*
 * Native UC_HOOK_BLOCK callback that counts executed instructions and enforces
 * a limit, so the board needs no per-instruction (or per-block) Python hook.
 * A Python block hook caps Unicorn near 14 MIPS; this one costs ~30% on the
 * tightest loop and nothing measurable on ordinary code.
 *
 * Stopping from a block hook prevents that block from executing, so a block
 * that would cross the limit is not counted and the run stops before it; the
 * board then single-steps the remainder to land on the exact instruction.
 *
 * After an ERET or PSTATE write that ended its block the board sets `pending`: the
 * hook then calls the board's check (one Python call) at the next block, which
 * finishes it there and lets the run go on, or asks to stop before that block.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>

typedef int (*uc_stop_fn)(void *uc);
typedef int (*check_fn)(uint64_t addr);

struct icount_state {
    uint64_t count;      /* instructions in blocks entered so far */
    uint64_t limit;      /* stop before a block that would pass this */
    uc_stop_fn stop;     /* libunicorn's uc_emu_stop */
    uint64_t hit;        /* set when the limit stopped the run */
    uint64_t last_addr;  /* start of the block counted last */
    uint64_t last_size;  /* its size in bytes */
    uint64_t pending;    /* an ERET / PSTATE write ended the last block: check before this one */
    check_fn check;      /* the board's check (Python); nonzero: stop before this block */
};

void icount_block(void *uc, uint64_t addr, uint32_t size, void *user_data)
{
    struct icount_state *s = (struct icount_state *)user_data;
    uint64_t n = size >> 2;

    /* The one Python call from here, only when a check is pending: the run goes on through
     * Unicorn's translated blocks unless the check must change the state or stop. */
    if (s->pending) {
        s->pending = 0;
        if (s->check(addr)) {
            s->hit = 1;
            s->stop(uc);
            return;
        }
    }
    if (s->count + n > s->limit) {
        s->hit = 1;
        s->stop(uc);
        return;
    }
    s->count += n;
    s->last_addr = addr;
    s->last_size = size;
}

/*
 * Native UC_HOOK_CODE callback for --trace-insns: appends each executed address to a growing
 * buffer (a Python hook per instruction caps Unicorn near 2.6 MIPS).
 */
struct trace_state {
    uint64_t *buf;
    uint64_t len;
    uint64_t cap;
};

void trace_push(struct trace_state *t, uint64_t addr)
{
    if (t->len == t->cap) {
        uint64_t cap = t->cap ? t->cap * 2 : 65536;
        uint64_t *b = (uint64_t *)realloc(t->buf, cap * sizeof(uint64_t));
        if (b == NULL)
            return; /* out of memory: the trace stops growing (Python checks len against icount) */
        t->buf = b;
        t->cap = cap;
    }
    t->buf[t->len++] = addr;
}

void trace_code(void *uc, uint64_t addr, uint32_t size, void *user_data)
{
    trace_push((struct trace_state *)user_data, addr);
}

void trace_free(struct trace_state *t)
{
    free(t->buf);
    t->buf = NULL;
    t->len = t->cap = 0;
}

static PyMethodDef methods[] = {{NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_icount", NULL, -1, methods};

PyMODINIT_FUNC PyInit__icount(void) { return PyModule_Create(&module); }
