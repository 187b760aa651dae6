"""Celery tasks: thin (ids in, a service call, idempotent), like views.

torch is imported inside the services' bridge calls, never here, so importing this module (as
every worker and the web process do) stays light. Tasks that use models share one holder per
worker process (``ModelTask``), so a swap loads new weights once and old ones are dropped.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, ClassVar

from celery import Task, shared_task
from celery.signals import worker_ready, worker_shutting_down

if TYPE_CHECKING:
    from feedback_app.training_bridge import ModelHolder

logger = logging.getLogger(__name__)
RM_SCORE_CHUNK = 256  # comparisons the reward model judges per task


class ModelTask(Task):
    """A task that uses models: ``self.models`` is this worker process's one ModelHolder, made on first use.

    Celery makes one instance of each task per process (its guide's way to keep a resource
    between calls); the holder is kept on this base class, so every model task of a process
    shares it.
    """

    abstract = True
    _holder: ClassVar[ModelHolder | None] = None

    @property
    def models(self) -> ModelHolder:
        if ModelTask._holder is None:
            from feedback_app.training_bridge import ModelHolder

            ModelTask._holder = ModelHolder()
        return ModelTask._holder


def libraries_import() -> list[str]:
    """Import the learning libraries the model tasks use, running nothing (``training_bridge.libraries_import``): for a
    worker before its pool forks. Return the model classes imported."""
    from feedback_app.training_bridge import libraries_import

    return libraries_import()


@shared_task(bind=True, base=ModelTask, acks_late=True)
def training_run_execute(self, run_id: int) -> None:
    """Run one queued training run; a redelivered message does nothing."""
    from feedback_app.services.training import training_run_execute

    training_run_execute(run_id=run_id, worker=self.request.hostname or "", models=self.models)


@shared_task(bind=True, base=ModelTask, acks_late=True)
def comparisons_supply(self) -> int:
    """Top up the open comparisons from the active policy; safe to run concurrently. A round in progress when the worker is
    asked to stop ends at its next sampled token, so the worker stops within the studio's grace."""
    from feedback_app.services.supply import comparisons_supply
    from feedback_app.worker_stop import worker_stopping

    return comparisons_supply(models=self.models, should_stop=worker_stopping)


@shared_task(bind=True, base=ModelTask, acks_late=True)
def comparisons_judge(self, comparison_ids: list[int]) -> dict:
    """Give waiting comparisons the routing judge's verdict and route them; comparisons routed before are left alone."""
    from feedback_app.services.ai_routing import comparisons_judge_and_route

    return dict(comparisons_judge_and_route(comparison_ids=comparison_ids, models=self.models))


@shared_task(bind=True, base=ModelTask)
def judge_backfill(self, judge_id: int) -> dict:
    """Give a judge's verdicts on the labelled comparisons its version has not judged; a missing or disabled judge does nothing."""
    from feedback_app.models import Judge
    from feedback_app.services.judge_backfill import judge_backfill
    from feedback_app.services.judges import JudgeUnavailable
    from feedback_app.worker_stop import worker_stopping

    judge = Judge.objects.filter(pk=judge_id).first()
    try:
        return dict(judge_backfill(judge=judge, models=self.models, should_stop=worker_stopping)) if judge is not None else {}
    except JudgeUnavailable:
        return {}


@shared_task
def comparisons_judging_reap() -> dict:
    """Send comparisons that waited too long for the judge to people, and ask again about those whose message was lost."""
    from feedback_app.services.ai_routing import comparisons_judging_reap

    return comparisons_judging_reap()


@shared_task
def training_runs_reap() -> dict:
    """Fail runs whose worker went silent, re-send lost messages, and queue a refit that is due."""
    from feedback_app.services.training_recovery import training_loop_heal

    return training_loop_heal()


@shared_task(bind=True, base=ModelTask, ignore_result=False)
def reward_score(self, prompt: str, context: list, responses: list, campaign_id: int = 1) -> dict:
    """Return the campaign's active reward model's rewards for responses to a prompt, or {"error": why}."""
    from feedback_app.services.scoring import NoActiveRewardModel, responses_score

    try:
        return responses_score(prompt=prompt, context=context, responses=responses, models=self.models, campaign_id=campaign_id)
    except NoActiveRewardModel as exc:
        return {"error": str(exc)}


@shared_task(bind=True, base=ModelTask, ignore_result=False)
def policy_generate(self, policy_name: str, prompts: list, seed: int, max_new_tokens: int, temperature: float, mode: str | None = None) -> dict:
    """Return {"policy", "mode", "reward_model", "replies"}: one reply per prompt from a policy version (``mode`` None: in its
    serving mode), or {"error": why, "code": ...}."""
    from feedback_app.services.generation import policy_replies_or_error

    return policy_replies_or_error(policy_name=policy_name, prompts=prompts, mode=mode, seed=seed, max_new_tokens=max_new_tokens,
                                   temperature=temperature, models=self.models)


@shared_task(bind=True, base=ModelTask)
def comparisons_rm_score(self) -> int:
    """Let each campaign's active reward model judge its newly labelled and arena comparisons, and refresh old judgements
    a few per label (``services.scoring``).

    One chunk per task, then the task queues itself again while there are more: it shares the
    "score" queue with the API's scoring requests, which thus wait for a chunk, never a backlog.
    A lost link ends the chain; the beat entry (every 2 minutes) starts it again where it stopped.
    A link is queued only when none waits already, so the beat's runs merge into one chain.
    """
    from feedback_app import broker
    from feedback_app.services import scoring

    done = scoring.comparisons_rm_score(batch=RM_SCORE_CHUNK, limit=RM_SCORE_CHUNK, models=self.models)
    if done >= RM_SCORE_CHUNK and not broker.task_message_waiting(task=comparisons_rm_score.name):
        comparisons_rm_score.delay()
    return done


@shared_task
def embeddings_compact() -> int:
    """Merge the embedding-cache shards of the active reward model's backbone (runs on the gpu queue,
    beside the fits that write them)."""
    from feedback_app.services.retention import embeddings_compact

    return embeddings_compact()


@shared_task
def model_store_prune() -> int:
    """Apply retention to MODEL_STORE and bound the embedding cache (daily, on the gpu queue beside
    the fits that write them); return how many versions were pruned."""
    from feedback_app.services.retention import model_store_prune

    report = model_store_prune()
    return len(report.reward_models) + len(report.policies)


@shared_task
def label_hours_close() -> int:
    """Add the labels made up to a minute ago to their hours' counts (every minute); return how many minutes closed."""
    from feedback_app.services.label_tally import label_hours_close

    return label_hours_close()


@shared_task
def quality_tally_close() -> int:
    """Add the comparisons completed since the last close to the quality tallies (every 15 seconds); return how many."""
    from feedback_app.services.quality_tally import quality_tally_close

    return quality_tally_close()


@shared_task
def dashboard_push(campaign_id: int | None = None) -> None:
    """Push one campaign's dashboard counters (a label arrived), or every campaign's (the periodic
    push, so rates decay on screen even when no label arrives)."""
    from feedback_app import events

    if campaign_id is None:
        events.dashboards_push()
    else:
        events.dashboard_push_for_labels(campaign_id=campaign_id)


@worker_ready.connect
def _fail_runs_of_dead_predecessor(sender, **kwargs) -> None:
    """A worker that starts under a name fails the runs an earlier process of that name left running."""
    from feedback_app.services.training_runs import checkpoints_remove_abandoned, training_runs_fail_orphaned

    training_runs_fail_orphaned(worker=sender.hostname)
    checkpoints_remove_abandoned()


@worker_shutting_down.connect
def _stop_runs_at_shutdown(sender, **kwargs) -> threading.Thread:
    """A worker asked to stop fails the runs it trains, so that each ends at its next step and the worker stops within the
    studio's grace: a DPO run takes many minutes on a CPU, and the worker used to be killed in the middle of it.

    Celery sends this from the main process's signal handler, which may have interrupted that thread's own use of the
    database; the runs are failed on a thread of their own, with its own connection, while the pool finishes its tasks.
    """
    from feedback_app.services.training_runs import training_runs_fail_orphaned

    def stop() -> None:
        from django.db import connection

        try:
            training_runs_fail_orphaned(worker=sender, reason="the studio stopped its worker {worker} while this run was training")
        except Exception:  # the run is failed when the worker starts again, as after a crash
            logger.exception("could not stop the training runs of %s as it shuts down", sender)
        finally:
            connection.close()

    thread = threading.Thread(target=stop, name="runs-stop", daemon=True)
    thread.start()
    return thread


@worker_ready.connect
def _close_counts_at_start(sender, **kwargs) -> None:
    """A worker that starts asks for the closes at once, not at beat's first tick a minute later: after a stop, the pages
    would read every label made meanwhile live until then. A close is one at a time and does nothing twice, so the
    workers that start together ask harmlessly."""
    label_hours_close.delay()
    quality_tally_close.delay()


@shared_task(acks_late=True)
def import_job_execute(job_id: int) -> None:
    """Import one uploaded file in chunks; a redelivered message does nothing (the job is claimed). A worker asked to stop
    ends it between two chunks, and the job waits in the queue for the next."""
    from feedback_app.services.import_jobs import import_job_execute
    from feedback_app.worker_stop import worker_stopping

    import_job_execute(job_id=job_id, should_stop=worker_stopping)


@shared_task
def import_jobs_reap() -> int:
    """Fail imports whose worker died, re-send lost ones, and remove what abandoned imports staged."""
    from feedback_app.services.import_jobs import import_jobs_reap

    return import_jobs_reap()
