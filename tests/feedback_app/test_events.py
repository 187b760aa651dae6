"""After-commit events: each schedules its tasks and pushes for the commit, nothing on a rollback; a broker that is down never fails the write."""

import pytest
from django.db import transaction
from kombu.exceptions import OperationalError

from feedback_app import tasks
from feedback_app.models import TrainingRun
from feedback_app.services.training_runs import training_run_request

pytestmark = pytest.mark.django_db


def test_a_run_requested_while_the_broker_is_down_is_saved_and_the_request_does_not_fail(monkeypatch, django_capture_on_commit_callbacks, caplog):
    def broker_down(*args):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6390. Connection refused.")

    monkeypatch.setattr(tasks.training_run_execute, "apply_async", lambda args, **kw: broker_down(*args))
    with django_capture_on_commit_callbacks(execute=True):
        run = training_run_request(kind=TrainingRun.Kind.REWARD_FAST, trigger=TrainingRun.Trigger.MANUAL)
    assert TrainingRun.objects.get(pk=run.pk).status == TrainingRun.Status.QUEUED
    assert "could not send feedback_app.tasks.training_run_execute" in caplog.text


TASKS = ["training_run_execute", "comparisons_supply", "comparisons_rm_score", "import_job_execute"]


class Boom(Exception):
    pass


@pytest.fixture
def heard(monkeypatch):
    """Record the tasks events send (by name, with their arguments) and the pushes (group, message type)."""
    from feedback_app import events

    log = []
    for name in TASKS:
        monkeypatch.setattr(getattr(tasks, name), "delay", lambda *args, name=name: log.append(("task", name, args)))
        monkeypatch.setattr(getattr(tasks, name), "apply_async", lambda args, name=name, **kw: log.append(("task", name, tuple(args))))
    monkeypatch.setattr(events, "_group_send", lambda group, message: log.append(("push", group, message["type"])))
    return log


def _run(pk=None):
    return TrainingRun.objects.create(kind=TrainingRun.Kind.REWARD_FAST) if pk is None else TrainingRun.objects.get(pk=pk)


def _policy(previous: bool):
    from feedback_app.models import PolicyVersion

    old = PolicyVersion.objects.create(name="policy-1", path="policy/policy-1", status="retired") if previous else None
    return PolicyVersion.objects.create(name="policy-2", path="policy/policy-2", status="active"), old


def _reward():
    from feedback_app.models import RewardModelVersion

    return RewardModelVersion.objects.create(name="rm-1", path="reward/rm-1", status="active"), None


def _cases():
    """Each event, called with what it needs, and what it should do once the write commits."""
    from feedback_app import events

    def queued():
        run = _run()
        events.training_run_queued(run=run)
        return [("task", "training_run_execute", (run.pk,))]

    def changed():
        events.training_run_changed(run=_run())

    def activated(make):
        def call():
            version, previous = make()
            events.version_activated(version=version, previous=previous)
        return call

    return {
        "label_recorded": (events.label_recorded, [("push", "dashboard", "dashboard.update")]),
        "training_run_queued": (queued, None),
        "training_run_changed": (changed, [("push", "dashboard", "run.progress")]),
        "a policy replaces another": (activated(lambda: _policy(True)),
                                      [("push", "raters", "policy.swapped"), ("push", "dashboard", "dashboard.update"), ("task", "comparisons_supply", ())]),
        "the first policy": (activated(lambda: _policy(False)), [("push", "raters", "policy.swapped"), ("push", "dashboard", "dashboard.update")]),
        "a reward model": (activated(_reward), [("task", "comparisons_rm_score", ()), ("push", "dashboard", "dashboard.update")]),
        "comparisons_supplied": (lambda: events.comparisons_supplied(count=3), [("push", "raters", "queue.changed")]),
        "import_job_queued": (lambda: events.import_job_queued(job_id=41), [("task", "import_job_execute", (41,))]),
        "user_access_changed": (lambda: events.user_access_changed(user_id=7, session_key="s"), [("push", "user.7", "access.changed")]),
    }


CASES = ["label_recorded", "training_run_queued", "training_run_changed",
         "a policy replaces another", "the first policy", "a reward model", "comparisons_supplied", "import_job_queued", "user_access_changed"]


@pytest.mark.parametrize("what", ["a reward model goes live", "a policy goes live", "a run succeeds", "a run starts", "labels"])
def test_a_dashboard_push_carries_the_chart_data_when_the_charts_changed(what, monkeypatch, django_capture_on_commit_callbacks):
    """A swap and a run that succeeded redraw an open dashboard's model charts; a label's or a run's other pushes do not
    recompute them."""
    from feedback_app import events

    pushed = []
    monkeypatch.setattr(events, "_group_send", lambda group, message: pushed.append(message["html"]))
    monkeypatch.setattr(tasks.comparisons_rm_score, "delay", lambda *args: None)
    monkeypatch.setattr(tasks.comparisons_supply, "delay", lambda *args: None)
    with django_capture_on_commit_callbacks(execute=True):
        if what == "a reward model goes live":
            events.version_activated(version=_reward()[0], previous=None)
        elif what == "a policy goes live":
            events.version_activated(version=_policy(False)[0], previous=None)
        elif what.startswith("a run"):
            events.training_run_changed(run=TrainingRun.objects.create(kind="reward_fast", status="succeeded" if "succeeds" in what else "running"))
        else:
            events.dashboard_push()
    carries = [('id="chart-data"' in html) for html in pushed if 'id="counters"' in html or 'id="training-run"' in html]
    assert carries == [what in ("a reward model goes live", "a policy goes live", "a run succeeds")]


@pytest.mark.parametrize("case", CASES)
def test_each_event_schedules_its_work_for_the_commit(case, heard, django_capture_on_commit_callbacks):
    """Nothing is sent while the transaction is open; once it commits, exactly the event's tasks and pushes."""
    call, expected = _cases()[case]
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with transaction.atomic():
            returned = call()
            assert heard == []
    assert callbacks and heard == (returned if expected is None else expected)


@pytest.mark.parametrize("case", CASES)
def test_an_event_in_a_rolled_back_write_does_nothing(case, heard, django_capture_on_commit_callbacks):
    call, _ = _cases()[case]
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(Boom), transaction.atomic():
            call()
            raise Boom
    assert callbacks == [] and heard == []


def test_the_dashboard_push_of_labels_is_throttled(heard, django_capture_on_commit_callbacks):
    """Many labels within DASHBOARD_THROTTLE_SECONDS push the dashboard once; when the throttle lapses, once more."""
    from django.core.cache import cache

    from feedback_app import events

    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(5):
            events.label_recorded()
    assert heard == [("push", "dashboard", "dashboard.update")]
    # what the caches do after DASHBOARD_THROTTLE_SECONDS (the default campaign's throttles: the web process's, the worker's)
    cache.delete_many(["feedback_app:dashboard-push:1", "feedback_app:dashboard-pushed:1"])
    with django_capture_on_commit_callbacks(execute=True):
        events.label_recorded()
        events.label_recorded()
    assert heard[1:] == [("push", "dashboard", "dashboard.update")]


def test_a_worker_pushes_once_for_the_labels_of_many_web_processes(heard, django_capture_on_commit_callbacks):
    """Each web process asks for a push at most every DASHBOARD_THROTTLE_SECONDS; the worker that renders the counters pushes
    at most that often for all of them, so ten web processes do not read the counters ten times as often."""
    from django.core.cache import cache

    from feedback_app import events

    for _ in range(3):  # three web processes, each with its own throttle
        cache.delete("feedback_app:dashboard-push:1")
        with django_capture_on_commit_callbacks(execute=True):
            events.label_recorded()
    assert heard == [("push", "dashboard", "dashboard.update")]
    events.dashboards_push()  # the periodic push is not throttled: rates decay on screen
    assert heard[1:] == [("push", "dashboard", "dashboard.update")]


def test_an_import_queued_while_the_broker_is_down_is_logged_not_raised(monkeypatch, django_capture_on_commit_callbacks, caplog):
    """The job stays queued for the import reaper to send again; the upload's request does not fail."""
    from feedback_app import events

    def broker_down(*args):
        raise OperationalError("Connection refused.")

    monkeypatch.setattr(tasks.import_job_execute, "delay", broker_down)
    with django_capture_on_commit_callbacks(execute=True):
        events.import_job_queued(job_id=41)
    assert "could not send feedback_app.tasks.import_job_execute" in caplog.text


def test_a_push_that_fails_is_logged_not_raised(monkeypatch, caplog):
    """Pushes are hints: a channel layer that is down costs a warning."""
    from channels import layers

    from feedback_app import events

    class Down:
        async def group_send(self, group, message):
            raise ConnectionError("Redis is down")

    monkeypatch.setattr(layers, "get_channel_layer", lambda *args: Down())
    events.broadcast("dashboard", "dashboard.update", "<p>")
    assert "push to dashboard failed: Redis is down" in caplog.text


@pytest.mark.parametrize(("kind", "queue"), [("policy_dpo", "policy"), ("reward_fast", "gpu"), ("reward_full", "gpu")])
def test_a_queued_run_is_sent_to_the_queue_of_its_kind(kind, queue, monkeypatch, django_capture_on_commit_callbacks):
    """DPO runs go to the "policy" worker, reward runs to "gpu": a long DPO run never holds up a refit."""
    sent = []
    monkeypatch.setattr(tasks.training_run_execute, "apply_async", lambda args, **kw: sent.append((tuple(args), kw.get("queue"))))
    with django_capture_on_commit_callbacks(execute=True):
        run = training_run_request(kind=kind, trigger=TrainingRun.Trigger.CLI)
    assert sent == [((run.pk,), queue)]


@pytest.mark.parametrize(("kind", "queue"), [("policy_dpo", "policy"), ("reward_fast", "gpu")])
def test_a_resent_run_goes_to_the_same_queue_as_its_first_message(kind, queue, monkeypatch):
    from feedback_app import events

    sent = []
    monkeypatch.setattr(tasks.training_run_execute, "apply_async", lambda args, **kw: sent.append((tuple(args), kw.get("queue"))))
    events.training_run_resend(run_id=12, kind=kind)
    assert sent == [((12,), queue)]


def test_the_periodic_push_reaches_every_campaign_but_the_archived(heard):
    from feedback_app import events
    from feedback_app.models import Campaign
    from feedback_app.services.campaigns import campaign_create

    billing = campaign_create(slug="billing", name="Billing")
    old = campaign_create(slug="old", name="Old")
    Campaign.objects.filter(pk=old.pk).update(state=Campaign.State.ARCHIVED)
    events.dashboards_push()
    assert heard == [("push", "dashboard", "dashboard.update"), ("push", f"dashboard.{billing.pk}", "dashboard.update")]


def test_comparisons_imported_into_a_campaign_are_announced_to_its_raters_only(heard, django_capture_on_commit_callbacks):
    from feedback_app.services.campaigns import campaign_create
    from feedback_app.services.imports import prompts_import

    billing = campaign_create(slug="billing", name="Billing")
    with django_capture_on_commit_callbacks(execute=True):
        prompts_import(data=b'{"prompt": "Refund my invoice", "responses": ["Yes.", "No."]}', filename="p.jsonl", campaign_id=billing.pk)
    assert ("push", f"raters.{billing.pk}", "queue.changed") in heard and not any(group == "raters" for _, group, *_ in heard)
