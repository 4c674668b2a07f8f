"""Which CPU a pinned process takes (the fewest device interrupts first, from
/proc/interrupts), and when it moves to another (davserver.cpu.Follower's verdict), from
looks at the CPUs' ticks and the process's own CPU time."""

from __future__ import annotations

import contextlib
import itertools
import os

import pytest

from davserver import cpu
from davserver.cpu import Follower, _Look, device_interrupts, quietest_first

TICK = 100  # /proc/stat counts USER_HZ ticks: 100 a second on Linux
OWN = 0.4  # the process takes 40 % of CPU 0 throughout


def seen(seconds: list[tuple[float, float]], share: float = OWN) -> list[_Look]:
    """Looks a second apart; each item of ``seconds`` says what happened between two: the
    share of CPU 0 other programs took, and the share of the time CPU 1 was idle (the
    process itself took ``share`` of CPU 0 throughout)."""
    busy, idle, own = [0, 0], [0, 0], 0.0
    out = [_Look(0.0, {0: 0, 1: 0}, {0: 0, 1: 0}, 0.0)]
    for at, (others, idle1) in enumerate(seconds, start=1):
        busy[0] += round(TICK * (share + others))
        idle[0] += round(TICK * (1 - share - others))
        busy[1] += round(TICK * (1 - idle1))
        idle[1] += round(TICK * idle1)
        own += share
        out.append(_Look(float(at), {0: busy[0], 1: busy[1]}, {0: idle[0], 1: idle[1]}, own))
    return out


def verdicts(follower: Follower, looks: list[_Look]) -> list[int | None]:
    return [follower.verdict(a, b) for a, b in itertools.pairwise(looks)]


def test_a_cpu_taken_by_others_twice_in_a_row_is_left_for_an_idle_one() -> None:
    follower = Follower({0, 1}, 0)
    assert verdicts(follower, seen([(0.5, 0.9), (0.5, 0.9)])) == [None, 1]


@pytest.mark.parametrize(
    "seconds",
    [
        [(0.1, 0.9)] * 4,  # others take little of the CPU
        [(0.5, 0.3)] * 4,  # the other CPU is busy too: nowhere better to go
        [(0.5, 0.9), (0.0, 0.9), (0.5, 0.9)],  # never two crowded looks in a row
    ],
)
def test_the_process_stays(seconds: list[tuple[float, float]]) -> None:
    follower = Follower({0, 1}, 0)
    assert verdicts(follower, seen(seconds)) == [None] * len(seconds)


def test_an_idle_process_stays_whoever_takes_its_cpu() -> None:
    """Waiting for requests, it loses nothing to the others (bench/run's servers take
    turns: the others' runs would move it about)."""
    follower = Follower({0, 1}, 0)
    assert verdicts(follower, seen([(0.9, 0.9)] * 4, share=0.02)) == [None] * 4


def test_after_a_move_the_process_stays_a_while() -> None:
    """A client on the same host follows the process that answers it: a second move comes
    no sooner than HOLD seconds after the first, however crowded the CPU."""
    follower = Follower({0, 1}, 0)
    hold = int(cpu.HOLD)
    got = verdicts(follower, seen([(0.5, 0.9)] * (hold + 4)))
    assert got[:2] == [None, 1]
    assert got[2 : 1 + hold] == [None] * (hold - 1)  # the look at 2 s moved; 3..HOLD+1 stay
    assert 1 in got[1 + hold :]


def test_a_move_is_told_to_the_helper_s_keeper() -> None:
    """Follower.move puts every thread on the CPU and tells ``on_move`` (the closer helper
    keeps off it); the test process's threads get their CPUs back."""
    told: list[int] = []
    allowed = os.sched_getaffinity(0)
    target = min(allowed)
    before = {tid: os.sched_getaffinity(int(tid)) for tid in os.listdir("/proc/self/task")}
    try:
        Follower(allowed, target, told.append).move(target)
        assert os.sched_getaffinity(0) == {target}
    finally:
        for tid, cpus in before.items():
            with contextlib.suppress(OSError):  # a thread that ended meanwhile
                os.sched_setaffinity(int(tid), cpus)
    assert told == [target]


def test_only_the_cpus_the_process_may_use_are_moved_to() -> None:
    follower = Follower({0}, 0)
    assert verdicts(follower, seen([(0.5, 0.9)] * 3)) == [None] * 3


# The shape of /proc/interrupts on the 2-CPU test machine (the disk is virtio1), cut down.
INTERRUPTS = """\
           CPU0       CPU1
 24:          1          0  IO-APIC   5-edge      ACPI:Ged
 36:          0   22129267  PCI-MSIX-0000:00:02.0   1-edge      virtio1-req.0
 38:          0      57147  PCI-MSIX-0000:00:03.0   1-edge      virtio2-input.0
 39:      40803          0  PCI-MSIX-0000:00:03.0   2-edge      virtio2-output.0
NMI:          0          0   Non-maskable interrupts
LOC:    6461807    7019554   Local timer interrupts
RES:    5530528    5109598   Rescheduling interrupts
ERR:          0
"""


def test_device_interrupts_count_the_numbered_rows_only() -> None:
    assert device_interrupts(INTERRUPTS) == {0: 1 + 40803, 1: 22129267 + 57147}
    assert device_interrupts("") == {}


def test_device_interrupts_follow_the_header_s_cpu_numbers() -> None:
    """With a CPU offline its column is missing: the header names the CPUs shown."""
    text = "      CPU0    CPU2\n 9:   5   7   IO-APIC  9-fasteoi  acpi\n"
    assert device_interrupts(text) == {0: 5, 2: 7}


def test_the_cpu_the_disk_interrupts_go_to_comes_last() -> None:
    counts = device_interrupts(INTERRUPTS)
    assert quietest_first({0, 1}, counts) == [0, 1]
    assert quietest_first({0, 1}, counts, first=1) == [0, 1]  # even for the one it is on
    assert quietest_first({1}, counts) == [1]


def test_among_equals_the_cpu_it_runs_on_comes_first() -> None:
    assert quietest_first({0, 1, 2}, {}, first=2) == [2, 0, 1]
    assert quietest_first({0, 1, 2}, {0: 9, 1: 3, 2: 3}) == [1, 2, 0]
    assert quietest_first({0, 1, 2}, {0: 9, 1: 3, 2: 3}, first=2) == [2, 1, 0]


def test_a_worker_takes_its_slot_of_the_order_the_master_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Workers take their CPU from the one order the master read (cpu.worker_order), not
    from their own look at /proc/interrupts: near-equal CPUs read twice may swap places,
    and two workers would land on one."""

    def no_second_look() -> dict[int, int]:
        raise AssertionError("a worker read /proc/interrupts again")

    monkeypatch.setattr(cpu, "interrupts_now", no_second_look)
    allowed = os.sched_getaffinity(0)
    order = sorted(allowed, reverse=True)  # not the CPUs' own order
    taken = []
    try:
        for slot in range(len(order) + 1):
            taken.append(cpu.pin_to_one_cpu(slot, order))
            os.sched_setaffinity(0, allowed)
    finally:
        os.sched_setaffinity(0, allowed)
    if len(allowed) < 2:
        assert taken == [None, None]  # one CPU already: nothing to choose
    else:
        assert taken == [*order, order[0]]  # round robin
