"""What the behaviour snapshot pins: a clock that moves only when told, seeded secrets, and the scratch studio's settings."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from pathlib import Path


class StepClock:
    """``timezone.now`` for the whole process: constant between ticks, so how often the code
    asks does not matter, only the steps the script takes."""

    def __init__(self, start: datetime) -> None:
        self.now = start
        self.step = 0

    def __call__(self) -> datetime:
        return self.now

    def tick(self, seconds: float = 1.0) -> None:
        self.step += 1
        self.now += timedelta(seconds=seconds)
        random.seed(f"snapshot-step-{self.step}")  # the display order of a lease, the gold draw


class SeededSecrets:
    """``secrets.token_hex``: one seeded stream per length, so pseudonyms (6 bytes) and API keys
    (20 bytes) do not shift each other if a refactor reorders the calls."""

    def __init__(self) -> None:
        self.streams: dict[int, random.Random] = {}

    def token_hex(self, nbytes: int | None = None) -> str:
        n = 32 if nbytes is None else nbytes
        rng = self.streams.setdefault(n, random.Random(f"snapshot-secrets-{n}"))
        return rng.getrandbits(8 * n).to_bytes(n, "big").hex() if n else ""


def environment(scratch: Path) -> dict[str, str]:
    """Return the environment of the scratch studio: its own VAR_DIR, eager Celery, one thread, no automatic work."""
    return {
        "DJANGO_SETTINGS_MODULE": "feedback_app.settings",
        "VAR_DIR": str(scratch / "var"),
        "MODEL_STORE": str(scratch / "models"),
        "SECRET_KEY": "behaviour-snapshot-fixed-secret-key-not-for-production",
        "CELERY_TASK_ALWAYS_EAGER": "1",
        "REDIS_URL": "redis://127.0.0.1:9/0",  # nothing connects in eager mode with in-memory channels
        "REFIT_EVERY_N_LABELS": "0",
        "SUPPLY_OPEN_TARGET": "0",
        "LABELS_PER_COMPARISON": "1",
        "TORCH_THREADS": "1",
        "TRAINING_DEVICE": "cpu",
        "TIME_ZONE": "UTC",
        "LOG_LEVEL": "ERROR",
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
