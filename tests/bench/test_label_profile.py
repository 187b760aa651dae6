"""bench/label_profile: the objects a label leaves for the garbage collector are counted, and a label leaves none."""

import pytest

from bench.label_profile import Rater, fill, left_for_the_collector

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_label_leaves_no_object_for_the_collector():
    rater = Rater(fill(12), combined=True, wsgi=True)
    rater.round()  # the first call's one-time work first

    def rounds():
        for _ in range(4):
            rater.round()

    assert left_for_the_collector(4, rounds) == 0


def test_objects_in_reference_cycles_are_counted_a_round():
    def rounds():
        for _ in range(5):
            first, second = [], []
            first.append(second)
            second.append(first)  # two lists that only the collector frees

    assert left_for_the_collector(5, rounds) == 2


def test_the_timed_rounds_meet_a_history_and_statistics_taken_after_the_warm_up():
    from django.db import connection

    from feedback_app.models import Comparison, PreferenceLabel
    from bench.label_profile import history_add, rater_ready

    rater = Rater(fill(30), combined=True, wsgi=True)
    opened = set(Comparison.objects.values_list("pk", flat=True))
    history_add(200)
    history_add(200)  # a history already there is kept, not added again
    history = PreferenceLabel.objects.count()
    assert history >= 200 and not Comparison.objects.exclude(pk__in=opened).exclude(status=Comparison.Status.COMPLETE).exists()
    rater_ready(rater, warmup=12)
    assert PreferenceLabel.objects.count() == history + 12
    if connection.vendor == "postgresql":  # the statistics count the warm-up's labels too
        with connection.cursor() as cursor:
            cursor.execute("SELECT reltuples FROM pg_class WHERE relname = 'feedback_app_preferencelabel'")
            assert cursor.fetchone()[0] == history + 12


def test_the_database_cpu_counts_every_process_of_the_server():
    """The pool hands its connections out in turn: what one backend did is counted, whichever connection reads the figure."""
    from django.db import connection

    from bench.label_profile import database_side
    from bench.load_generators import database_server

    if connection.vendor != "postgresql" or database_server() is None:
        pytest.skip("a PostgreSQL server on this machine")
    import psycopg

    params = connection.get_connection_params()
    params.pop("cursor_factory", None), params.pop("context", None)

    def run():
        with psycopg.connect(**params, autocommit=True) as other:  # another backend than any of Django's
            other.execute("SELECT count(*) FROM generate_series(1, 3000000)").fetchone()

    assert database_side(1, run)["db_cpu_ms_per_label"] >= 50
