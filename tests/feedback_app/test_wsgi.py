"""The WSGI entry point as a deployment serves it (Granian, a few threads): the labeling API over HTTP, on the test database."""

import os
import subprocess

import pytest
import requests
from django.conf import settings as django_settings
from django.core.management.base import CommandError

from feedback_app.devsupport import free_port, wait_for_port, wsgi_server_command
from feedback_app.models import Assignment, PreferenceLabel
from tests.conftest import _close_pools, child_database_url


@pytest.fixture
def wsgi_server(transactional_db, tmp_path, redis_url):
    _close_pools()  # the child opens its own connections to the test database
    port = free_port()
    env = {**os.environ, "DATABASE_URL": child_database_url(), "REDIS_URL": redis_url, "VAR_DIR": str(tmp_path / "var"),
           "SECRET_KEY": django_settings.SECRET_KEY,
           "REFIT_EVERY_N_LABELS": "0", "POLICY_EVERY_N_LABELS": "0", "PYTHONUNBUFFERED": "1"}
    log = open(tmp_path / "granian.log", "w+")
    process = subprocess.Popen(wsgi_server_command(host="127.0.0.1", port=port, workers=1, threads=2), env=env, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    try:
        try:
            wait_for_port("127.0.0.1", port, timeout=60, process=process)
        except CommandError:  # it exited first: say why
            raise AssertionError(log.seek(0) or log.read()) from None
        yield f"http://127.0.0.1:{port}", tmp_path / "granian.log"
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def test_a_rater_labels_over_the_wsgi_entry_point_and_gets_the_next_lease_and_a_bad_label_names_its_field(wsgi_server, rater,
                                                                                                           make_comparisons):
    from feedback_app.services.accounts import api_token_issue

    base, log = wsgi_server
    make_comparisons(3)
    _, key = api_token_issue(user=rater)
    api = requests.Session()
    api.headers["Authorization"] = f"Token {key}"

    assert requests.get(f"{base}/healthz", timeout=30).text == "ok"
    assert requests.get(f"{base}/api/v1/comparisons/next/", timeout=30).status_code == 401  # no token

    first = api.get(f"{base}/api/v1/comparisons/next/", timeout=30).json()
    bad = api.post(f"{base}/api/v1/comparisons/{first['id']}/label/?next=1", json={"choice": "left", "strength": 7}, timeout=30)
    assert bad.status_code == 400 and "strength" in bad.json()
    labelled = api.post(f"{base}/api/v1/comparisons/{first['id']}/label/?next=1", json={"choice": "left"}, timeout=30)
    assert labelled.status_code == 201, labelled.text
    following = labelled.json()["next"]
    assert following["id"] != first["id"]
    again = api.post(f"{base}/api/v1/comparisons/{first['id']}/label/?next=1", json={"choice": "left"}, timeout=30)
    assert again.json()["next"]["id"] == following["id"]  # a retry stores nothing twice and finds the same next lease

    assert PreferenceLabel.objects.filter(rater=rater).count() == 1
    assert Assignment.objects.filter(rater=rater, status=Assignment.Status.LEASED).get().comparison_id == following["id"]
    assert "Traceback" not in log.read_text()
