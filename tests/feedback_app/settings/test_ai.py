"""Settings of AI feedback read from the environment, each case in a fresh process: off by default, validated."""

import json
import os
import subprocess
import sys

import pytest
from django.conf import settings as django_settings

NAMES = ["HEALTH_QUEUES", "AI_FEEDBACK", "AI_AUDIT_SHARE", "AI_MIN_AUDITS", "AI_AGREEMENT_MARGIN", "AI_MIN_AGREEMENT", "AI_LABEL_WEIGHT", "JUDGE_URL",
         "JUDGE_API_KEY", "JUDGE_MODEL", "JUDGE_TIMEOUT_SECONDS", "JUDGE_CONCURRENCY"]


def ai_settings(**env) -> dict:
    code = f"import json, feedback_app.settings as s; print(json.dumps({{n: getattr(s, n) for n in {NAMES!r}}}))"
    base = {k: v for k, v in os.environ.items() if k not in NAMES}
    out = subprocess.run([sys.executable, "-c", code], env={**base, **env}, cwd=django_settings.BASE_DIR, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_ai_feedback_is_off_with_the_issue_s_defaults_and_no_endpoint():
    """Off by default; on, /readyz also expects a worker on the judge queue unless HEALTH_QUEUES says otherwise."""
    assert ai_settings() == {
        "HEALTH_QUEUES": ["default", "score", "gpu", "policy"], "AI_FEEDBACK": False, "AI_AUDIT_SHARE": 0.1, "AI_MIN_AUDITS": 50, "AI_AGREEMENT_MARGIN": 0.05, "AI_MIN_AGREEMENT": 0.65,
        "AI_LABEL_WEIGHT": 0.5, "JUDGE_URL": "", "JUDGE_API_KEY": "", "JUDGE_MODEL": "", "JUDGE_TIMEOUT_SECONDS": 60.0, "JUDGE_CONCURRENCY": 4,
    }
    on = ai_settings(AI_FEEDBACK="1", JUDGE_URL="http://127.0.0.1:8000/v1/")
    assert on["JUDGE_URL"] == "http://127.0.0.1:8000/v1" and on["HEALTH_QUEUES"] == ["default", "score", "gpu", "policy", "judge"]
    assert ai_settings(AI_FEEDBACK="1", HEALTH_QUEUES="default")["HEALTH_QUEUES"] == ["default"]


@pytest.mark.parametrize("env, message", [
    ({"AI_AUDIT_SHARE": "1.5"}, "AI_AUDIT_SHARE must be between 0 and 1, got 1.5"),
    ({"AI_LABEL_WEIGHT": "-0.1"}, "AI_LABEL_WEIGHT must be between 0 and 1, got -0.1"),
    ({"AI_MIN_AUDITS": "0"}, "AI_MIN_AUDITS must be at least 1, got 0"),
    ({"JUDGE_URL": "localhost:8000"}, "JUDGE_URL must be an http:// or https:// URL, got 'localhost:8000'"),
    ({"JUDGE_TIMEOUT_SECONDS": "0"}, "JUDGE_TIMEOUT_SECONDS must be positive, got 0.0"),
])
def test_a_bad_value_names_the_variable(env, message):
    with pytest.raises(subprocess.CalledProcessError) as failure:
        ai_settings(**env)
    assert "ImproperlyConfigured" in failure.value.stderr and message in failure.value.stderr
