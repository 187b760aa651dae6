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
