"""Leases and labels under concurrent raters, on whichever database the suite runs on.

On PostgreSQL this exercises SELECT ... FOR UPDATE SKIP LOCKED; on SQLite the IMMEDIATE
transactions that serialise writers.
"""

import threading
from collections import Counter

import pytest
from django.db import close_old_connections, connection

from feedback_app.models import Assignment, Comparison, PreferenceLabel
from feedback_app.services.labeling import LabelSubmission, assignment_lease_next, label_record
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
