"""Settings of AI feedback: whether judges label at all, how far they are trusted, and where the generative ones run.

Off by default (AI_FEEDBACK): the studio then routes nothing, stores no AI label and trains on none.
"""

import os

from django.core.exceptions import ImproperlyConfigured

from feedback_app.settings.env import env_bool as _env_bool
from feedback_app.settings.env import env_float as _env_float
from feedback_app.settings.env import env_int as _env_int

AI_FEEDBACK = _env_bool("AI_FEEDBACK", False)
# The share of AI-labelled comparisons that also go to people, as any other pair (the audit).
AI_AUDIT_SHARE = _env_float("AI_AUDIT_SHARE", 0.1)
# The trust gate: a judge's labels count while its agreement with people over its newest
# AI_AUDIT_WINDOW audits (at least AI_MIN_AUDITS) is at least the people's agreement with each other
# minus AI_AGREEMENT_MARGIN, or AI_MIN_AGREEMENT while no comparison has two raters' labels.
AI_MIN_AUDITS = _env_int("AI_MIN_AUDITS", 50, 1)
AI_AUDIT_WINDOW = _env_int("AI_AUDIT_WINDOW", 200, 1)
AI_AGREEMENT_MARGIN = _env_float("AI_AGREEMENT_MARGIN", 0.05)
AI_MIN_AGREEMENT = _env_float("AI_MIN_AGREEMENT", 0.65)
# An AI label's weight in training, where a rater's label weighs 1 (or their trust).
AI_LABEL_WEIGHT = _env_float("AI_LABEL_WEIGHT", 0.5)
# A comparison that waited this long for a generative judge goes to people.
AI_JUDGING_TIMEOUT_SECONDS = _env_int("AI_JUDGING_TIMEOUT_SECONDS", 600, 10)
for _name, _value in (("AI_AUDIT_SHARE", AI_AUDIT_SHARE), ("AI_AGREEMENT_MARGIN", AI_AGREEMENT_MARGIN),
                      ("AI_MIN_AGREEMENT", AI_MIN_AGREEMENT), ("AI_LABEL_WEIGHT", AI_LABEL_WEIGHT)):
    if not 0.0 <= _value <= 1.0:
        raise ImproperlyConfigured(f"{_name} must be between 0 and 1, got {_value}")

# The local generative judge: a chat model folder that transformers loads (on the "judge" queue only).
JUDGE_MODEL = os.environ.get("JUDGE_MODEL", "")
# The remote judge: any OpenAI-compatible chat-completions endpoint (vLLM, llama.cpp's server, Ollama, TGI).
# Unset: no remote judge. JUDGE_URL is the base URL (…/v1); the key is sent as a bearer token when set.
JUDGE_URL = os.environ.get("JUDGE_URL", "").rstrip("/")
JUDGE_API_KEY = os.environ.get("JUDGE_API_KEY", "")
JUDGE_REMOTE_MODEL = os.environ.get("JUDGE_REMOTE_MODEL", "")  # the request's "model"; servers of one model ignore it
JUDGE_TIMEOUT_SECONDS = _env_float("JUDGE_TIMEOUT_SECONDS", 60.0)
JUDGE_MAX_RETRIES = _env_int("JUDGE_MAX_RETRIES", 3, 0)
JUDGE_CONCURRENCY = _env_int("JUDGE_CONCURRENCY", 4, 1)
JUDGE_MAX_TOKENS = _env_int("JUDGE_MAX_TOKENS", 256, 16)
if JUDGE_URL and not JUDGE_URL.startswith(("http://", "https://")):
    raise ImproperlyConfigured(f"JUDGE_URL must be an http:// or https:// URL, got {JUDGE_URL!r}")
if JUDGE_TIMEOUT_SECONDS <= 0:
    raise ImproperlyConfigured(f"JUDGE_TIMEOUT_SECONDS must be positive, got {JUDGE_TIMEOUT_SECONDS}")
