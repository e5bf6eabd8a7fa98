"""Emulation of include/asm-generic/bug.h, kernel/panic.c and the x86 oops path.

BUG/WARN/oops/panic print the kernel's text into the machine's log and, where the
kernel would kill the task or stop the machine, raise a Python exception carrying the
same text. Python frames stand in for kernel frames: ``func+0xOFF/0xSIZE file:line``,
where OFF is the bytecode offset and SIZE the size of the function's bytecode.
Not emulated: register dumps, ``Code:`` bytes, lockdep state.
"""
from __future__ import annotations

import dis
import os
import sys
import threading
from types import CodeType, FrameType
from typing import Any

from .current import current
from .errors import *  # noqa: F403  the exceptions: bug.KernelBug and the like
from .errors import KernelBug, KernelPanic, Oops
from .printk import KERN_EMERG, KERN_ERR, KERN_WARNING

UTS_RELEASE = "7.0.0-hwemu"
STACK_DEPTH = 16  # frames shown in a Call Trace

# kernel/panic.c taint_flags[], in order: (name, char when set, char when clear).
TAINT_FLAGS = (
    ("PROPRIETARY_MODULE", "P", "G"), ("FORCED_MODULE", "F", " "),
    ("CPU_OUT_OF_SPEC", "S", " "), ("FORCED_RMMOD", "R", " "),
    ("MACHINE_CHECK", "M", " "), ("BAD_PAGE", "B", " "), ("USER", "U", " "),
    ("DIE", "D", " "), ("OVERRIDDEN_ACPI_TABLE", "A", " "), ("WARN", "W", " "),
    ("CRAP", "C", " "), ("FIRMWARE_WORKAROUND", "I", " "), ("OOT_MODULE", "O", " "),
    ("UNSIGNED_MODULE", "E", " "), ("SOFTLOCKUP", "L", " "), ("LIVEPATCH", "K", " "),
    ("AUX", "X", " "), ("RANDSTRUCT", "T", " "), ("TEST", "N", " "),
)
TAINT = {name: bit for bit, (name, _, _) in enumerate(TAINT_FLAGS)}

CUT_HERE = "------------[ cut here ]------------"
END_TRACE = "---[ end trace 0000000000000000 ]---"


class BugState:
    """Per-machine BUG/WARN/taint state: what ``kernel/panic.c`` keeps globally."""

    def __init__(self, machine):
        self.machine = machine
        self.taint = 0
        self.die_counter = 0
        self.warned_once: set[tuple[str, int]] = set()
        self.lock = threading.Lock()
        self.debug_locks = True
        self.panic: str | None = None   # the first "Kernel panic - not syncing" line
        self.deadlock: str | None = None   # the first deadlock report
        self.hung_tasks: list[str] = []    # khungtaskd's reports

    def add_taint(self, name: str, lockdep_unreliable: bool = False) -> None:
        """``add_taint()``; the first taint that makes lockdep unreliable (BAD_PAGE,
        DIE, ...) turns lock debugging off, and says so."""
        with self.lock:
            self.taint |= 1 << TAINT[name]
            turn_off, self.debug_locks = self.debug_locks and lockdep_unreliable, \
                self.debug_locks and not lockdep_unreliable
        if turn_off:
            self.machine.log.printk("Disabling lock debugging due to kernel taint",
                                    KERN_WARNING)

    def tainted(self) -> str:
        """``print_tainted()``: ``Not tainted`` or ``Tainted: G    B   W``..."""
        if not self.taint:
            return "Not tainted"
        return "Tainted: " + "".join(
            on if self.taint >> bit & 1 else off
            for bit, (_, on, off) in enumerate(TAINT_FLAGS))

    def once(self, frame: FrameType) -> bool:
        """True the first time a ``*_ONCE`` site fires on this machine."""
        key = (frame.f_code.co_filename, frame.f_lineno)
        with self.lock:
            if key in self.warned_once:
                return False
            self.warned_once.add(key)
            return True


# ---------------------------------------------------------------- stack rendering

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_STOP_MODULES = ("threading", "_pytest", "pluggy", "runpy")
# Code of the emulator's own task entry (sched): a stack ends there, as a kernel
# thread's ends at kthread()/ret_from_fork.
STACK_BOTTOM: set = set()
# Code whose frames are not shown: what the kernel has as macros (alloc_hooks()).
STACK_INLINE: set = set()
# Code that enters an interrupt (sched.run_in_interrupt(), with a ``softirq`` argument):
# the frames above it ran on the interrupt stack, shown between <IRQ> and </IRQ> as
# x86's show_trace_log_lvl() does, ending and resuming where x86_64 enters the handlers.
IRQ_ENTRY: set = set()
_IRQ_EDGES = {False: (" __handle_irq_event_percpu+0x0/0x0", " asm_common_interrupt+0x0/0x0"),
              True: (" handle_softirqs+0x0/0x0", " asm_sysvec_apic_timer_interrupt+0x0/0x0")}


# Frames through which kernel C called Python (hwemu.kbuild): their code objects, and
# what shows the C frames below one ((symbol, location) pairs, innermost first). Set
# when hwemu.kbuild loads its runtime; until then no frame is one.
NATIVE_ENTRY: set = set()
native_frames: Any = None


def source_path(filename: str) -> str:
    """A short path for a frame: relative to the project or cwd when inside them."""
    for base in (_ROOT, os.getcwd()):
        if filename.startswith(base + os.sep):
            return filename[len(base) + 1:]
    return filename


_CACHE = dis.opmap.get("CACHE", -1)       # an inline cache entry after an instruction
_PRECALL = dis.opmap.get("PRECALL", -1)   # 3.11: the half of a call before CALL


def code_symbol(code: CodeType, lasti: int) -> str:
    """``%pS``: ``func+0xOFF/0xSIZE`` of bytecode offset ``lasti`` in ``code``.

    Where a caller stands depends on its callee and on how warm the call is (past the
    call's inline cache for a Python callee, on it for a C one, on the ``PRECALL`` of
    a specialised call in 3.11): every one names the ``CALL`` instruction."""
    ops, lasti = code.co_code, max(lasti, 0)
    while lasti and ops[lasti] == _CACHE:
        lasti -= 2
    if ops[lasti] == _PRECALL:
        lasti += 2
        while ops[lasti] == _CACHE:
            lasti += 2
    return f"{code.co_name}+{lasti:#x}/{len(ops):#x}"


def _native_top(frame: FrameType) -> tuple[str, str] | None:
    """Where C called Python, if ``frame`` is such a place: the symbol of the function
    running there (what inlined into it is not one) and the innermost line."""
    if frame.f_code in NATIVE_ENTRY:
        frames = native_frames(frame)
        if frames:
            sym = next((s for s, loc in frames if not loc.endswith("[inline]")), frames[0][0])
            return sym, frames[0][1].removesuffix(" [inline]")
    return None


def symbol(frame: FrameType) -> str:
    """``%pS`` of a frame: ``func+0xOFF/0xSIZE`` (of the C code, where C called)."""
    top = _native_top(frame)
    return top[0] if top else code_symbol(frame.f_code, frame.f_lasti)


def location(frame: FrameType) -> str:
    top = _native_top(frame)
    if top:
        return top[1]
    return f"{source_path(frame.f_code.co_filename)}:{frame.f_lineno}"


def stack_lines(frame: FrameType | None, depth: int = STACK_DEPTH) -> list[list[str]]:
    """Kernel-style frames from ``frame`` outwards, stopping at harness frames: one list
    per stack, innermost first (an interrupt's frames, then the interrupted task's)."""
    stacks: list[list[str]] = [[]]
    shown = 0
    while frame is not None and shown < depth:
        module = frame.f_globals.get("__name__", "")
        if module.split(".")[0] in _STOP_MODULES or frame.f_code in STACK_BOTTOM:
            break
        if frame.f_code in IRQ_ENTRY:
            irq_end, task_start = _IRQ_EDGES[bool(frame.f_locals.get("softirq"))]
            stacks[-1].append(irq_end)
            stacks.append([task_start])
        elif frame.f_code in NATIVE_ENTRY:
            for sym, loc in native_frames(frame):
                stacks[-1].append(f" {sym} {loc}")
                shown += 1
        elif frame.f_code not in STACK_INLINE:
            stacks[-1].append(f" {symbol(frame)} {location(frame)}")
            shown += 1
        frame = frame.f_back
    return stacks


def caller(depth: int = 2) -> FrameType:
    """The frame ``depth`` levels above the caller of this function."""
    return sys._getframe(depth)


# ---------------------------------------------------------------- report pieces

def header(machine, task) -> list[str]:
    """The ``CPU: ... Comm: ...`` and ``Hardware name:`` lines of every splat."""
    if task is None:
        who = f"CPU: - UID: 0 PID: 0 Comm: {threading.current_thread().name[:15]}"
    else:
        who = f"CPU: {task.cpu.id} UID: 0 PID: {task.pid} Comm: {task.comm}"
    return [f"{who} {machine.bugs.tainted()} {UTS_RELEASE} #1",
            f"Hardware name: hwemu {machine.name}, BIOS hwemu"]


def call_trace(frame: FrameType | None, first: str | None = None,
               skip: int = 0) -> list[str]:
    """``Call Trace:`` block; ``first`` names an emulator-internal top frame, ``skip``
    drops the innermost lines. Frames of an interrupt handler come first, between
    ``<IRQ>`` and ``</IRQ>``."""
    lines = stack_lines(frame)
    del lines[0][:skip]
    *irqs, task = lines
    stacks = [*[("IRQ", lines) for lines in irqs], ("TASK", task)]
    if first:
        stacks[0][1].insert(0, f" {first}")
    return ["Call Trace:", *[line for kind, lines in stacks
                             for line in (f" <{kind}>", *lines, f" </{kind}>")]]


def dump_stack(machine, task, frame: FrameType, level: int = KERN_ERR) -> str:
    """``dump_stack()``: header and call trace, logged; returns the text."""
    text = "\n".join([*header(machine, task), *call_trace(frame, "dump_stack_lvl+0x0/0x0")])
    machine.log.printk(text, level)
    return text


def _callers_trace(frame: FrameType) -> list[str]:
    """The call trace below ``RIP: frame``: its callers (where C called Python, the C
    frames after the one running)."""
    if frame.f_code in NATIVE_ENTRY:
        return call_trace(frame, skip=1)
    return call_trace(frame.f_back)


def _die(machine, task, first_lines: list[str], frame: FrameType, kind: str,
         trailer: tuple[str, ...] = ()) -> str:
    """``die()``: the oops body shared by BUG and page faults; taints D."""
    with machine.bugs.lock:
        machine.bugs.die_counter += 1
        n = machine.bugs.die_counter
    text = "\n".join([
        *first_lines,
        f"Oops: {kind} [#{n}] {machine.oops_flags}",
        *header(machine, task),
        f"RIP: 0010:{symbol(frame)}",
        *_callers_trace(frame),
        "Modules linked in:",
        *trailer,
        END_TRACE,
    ])
    machine.log.printk(text, KERN_EMERG)
    machine.bugs.add_taint("DIE", lockdep_unreliable=True)
    return text


def bug_report(machine, task, frame: FrameType) -> KernelBug:
    """``BUG()`` at ``frame``: print the oops, return the exception to raise."""
    where = location(frame)
    text = _die(machine, task, [CUT_HERE, f"kernel BUG at {where}!"], frame,
                "invalid opcode: 0000")
    return KernelBug(f"kernel BUG at {where}!", text)


def page_fault_report(machine, task, addr: int, write: bool, frame: FrameType,
                      why: str) -> Oops:
    """The x86 ``page_fault_oops()`` text for a kernel-mode fault at ``addr``."""
    if addr < 4096:
        first = f"BUG: kernel NULL pointer dereference, address: {addr:016x}"
    else:
        first = f"BUG: unable to handle page fault for address: {addr:016x}"
    code = 0x2 if write else 0x0
    lines = [first,
             f"#PF: supervisor {'write' if write else 'read'} access in kernel mode",
             f"#PF: error_code({code:#06x}) - not-present page"]
    text = _die(machine, task, lines, frame, f"{code:04x}", (f"CR2: {addr:016x}",))
    return Oops(f"{first} ({why})", text)


def gp_fault_report(machine, task, frame: FrameType) -> Oops:
    """x86's ``die_addr()`` for a general protection fault (a non-canonical address:
    the CPU does not say which)."""
    text = _die(machine, task, [], frame, "general protection fault: 0000")
    return Oops("general protection fault", text)


def warn_report(machine, task, frame: FrameType, message: str | None = None) -> str:
    """``__warn()``: the WARNING splat for ``frame``; taints W and returns the text."""
    text = "\n".join([
        CUT_HERE,
        *([message] if message else []),
        f"WARNING: CPU: {task.cpu.id if task else '-'} PID: {task.pid if task else 0} "
        f"at {location(frame)} {symbol(frame)}",
        "Modules linked in:",
        *header(machine, task),
        f"RIP: 0010:{symbol(frame)}",
        *_callers_trace(frame),
        END_TRACE,
    ])
    machine.log.printk(text, KERN_WARNING)
    machine.bugs.add_taint("WARN")
    machine.warnings.append(text)
    return text


def panic_report(machine, task, message: str) -> KernelPanic:
    """``panic()``: print and return the exception to raise."""
    line = f"Kernel panic - not syncing: {message}"
    machine.bugs.panic = machine.bugs.panic or line
    text = "\n".join([line, *header(machine, task), *call_trace(caller(3)),
                      f"---[ end {line} ]---"])
    machine.log.printk(text, KERN_EMERG)
    return KernelPanic(line, text)


# ---------------------------------------------------------------- the macros

def _here():
    task = current()
    return task.machine, task


def BUG() -> None:
    """``BUG()``: oops at the caller and raise :class:`KernelBug`."""
    machine, task = _here()
    raise bug_report(machine, task, caller())


def BUG_ON(condition) -> None:
    """``BUG_ON(condition)``."""
    if condition:
        machine, task = _here()
        raise bug_report(machine, task, caller())


def WARN(condition, message: str | None = None) -> bool:
    """``WARN(condition, fmt...)``: splat at the caller if ``condition``; returns it."""
    if condition:
        machine, task = _here()
        warn_report(machine, task, caller(), message)
    return bool(condition)


def WARN_ON(condition) -> bool:
    """``WARN_ON(condition)``."""
    if condition:
        machine, task = _here()
        warn_report(machine, task, caller())
    return bool(condition)


def WARN_ONCE(condition, message: str | None = None) -> bool:
    """``WARN_ONCE``: like :func:`WARN`, printed once per call site per machine."""
    if condition:
        machine, task = _here()
        frame = caller()
        if machine.bugs.once(frame):
            warn_report(machine, task, frame, message)
    return bool(condition)


def WARN_ON_ONCE(condition) -> bool:
    """``WARN_ON_ONCE(condition)``."""
    if condition:
        machine, task = _here()
        frame = caller()
        if machine.bugs.once(frame):
            warn_report(machine, task, frame)
    return bool(condition)


def panic(message: str) -> None:
    """``panic(fmt...)``: raise :class:`KernelPanic`."""
    machine, task = _here()
    raise panic_report(machine, task, message)
