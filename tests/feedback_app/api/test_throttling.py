"""The throttles' request times kept in the process: the list itself until it expires, expired callers swept."""

from feedback_app.api import throttling
from feedback_app.api.throttling import ProcessTimes


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_a_callers_times_are_the_list_kept_until_they_expire(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(throttling.time, "monotonic", clock)
    times = ProcessTimes()
    history = [1.0, 2.0]
    times.set("throttle_label_7", history, 60)
    assert times.get("throttle_label_7") is history  # no copy: DRF changes it in place and sets it again
    assert times.get("throttle_label_8", []) == []
    clock.now += 60
    assert times.get("throttle_label_7", "none") == "none"


def test_expired_callers_are_swept_once_the_dict_has_grown(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(throttling.time, "monotonic", clock)
    times = ProcessTimes(prune_at=10)
    for n in range(9):
        times.set(f"old-{n}", [n], 5)
    clock.now += 10
    times.set("new-0", [0], 60)  # the tenth since the last sweep: the nine expired ones go
    assert len(times) == 1 and times.get("new-0") == [0]
    for n in range(1, 9):
        times.set(f"new-{n}", [n], 60)
    assert len(times) == 9  # nothing expired, nothing swept
