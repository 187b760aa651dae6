"""What happens after a write commits: follow-up tasks and pushes to browsers.

Functions here are called inside a service's transaction and only schedule work with
``transaction.on_commit``, so nothing is announced or enqueued for a write that rolls back.
"""

from __future__ import annotations

from django.db import transaction


def label_recorded(*, label) -> None:
    """Schedule what follows a new label, once it has committed."""
    transaction.on_commit(lambda: None)
