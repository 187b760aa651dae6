"""What the tests forget of a process's caches where a change's on-commit forgetting never runs (a test's transaction)."""

from __future__ import annotations


def caches_clear() -> None:
    """Forget Django's cache (per process: locmem) and the campaigns' rules each process keeps (``campaign_cached``)."""
    from django.core.cache import cache

    from feedback_app.selectors.campaigns import campaign_cache_clear

    cache.clear()
    campaign_cache_clear()
