"""Every bad-JSON class, on every kind of write endpoint: a 400 that names the problem, never a 500."""

import pytest

from tests.conftest import api_client_for

pytestmark = pytest.mark.django_db

DEEP = '{"prompt": "p", "responses": ["a", "b"], "metadata": {"x": ' + "[" * 1000 + "]" * 1000 + "}}"
BAD_BODIES = {
    "deep": (DEEP, "nested more than 64 levels"),
    "nan": ('{"prompt": "p", "metadata": {"score": NaN}}', "metadata.score: NaN"),
    "infinity": ('{"prompt": "p", "metadata": {"score": Infinity}}', "metadata.score: Infinity"),
    "huge float": ('{"prompt": "p", "metadata": {"score": 1e999}}', "metadata.score: the number 1e999 is out of range"),
    "huge int": ('{"prompt": "p", "metadata": {"n": ' + "9" * 5000 + "}}", "metadata.n: the number"),
    "lone surrogate": ('{"prompt": "\\udc80"}', "prompt: holds a lone surrogate"),
    "nul": ('{"prompt": "p", "metadata": {"note": "a\\u0000b"}}', "metadata.note: holds a NUL character"),
    "not utf-8": (b'{"prompt": "\xc3("}', "not utf-8 text"),
    "blank": ("  \n", "the body is empty"),
}
ENDPOINTS = [
    ("admin", "/api/v1/prompts/"),
    ("rater", "/api/v1/comparisons/1/label/"),
    ("researcher", "/api/v1/score/"),
    ("researcher", "/api/v1/training-runs/"),
    ("anonymous", "/api/v1/auth/token/"),
]


@pytest.mark.parametrize(("role", "url"), ENDPOINTS)
def test_bad_json_is_a_400_naming_the_problem(role, url, make_user):
    from rest_framework.test import APIClient

    from feedback_app.models import Role

    client = api_client_for(make_user(Role(role))) if role != "anonymous" else APIClient()
    for case, (body, expected) in BAD_BODIES.items():
        response = client.generic("POST", url, body, content_type="application/json")
        assert response.status_code == 400, (case, response.content)
        assert expected.lower() in response.json()["detail"].lower(), case


def test_a_form_body_is_415_on_json_endpoints(researcher):
    """The API takes JSON bodies (what the schema says); a form post is told so."""
    response = api_client_for(researcher).post("/api/v1/training-runs/", "kind=reward_fast", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415 and "application/x-www-form-urlencoded" in response.json()["detail"]
