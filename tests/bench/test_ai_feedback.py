"""The loop bench's AI feedback: the wrong-on-purpose judge over the real client, the studio's judge set up as an admin does,
and the report that puts each judge's audit beside the truth."""

import pytest

from bench import loop_efficacy
from bench.ai_feedback import ChatStub, ai_env, judge_setup, judges_report, labels_ai, rubric_replies, shorter_answer
from bench.loop_efficacy import LoopRun
from feedback_app.services.judge_protocol import answer_parse, both_orders_answers, rubric_messages
from feedback_app.services.judge_remote import ChatClient

LONG, SHORT = "Your refund was sent today and should reach your card within five working days.", "Refund sent."


def test_the_stub_reads_both_replies_back_from_the_studio_s_rubric():
    messages = rubric_messages(prompt="Where is my refund?", context=[], first=LONG, second=SHORT, criteria=["helpfulness"])
    assert rubric_replies(messages[-1]["content"]) == (LONG, SHORT)
    assert answer_parse(shorter_answer(messages)).better == 2


def test_the_wrong_judge_answers_the_real_client_and_always_names_the_shorter_reply():
    """Over HTTP, as the studio's remote judge asks it: in both orders it names the shorter reply, so the verdict stands."""
    with ChatStub(shorter_answer) as stub:
        client = ChatClient(base_url=stub.url, max_retries=0, timeout=10)
        (verdict,) = both_orders_answers(ask=client.ask_many, items=[("Where is my refund?", [], LONG, SHORT)], criteria=["helpfulness"])
        (failure,) = client.ask_many([[{"role": "user", "content": "not a rubric"}]])
    assert verdict.choice == "b" and verdict.confidence == 0.9 and stub.requests == 3
    assert isinstance(failure, Exception) and "400" in str(failure)


def test_ai_env_turns_ai_feedback_on_only_when_asked():
    assert ai_env("off") == {}
    assert ai_env("reward-model") == {"AI_FEEDBACK": "1"}
    assert ai_env("shorter", url="http://127.0.0.1:9/v1")["JUDGE_URL"] == "http://127.0.0.1:9/v1"
    run = LoopRun(loop_efficacy.parse(["--ai-feedback", "reward-model"]), "random", lambda *a: ("a", 1), [], [])
    assert run.env()["AI_FEEDBACK"] == "1"
    assert "AI_FEEDBACK" not in LoopRun(loop_efficacy.parse([]), "random", lambda *a: ("a", 1), [], []).env()
    with pytest.raises(SystemExit):
        loop_efficacy.parse(["--ai-feedback", "bench-judge"])  # the bench's own judge is never a studio judge


@pytest.mark.django_db
def test_judge_setup_makes_the_routing_judge_and_an_admin_enables_a_remote_one(make_user):
    from feedback_app.models import AuditEntry, Judge, Role

    make_user(username="admin", role=Role.ADMIN)
    judge_setup("off", admin_username="admin", threshold=0.7)
    assert not Judge.objects.exists()
    judge_setup("shorter", admin_username="admin", threshold=0.7)
    remote = Judge.objects.get()
    assert (remote.kind, remote.routing, remote.enabled, remote.confidence_threshold) == ("remote", True, True, 0.7)
    assert remote.remote_enabled_by.username == "admin" and AuditEntry.objects.filter(action="judge.remote_enable").exists()


@pytest.mark.django_db
def test_the_report_puts_the_audit_beside_the_true_agreement_and_the_runs_that_counted_its_labels(make_judge, make_audits):
    from feedback_app.models import PreferenceLabel, Verdict

    judge = make_judge("prefers-shorter", threshold=0.8)
    comparisons = make_audits(judge, n=4, agree=4, confidence=0.9)  # every verdict "a": "It ships tomorrow (order i)."
    Verdict.objects.filter(comparison=comparisons[3]).update(confidence=0.6)
    PreferenceLabel.objects.create(comparison=comparisons[0], judge_version=judge.versions.get(), winner="a")
    assert labels_ai() == 1

    def prefer(prompt, a, b):  # the truth: "a" everywhere but on comparison 1
        return "b" if "(order 1)" in a else "a"

    stats = {"judges": [{"judge": {"name": "prefers-shorter", "kind": "remote", "confidence_threshold": 0.8}, "n_verdicts": 4,
                         "abstention_rate": 0.0, "n_audits": 4, "agreement": 1.0, "trust": {"trusted": False, "reason": "measuring"}}]}
    runs = [{"id": 7, "kind": "reward_fast", "promoted": True, "metrics": {"ai_labels": {"ai:prefers-shorter": 2}}},
            {"id": 8, "kind": "policy_dpo", "promoted": False, "metrics": {}}]
    (row,) = judges_report(stats, prefer, runs)
    assert (row["audit_agreement"], row["true_agreement"], row["n_true"]) == (1.0, 0.75, 4)
    assert (row["true_agreement_confident"], row["n_true_confident"]) == (round(2 / 3, 4), 3)
    assert [r["ai_labels"] for r in row["labels_in_training"]] == [2, 0]
