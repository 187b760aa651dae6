import pytest

from feedback_app import tasks, training_bridge
from feedback_app.models import AuditEntry, PolicyVersion, RewardModelVersion, TrainingRun
from tests.conftest import api_client_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def no_dispatch(monkeypatch):
    sent = []
    monkeypatch.setattr(tasks.training_run_execute, "apply_async", lambda args, **kw: sent.append(args[0]))
    return sent


def test_researchers_queue_and_follow_runs(researcher, no_dispatch, django_capture_on_commit_callbacks):
    client = api_client_for(researcher)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/api/v1/training-runs/", {"kind": "reward_full"}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["kind"] == "reward_full" and body["status"] == "queued" and body["trigger"] == "api"
    assert no_dispatch == [body["id"]]
    assert TrainingRun.objects.get().requested_by == researcher
    assert client.get(f"/api/v1/training-runs/{body['id']}/").json()["status"] == "queued"
    assert [r["id"] for r in client.get("/api/v1/training-runs/").json()] == [body["id"]]
    assert client.get("/api/v1/training-runs/999/").status_code == 404
    bad = client.post("/api/v1/training-runs/", {"kind": "reward_huge"}, format="json")
    assert bad.status_code == 400 and "kind" in bad.json()


def test_a_kind_already_queued_returns_the_queued_run(researcher, admin_user, no_dispatch, django_capture_on_commit_callbacks):
    """201 with a new run; 200 with the same run while it waits; 201 again once a worker took it."""
    client = api_client_for(researcher)
    with django_capture_on_commit_callbacks(execute=True):
        first = client.post("/api/v1/training-runs/", {"kind": "reward_fast"}, format="json")
        again = api_client_for(admin_user).post("/api/v1/training-runs/", {"kind": "reward_fast"}, format="json")
        other = client.post("/api/v1/training-runs/", {"kind": "policy_dpo"}, format="json")
    assert (first.status_code, again.status_code, other.status_code) == (201, 200, 201)
    assert again.json()["id"] == first.json()["id"] and again.json()["status"] == "queued"
    assert no_dispatch == [first.json()["id"], other.json()["id"]]  # the repeat sent nothing
    TrainingRun.objects.filter(pk=first.json()["id"]).update(status="running")
    later = client.post("/api/v1/training-runs/", {"kind": "reward_fast"}, format="json")
    assert later.status_code == 201 and later.json()["id"] != first.json()["id"]
    assert TrainingRun.objects.count() == 3


def test_raters_cannot_train_or_score(rater, no_dispatch):
    client = api_client_for(rater)
    assert client.post("/api/v1/training-runs/", {"kind": "reward_fast"}, format="json").status_code == 403
    assert client.post("/api/v1/score/", {"prompt": "p", "responses": ["a"]}, format="json").status_code == 403
    assert client.post("/api/v1/reward-models/rm-1/activate/").status_code == 403


def test_score_without_a_reward_model_is_503(researcher):
    response = api_client_for(researcher).post("/api/v1/score/", {"prompt": "Where is my parcel?", "responses": ["Here.", "There."]}, format="json")
    assert response.status_code == 503 and "no reward model is active" in response.json()["detail"]


def test_score_answers_with_the_active_version(researcher, monkeypatch):
    RewardModelVersion.objects.create(name="rm-7", path="reward/rm-7", status="active")
    seen = {}

    def fake_scores(*, version_name, version_path, prompt, context, responses, models):
        seen.update(version=version_name, context=context)
        return [float(len(r)) for r in responses]

    monkeypatch.setattr(training_bridge, "reward_scores", fake_scores)
    response = api_client_for(researcher).post(
        "/api/v1/score/", {"prompt": "Hi", "context": [{"role": "user", "content": "earlier"}], "responses": ["a", "abc"]}, format="json")
    assert response.status_code == 200
    assert response.json() == {"rewards": [1.0, 3.0], "reward_model_version": "rm-7"}
    assert seen == {"version": "rm-7", "context": [{"role": "user", "content": "earlier"}]}


@pytest.mark.parametrize("body, field", [({"responses": ["a"]}, "prompt"), ({"prompt": "p", "responses": []}, "responses"),
                                         ({"prompt": "p", "responses": ["a"], "context": [{"who": "me"}]}, "context")])
def test_score_validates_its_input(researcher, body, field):
    response = api_client_for(researcher).post("/api/v1/score/", body, format="json")
    assert response.status_code == 400 and field in response.json()


def test_activate_promotes_and_rolls_back(researcher):
    old = PolicyVersion.objects.create(name="policy-1", path="policy/policy-1", status="retired")
    PolicyVersion.objects.create(name="policy-2", path="policy/policy-2", status="active")
    client = api_client_for(researcher)
    response = client.post("/api/v1/policies/policy-1/activate/")
    assert response.status_code == 200 and response.json()["action"] == "rollback"
    old.refresh_from_db()
    assert old.status == "active" and PolicyVersion.objects.get(name="policy-2").status == "retired"
    assert AuditEntry.objects.get(action="policyversion.rollback").actor == researcher
    assert client.post("/api/v1/policies/nope/activate/").status_code == 404
    assert client.post("/api/v1/widgets/policy-1/activate/").status_code == 404


def test_activating_a_pruned_version_is_a_conflict_naming_it(researcher):
    """A version whose folder retention removed cannot come back: 409 with the reason, nothing changes."""
    PolicyVersion.objects.create(name="policy-1", path="policy/policy-1", status="pruned")
    PolicyVersion.objects.create(name="policy-2", path="policy/policy-2", status="active")
    response = api_client_for(researcher).post("/api/v1/policies/policy-1/activate/")
    assert response.status_code == 409 and "policy-1 was pruned" in response.json()["detail"]
    assert PolicyVersion.objects.get(name="policy-2").status == "active"


GENERATE = "/api/v1/policies/policy-1/generate/"


@pytest.fixture
def fake_replies(monkeypatch):
    """Replace the policy: each reply names the version, the prompt and the options it was asked with."""
    calls = []

    def replies(*, policy_name, policy_path, prompts, seed, max_new_tokens, temperature, models):
        calls.append({"path": policy_path, "prompts": prompts, "seed": seed, "max_new_tokens": max_new_tokens, "temperature": temperature})
        return [f"{policy_name}: {text} ({len(context)} turns)" for text, context in prompts]

    monkeypatch.setattr(training_bridge, "replies_generate", replies)
    return calls


def test_generate_answers_one_reply_per_prompt_in_order(researcher, fake_replies, settings):
    """Defaults: seed 0, the site's token budget and temperature; the context reaches the policy; nothing is stored."""
    PolicyVersion.objects.create(name="policy-1", path="policy/policy-1", status="retired")
    body = {"prompts": [{"prompt": "Where is my parcel?"}, {"prompt": "And now?", "context": [{"role": "user", "content": "Hi"}]}]}
    response = api_client_for(researcher).post(GENERATE, body, format="json")
    assert response.status_code == 200
    assert response.json() == {"policy": "policy-1", "mode": "sample", "reward_model": None,
                               "replies": ["policy-1: Where is my parcel? (0 turns)", "policy-1: And now? (1 turns)"]}
    assert fake_replies == [{"path": "policy/policy-1", "prompts": [("Where is my parcel?", []), ("And now?", [{"role": "user", "content": "Hi"}])],
                             "seed": 0, "max_new_tokens": settings.GENERATION_MAX_NEW_TOKENS, "temperature": settings.GENERATION_TEMPERATURE}]
    assert PolicyVersion.objects.count() == 1


def test_generate_passes_the_options_asked_for(admin_user, fake_replies):
    """Admins may ask too; seed, token budget and temperature (0: greedy) reach the policy as sent."""
    PolicyVersion.objects.create(name="policy-1", path="policy/policy-1", status="active")
    body = {"prompts": [{"prompt": "Hi"}], "seed": 7, "max_new_tokens": 20, "temperature": 0}
    assert api_client_for(admin_user).post(GENERATE, body, format="json").status_code == 200
    assert (fake_replies[0]["seed"], fake_replies[0]["max_new_tokens"], fake_replies[0]["temperature"]) == (7, 20, 0.0)


def test_generate_is_for_researchers_and_admins_only(rater, fake_replies):
    """A rater is refused (403) and no model runs."""
    PolicyVersion.objects.create(name="policy-1", path="policy/policy-1", status="active")
    assert api_client_for(rater).post(GENERATE, {"prompts": [{"prompt": "Hi"}]}, format="json").status_code == 403
    assert fake_replies == []


def test_generate_from_an_unknown_policy_is_404_and_from_a_pruned_one_409(researcher, fake_replies):
    """Both are answered by the web process with the reason, before any worker is asked."""
    PolicyVersion.objects.create(name="policy-1", path="policy/policy-1", status="pruned")
    client = api_client_for(researcher)
    missing = client.post("/api/v1/policies/nope/generate/", {"prompts": [{"prompt": "Hi"}]}, format="json")
    assert missing.status_code == 404 and "no policy version named 'nope'" in missing.json()["detail"]
    pruned = client.post(GENERATE, {"prompts": [{"prompt": "Hi"}]}, format="json")
    assert pruned.status_code == 409 and "policy-1 was pruned" in pruned.json()["detail"]
    assert fake_replies == []


def test_generate_that_no_worker_answers_is_503(researcher, monkeypatch):
    """A wait that times out is a 503 whose detail says no worker answered."""
    from celery.exceptions import TimeoutError as CeleryTimeout

    class Unanswered:
        def get(self, *, timeout):
            raise CeleryTimeout(f"waited {timeout}")

    PolicyVersion.objects.create(name="policy-1", path="policy/policy-1", status="active")
    monkeypatch.setattr(tasks.policy_generate, "delay", lambda *args: Unanswered())
    response = api_client_for(researcher).post(GENERATE, {"prompts": [{"prompt": "Hi"}]}, format="json")
    assert response.status_code == 503 and "no worker answered within" in response.json()["detail"]


@pytest.mark.parametrize("body, field", [
    ({}, "prompts"), ({"prompts": []}, "prompts"), ({"prompts": [{"prompt": "Hi"}] * 17}, "prompts"),
    ({"prompts": [{"prompt": ""}]}, "prompts"), ({"prompts": [{"prompt": "Hi", "context": [{"who": "me"}]}]}, "prompts"),
    ({"prompts": [{"prompt": "Hi"}], "seed": -1}, "seed"), ({"prompts": [{"prompt": "Hi"}], "seed": "1"}, "seed"),
    ({"prompts": [{"prompt": "Hi"}], "max_new_tokens": 0}, "max_new_tokens"),
    ({"prompts": [{"prompt": "Hi"}], "max_new_tokens": 100000}, "max_new_tokens"),
    ({"prompts": [{"prompt": "Hi"}], "temperature": 2.5}, "temperature"), ({"prompts": [{"prompt": "Hi"}], "temperature": True}, "temperature"),
    ({"prompts": [{"prompt": "Hi"}], "mode": "best"}, "mode"), ({"prompts": [{"prompt": "Hi"}], "mode": None}, "mode"),
])
def test_generate_validates_its_input(researcher, fake_replies, body, field):
    """1..16 prompts, a non-empty prompt, well-formed turns, a non-negative integer seed, bounded tokens and temperature, a known mode:
    else 400 naming the field."""
    PolicyVersion.objects.create(name="policy-1", path="policy/policy-1", status="active")
    response = api_client_for(researcher).post(GENERATE, body, format="json")
    assert response.status_code == 400 and field in response.json()
    assert fake_replies == []


@pytest.fixture
def fake_rerank(monkeypatch):
    """Replace the bridge's best of n: each reply names the reward model and n."""
    calls = []

    def rerank(*, policy_name, policy_path, reward_name, reward_path, prompts, n, seed, max_new_tokens, temperature, models):
        calls.append({"reward": reward_name, "n": n, "seed": seed})
        return training_bridge.Candidates(texts=[[f"{policy_name}, best of {n} by {reward_name}: {text}"] for text, _ in prompts],
                                          truncated=[[False] for _ in prompts])

    monkeypatch.setattr(training_bridge, "replies_rerank", rerank)
    return calls


def test_generate_answers_in_the_versions_serving_mode_or_the_one_asked_for(researcher, fake_replies, fake_rerank, settings):
    """A rerank version answers with the best of RERANK_SAMPLES by the active reward model, named in the answer; "sample" samples it."""
    settings.RERANK_SAMPLES = 3
    PolicyVersion.objects.create(name="policy-1", path="policy/policy-1", status="active", serving_mode="rerank")
    RewardModelVersion.objects.create(name="rm-2", path="reward/rm-2", status="active")
    client = api_client_for(researcher)
    reranked = client.post(GENERATE, {"prompts": [{"prompt": "Hi"}], "seed": 4}, format="json")
    assert reranked.status_code == 200
    assert reranked.json() == {"policy": "policy-1", "mode": "rerank", "reward_model": "rm-2", "replies": ["policy-1, best of 3 by rm-2: Hi"]}
    assert fake_rerank == [{"reward": "rm-2", "n": 3, "seed": 4}] and fake_replies == []
    sampled = client.post(GENERATE, {"prompts": [{"prompt": "Hi"}], "mode": "sample"}, format="json").json()
    assert (sampled["mode"], sampled["reward_model"], sampled["replies"]) == ("sample", None, ["policy-1: Hi (0 turns)"])


def test_generate_rerank_without_an_active_reward_model_is_409(researcher, fake_replies, fake_rerank):
    """Asked for explicitly, rerank is refused with the reason; the version's own rerank mode samples instead and says so."""
    PolicyVersion.objects.create(name="policy-1", path="policy/policy-1", status="active", serving_mode="rerank")
    client = api_client_for(researcher)
    refused = client.post(GENERATE, {"prompts": [{"prompt": "Hi"}], "mode": "rerank"}, format="json")
    assert refused.status_code == 409 and "rerank needs an active reward model" in refused.json()["detail"]
    assert fake_replies == fake_rerank == []
    fallback = client.post(GENERATE, {"prompts": [{"prompt": "Hi"}]}, format="json")
    assert fallback.status_code == 200 and (fallback.json()["mode"], fallback.json()["reward_model"]) == ("sample", None)


def test_generate_is_throttled_in_its_own_scope(researcher, fake_replies, monkeypatch):
    """The "generate" scope limits calls per user: past it, 429 with Retry-After."""
    from rest_framework.throttling import ScopedRateThrottle

    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {**ScopedRateThrottle.THROTTLE_RATES, "generate": "1/minute"})
    PolicyVersion.objects.create(name="policy-1", path="policy/policy-1", status="active")
    client = api_client_for(researcher)
    assert client.post(GENERATE, {"prompts": [{"prompt": "Hi"}]}, format="json").status_code == 200
    throttled = client.post(GENERATE, {"prompts": [{"prompt": "Hi"}]}, format="json")
    assert throttled.status_code == 429 and int(throttled["Retry-After"]) > 0
