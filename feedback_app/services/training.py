"""Carrying out a training run: claim it, run the body of its kind, and fail it with the reason if anything goes wrong.

The lifecycle (request, claim, progress, fail, reap) is in ``training_runs``; the bodies and
their gates in ``reward_refit`` and ``policy_update``; which version is live in ``versions``.
"""

from __future__ import annotations

import logging
import traceback

from django.conf import settings

from feedback_app import training_bridge
from feedback_app.selectors.training_runs import reward_run_running
from feedback_app.services.policy_update import policy_update_run
from feedback_app.services.reward_refit import reward_refit_run
from feedback_app.services.training_runs import REWARD_KINDS, RunMonitor, RunStopped, TrainingError, training_run_claim, training_run_fail

logger = logging.getLogger(__name__)


def training_run_execute(*, run_id: int, worker: str = "", models: training_bridge.ModelHolder | None = None) -> None:
    """Claim and carry out a queued run; a run that is not queued (any more) is left alone.

    ``models`` is the worker's holder of loaded models; without one, the run loads its own.
    """
    run = training_run_claim(run_id=run_id, worker=worker)
    if run is None:
        logger.info("training run %s is not queued (missing, or claimed before): nothing to do", run_id)
        return
    yields = run.kind not in REWARD_KINDS and settings.POLICY_YIELD_TO_REFITS  # a DPO run leaves the cores to refits
    monitor = RunMonitor(run_id, yield_to=reward_run_running if yields else None, yield_max=settings.POLICY_YIELD_MAX_SECONDS)
    body = reward_refit_run if run.kind in REWARD_KINDS else policy_update_run
    try:
        body(run=run, monitor=monitor, models=models or training_bridge.ModelHolder())
    except Exception as exc:  # every failure ends the run, with its reason
        detail = str(exc) if isinstance(exc, (TrainingError, RunStopped)) else f"{type(exc).__name__}: {exc}\n\n{traceback.format_exc()}"
        logger.warning("training run %s failed: %s", run_id, exc)
        training_run_fail(run_id=run_id, error=detail)
