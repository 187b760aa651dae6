"""Settings of the learning loop read from the environment, each case in a fresh process: the policy's serving mode, the workers' priority."""

import json
import os
import subprocess
import sys

import pytest
from django.conf import settings as django_settings


def loop_settings(names=("POLICY_SERVING_MODE", "RERANK_SAMPLES"), **env) -> list:
    code = f"import json, feedback_app.settings as s; print(json.dumps([getattr(s, name) for name in {list(names)!r}]))"
    base = {k: v for k, v in os.environ.items() if k not in names}
    out = subprocess.run([sys.executable, "-c", code], env={**base, **env}, cwd=django_settings.BASE_DIR, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_trained_versions_rerank_the_best_of_4_by_default_and_both_can_be_set():
    assert loop_settings() == ["rerank", 4]
    assert loop_settings(POLICY_SERVING_MODE="sample", RERANK_SAMPLES="8") == ["sample", 8]


def test_workers_run_below_the_web_and_the_policy_worker_below_the_other_workers():
    """The web processes run at niceness 0: under load the raters' calls keep the cores, and a DPO run yields them to refits."""
    assert loop_settings(("WORKER_NICE", "POLICY_WORKER_NICE")) == [5, 10]
    assert loop_settings(("WORKER_NICE",), WORKER_NICE="0") == [0]


@pytest.mark.parametrize("env, message", [
    ({"POLICY_SERVING_MODE": "best"}, "POLICY_SERVING_MODE must be sample or rerank, got 'best'"),
    ({"RERANK_SAMPLES": "1"}, "RERANK_SAMPLES must be at least 2, got 1"),
    ({"POLICY_WORKER_NICE": "20"}, "POLICY_WORKER_NICE must be a niceness from 0 to 19, got 20"),
    ({"WORKER_NICE": "-1"}, "WORKER_NICE must be at least 0, got -1"),
    ({"WORKER_NICE": "25"}, "WORKER_NICE must be a niceness from 0 to 19, got 25"),
])
def test_a_bad_value_names_the_variable(env, message):
    with pytest.raises(subprocess.CalledProcessError) as failure:
        loop_settings(**env)
    assert "ImproperlyConfigured" in failure.value.stderr and message in failure.value.stderr
