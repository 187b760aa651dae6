"""Django's session, CSRF, session-user and message middleware, left out of a token's API call without a cookie."""

import json

import pytest
from django.test import Client, RequestFactory

from feedback_app.middleware import browser_only
from feedback_app.services.accounts import api_token_issue

pytestmark = pytest.mark.django_db

MIDDLEWARE = (browser_only.SessionMiddleware, browser_only.AuthenticationMiddleware, browser_only.MessageMiddleware,
              browser_only.CsrfViewMiddleware)


def _through_the_middleware(request) -> dict:
    """Run ``request`` through the four, in the studio's order; return what the view would have found on it, and the CSRF
    check's answer for a view that is not exempt."""
    seen = {}

    def view(request):
        from django.http import HttpResponse

        seen.update(session=hasattr(request, "session"), user=hasattr(request, "user"), messages=hasattr(request, "_messages"))
        seen["csrf"] = browser_only.CsrfViewMiddleware(lambda r: None).process_view(request, lambda r: None, (), {})
        return HttpResponse()

    handler = view
    for middleware in reversed(MIDDLEWARE):
        handler = middleware(handler)
    handler(request)
    return seen


@pytest.mark.parametrize("header", ["Token abc", "token abc", "TOKEN abc"])
def test_a_token_api_call_without_a_cookie_is_handed_straight_on(header):
    seen = _through_the_middleware(RequestFactory().post("/api/v1/comparisons/1/label/", HTTP_AUTHORIZATION=header))
    assert seen == {"session": False, "user": False, "messages": False, "csrf": None}


@pytest.mark.parametrize("path, headers", [
    ("/api/v1/comparisons/1/label/", {"HTTP_AUTHORIZATION": "Token abc", "HTTP_COOKIE": "sessionid=x"}),  # a cookie: the session may matter
    ("/api/v1/comparisons/1/label/", {}),  # no token: a browser's call, by its session
    ("/api/v1/comparisons/1/label/", {"HTTP_AUTHORIZATION": "Basic abc"}),
    ("/label/", {"HTTP_AUTHORIZATION": "Token abc"}),  # not the API
], ids=["cookie", "no-token", "basic", "page"])
def test_every_other_request_runs_the_middleware(path, headers):
    seen = _through_the_middleware(RequestFactory().post(path, **headers))
    assert seen["session"] and seen["user"] and seen["messages"]
    assert seen["csrf"] is not None and seen["csrf"].status_code == 403  # a POST without a CSRF token


def test_a_token_s_label_call_answers_the_same_headers_as_through_the_whole_middleware(rater, make_comparisons):
    """The same two calls, one without a cookie and one with a cookie the studio never set (which runs the four): the
    answers carry the same headers, with the same values."""
    first, second = make_comparisons(2)
    _, key = api_token_issue(user=rater)
    answers = []
    for comparison, cookie in ((first, None), (second, "unrelated")):
        client = Client(enforce_csrf_checks=True, HTTP_AUTHORIZATION=f"Token {key}")
        if cookie:
            client.cookies["unrelated"] = cookie
        assert client.get("/api/v1/comparisons/next/").json()["id"] == comparison.pk
        answer = client.post(f"/api/v1/comparisons/{comparison.pk}/label/?next=1", json.dumps({"choice": "left"}), content_type="application/json")
        assert answer.status_code == 201
        answers.append({name: value for name, value in answer.headers.items() if name != "Content-Length"})
    assert answers[0] == answers[1]
    assert "Cookie" not in answers[0].get("Vary", "") and "Set-Cookie" not in answers[0]
