"""The log filter that drops a disconnected client's never-retrieved RequestAborted, and nothing else."""

import logging
import sys

from django.core.exceptions import RequestAborted

from feedback_app.logfilters import ClientGoneFilter


def record(name: str, exc: BaseException | None) -> logging.LogRecord:
    exc_info = None
    if exc is not None:
        try:
            raise exc
        except BaseException:
            exc_info = sys.exc_info()
    return logging.LogRecord(name, logging.ERROR, __file__, 1, "Task exception was never retrieved", None, exc_info)


def test_a_client_that_went_away_is_not_logged_as_an_error():
    assert not ClientGoneFilter().filter(record("asyncio", RequestAborted()))


def test_every_other_record_passes():
    keep = ClientGoneFilter()
    assert keep.filter(record("asyncio", ValueError("a real failure")))
    assert keep.filter(record("asyncio", None))
    assert keep.filter(record("django.request", RequestAborted()))


def test_the_studio_s_console_handler_uses_it():
    from django.conf import settings

    assert settings.LOGGING["handlers"]["console"]["filters"] == ["client_gone"]
    assert settings.LOGGING["filters"]["client_gone"]["()"] == "feedback_app.logfilters.ClientGoneFilter"
