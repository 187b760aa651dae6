"""Leases and labels under concurrent raters, on whichever database the suite runs on.

On PostgreSQL this exercises SELECT ... FOR UPDATE SKIP LOCKED; on SQLite the IMMEDIATE
transactions that serialise writers.
"""

import threading
from collections import Counter

import pytest
from django.db import close_old_connections, connection

from feedback_app.models import Assignment, Comparison, PreferenceLabel
from feedback_app.services.labeling import LabelSubmission, label_record
from feedback_app.services.leasing import assignment_lease_next
from feedback_app.selectors.campaigns import campaign_default

pytestmark = pytest.mark.django_db(transaction=True)


def _run_threads(target, args_list):
    errors = []

    def wrapped(*args):
        try:
            target(*args)
        except Exception as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=wrapped, args=args) for args in args_list]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors


def test_concurrent_raters_never_over_collect(make_user, make_comparisons):
    """12 raters label 10 comparisons needing 3 labels each, all at once."""
    make_comparisons(10, required_labels=3)
    raters = [make_user() for _ in range(12)]
    acknowledged = Counter()
    lock = threading.Lock()

    def work(rater):
        close_old_connections()
        while True:
            assignment = assignment_lease_next(campaign=campaign_default(), rater=rater)
            if assignment is None:
                return
            _, created = label_record(campaign=campaign_default(), rater=rater, comparison_id=assignment.comparison_id, submission=LabelSubmission(choice="left"))
            with lock:
                acknowledged[assignment.comparison_id] += int(created)

    _run_threads(work, [(r,) for r in raters])
    assert PreferenceLabel.objects.count() == sum(acknowledged.values()) == 30
    for comparison in Comparison.objects.all():
        assert comparison.label_count == 3 == comparison.labels.count()
        assert comparison.status == Comparison.Status.COMPLETE
    pairs = list(PreferenceLabel.objects.values_list("comparison_id", "rater_id"))
    assert len(pairs) == len(set(pairs))


def test_concurrent_leases_hold_distinct_slots(make_user, make_comparisons):
    """Many raters leasing at once never hold more slots than a comparison has."""
    make_comparisons(5, required_labels=2)
    raters = [make_user() for _ in range(16)]
    _run_threads(lambda r: (close_old_connections(), assignment_lease_next(campaign=campaign_default(), rater=r)), [(r,) for r in raters])
    held = Counter(Assignment.objects.filter(status=Assignment.Status.LEASED).values_list("comparison_id", flat=True))
    assert sum(held.values()) == 10  # 5 comparisons x 2 slots, the other 6 raters got nothing
    assert all(n <= 2 for n in held.values())


def test_double_submit_in_parallel_stores_one_label(rater, make_comparisons):
    """The same submission sent twice at once (a double click) stores one label."""
    (comparison,) = make_comparisons(1)
    assignment_lease_next(campaign=campaign_default(), rater=rater)
    results = []

    def submit():
        close_old_connections()
        results.append(label_record(campaign=campaign_default(), rater=rater, comparison_id=comparison.pk, submission=LabelSubmission(choice="right", strength=1))[1])

    _run_threads(submit, [() for _ in range(6)])
    assert sorted(results) == [False] * 5 + [True]
    assert PreferenceLabel.objects.count() == 1


def test_two_campaigns_under_concurrent_raters_keep_their_own_slots_and_gold(make_user, admin_user):
    """Raters of two campaigns label at once, each with its gold rate: nobody leases outside their campaign, nothing over-collects."""
    from feedback_app.models import Prompt, Response, Role
    from feedback_app.services.campaigns import campaign_create, campaign_settings_update, member_set
    from feedback_app.services.quality import comparison_mark_gold

    default = campaign_default()
    billing = campaign_create(slug="billing", name="Billing", actor=admin_user)
    campaign_settings_update(campaign=default, user=admin_user, gold_rate=0.0)
    campaign_settings_update(campaign=billing, user=admin_user, gold_rate=0.5)
    for campaign, n in ((default, 6), (billing, 6)):
        for i in range(n):
            prompt = Prompt.objects.create(campaign=campaign, text=f"{campaign.slug} request {i}")
            a, b = (Response.objects.create(prompt=prompt, text=f"{campaign.slug} reply {k}{i}") for k in "ab")
            comparison = Comparison.objects.create(prompt=prompt, response_a=a, response_b=b, required_labels=2)
            if campaign == billing and i < 2:
                comparison_mark_gold(comparison=comparison, winner="a", user=admin_user)
    default = campaign_default()
    billing.refresh_from_db()
    raters = {"default": [make_user() for _ in range(5)], "billing": [make_user() for _ in range(5)]}
    for rater in raters["billing"]:
        member_set(campaign=billing, user=rater, role=Role.RATER)
    seen = {"default": set(), "billing": set()}
    lock = threading.Lock()

    def work(name, campaign, rater):
        close_old_connections()
        while True:
            assignment = assignment_lease_next(campaign=campaign, rater=rater)
            if assignment is None:
                return
            with lock:
                seen[name].add(Comparison.objects.filter(pk=assignment.comparison_id).values_list("prompt__campaign_id", flat=True).get())
            label_record(campaign=campaign, rater=rater, comparison_id=assignment.comparison_id, submission=LabelSubmission(choice="left"))

    _run_threads(work, [("default", default, r) for r in raters["default"]] + [("billing", billing, r) for r in raters["billing"]])
    assert seen == {"default": {default.pk}, "billing": {billing.pk}}
    plain = Comparison.objects.filter(is_gold=False)
    assert sorted((c.label_count, c.labels.count()) for c in plain) == [(2, 2)] * 10  # 6 + 4 comparisons, two labels each
    gold = Comparison.objects.filter(is_gold=True)
    assert all(c.labels.count() <= 5 for c in gold)  # a gold pair has no slot limit, but each rater answers it once at most
    assert not PreferenceLabel.objects.filter(comparison__in=gold, rater__in=raters["default"]).exists()
    pairs = list(PreferenceLabel.objects.values_list("comparison_id", "rater_id"))
    assert len(pairs) == len(set(pairs))


def _recording(name: str, pids: dict, results: list, errors: list, call):
    """A thread's target: on a connection of its own, record its backend's pid as ``pids[name]``, then run ``call`` and keep
    what it returns in ``results`` (what it raises in ``errors``)."""

    def run():
        close_old_connections()
        try:
            pids[name] = connection.cursor().connection.info.backend_pid
            results.append(call())
        except Exception as exc:  # surfaced by the test
            errors.append(exc)
        finally:
            connection.close()

    return run


def _started(target, pids: dict, name: str) -> threading.Thread:
    """Start a thread running ``target`` and return it once it has recorded its backend's pid as ``pids[name]``."""
    thread = threading.Thread(target=target)
    thread.start()
    for _ in range(500):
        if name in pids:
            break
        threading.Event().wait(0.01)
    return thread


def _blocked_by(pid: int, blocker: int) -> None:
    """Wait until PostgreSQL backend ``pid`` waits for a lock that ``blocker`` holds."""
    import time

    with connection.cursor() as c:
        for _ in range(500):
            c.execute("SELECT %s = ANY(pg_blocking_pids(%s))", [blocker, pid])
            if c.fetchone()[0]:
                return
            time.sleep(0.01)
    raise AssertionError(f"backend {pid} never waited for {blocker}")


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks and deadlocks are PostgreSQL's")
def test_a_lease_that_waits_lets_go_of_a_comparison_it_found_full(make_user, make_comparisons):
    """A rater waiting for a locked comparison that turns out full lets it go before waiting for the next: holding it
    while waiting, they and another transaction each held what the other waited for (PostgreSQL's deadlock; it
    failed the concurrent-raters scenario now and then)."""
    from datetime import timedelta

    from django.db import transaction
    from django.utils import timezone

    first, second = make_comparisons(2)
    rater, other = make_user(), make_user()
    pids, errors, leased = {}, [], []
    a_locked, b_locked, a_commit, b_go = (threading.Event() for _ in range(4))

    def holder(name, comparison, locked, go, then):
        close_old_connections()
        try:
            with transaction.atomic():
                pids[name] = connection.connection.info.backend_pid
                Comparison.objects.select_for_update().get(pk=comparison.pk)
                locked.set()
                go.wait(10)
                then()
        except Exception as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    def fill_first():  # another rater's lease takes the first comparison's only slot
        now = timezone.now()
        Assignment.objects.create(comparison=first, rater=other, a_on_left=True, leased_at=now, lease_expires_at=now + timedelta(minutes=10))

    def lock_first():  # the other transaction now wants the first comparison, while it holds the second
        with connection.cursor() as c:
            c.execute("SET LOCAL lock_timeout = '5s'")
        Comparison.objects.select_for_update().get(pk=first.pk)

    lease = _recording("rater", pids, leased, errors, lambda: assignment_lease_next(campaign=campaign_default(), rater=rater))

    threads = [threading.Thread(target=holder, args=("a", first, a_locked, a_commit, fill_first)),
               threading.Thread(target=holder, args=("b", second, b_locked, b_go, lock_first))]
    for t in threads:
        t.start()
    assert a_locked.wait(10) and b_locked.wait(10)
    leaser = _started(lease, pids, "rater")  # both comparisons locked: it skips them, then waits for the first
    _blocked_by(pids["rater"], pids["a"])
    a_commit.set()  # the first is full now: the rater lets it go and waits for the second
    threads[0].join(timeout=10)
    assert not errors, errors
    _blocked_by(pids["rater"], pids["b"])
    b_go.set()  # the second's holder takes the first: free, since the rater let it go
    for t in [*threads, leaser]:
        t.join(timeout=30)
    assert not errors, errors
    assert [a.comparison_id for a in leased] == [second.pk]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks are PostgreSQL's")
def test_label_and_next_commits_the_label_before_it_waits_for_a_locked_comparison(make_user, make_comparisons):
    """The combined call leases the next comparison in its label's transaction, never waiting there: when the only
    free comparison is locked by another transaction, the label commits first and the lease then waits, alone."""
    from django.db import transaction

    from feedback_app.services.labeling import label_record_and_lease_next

    labelled, locked = make_comparisons(2)
    rater = make_user()
    held = assignment_lease_next(campaign=campaign_default(), rater=rater)
    assert held.comparison_id == labelled.pk
    pids, errors, results = {}, [], []
    holding, release = threading.Event(), threading.Event()

    def holder():
        close_old_connections()
        try:
            with transaction.atomic():
                pids["holder"] = connection.cursor().connection.info.backend_pid
                Comparison.objects.select_for_update().get(pk=locked.pk)
                holding.set()
                release.wait(10)
        finally:
            connection.close()

    label_and_next = _recording("rater", pids, results, errors, lambda: label_record_and_lease_next(
        campaign=campaign_default(), rater=rater, comparison_id=labelled.pk, submission=LabelSubmission(choice="left")))

    hold = threading.Thread(target=holder)
    hold.start()
    assert holding.wait(10)
    call = _started(label_and_next, pids, "rater")
    _blocked_by(pids["rater"], pids["holder"])
    assert PreferenceLabel.objects.filter(comparison=labelled, rater=rater).exists()  # committed while the lease waits
    release.set()
    hold.join(timeout=10)
    call.join(timeout=30)
    assert not errors, errors
    (label, created, following), = results
    assert created and label.comparison_id == labelled.pk and following.comparison_id == locked.pk


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks are PostgreSQL's")
@pytest.mark.parametrize("again", ["same", "different"])
def test_a_label_that_waited_for_the_raters_own_label_reads_it_after_the_wait(rater, make_comparisons, again):
    """A label that waits for its comparison's lock while the same rater's label of it commits (a double click) reads that
    label once the lock is its own: the same answer gives the stored label back, a different one is refused as a conflict.
    The statement that locks the comparison also reads the rater's assignment, in the snapshot it began with; after a wait
    for a row that was written meanwhile, the assignment is read again."""
    from django.db import transaction

    from feedback_app.services.labeling import LabelConflict

    (comparison,) = make_comparisons(1)
    assignment_lease_next(campaign=campaign_default(), rater=rater)
    pids, errors, firsts, seconds = {}, [], [], []
    holding, release = threading.Event(), threading.Event()

    def label(choice: str):
        return label_record(campaign=campaign_default(), rater=rater, comparison_id=comparison.pk, submission=LabelSubmission(choice=choice))

    def label_and_hold():  # the first label's transaction stays open until the second waits for its lock
        with transaction.atomic():
            stored = label("left")
            holding.set()
            release.wait(10)
        return stored

    one = _started(_recording("first", pids, firsts, errors, label_and_hold), pids, "first")
    assert holding.wait(10)
    two = _started(_recording("second", pids, seconds, errors, lambda: label("left" if again == "same" else "right")), pids, "second")
    _blocked_by(pids["second"], pids["first"])
    release.set()
    one.join(timeout=10)
    two.join(timeout=30)
    ((stored, created),) = firsts
    assert created
    if again == "same":
        assert not errors, errors
        assert seconds == [(stored, False)]
    else:
        assert [type(e) for e in errors] == [LabelConflict] and errors[0].label == stored
    assert PreferenceLabel.objects.filter(comparison=comparison).count() == 1
