"""Call traces of code run in interrupt context: the handler's frames between <IRQ> and
</IRQ>, then the interrupted task's between <TASK> and </TASK> (x86_64's
show_trace_log_lvl()), never the emulator's own run_in_interrupt() frame."""
from __future__ import annotations

import os

import pytest

import hwemu

TINY = os.path.join(os.path.dirname(__file__), "..", "configs", "tiny.yaml")


@pytest.fixture
def machine():
    with hwemu.boot(TINY, overrides={"kasan.enabled": True}) as m:
        yield m


def trace(text: str) -> list[str]:
    """The lines of the Call Trace block of a report, names only (no offsets)."""
    lines = text.splitlines()
    start = lines.index("Call Trace:") + 1
    end = next(i for i in range(start, len(lines)) if lines[i] == " </TASK>")
    return [line.split("+")[0].strip() for line in lines[start:end + 1]]


def nested_helper():
    hwemu.WARN_ON(True)


def irq_handler():
    nested_helper()


def submitter(softirq: bool):
    hwemu.run_in_interrupt(irq_handler, softirq=softirq)


@pytest.mark.parametrize("softirq, irq_end, task_start", [
    (False, "__handle_irq_event_percpu", "asm_common_interrupt"),
    (True, "handle_softirqs", "asm_sysvec_apic_timer_interrupt")])
def test_a_warning_in_an_interrupt_shows_the_irq_stack(machine, softirq, irq_end, task_start):
    submitter(softirq)
    lines = trace(machine.warnings[-1])
    assert lines[:4] == ["<IRQ>", "irq_handler", irq_end, "</IRQ>"]
    assert lines[4:7] == ["<TASK>", task_start, "submitter"]
    assert not any("run_in_interrupt" in line for line in lines)


def test_a_warning_in_a_task_has_only_the_task_stack(machine):
    nested_helper()
    lines = trace(machine.warnings[-1])
    assert lines[0] == "<TASK>" and "<IRQ>" not in lines


def completion(obj: int):
    hwemu.load(obj, 8)


def test_a_kasan_report_from_a_completion_names_the_handler_in_the_irq_stack(machine):
    obj = hwemu.kmalloc(64, hwemu.GFP_KERNEL)
    hwemu.kfree(obj)
    hwemu.run_in_interrupt(completion, obj)   # kasan.fault=report: the access goes on
    text = machine.kasan.reports[-1].text
    assert "BUG: KASAN: slab-use-after-free in completion" in text
    lines = trace(text)
    assert lines[:4] == ["<IRQ>", "completion", "__handle_irq_event_percpu", "</IRQ>"], text
    assert lines[4] == "<TASK>"
