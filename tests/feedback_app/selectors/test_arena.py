"""One policy's human arena record against another: either order, from its side; imported votes left out."""

import pytest

from feedback_app.models import PolicyVersion, PreferenceLabel
from feedback_app.selectors.arena import arena_record
from tests.feedback_app.services.test_arena_gate import arena_comparison

pytestmark = pytest.mark.django_db


def test_votes_in_either_order_count_from_the_players_side(rater):
    old = PolicyVersion.objects.create(name="policy-base", path="policy/policy-base")
    new = PolicyVersion.objects.create(name="policy-00001", path="policy/policy-00001", parent=old)
    other = PolicyVersion.objects.create(name="policy-00002", path="policy/policy-00002", parent=old)
    for first, second, winner in [(new, old, "a"), (old, new, "a"), (old, new, "b"), (new, old, "tie"), (old, new, "both_bad"), (other, old, "a")]:
        PreferenceLabel.objects.create(comparison=arena_comparison(first, second), rater=rater, winner=winner)
    PreferenceLabel.objects.create(comparison=arena_comparison(new, old), rater=None, winner="b")  # imported: not a human vote
    assert arena_record(player="policy-00001", opponent="policy-base") == {"wins": 2, "losses": 1, "ties": 1, "both_bad": 1}


def test_a_mode_keeps_only_the_votes_served_in_it_and_none_counts_them_all(rater):
    """Comparison.policy_mode filters; "" picks the comparisons made before modes were recorded."""
    old = PolicyVersion.objects.create(name="policy-base", path="policy/policy-base")
    new = PolicyVersion.objects.create(name="policy-00001", path="policy/policy-00001", parent=old)
    for mode, winner in [("sample", "a"), ("rerank", "a"), ("rerank", "tie"), ("", "b")]:
        comparison = arena_comparison(new, old)
        comparison.policy_mode = mode
        comparison.save()
        PreferenceLabel.objects.create(comparison=comparison, rater=rater, winner=winner)
    assert arena_record(player="policy-00001", opponent="policy-base", mode="rerank") == {"wins": 1, "losses": 0, "ties": 1, "both_bad": 0}
    assert arena_record(player="policy-00001", opponent="policy-base", mode="sample") == {"wins": 1, "losses": 0, "ties": 0, "both_bad": 0}
    assert arena_record(player="policy-00001", opponent="policy-base", mode="") == {"wins": 0, "losses": 1, "ties": 0, "both_bad": 0}
    assert arena_record(player="policy-00001", opponent="policy-base") == {"wins": 2, "losses": 1, "ties": 1, "both_bad": 0}
