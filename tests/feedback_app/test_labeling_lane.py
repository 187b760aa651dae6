"""A WSGI process's labeling lane: labeling calls one at a time, everything else beside them, and no call held past its wait."""

import re
import threading
import time

import pytest
from django.urls import URLPattern, get_resolver

from feedback_app.api import views
from feedback_app.labeling_lane import LABELING_PATH, LabelingLane, lane_wrapped

LABELING_VIEWS = {views.LabelView, views.NextComparisonView, views.SkipView}
SAMPLE = {"id": "12", "int": "12", "slug": "spring-batch_2", "str": "accuracy", "path": "a/b"}


def _paths(resolver, prefix=""):
    """(path, view class) of every URL pattern, its converters filled with sample values."""
    for entry in resolver.url_patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLPattern):
            path = re.sub(r"<(?:(\w+):)?\w+>", lambda m: SAMPLE[m.group(1) or "str"], route)
            yield "/" + path, getattr(entry.callback, "view_class", getattr(entry.callback, "cls", None))
        else:
            yield from _paths(entry, route)


def test_the_lane_takes_exactly_the_labeling_calls_of_every_campaign():
    paths = list(_paths(get_resolver()))
    taken = {path for path, view in paths if LABELING_PATH.fullmatch(path)}
    labeling = {path for path, view in paths if view in LABELING_VIEWS}
    assert taken == labeling
    assert {"/api/v1/comparisons/next/", "/api/v1/comparisons/12/label/", "/api/v1/comparisons/12/skip/",
            "/api/v1/campaigns/spring-batch_2/comparisons/12/label/"} <= taken
    assert not LABELING_PATH.fullmatch("/api/v1/comparisons/12/label/extra/")


class _App:
    """A WSGI application that records how many of its calls ran at once, each lasting ``hold`` seconds or until ``release``."""

    def __init__(self, hold: float = 0.05) -> None:
        self.hold, self.now, self.most, self.release = hold, 0, 0, None
        self._count = threading.Lock()

    def __call__(self, environ, start_response):
        with self._count:
            self.now += 1
            self.most = max(self.most, self.now)
        if self.release is not None and environ["PATH_INFO"].endswith("/1/label/"):
            self.release.wait(10)
        else:
            time.sleep(self.hold)
        with self._count:
            self.now -= 1
        return [environ["PATH_INFO"].encode()]


def _call_at_once(app, paths):
    threads = [threading.Thread(target=app, args=({"PATH_INFO": path}, None)) for path in paths]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)


@pytest.mark.parametrize("path", ["/api/v1/comparisons/7/label/", "/api/v1/campaigns/spring/comparisons/next/"])
def test_labeling_calls_run_one_at_a_time(path):
    inner = _App()
    _call_at_once(LabelingLane(inner, wait=5), [path] * 3)
    assert inner.most == 1


def test_other_requests_run_beside_the_lane_and_each_other():
    inner = _App(hold=0.2)
    _call_at_once(LabelingLane(inner, wait=5), ["/api/v1/comparisons/7/label/", "/api/v1/export/preferences/", "/dashboard/"])
    assert inner.most == 3


def test_a_call_that_waited_its_wait_is_served_beside_the_lane():
    inner = _App()
    inner.release = threading.Event()
    lane = LabelingLane(inner, wait=0.05)
    stuck = threading.Thread(target=lane, args=({"PATH_INFO": "/api/v1/comparisons/1/label/"}, None))
    stuck.start()
    while inner.now == 0:
        time.sleep(0.001)
    assert lane({"PATH_INFO": "/api/v1/comparisons/2/label/"}, None) == [b"/api/v1/comparisons/2/label/"]  # the first still holds the lane
    assert (inner.most, lane.beside) == (2, 1)
    inner.release.set()
    stuck.join(10)
    assert lane({"PATH_INFO": "/api/v1/comparisons/3/label/"}, None) and lane.beside == 1  # the lane is free again


def test_a_call_that_fails_gives_the_lane_back():
    def failing(environ, start_response):
        raise RuntimeError("the handler failed")

    lane = LabelingLane(failing, wait=0.05)
    for _ in range(2):
        with pytest.raises(RuntimeError):
            lane({"PATH_INFO": "/api/v1/comparisons/next/"}, None)
    assert lane.beside == 0


def test_no_lane_when_its_wait_is_zero():
    inner = _App()
    assert lane_wrapped(inner, wait_ms=0) is inner
    wrapped = lane_wrapped(inner, wait_ms=250)
    assert isinstance(wrapped, LabelingLane) and wrapped.wait == 0.25
