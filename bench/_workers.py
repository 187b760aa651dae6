"""The loop bench's Celery workers and its DPO load: the command line of a bench worker, a DPO run
started on the "policy" queue, its state in a line, and its end when the bench is over.

The policy worker gets what ``manage.py serve`` gives it: one torch thread unless TORCH_THREADS
says otherwise, and a lower priority (POLICY_WORKER_NICE), since it shares the cores with the refits.
"""

from __future__ import annotations

import time


def worker_command(python: str, queue: str) -> list[str]:
    """Return the command line of a bench worker on ``queue``: one process (solo pool), named ``<queue>@bench``."""
    return [python, "-m", "celery", "-A", "feedback_app", "worker", "-Q", queue, "-n", f"{queue}@bench", "--pool", "solo",
            "--loglevel", "WARNING", "--without-gossip", "--without-mingle"]


def policy_worker_env(env: dict[str, str]) -> dict[str, str]:
    """Return ``env`` as ``manage.py serve`` adjusts it for the policy worker (TORCH_THREADS 1 unless set, WORKER_NICE)."""
    from feedback_app.management.commands.serve import policy_worker_env as serve_policy_env

    return serve_policy_env(env)


def dpo_env(steps: int, online_prompts: int) -> dict[str, str]:
    """Return the settings that size the bench's DPO run, and stop the cadence from queueing another."""
    return {"DPO_MAX_STEPS": str(steps), "DPO_ONLINE_PROMPTS": str(online_prompts), "POLICY_EVERY_N_LABELS": "0"}


def dpo_describe(status: str, progress: dict | None) -> str:
    """Return a run's state in a few words: its status, and its phase and step when it reported one."""
    progress = progress or {}
    phase = progress.get("phase")
    if not phase:
        return status
    step, total = progress.get("step"), progress.get("total_steps")
    where = f"{phase} {step}/{total}" if step is not None and total else phase
    return f"{status}, {where}" + (", paused for a refit" if progress.get("paused") else "")


def dpo_start(*, timeout: float = 600) -> int:
    """Write the base policy if needed, queue a DPO run and return its id once the policy worker runs it.

    Call once an active reward model exists (a DPO run judges its policy with it).
    """
    from feedback_app.models import TrainingRun
    from feedback_app.services.training_runs import training_run_request
    from feedback_app.services.versions import policy_active_or_base

    t = time.perf_counter()
    policy = policy_active_or_base()
    print(f"policy {policy.name} ready in {time.perf_counter() - t:.1f} s", flush=True)
    run = training_run_request(kind=TrainingRun.Kind.POLICY_DPO, trigger=TrainingRun.Trigger.CLI)
    deadline = time.perf_counter() + timeout
    while run.status == TrainingRun.Status.QUEUED:
        if time.perf_counter() > deadline:
            raise SystemExit(f"the policy worker did not claim DPO run {run.pk} within {timeout:.0f} s")
        time.sleep(0.5)
        run.refresh_from_db()
    if run.status != TrainingRun.Status.RUNNING:
        raise SystemExit(f"DPO run {run.pk} ended before the rounds began: {run.status} {run.error}")
    print(f"DPO run {run.pk} ({', '.join(f'{k} {v}' for k, v in sorted(dpo_env_now().items()))}): {dpo_state(run.pk)[1]}", flush=True)
    return run.pk


def dpo_env_now() -> dict[str, int]:
    """Return the DPO sizing this process's settings hold."""
    from django.conf import settings

    return {name: getattr(settings, name) for name in ("DPO_MAX_STEPS", "DPO_ONLINE_PROMPTS", "DPO_MAX_PAIRS", "DPO_EVAL_PROMPTS")}


def dpo_state(run_id: int) -> tuple[bool, str]:
    """Return (whether the run is running, its state in a few words)."""
    from feedback_app.models import TrainingRun

    run = TrainingRun.objects.get(pk=run_id)
    text = dpo_describe(run.status, run.progress)
    if run.status == TrainingRun.Status.FAILED:
        text += f" ({run.error.strip().splitlines()[-1][:200] if run.error.strip() else 'no error'})"
    return run.status == TrainingRun.Status.RUNNING, text


def dpo_stop(run_id: int) -> str:
    """Fail the run if it still runs (its worker notices within a second and stops); return its final state."""
    from feedback_app.services.training_runs import training_run_fail

    training_run_fail(run_id=run_id, error="stopped by bench.loop_latency: the timed rounds are over")
    return dpo_state(run_id)[1]


def workers_wait_ready(redis_url: str, queues: list[str], *, timeout: float = 180) -> float:
    """Wait until a worker serves each of ``queues`` (its heartbeat, stamped once it consumes: after its start and the
    learning libraries' import), as a studio's workers are up before its raters arrive; return the seconds waited."""
    import redis

    from feedback_app.selectors.health import HEARTBEAT_KEY

    client = redis.Redis.from_url(redis_url)
    started, since = time.monotonic(), time.time()
    while missing := [q for q in queues if float(client.get(HEARTBEAT_KEY.format(queue=q)) or 0) < since]:
        if time.monotonic() - started > timeout:
            raise SystemExit(f"no worker served {', '.join(missing)} within {timeout:.0f} s")
        time.sleep(0.2)
    return time.monotonic() - started


def workers_work_done(since) -> dict:
    """Return what the learning workers finished from ``since`` (a datetime): reward versions, the labels the newest learned
    from and those none has learned yet (the default campaign's), policy versions, and the comparisons the reward models
    scored. On a full machine the workers take the CPU the web and the database leave them, so their CPU per label says
    little by itself; this says what they made of it."""
    from feedback_app.models import Comparison, PolicyVersion, RewardModelVersion
    from feedback_app.selectors.training import reward_labels_unlearned

    rewards = RewardModelVersion.objects.filter(created_at__gte=since)
    newest = rewards.order_by("-id").values_list("data_range", flat=True).first() or {}
    return {"reward_versions": rewards.count(), "labels_in_newest_reward_version": newest.get("n_labels") or 0,
            "labels_not_learned_at_the_end": reward_labels_unlearned(),
            "policy_versions": PolicyVersion.objects.filter(created_at__gte=since).count(),
            "comparisons_scored": Comparison.objects.filter(rm_prob_version__in=rewards).count()}
