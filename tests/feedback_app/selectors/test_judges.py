"""The routing judge, a judge's audits, its trust gate, and the training weights of AI labels (the circularity rule)."""

import pytest

from feedback_app.models import Comparison, PreferenceLabel
from feedback_app.selectors.judges import ai_label_weights, ai_labels_counted, judge_audits, judge_routing, judge_trust
from feedback_app.selectors.quality import people_agreement

pytestmark = pytest.mark.django_db


def test_no_routing_judge_while_ai_feedback_is_off(make_judge, settings):
    """An enabled routing judge routes only with AI_FEEDBACK on; a disabled one never does."""
    judge = make_judge()
    assert judge_routing() == judge
    settings.AI_FEEDBACK = False
    assert judge_routing() is None
    settings.AI_FEEDBACK = True
    judge.enabled = False
    judge.save()
    assert judge_routing() is None


def test_audits_pair_the_verdict_with_decisive_rater_labels_only(make_judge, make_audits, make_user):
    """Each decisive rater label is an audit; ties and both-bad labels, imported labels and abstentions are not."""
    judge = make_judge()
    comparisons = make_audits(judge, n=3, agree=2)
    PreferenceLabel.objects.create(comparison=comparisons[0], rater=make_user(), winner="tie")
    PreferenceLabel.objects.create(comparison=comparisons[0], winner="a")  # imported
    audits = judge_audits(judge=judge)
    assert len(audits) == 3 and sum(a["judge"] == a["people"] for a in audits) == 2
    PreferenceLabel.objects.create(comparison=comparisons[1], rater=make_user(), winner="a")  # a second rater, the same answer
    assert len(judge_audits(judge=judge)) == 4
    assert judge_audits(judge=judge, min_confidence=0.95) == []


def test_the_gate_stays_shut_below_the_minimum_of_audits(make_judge, make_audits, settings):
    """Perfect agreement over fewer than AI_MIN_AUDITS audits does not open the gate; the reason says how far it is."""
    settings.AI_MIN_AUDITS = 10
    judge = make_judge()
    make_audits(judge, n=9, agree=9)
    trust = judge_trust(judge=judge)
    assert not trust.trusted and trust.n_audits == 9 and "9 of 10" in trust.reason
    make_audits(judge, n=1, agree=1)
    assert judge_trust(judge=judge).trusted


def test_without_overlap_the_bar_is_ai_min_agreement(make_judge, make_audits, settings):
    """With no comparison labelled by two raters, the judge needs AI_MIN_AGREEMENT (0.65 by default)."""
    settings.AI_MIN_AUDITS = 20
    judge = make_judge()
    make_audits(judge, n=20, agree=13)  # 0.65
    trust = judge_trust(judge=judge)
    assert trust.people_agreement is None and trust.required == 0.65 and trust.trusted
    settings.AI_MIN_AGREEMENT = 0.7
    assert not judge_trust(judge=judge).trusted


def test_the_gate_switches_a_judge_off_and_on_with_its_newest_audits(make_judge, make_audits, make_user, make_comparisons, settings):
    """The bar is the raters' own agreement minus the margin; bad audits switch the judge off, good ones back on."""
    settings.AI_MIN_AUDITS, settings.AI_AUDIT_WINDOW, settings.AI_AGREEMENT_MARGIN = 10, 10, 0.05
    first, second = make_user(), make_user()
    for i, comparison in enumerate(make_comparisons(10, required_labels=2)):  # raters agree on 9 of 10: 0.9
        PreferenceLabel.objects.create(comparison=comparison, rater=first, winner="a")
        PreferenceLabel.objects.create(comparison=comparison, rater=second, winner="a" if i else "b")
        Comparison.objects.filter(pk=comparison.pk).update(label_count=2)
    assert people_agreement() == (pytest.approx(0.9), 10)
    judge = make_judge()
    make_audits(judge, n=10, agree=9)
    trust = judge_trust(judge=judge)
    assert trust.trusted and trust.required == pytest.approx(0.85)
    make_audits(judge, n=10, agree=8)  # the newest ten agree 0.8
    assert not judge_trust(judge=judge).trusted
    make_audits(judge, n=10, agree=10)
    assert judge_trust(judge=judge).trusted


def test_unsure_verdicts_are_not_audits_of_the_gate(make_judge, make_audits, settings):
    """The gate measures the verdicts that would become labels: those at least as confident as the threshold."""
    settings.AI_MIN_AUDITS = 5
    judge = make_judge(threshold=0.8)
    make_audits(judge, n=5, agree=0, confidence=0.6)
    make_audits(judge, n=5, agree=5, confidence=0.9)
    assert judge_trust(judge=judge).agreement == 1.0


def _ai_label(judge, comparison):
    return PreferenceLabel.objects.create(comparison=comparison, judge_version=judge.versions.get(), winner="a")


def test_a_reward_model_judge_never_trains_a_reward_model_but_may_train_the_policy(make_judge, make_audits, make_comparisons, settings):
    """The circularity rule: a trusted reward-model judge's labels weigh AI_LABEL_WEIGHT for DPO and 0 for refits;
    a trusted generative judge's weigh AI_LABEL_WEIGHT for both."""
    settings.AI_MIN_AUDITS, settings.AI_LABEL_WEIGHT = 5, 0.4
    rm_judge, remote = make_judge("rm", kind="reward_model", routing=False), make_judge("remote", routing=True)
    for judge in (rm_judge, remote):
        make_audits(judge, n=5, agree=5)
    c1, c2 = make_comparisons(2)
    _ai_label(rm_judge, c1), _ai_label(remote, c2)
    rm_version, remote_version = rm_judge.versions.get().pk, remote.versions.get().pk
    assert ai_label_weights(purpose="reward") == {rm_version: 0.0, remote_version: 0.4}
    assert ai_label_weights(purpose="policy") == {rm_version: 0.4, remote_version: 0.4}


def test_untrusted_judges_and_ai_feedback_off_weigh_nothing(make_judge, make_audits, make_comparisons, settings):
    """Below its gate a judge's labels weigh 0; with AI_FEEDBACK off no AI label is weighed at all."""
    settings.AI_MIN_AUDITS = 5
    judge = make_judge()
    make_audits(judge, n=5, agree=1)
    _ai_label(judge, make_comparisons(1)[0])
    assert ai_label_weights(purpose="policy") == {judge.versions.get().pk: 0.0}
    settings.AI_FEEDBACK = False
    assert ai_label_weights(purpose="policy") == {}
    with pytest.raises(ValueError):
        ai_label_weights(purpose="both")


def test_a_comparison_counts_with_the_judge_s_newest_verdict(make_judge, make_audits):
    """A new version's verdict on an audited comparison replaces the old one's; its abstention does not."""
    from feedback_app.models import JudgeVersion, Verdict

    judge = make_judge()
    (comparison,) = make_audits(judge, n=1, agree=1)
    second = JudgeVersion.objects.create(judge=judge, version="2")
    Verdict.objects.create(judge_version=second, comparison=comparison, cache_key="x", choice="b", confidence=0.7)
    assert [(a["judge"], a["confidence"]) for a in judge_audits(judge=judge)] == [("b", 0.7)]
    third = JudgeVersion.objects.create(judge=judge, version="3")
    Verdict.objects.create(judge_version=third, comparison=comparison, cache_key="x", abstained=True, reason="flipped")
    assert [a["judge"] for a in judge_audits(judge=judge)] == ["b"]


def test_ai_labels_counted_names_the_judges_whose_labels_weigh_something(make_judge, make_audits, make_comparisons, settings):
    """Only labels of versions with a positive weight, up to the fit's last label, outside excluded prompts, by label source."""
    settings.AI_MIN_AUDITS = 5
    trusted, untrusted = make_judge("good", routing=True), make_judge("bad", routing=False)
    make_audits(trusted, n=5, agree=5)
    make_audits(untrusted, n=5, agree=1)
    c1, c2, c3 = make_comparisons(3)
    first, _, bad = _ai_label(trusted, c1), _ai_label(trusted, c2), _ai_label(untrusted, c3)
    weights = ai_label_weights(purpose="policy")
    assert ai_labels_counted(weights=weights, last_label_id=bad.pk) == {"ai:good": 2}
    assert ai_labels_counted(weights=weights, last_label_id=first.pk) == {"ai:good": 1}
    assert ai_labels_counted(weights=weights, last_label_id=bad.pk, exclude_prompt_ids=[c1.prompt_id, c2.prompt_id]) == {}
    assert ai_labels_counted(weights={}, last_label_id=bad.pk) == {} == ai_labels_counted(weights=weights, last_label_id=None)
