"""The reading clock's rules, driven by a fake clock: it counts from the pixels on screen to the commit,
drops idle stretches over 60 s and time with the window in the background."""

from __future__ import annotations

import pytest

from annotator.gui.reading_clock import IDLE_LIMIT_S, ReadingClock


class Fake:
    def __init__(self) -> None:
        self.t = 50.0

    def __call__(self) -> float:
        return self.t

    def tick(self, s: float) -> None:
        self.t += s


@pytest.fixture
def t() -> Fake:
    return Fake()


def test_counts_from_start_to_stop_and_nothing_before_the_pixels(t: Fake) -> None:
    c = ReadingClock(t)
    t.tick(30)  # the slice is loading: not counted
    assert c.seconds == 0
    c.start()
    t.tick(4)
    c.activity()
    t.tick(3.5)
    assert c.stop() == pytest.approx(7.5)
    t.tick(20)  # after the commit nothing counts
    assert c.seconds == pytest.approx(7.5) and not c.started


def test_a_second_start_while_running_does_not_restart(t: Fake) -> None:
    c = ReadingClock(t)
    c.start()
    t.tick(5)
    c.start()
    t.tick(5)
    assert c.stop() == pytest.approx(10)


def test_an_idle_stretch_over_the_limit_is_dropped_whole(t: Fake) -> None:
    c = ReadingClock(t)
    c.start()
    t.tick(10)
    c.activity()
    t.tick(IDLE_LIMIT_S + 0.5)  # she walked away
    c.activity()
    t.tick(2)
    assert c.stop() == pytest.approx(12)


def test_a_stretch_at_the_limit_still_counts(t: Fake) -> None:
    c = ReadingClock(t)
    c.start()
    t.tick(IDLE_LIMIT_S)
    assert c.stop() == pytest.approx(IDLE_LIMIT_S)


def test_idle_up_to_the_commit_is_dropped_too(t: Fake) -> None:
    c = ReadingClock(t)
    c.start()
    t.tick(3)
    c.activity()
    t.tick(90)  # no activity, then the commit
    assert c.stop() == pytest.approx(3)


def test_time_in_the_background_does_not_count(t: Fake) -> None:
    c = ReadingClock(t)
    c.start()
    t.tick(4)
    c.set_active(False)
    t.tick(40)
    c.activity()  # events while inactive add nothing
    t.tick(40)
    c.set_active(True)
    t.tick(6)
    assert c.stop() == pytest.approx(10)


def test_pixels_shown_while_in_the_background_count_from_activation(t: Fake) -> None:
    c = ReadingClock(t)
    c.set_active(False)
    c.start()
    t.tick(30)
    c.set_active(True)
    t.tick(2)
    assert c.stop() == pytest.approx(2)


def test_reset_forgets_a_read_left_unfinished(t: Fake) -> None:
    c = ReadingClock(t)
    c.start()
    t.tick(8)
    c.reset()
    c.start()
    t.tick(1)
    assert c.stop() == pytest.approx(1)
