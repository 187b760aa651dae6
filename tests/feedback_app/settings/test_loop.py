"""Settings of the learning loop read from the environment, each case in a fresh process: the policy's serving mode, the workers' priority."""

import json
import os
import subprocess
import sys

import pytest
from django.conf import settings as django_settings


def loop_settings(**env) -> dict:
    code = "import json, feedback_app.settings as s; print(json.dumps([s.POLICY_SERVING_MODE, s.RERANK_SAMPLES]))"
    base = {k: v for k, v in os.environ.items() if k not in ("POLICY_SERVING_MODE", "RERANK_SAMPLES")}
    out = subprocess.run([sys.executable, "-c", code], env={**base, **env}, cwd=django_settings.BASE_DIR, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_trained_versions_rerank_the_best_of_4_by_default_and_both_can_be_set():
    assert loop_settings() == ["rerank", 4]
    assert loop_settings(POLICY_SERVING_MODE="sample", RERANK_SAMPLES="8") == ["sample", 8]


@pytest.mark.parametrize("env, message", [
    ({"POLICY_SERVING_MODE": "best"}, "POLICY_SERVING_MODE must be sample or rerank, got 'best'"),
    ({"RERANK_SAMPLES": "1"}, "RERANK_SAMPLES must be at least 2, got 1"),
    ({"POLICY_WORKER_NICE": "20"}, "POLICY_WORKER_NICE must be a niceness from 0 to 19, got 20"),
    ({"WORKER_NICE": "-1"}, "WORKER_NICE must be at least 0, got -1"),
])
def test_a_bad_value_names_the_variable(env, message):
    with pytest.raises(subprocess.CalledProcessError) as failure:
        loop_settings(**env)
    assert "ImproperlyConfigured" in failure.value.stderr and message in failure.value.stderr
