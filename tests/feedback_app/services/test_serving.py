"""How a policy version answers (its serving mode, the reward model that reranks) and changing its mode, audited."""

import pytest

from feedback_app.models import AuditEntry, PolicyVersion, RewardModelVersion
from feedback_app.services.serving import RerankUnavailable, ServingModeInvalid, policy_serving, version_serving_mode_set

pytestmark = pytest.mark.django_db


@pytest.fixture
def reranked():
    return PolicyVersion.objects.create(name="policy-00004", path="policy/policy-00004", serving_mode="rerank")


def test_a_version_answers_in_its_own_mode_unless_asked_for_another(reranked):
    """Rerank uses the active reward model, whichever it is now; "sample" needs none."""
    rm = RewardModelVersion.objects.create(name="rm-2", path="reward/rm-2", status="active")
    assert policy_serving(version=reranked) == ("rerank", rm)
    assert policy_serving(version=reranked, mode="sample") == ("sample", None)
    sampled = PolicyVersion.objects.create(name="policy-base", path="policy/policy-base")
    assert policy_serving(version=sampled) == ("sample", None)
    assert policy_serving(version=sampled, mode="rerank") == ("rerank", rm)


def test_without_a_reward_model_its_own_rerank_samples_and_an_asked_for_rerank_is_refused(reranked):
    assert policy_serving(version=reranked) == ("sample", None)
    with pytest.raises(RerankUnavailable, match="no.* active|none is active"):
        policy_serving(version=reranked, mode="rerank")
    with pytest.raises(ServingModeInvalid, match="got 'best'"):
        policy_serving(version=reranked, mode="best")


def test_changing_the_mode_is_audited_once_and_a_bad_mode_is_refused(reranked, researcher):
    """A change writes one audit entry with the previous mode; setting the same mode again changes and records nothing."""
    assert version_serving_mode_set(version=reranked, mode="sample", user=researcher, reason="admin") is True
    assert PolicyVersion.objects.get(pk=reranked.pk).serving_mode == "sample" == reranked.serving_mode
    assert version_serving_mode_set(version=reranked, mode="sample", user=researcher) is False
    (entry,) = AuditEntry.objects.filter(action="policyversion.serving_mode")
    assert (entry.actor, entry.target, entry.details) == (researcher, "policy-00004", {"previous": "rerank", "mode": "sample", "reason": "admin"})
    with pytest.raises(ServingModeInvalid, match="sample, rerank, got 'greedy'"):
        version_serving_mode_set(version=reranked, mode="greedy", user=researcher)
