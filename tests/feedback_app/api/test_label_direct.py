"""The plain label call served without DRF's dispatch answers as DRF's view answers, and hands every other call to it."""

import json
import random
import re

import pytest
from django.test import Client

from feedback_app.api import label_direct
from feedback_app.api.views import LabelView, NextComparisonView
from feedback_app.models import PreferenceLabel
from feedback_app.services import leasing
from feedback_app.services.accounts import api_token_issue, api_token_revoke

pytestmark = pytest.mark.django_db

PLAIN = {"choice": "left", "strength": 2}


@pytest.fixture
def drf_calls(monkeypatch):
    """The label calls DRF's LabelView dispatched (their paths); ``drf_calls.next`` those of NextComparisonView."""
    calls = DispatchedCalls()
    for view, kept in ((LabelView, calls), (NextComparisonView, calls.next)):
        monkeypatch.setattr(view, "dispatch", counting(view.dispatch, kept))
    return calls


class DispatchedCalls(list):
    def __init__(self) -> None:
        super().__init__()
        self.next = []


def counting(dispatch, kept: list):
    def counted(self, request, *args, **kwargs):
        kept.append(request.path)
        return dispatch(self, request, *args, **kwargs)

    return counted


def scenario(make_user, make_comparisons) -> list[tuple]:
    """A rater's calls to the label endpoint, plain and otherwise, right and wrong; return each answer, its ids and times
    replaced by placeholders in the order they appear (so two runs over other rows compare equal)."""
    rater = make_user()
    token, key = api_token_issue(user=rater)
    first, second, third, fourth = make_comparisons(4)
    client = Client(HTTP_AUTHORIZATION=f"Token {key}")
    leased = client.get("/api/v1/comparisons/next/").json()["id"]
    assert leased == first.pk

    def post(comparison_id, body, query="?next=1", prefix="/api/v1", content_type="application/json", **headers):
        text = body if isinstance(body, str) else json.dumps(body)
        return client.post(f"{prefix}/comparisons/{comparison_id}/label/{query}", text, content_type=content_type, **headers)

    answers = [
        post(first.pk, PLAIN),  # 201 and the next lease (second)
        post(first.pk, PLAIN),  # a retry: 200, the same next lease
        post(first.pk, {"choice": "right"}),  # 409: a different label
        post(third.pk, PLAIN),  # 409: not leased to this rater
        post(999_999, PLAIN),  # 404
        post(second.pk, PLAIN, query="?next=maybe"),  # 400 naming next
        post(second.pk, {"choice": "sideways"}),  # 400 naming choice
        post(second.pk, '{"choice": "left",'),  # 400: not JSON
        post(second.pk, PLAIN, HTTP_AUTHORIZATION="Token not-a-key"),  # 401
        post(second.pk, PLAIN, HTTP_AUTHORIZATION=f"Token\xa0{key}"),  # 401: DRF splits the header on ASCII white space only
        post(second.pk, PLAIN, HTTP_AUTHORIZATION=f"Token\x1f{key}"),  # 401, the same
        post(second.pk, PLAIN, HTTP_AUTHORIZATION=f"Token {key} more"),  # 401: a key with spaces
        post(second.pk, PLAIN, HTTP_AUTHORIZATION=f"token\t{key}", HTTP_ACCEPT="*/*"),  # 201: the keyword's case and a tab are DRF's too
        post(second.pk, PLAIN, content_type="Application/JSON; charset=UTF-8"),  # 200: a retry
        post(second.pk, {"choice": "left", "criteria": {"helpfulness": "left"}}),  # 409: another answer, read by the serializer
        post(third.pk, PLAIN, query="", prefix="/api/v1/campaigns/default"),  # 201 without next, the campaign's path
        post(fourth.pk, PLAIN, prefix="/api/v1/campaigns/nowhere"),  # 404: no such campaign
        post(fourth.pk, PLAIN),  # 409: no lease held
    ]
    assert client.get("/api/v1/comparisons/next/").json()["id"] == fourth.pk
    answers.append(post(fourth.pk, PLAIN, query="?next=true", prefix="/api/v1/campaigns/default"))  # 201 and none left
    assert PreferenceLabel.objects.filter(rater=rater).count() == 4
    api_token_revoke(token=token)
    answers.append(post(fourth.pk, PLAIN))  # 401: revoked
    return normalised(answers)


def normalised(answers) -> list[tuple]:
    """Each answer's status, body and headers, its ids and times replaced by placeholders in the order they appear."""
    seen: dict[tuple[str, int], str] = {}

    def placeholder(kind: str, value: int) -> str:
        return seen.setdefault((kind, value), f"<{kind} {sum(k == kind for k, _ in seen)}>")

    def normal_value(key: str, value, *, record: str = "label"):
        if isinstance(value, dict):
            inner = {"next": "comparison", "left": "response", "right": "response"}.get(key, record)
            return {k: normal_value(k, v, record=inner) for k, v in value.items()}
        if key == "id" and isinstance(value, int):
            return placeholder(record, value)
        if key.endswith("_id") and isinstance(value, int):
            return placeholder(key.removesuffix("_id").split("_")[-1], value)
        if key in ("created_at", "lease_expires_at", "time_on_task_ms"):
            return "<varies>"
        if key == "detail":
            return re.sub(r"(?<=comparison )\d+", lambda m: placeholder("comparison", int(m.group(0))), value)
        return value

    def normal(response, record: str):
        headers = {name: value for name, value in response.headers.items() if name != "Content-Length"}
        return response.status_code, normal_value("", response.json(), record=record) if response.content else None, headers

    return [normal(answer, "comparison" if answer.request["PATH_INFO"].endswith("/next/") else "label") for answer in answers]


def test_the_plain_call_answers_as_drf_does_and_everything_else_is_drf_s(make_user, make_comparisons, monkeypatch, drf_calls):
    monkeypatch.setattr(leasing, "random", random.Random(7))  # the same sides in both runs
    direct = scenario(make_user, make_comparisons)
    served_by_drf = len(drf_calls)
    monkeypatch.setattr(leasing, "random", random.Random(7))
    monkeypatch.setattr(label_direct, "_plain_call", lambda *args, **kwargs: None)  # DRF serves every call
    drf = scenario(make_user, make_comparisons)
    assert [status for status, _, _ in direct] == [201, 200, 409, 409, 404, 400, 400, 400, 401, 401, 401, 401, 201, 200, 409, 201, 404, 409, 201, 401]
    assert direct == drf
    assert served_by_drf == 10, "the plain calls that pass every check (201, 200, 409, 409, 404, 201, 200, 201, 409, 201) are not DRF's"
    assert len(drf_calls) == served_by_drf + 20


def next_scenario(make_user, make_comparisons) -> list[tuple]:
    """A rater's calls for their next comparison, plain and otherwise, right and wrong, in the two-call flow."""
    rater = make_user()
    token, key = api_token_issue(user=rater)
    first, second = make_comparisons(2)
    client = Client(HTTP_AUTHORIZATION=f"Token {key}")

    def get(prefix="/api/v1", **headers):
        return client.get(f"{prefix}/comparisons/next/", **headers)

    def label(comparison):
        assert client.post(f"/api/v1/comparisons/{comparison.pk}/label/", json.dumps(PLAIN), content_type="application/json").status_code == 201

    answers = [
        get(),  # 200: first leased
        get(HTTP_ACCEPT="application/json"),  # 200: the lease held
        get(prefix="/api/v1/campaigns/default", HTTP_ACCEPT="*/*"),  # 200, the campaign's path
        get(prefix="/api/v1/campaigns/nowhere"),  # 404: no such campaign
        get(HTTP_AUTHORIZATION="Token not-a-key"),  # 401
        get(HTTP_AUTHORIZATION=f"Token\xa0{key}"),  # 401
        get(HTTP_AUTHORIZATION=f"Bearer {key}"),  # 401: another scheme
    ]
    label(first)
    answers.append(get())  # 200: second leased
    label(second)
    answers.append(get())  # 204: nothing left
    api_token_revoke(token=token)
    answers.append(get())  # 401: revoked
    return normalised(answers)


def test_the_plain_next_call_answers_as_drf_does(make_user, make_comparisons, monkeypatch, drf_calls):
    monkeypatch.setattr(leasing, "random", random.Random(7))
    direct = next_scenario(make_user, make_comparisons)
    served_by_drf = len(drf_calls.next)
    monkeypatch.setattr(leasing, "random", random.Random(7))
    monkeypatch.setattr(label_direct, "_plain_call", lambda *args, **kwargs: None)
    drf = next_scenario(make_user, make_comparisons)
    assert [status for status, _, _ in direct] == [200, 200, 200, 404, 401, 401, 401, 200, 204, 401]
    assert direct == drf
    assert direct[-2][1] is None and "Content-Type" not in direct[-2][2]  # no content, as DRF answers it
    assert served_by_drf == 5 and len(drf_calls.next) == served_by_drf + 10


def test_a_call_is_counted_once_by_the_throttle_whoever_serves_it(rater, make_comparisons, monkeypatch, drf_calls):
    from rest_framework.throttling import ScopedRateThrottle

    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {**ScopedRateThrottle.THROTTLE_RATES, "label": "4/minute"})
    comparisons = make_comparisons(4)
    _, key = api_token_issue(user=rater)
    client = Client(HTTP_AUTHORIZATION=f"Token {key}")
    client.get("/api/v1/comparisons/next/")

    def post(body):
        return client.post(f"/api/v1/comparisons/{comparisons[0].pk}/label/", json.dumps(body), content_type="application/json")

    statuses = [post(PLAIN).status_code, post({**PLAIN, "rationale": "kinder"}).status_code, post(PLAIN).status_code,
                post(PLAIN).status_code]
    assert statuses == [201, 409, 200, 200]  # four calls counted, one each: the second was DRF's
    throttled = post(PLAIN)
    assert throttled.status_code == 429 and int(throttled["Retry-After"]) > 0  # DRF's answer, counting nothing
    assert len(drf_calls) == 2


@pytest.mark.parametrize("headers", [{"HTTP_ACCEPT": "text/html"}, {"HTTP_ACCEPT": "application/json; indent=4"}, {}], ids=["html", "indent", "session"])
def test_calls_outside_the_plain_case_are_drf_s(rater, make_comparisons, drf_calls, headers):
    (comparison,) = make_comparisons(1)
    client = Client(enforce_csrf_checks=True)
    if headers:
        _, key = api_token_issue(user=rater)
        headers = {**headers, "HTTP_AUTHORIZATION": f"Token {key}"}
    else:
        client.force_login(rater)  # a session: DRF checks its CSRF token, which this call lacks
    client.get("/api/v1/comparisons/next/", **headers)
    answer = client.post(f"/api/v1/comparisons/{comparison.pk}/label/", json.dumps(PLAIN), content_type="application/json", **headers)
    assert drf_calls == [f"/api/v1/comparisons/{comparison.pk}/label/"]
    if headers:
        assert answer.status_code == 201 and answer["Content-Type"].startswith("text/html" if "html" in headers["HTTP_ACCEPT"] else "application/json")
    else:
        assert answer.status_code == 403 and "CSRF" in answer.json()["detail"]
        assert not PreferenceLabel.objects.exists()


def test_the_schema_documents_both_label_paths_as_drf_s_view(client):
    """The schema generator reads DRF's view through the wrapper (``cls``): both paths keep their body, parameter and answers."""
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    for path in ("/api/v1/comparisons/{comparison_id}/label/", "/api/v1/campaigns/{campaign_slug}/comparisons/{comparison_id}/label/"):
        operation = schema["paths"][path]["post"]
        assert "next" in [p["name"] for p in operation["parameters"]] and "requestBody" in operation
        assert {"200", "201", "400", "401", "403", "404", "409", "429"} <= set(operation["responses"])


@pytest.mark.parametrize("refusal", ["inactive", "not a member", "archived"])
def test_a_refused_rater_gets_drf_s_answer(make_user, make_comparisons, drf_calls, refusal):
    from feedback_app.models import CampaignMember, Role
    from feedback_app.services.campaigns import campaign_create

    rater = make_user()
    campaign = campaign_create(slug="second", name="Second")
    CampaignMember.objects.create(campaign=campaign, user=rater, role=Role.RATER)
    _, key = api_token_issue(user=rater)
    if refusal == "inactive":
        rater.is_active = False
        rater.save(update_fields=["is_active"])
    elif refusal == "not a member":
        CampaignMember.objects.filter(campaign=campaign, user=rater).delete()
    else:
        campaign.state = campaign.State.ARCHIVED
        campaign.save(update_fields=["state"])
    answer = Client(HTTP_AUTHORIZATION=f"Token {key}").post("/api/v1/campaigns/second/comparisons/1/label/?next=1", json.dumps(PLAIN),
                                                             content_type="application/json")
    expected = {"inactive": 401, "not a member": 403, "archived": 404}[refusal]
    assert answer.status_code == expected, answer.content
    assert len(drf_calls) == (0 if refusal == "archived" else 1)  # an archived campaign's member passes the checks; the label is refused


def test_with_tokens_kept_in_the_process_a_revocation_refuses_the_next_plain_call(rater, make_comparisons, token_cache_on, drf_calls,
                                                                                   django_capture_on_commit_callbacks):
    first, second = make_comparisons(2)
    token, key = api_token_issue(user=rater)
    client = Client(HTTP_AUTHORIZATION=f"Token {key}")
    client.get("/api/v1/comparisons/next/")
    labelled = client.post(f"/api/v1/comparisons/{first.pk}/label/?next=1", json.dumps(PLAIN), content_type="application/json")
    assert labelled.status_code == 201 and drf_calls == [] and len(token_cache_on) == 1  # served here, the token kept
    with django_capture_on_commit_callbacks(execute=True):
        api_token_revoke(token=token)
    refused = client.post(f"/api/v1/comparisons/{second.pk}/label/?next=1", json.dumps(PLAIN), content_type="application/json")
    assert refused.status_code == 401 and "revoked" in refused.json()["detail"] and len(drf_calls) == 1
    assert PreferenceLabel.objects.filter(rater=rater).count() == 1


@pytest.mark.parametrize("query", ["", "next=1", "next=true", "next=0", "next=", "next=1&next=0", "next=%31", "next=tr%75e",
                                   "next=+1", "next=1;x", "NEXT=1", "&next=1", "next=1&", "a=b", "next", "next=1=2", "next=é"])
def test_next_is_read_from_the_query_as_django_reads_it(rf, query):
    """``?next=`` as the plain call reads it is what ``request.GET`` gives, whatever the query; its Authorization header is
    DRF's too."""
    request = rf.post(f"/api/v1/comparisons/1/label/?{query}" if query else "/api/v1/comparisons/1/label/", HTTP_AUTHORIZATION="Token abc")
    assert label_direct._next_in_query(request) == request.GET.get("next")
    assert label_direct._token_key(request) == "abc"
