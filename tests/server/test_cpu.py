"""When a pinned process moves to another CPU (davserver.cpu.Follower's verdict), from
looks at the CPUs' ticks and the process's own CPU time."""

from __future__ import annotations

import itertools

import pytest

from davserver.cpu import Follower, _Look

TICK = 100  # /proc/stat counts USER_HZ ticks: 100 a second on Linux
OWN = 0.4  # the process takes 40 % of CPU 0 throughout


def seen(seconds: list[tuple[float, float]]) -> list[_Look]:
    """Looks a second apart; each item of ``seconds`` says what happened between two: the
    share of CPU 0 other programs took, and the share of the time CPU 1 was idle."""
    busy, idle, own = [0, 0], [0, 0], 0.0
    out = [_Look(0.0, {0: 0, 1: 0}, {0: 0, 1: 0}, 0.0)]
    for at, (others, idle1) in enumerate(seconds, start=1):
        busy[0] += round(TICK * (OWN + others))
        idle[0] += round(TICK * (1 - OWN - others))
        busy[1] += round(TICK * (1 - idle1))
        idle[1] += round(TICK * idle1)
        own += OWN
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


def test_only_the_cpus_the_process_may_use_are_moved_to() -> None:
    follower = Follower({0}, 0)
    assert verdicts(follower, seen([(0.5, 0.9)] * 3)) == [None] * 3
