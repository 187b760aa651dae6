import json

import pytest
from rest_framework.test import APIClient

from feedback_app.models import Comparison, PreferenceLabel, Prompt, Role
from tests.conftest import api_client_for
from feedback_app.selectors.campaigns import campaign_default
from tests.caches import caches_clear

pytestmark = pytest.mark.django_db

NEXT = "/api/v1/comparisons/next/"


def label_url(comparison_id: int) -> str:
    return f"/api/v1/comparisons/{comparison_id}/label/"


def test_next_then_label(rater, make_comparisons):
    (comparison,) = make_comparisons(1)
    client = api_client_for(rater)
    body = client.get(NEXT).json()
    assert set(body) == {"id", "prompt", "context", "left", "right", "lease_expires_at"}
    assert body["id"] == comparison.pk and {body["left"]["id"], body["right"]["id"]} == {comparison.response_a_id, comparison.response_b_id}
    submission = {"choice": "left", "strength": 3, "criteria": {"helpfulness": "left"}, "rationale": "kinder", "flags": []}
    created = client.post(label_url(comparison.pk), submission, format="json")
    assert created.status_code == 201
    assert created.json()["choice"] == "left" and created.json()["winner_response_id"] == body["left"]["id"]
    again = client.post(label_url(comparison.pk), submission, format="json")
    assert again.status_code == 200 and again.json()["id"] == created.json()["id"]
    conflict = client.post(label_url(comparison.pk), {**submission, "choice": "right"}, format="json")
    assert conflict.status_code == 409 and conflict.json()["label"]["id"] == created.json()["id"]
    assert PreferenceLabel.objects.count() == 1
    assert client.get(NEXT).status_code == 204


def test_next_says_which_side_was_cut_off(rater, make_comparisons):
    """left and right each carry their reply's truncated flag, whichever side response A is shown on."""
    (comparison,) = make_comparisons(1)
    comparison.response_b.truncated = True
    comparison.response_b.save()
    body = api_client_for(rater).get(NEXT).json()
    sides = {body[side]["id"]: body[side]["truncated"] for side in ("left", "right")}
    assert sides == {comparison.response_a_id: False, comparison.response_b_id: True}
    assert set(body["left"]) == {"id", "text", "truncated"}


def test_label_not_leased_is_a_conflict(rater, make_comparisons):
    (comparison,) = make_comparisons(1)
    response = api_client_for(rater).post(label_url(comparison.pk), {"choice": "tie"}, format="json")
    assert response.status_code == 409 and "not leased to you" in response.json()["detail"]


def test_label_unknown_comparison_is_404(rater):
    assert api_client_for(rater).post(label_url(999), {"choice": "tie"}, format="json").status_code == 404


@pytest.mark.parametrize(
    "body, field",
    [
        ({}, "choice"),
        ({"choice": "up"}, "choice"),
        ({"choice": "left", "strength": 5}, "strength"),
        ({"choice": "left", "strength": "much"}, "strength"),
        ({"choice": "left", "criteria": {"style": "left"}}, "criteria"),
        ({"choice": "left", "criteria": {"honesty": "best"}}, "criteria"),
        ({"choice": "left", "flags": ["spam"]}, "flags"),
        ({"choice": "left", "rationale": "x" * 5001}, "rationale"),
    ],
)
def test_invalid_fields_are_named(rater, make_comparisons, body, field):
    (comparison,) = make_comparisons(1)
    client = api_client_for(rater)
    client.get(NEXT)
    response = client.post(label_url(comparison.pk), body, format="json")
    assert response.status_code == 400 and field in response.json()
    assert not PreferenceLabel.objects.exists()


def test_skip(rater, make_comparisons):
    (comparison,) = make_comparisons(1)
    client = api_client_for(rater)
    client.get(NEXT)
    assert client.post(f"/api/v1/comparisons/{comparison.pk}/skip/").status_code == 204
    assert client.get(NEXT).status_code == 204
    assert client.post(f"/api/v1/comparisons/{comparison.pk}/skip/").status_code == 409


def test_anonymous_gets_401_everywhere(make_comparisons):
    (comparison,) = make_comparisons(1)
    client = APIClient()
    for method, url in (("get", NEXT), ("post", label_url(comparison.pk)), ("get", "/api/v1/export/preferences/"), ("post", "/api/v1/prompts/")):
        assert getattr(client, method)(url).status_code == 401, url


def test_user_without_role_gets_403(django_user_model, make_comparisons):
    nobody = django_user_model.objects.create_user("nobody", password="x")
    client = api_client_for(nobody)
    assert client.get(NEXT).status_code == 403


def test_export_is_for_researchers_and_admins(make_user, rater):
    assert api_client_for(rater).get("/api/v1/export/preferences/?format=raw").status_code == 403
    for role in (Role.RESEARCHER, Role.ADMIN):
        response = api_client_for(make_user(role)).get("/api/v1/export/preferences/?format=raw")
        assert response.status_code == 200 and response["Content-Type"] == "application/x-ndjson"
        assert "attachment" in response["Content-Disposition"]


def test_export_streams_the_chosen_format(researcher, rater, make_comparisons):
    (comparison,) = make_comparisons(1)
    client = api_client_for(rater)
    client.get(NEXT)
    client.post(label_url(comparison.pk), {"choice": "right"}, format="json")
    response = api_client_for(researcher).get("/api/v1/export/preferences/", {"format": "trl"})
    lines = b"".join(response.streaming_content).decode().splitlines()
    assert len(lines) == 1 and set(json.loads(lines[0])) >= {"prompt", "chosen", "rejected", "margin"}
    bad = api_client_for(researcher).get("/api/v1/export/preferences/", {"format": "xml"})
    assert bad.status_code == 400 and "format" in bad.json()
    bad_dates = api_client_for(researcher).get("/api/v1/export/preferences/", {"date_from": "2026-02-01", "date_to": "2026-01-01"})
    assert bad_dates.status_code == 400 and "date_to" in bad_dates.json()


def test_export_label_source_keeps_the_judges_labels_or_the_people_s(researcher, rater, make_comparisons, make_judge):
    from feedback_app.models import PreferenceLabel

    first, second = make_comparisons(2)
    client = api_client_for(rater)
    client.get(NEXT)
    client.post(label_url(first.pk), {"choice": "right"}, format="json")
    PreferenceLabel.objects.create(comparison=second, judge_version=make_judge("vllm").versions.get(), winner="a")
    for source, expected in (("ai", [("ai", "vllm")]), ("human", [("human", None)])):
        response = api_client_for(researcher).get("/api/v1/export/preferences/", {"format": "raw", "label_source": source})
        rows = [json.loads(line) for line in b"".join(response.streaming_content).decode().splitlines()]
        assert [(row["label_source"], row["judge"]) for row in rows] == expected


def test_bulk_prompts_is_for_admins(rater, researcher, admin_user):
    items = [{"prompt": "Where is my refund?", "responses": ["Soon.", "In 5 days."]}, {"prompt": "Open on Sunday?"}]
    for user in (rater, researcher):
        assert api_client_for(user).post("/api/v1/prompts/", items, format="json").status_code == 403
    response = api_client_for(admin_user).post("/api/v1/prompts/?required_labels=2", items, format="json")
    assert response.status_code == 201 and response.json()["counts"]["comparisons"] == 1
    assert Comparison.objects.get().required_labels == 2
    assert api_client_for(admin_user).post("/api/v1/prompts/", items, format="json").status_code == 409


def test_bulk_prompts_errors_name_item_and_field(admin_user):
    response = api_client_for(admin_user).post("/api/v1/prompts/", {"prompts": [{"prompt": "ok"}, {"prompt": "x", "responses": ["one"]}]}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"] == ["item 2, field 'responses': a comparison needs at least 2 responses, got 1"]
    assert not Prompt.objects.exists()
    assert api_client_for(admin_user).post("/api/v1/prompts/", {"prompt": "not a list"}, format="json").status_code == 400


def test_raters_see_only_their_own_assignment(make_user, make_comparisons):
    """A rater can't label (or read) a comparison leased to someone else."""
    (comparison,) = make_comparisons(1)
    r1, r2 = make_user(), make_user()
    api_client_for(r1).get(NEXT)
    assert api_client_for(r2).get(NEXT).status_code == 204
    assert api_client_for(r2).post(label_url(comparison.pk), {"choice": "left"}, format="json").status_code == 409


def test_token_login_and_schema(rater):
    client = APIClient()
    token = client.post("/api/v1/auth/token/", {"username": rater.username, "password": "correct horse battery staple"}).json()["token"]
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert client.get(NEXT).status_code == 204
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    paths = json.loads(schema.content)["paths"]
    assert "/api/v1/comparisons/next/" in paths and "/api/v1/comparisons/{comparison_id}/label/" in paths


HUGE = "99999999999999999999"  # past 2**63


@pytest.mark.parametrize("url", [f"/api/v1/comparisons/{HUGE}/label/", f"/api/v1/comparisons/{HUGE}/skip/"])
def test_path_ids_past_64_bits_are_a_400_naming_them(rater, url):
    response = api_client_for(rater).post(url, {"choice": "tie"}, format="json")
    assert response.status_code == 400 and "comparison_id" in response.json()


def test_unicode_digits_in_a_path_are_not_an_id(rater):
    """'٣' is a digit to Python, not to the URL: no such endpoint, answered in JSON."""
    response = api_client_for(rater).post("/api/v1/comparisons/٣/label/", {"choice": "tie"}, format="json")
    assert response.status_code == 404 and "no API endpoint" in response.json()["detail"]


@pytest.mark.parametrize(
    ("field", "value"),
    [("strength", "٣"), ("strength", "²"), ("strength", 2**64), ("strength", 2.5), ("strength", True),
     ("time_on_task_ms", 2**40), ("time_on_task_ms", "12"), ("time_on_task_ms", -1), ("rationale", 7)],
)
def test_label_fields_take_only_what_fits(rater, make_comparisons, field, value):
    (comparison,) = make_comparisons(1)
    client = api_client_for(rater)
    client.get(NEXT)
    response = client.post(label_url(comparison.pk), {"choice": "left", field: value}, format="json")
    assert response.status_code == 400 and field in response.content.decode()  # a field error, or the parser naming it
    assert PreferenceLabel.objects.count() == 0


@pytest.mark.parametrize("value", ["²", "٣", HUGE, "0", "-1", "1.5"])
def test_import_query_parameters_are_ascii_whole_numbers(admin_user, value):
    response = api_client_for(admin_user).post(f"/api/v1/prompts/?required_labels={value}", [{"prompt": "p"}], format="json")
    assert response.status_code == 400 and "required_labels" in response.json()
    assert not Prompt.objects.exists()


@pytest.mark.parametrize("query", ["date_from=yesterday", "date_to=2026-13-45", "format=xlsx", "exclude_flagged=perhaps", "label_source=robots",
                                   "tags=bilIing", "rater=nobody"])
def test_bad_export_parameters_are_a_400_naming_them(researcher, query):
    response = api_client_for(researcher).get(f"/api/v1/export/preferences/?{query}")
    assert response.status_code == 400 and query.split("=")[0] in response.json()


def test_an_export_filter_naming_a_tag_or_rater_the_studio_lacks_is_a_400_not_an_empty_file(researcher, make_comparisons):
    make_comparisons(1, tags=("billing", "late-delivery"))
    client = api_client_for(researcher)
    assert client.get("/api/v1/export/preferences/?tags=billing,Late Delivery&rater=" + researcher.username).status_code == 200
    response = client.get("/api/v1/export/preferences/?tags=billing,biling,refunds&rater=nobody")
    assert response.status_code == 400
    assert response.json() == {"tags": ["no tag 'biling', 'refunds' in the studio"], "rater": ["no rater 'nobody' (a username or a pseudonym)"]}


def test_label_submits_are_throttled_with_retry_after(rater, make_comparisons, monkeypatch):
    from rest_framework.throttling import ScopedRateThrottle

    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {**ScopedRateThrottle.THROTTLE_RATES, "label": "2/minute"})
    (comparison,) = make_comparisons(1)
    client = api_client_for(rater)
    client.get(NEXT)
    statuses = [client.post(label_url(comparison.pk), {"choice": "left"}, format="json").status_code for _ in range(3)]
    assert statuses[:2] == [201, 200] and statuses[2] == 429
    throttled = client.post(label_url(comparison.pk), {"choice": "left"}, format="json")
    assert throttled.status_code == 429 and int(throttled["Retry-After"]) > 0 and "throttled" in throttled.json()["detail"].lower()
    assert client.get(NEXT).status_code in (200, 204), "reads are not throttled"


def test_the_default_label_rate_lets_a_fast_rater_through(settings):
    """At least 10 labels a second per rater, as a setting."""
    from rest_framework.throttling import ScopedRateThrottle

    count, seconds = ScopedRateThrottle.parse_rate(None, settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["label"])
    assert count / seconds >= 10


def test_a_label_with_edited_text_stores_a_rewrite_once(rater, make_comparisons):
    """edited_text on the label call makes a human_edit response; a retry returns the same label and rewrite."""
    from feedback_app.models import Response

    (comparison,) = make_comparisons(1)
    client = api_client_for(rater)
    body = client.get(NEXT).json()
    submission = {"choice": "tie", "edited_text": "It ships tomorrow by 9am.", "edited_from": "right"}
    created = client.post(label_url(comparison.pk), submission, format="json")
    assert created.status_code == 201
    rewrite = Response.objects.get(pk=created.json()["rewrite_response_id"])
    assert rewrite.source == "human_edit" and rewrite.edited_from_id == body["right"]["id"]
    again = client.post(label_url(comparison.pk), submission, format="json")
    assert again.status_code == 200 and again.json()["rewrite_response_id"] == rewrite.pk
    assert Response.objects.filter(source="human_edit").count() == 1


@pytest.mark.parametrize("edited_text", ["", None])
def test_absent_or_empty_edited_text_is_no_rewrite(rater, make_comparisons, edited_text):
    (comparison,) = make_comparisons(1)
    client = api_client_for(rater)
    client.get(NEXT)
    body = {"choice": "left"} if edited_text is None else {"choice": "left", "edited_text": edited_text}
    response = client.post(label_url(comparison.pk), body, format="json")
    assert response.status_code == 201 and response.json()["rewrite_response_id"] is None


@pytest.mark.parametrize(("body", "field"), [
    ({"choice": "left", "edited_text": " \n "}, "edited_text"),
    ({"choice": "left", "edited_text": "x" * 20001}, "edited_text"),
    ({"choice": "left", "edited_text": 5}, "edited_text"),
    ({"choice": "left", "edited_text": "Better.", "edited_from": "right"}, "edited_from"),
    ({"choice": "left", "edited_text": "Better.", "edited_from": "a"}, "edited_from"),
])
def test_a_bad_rewrite_is_a_400_naming_its_field(rater, make_comparisons, body, field):
    from feedback_app.models import Response

    (comparison,) = make_comparisons(1)
    client = api_client_for(rater)
    client.get(NEXT)
    response = client.post(label_url(comparison.pk), body, format="json")
    assert response.status_code == 400 and field in response.json()
    assert not PreferenceLabel.objects.exists() and not Response.objects.filter(source="human_edit").exists()


def test_export_sft_streams_the_rewrites(researcher, rater, make_comparisons):
    (comparison,) = make_comparisons(1)
    client = api_client_for(rater)
    client.get(NEXT)
    client.post(label_url(comparison.pk), {"choice": "both_bad", "edited_text": "It ships Monday."}, format="json")
    response = api_client_for(researcher).get("/api/v1/export/preferences/", {"format": "sft"})
    assert response.status_code == 200 and "preferences-sft-" in response["Content-Disposition"]
    lines = [json.loads(line) for line in b"".join(response.streaming_content).decode().splitlines()]
    assert lines == [{"prompt": comparison.prompt.text, "completion": "It ships Monday."}]


def test_label_and_next_in_one_call_and_a_retry_gets_the_same_next_lease(rater, make_comparisons):
    """?next=1: 201 with the label and the next lease; the same label again: 200, the same lease; none left: next null."""
    first, second = make_comparisons(2)
    client = api_client_for(rater)
    leased = client.get(NEXT).json()["id"]
    other = ({first.pk, second.pk} - {leased}).pop()
    submission = {"choice": "left", "strength": 2}
    created = client.post(label_url(leased) + "?next=1", submission, format="json")
    assert created.status_code == 201 and created.json()["comparison_id"] == leased
    following = created.json()["next"]
    assert following["id"] == other and set(following) == {"id", "prompt", "context", "left", "right", "lease_expires_at"}
    retried = client.post(label_url(leased) + "?next=1", submission, format="json")
    assert retried.status_code == 200 and retried.json()["id"] == created.json()["id"] and retried.json()["next"] == following
    last = client.post(label_url(other) + "?next=true", submission, format="json")
    assert last.status_code == 201 and last.json()["next"] is None
    assert "next" not in client.post(label_url(other), submission, format="json").json()  # the two-call flow is as it was
    assert PreferenceLabel.objects.count() == 2


def test_a_bad_next_parameter_is_a_400_naming_it_and_stores_nothing(rater, make_comparisons):
    (comparison,) = make_comparisons(1)
    client = api_client_for(rater)
    client.get(NEXT)
    response = client.post(label_url(comparison.pk) + "?next=perhaps", {"choice": "left"}, format="json")
    assert response.status_code == 400 and "next" in response.json()
    assert not PreferenceLabel.objects.exists()


def test_guidelines_are_read_through_the_api_rendered_safely(rater, researcher):
    from feedback_app.services.campaigns import campaign_guidelines_set

    client = api_client_for(rater)
    assert client.get("/api/v1/guidelines/").json() == {"version": 0, "markdown": "", "html": ""}
    campaign_guidelines_set(campaign=campaign_default(), user=researcher, text="Be *kind*. <b>raw</b>")
    caches_clear()  # the change's on-commit clear, which a test transaction never runs
    body = client.get("/api/v1/guidelines/").json()
    assert body["version"] == 1 and body["markdown"] == "Be *kind*. <b>raw</b>" and "<em>kind</em>" in body["html"] and "&lt;b&gt;" in body["html"]
    assert APIClient().get("/api/v1/guidelines/").status_code == 401


def test_a_body_over_the_limit_is_a_413_in_json_naming_it_and_stores_nothing(rater, make_comparisons, settings):
    """Django answers an oversized body with an HTML page; the API answers JSON, as for every other refusal (schemathesis found it)."""
    (comparison,) = make_comparisons(1)
    client = api_client_for(rater)
    client.get(NEXT)
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = client.post(label_url(comparison.pk), data=json.dumps({"choice": "left", "rationale": "x" * 2000}), content_type="application/json")
    assert response.status_code == 413 and response.headers["Content-Type"] == "application/json"
    assert "1000 bytes" in response.json()["detail"]
    assert not PreferenceLabel.objects.exists()
