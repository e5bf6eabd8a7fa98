/* The C of two hardware primitives, shared by the accelerator (hwemu/_speedups.c, for
 * Python's accesses and locks) and kernel C's runtime (hwemu/kbuild/runtime.c): KASAN's
 * verdict on a shadow, and the spinlock_t word with spinlock_debug.c's checks. Their
 * Python twins are Kasan.check_access() (hwemu/kasan/__init__.py) and
 * spin_trylock_word()/spin_unlock_word() (hwemu/spinlock.py), whose answers these are. */
#ifndef HWEMU_HW_H
#define HWEMU_HW_H

#include <stdint.h>
#include <string.h>

#define GRANULE_SHIFT 3                     /* KASAN_SHADOW_SCALE_SHIFT */
#define GRANULE_MASK ((1u << GRANULE_SHIFT) - 1)

/* check_region_inline()'s verdict on [addr, addr+n), n > 0, with the shadow of address
 * 0 at `shadow`: every granule before the last is 0, the last is 0 or a partial granule
 * holding the access's last byte. */
static inline int shadow_clean(uintptr_t shadow, uintptr_t addr, uintptr_t n)
{
    uintptr_t last = addr + n - 1;
    const uint8_t *p = (const uint8_t *)(shadow + (addr >> GRANULE_SHIFT));
    const uint8_t *q = (const uint8_t *)(shadow + (last >> GRANULE_SHIFT));
    while (p < q && ((uintptr_t)p & 7)) {
        if (*p++)
            return 0;
    }
    while (q - p >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        if (w)
            return 0;
        p += 8;
    }
    while (p < q) {
        if (*p++)
            return 0;
    }
    uint8_t v = *q;
    return v == 0 || (v <= GRANULE_MASK && (last & GRANULE_MASK) < v);
}

/* spinlock_t with CONFIG_DEBUG_SPINLOCK, 64-bit (hwemu/spinlock.py's layout). */
#define SPINLOCK_T_SIZE 24
#define SPINLOCK_MAGIC 0xdead4eadu
enum { SPIN_OK, SPIN_BUSY, SPIN_WAITERS, SPIN_BAD_MAGIC, SPIN_RECURSION, SPIN_CPU_RECURSION,
       SPIN_ALREADY_UNLOCKED, SPIN_WRONG_OWNER, SPIN_WRONG_CPU };
enum { RAW_UNLOCKED, RAW_LOCKED, RAW_CONTENDED };

typedef struct {
    uint32_t raw, magic, owner_cpu, pad;
    uint64_t owner;
} SpinWord;

/* debug_spin_lock_before(), arch_spin_trylock(), debug_spin_lock_after() on the word at
 * `lock`: SPIN_OK when taken, SPIN_BUSY when another owner holds it (the word is then
 * marked contended), or the bug. */
static inline int spin_trylock_word(uint8_t *lock, uint64_t cpu, uint64_t owner)
{
    SpinWord w;
    memcpy(&w, lock, sizeof(w));
    if (w.magic != SPINLOCK_MAGIC)
        return SPIN_BAD_MAGIC;
    if (w.owner == owner)
        return SPIN_RECURSION;
    if (w.owner_cpu == cpu)
        return SPIN_CPU_RECURSION;
    if (w.raw) {
        w.raw = RAW_CONTENDED;
        memcpy(lock, &w.raw, sizeof(w.raw));
        return SPIN_BUSY;
    }
    w.raw = RAW_LOCKED;
    w.owner_cpu = (uint32_t)cpu;
    w.pad = 0;
    w.owner = owner;
    memcpy(lock, &w, sizeof(w));
    return SPIN_OK;
}

/* debug_spin_unlock() and arch_spin_unlock() on the word at `lock`: SPIN_OK,
 * SPIN_WAITERS when tasks spin on it, or the bug (the word is then unchanged). */
static inline int spin_unlock_word(uint8_t *lock, uint64_t cpu, uint64_t owner)
{
    SpinWord w;
    memcpy(&w, lock, sizeof(w));
    if (w.magic != SPINLOCK_MAGIC)
        return SPIN_BAD_MAGIC;
    if (!w.raw)
        return SPIN_ALREADY_UNLOCKED;
    if (w.owner != owner)
        return SPIN_WRONG_OWNER;
    if (w.owner_cpu != cpu)
        return SPIN_WRONG_CPU;
    int status = w.raw == RAW_CONTENDED ? SPIN_WAITERS : SPIN_OK;
    w.raw = RAW_UNLOCKED;
    w.owner_cpu = 0xffffffffu;
    w.pad = 0;
    w.owner = UINT64_MAX;
    memcpy(lock, &w, sizeof(w));
    return status;
}

/* spin_lock_init(): unlocked, the debug magic, no owner. */
static inline void spin_init_word(uint8_t *lock)
{
    SpinWord w = {RAW_UNLOCKED, SPINLOCK_MAGIC, 0xffffffffu, 0, UINT64_MAX};
    memcpy(lock, &w, sizeof(w));
}

#endif
