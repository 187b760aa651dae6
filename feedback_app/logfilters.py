"""Logging filters of the studio's processes (standard library only: the settings name them before Django is set up)."""

from __future__ import annotations

import logging


class ClientGoneFilter(logging.Filter):
    """Drop asyncio's "Task exception was never retrieved" for a request whose client went away.

    Django's ASGI handler races the view against a task that raises RequestAborted when the client
    disconnects; when the server cancels the handler itself (daphne closing at shutdown, say) that
    task's RequestAborted is never retrieved and asyncio logs it with a traceback. Nothing failed:
    the client left. Every other record passes.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not (record.name == "asyncio" and exc is not None and type(exc).__name__ == "RequestAborted")
