"""The plain label call served without DRF's dispatch answers as DRF's view answers, and hands every other call to it."""

import json
import random
import re

import pytest
from django.test import Client

from feedback_app.api import label_direct
from feedback_app.api.views import LabelView
from feedback_app.models import PreferenceLabel
from feedback_app.services import leasing
from feedback_app.services.accounts import api_token_issue, api_token_revoke

pytestmark = pytest.mark.django_db

PLAIN = {"choice": "left", "strength": 2}


@pytest.fixture
def drf_calls(monkeypatch):
    """Count the calls DRF's LabelView dispatched."""
    calls = []
    dispatch = LabelView.dispatch

    def counted(self, request, *args, **kwargs):
        calls.append(request.path)
        return dispatch(self, request, *args, **kwargs)

    monkeypatch.setattr(LabelView, "dispatch", counted)
    return calls


def scenario(make_user, make_comparisons) -> list[tuple]:
    """A rater's calls to the label endpoint, plain and otherwise, right and wrong; return each answer, its ids and times
    replaced by placeholders in the order they appear (so two runs over other rows compare equal)."""
    rater = make_user()
    token, key = api_token_issue(user=rater)
    first, second, third, fourth = make_comparisons(4)
    client = Client(HTTP_AUTHORIZATION=f"Token {key}")
    leased = client.get("/api/v1/comparisons/next/").json()["id"]
    assert leased == first.pk

    def post(comparison_id, body, query="?next=1", prefix="/api/v1", **headers):
        text = body if isinstance(body, str) else json.dumps(body)
        return client.post(f"{prefix}/comparisons/{comparison_id}/label/{query}", text, content_type="application/json", **headers)

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
        post(second.pk, {"choice": "left", "criteria": {"helpfulness": "left"}}),  # 201, read by the serializer
        post(third.pk, PLAIN, query="", prefix="/api/v1/campaigns/default"),  # 201 without next, the campaign's path
        post(fourth.pk, PLAIN, prefix="/api/v1/campaigns/nowhere"),  # 404: no such campaign
        post(fourth.pk, PLAIN),  # 409: no lease held
    ]
    assert client.get("/api/v1/comparisons/next/").json()["id"] == fourth.pk
    answers.append(post(fourth.pk, PLAIN, query="?next=true", prefix="/api/v1/campaigns/default"))  # 201 and none left
    assert PreferenceLabel.objects.filter(rater=rater).count() == 4
    api_token_revoke(token=token)
    answers.append(post(fourth.pk, PLAIN))  # 401: revoked
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

    def normal(response):
        headers = {name: value for name, value in response.headers.items() if name != "Content-Length"}
        return response.status_code, normal_value("", response.json()), headers

    return [normal(answer) for answer in answers]


def test_the_plain_call_answers_as_drf_does_and_everything_else_is_drf_s(make_user, make_comparisons, monkeypatch, drf_calls):
    monkeypatch.setattr(leasing, "random", random.Random(7))  # the same sides in both runs
    direct = scenario(make_user, make_comparisons)
    served_by_drf = len(drf_calls)
    monkeypatch.setattr(leasing, "random", random.Random(7))
    monkeypatch.setattr(label_direct, "_plain_call", lambda request, **kwargs: None)  # DRF serves every call
    drf = scenario(make_user, make_comparisons)
    assert [status for status, _, _ in direct] == [201, 200, 409, 409, 404, 400, 400, 400, 401, 201, 201, 404, 409, 201, 401]
    assert direct == drf
    assert served_by_drf == 7, "the plain calls that pass every check (201, 200, 409, 409, 404, 201, 409, 201) are not DRF's"
    assert len(drf_calls) == served_by_drf + 15


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


def test_the_schema_still_sees_drf_s_label_view():
    view = LabelView.as_view()
    assert view.cls is LabelView and view.csrf_exempt
