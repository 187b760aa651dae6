"""Run schemathesis against a throwaway studio, as a researcher and as an admin; exit non-zero on any failure.

The studio runs with its workers (so /api/v1/score/ answers) in a scratch VAR_DIR with its own
SQLite database and embedded Redis on free ports. The training runs the fuzzer queues are failed
("cancelled") before the studio stops, so no worker trains after the run.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv" / "bin" / "python").exists() else sys.executable
BUDGET_SECONDS = int(os.environ.get("SCHEMATHESIS_BUDGET", "600"))  # all of it: setup, both runs, teardown
MAX_EXAMPLES = os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "30")
CANCEL_RUNS = """
from feedback_app.models import TrainingRun
from feedback_app.services.training import training_run_fail
open_runs = TrainingRun.objects.filter(status__in=[TrainingRun.Status.QUEUED, TrainingRun.Status.RUNNING])
ids = list(open_runs.values_list("pk", flat=True))
print(f"cancelled {sum(training_run_fail(run_id=pk, error='cancelled: queued by the schemathesis run') for pk in ids)} training run(s)")
"""


def preferences_write(path: Path, n: int = 40) -> Path:
    """Write ``n`` labelled pairs, enough for a first fast reward model (so /api/v1/score/ has one to use)."""
    import json

    lines = [json.dumps({"prompt": f"Where is my order #{1000 + i}?", "chosen": f"Your order #{1000 + i} ships tomorrow; here is the tracking link.",
                         "rejected": "Please wait."}) for i in range(n)]
    path.write_text("\n".join(lines) + "\n")
    return path


def free_port() -> int:
    """Return a TCP port that is free on 127.0.0.1 now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def manage(env: dict, *args: str) -> str:
    """Run manage.py with ``args`` in the scratch studio; return its output, raise on failure."""
    done = subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"manage.py {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done.stdout


def token_of(output: str) -> str:
    """Return the API token that ``manage.py add_user`` printed."""
    match = re.search(r"API token: (\S+)", output)
    if not match:
        raise SystemExit(f"add_user printed no API token:\n{output}")
    return match.group(1)


def wait_for_schema(url: str, studio: subprocess.Popen, timeout: float = 180) -> None:
    """Return once ``url`` answers 200; exit if the studio dies or never answers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if studio.poll() is not None:
            raise SystemExit(f"the studio exited with status {studio.returncode} before serving {url}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1)
    raise SystemExit(f"{url} did not answer within {timeout:.0f} s")


def studio_stop(studio: subprocess.Popen) -> None:
    """Stop ``manage.py serve`` (it stops its children), killing its group if it lingers."""
    if studio.poll() is None:
        studio.send_signal(signal.SIGTERM)
        try:
            studio.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(studio.pid, signal.SIGKILL)
            studio.wait()


def main() -> int:
    deadline = time.monotonic() + BUDGET_SECONDS - 60  # a minute kept for cancelling runs and stopping the studio
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))  # so that `finally` stops the studio
    var_dir = Path(tempfile.mkdtemp(prefix="feedback-schemathesis."))
    port, redis_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update({
        "VAR_DIR": str(var_dir), "SECRET_KEY": secrets.token_urlsafe(50), "EMBEDDED_REDIS_PORT": str(redis_port),
        "MODEL_STORE": str(var_dir / "models"), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
        # Keep the CPU for the fuzzer: no generation rounds and no automatic refits while it runs.
        "SUPPLY_OPEN_TARGET": "0", "REFIT_EVERY_N_LABELS": "0", "TORCH_THREADS": "1",
        # A generate call that names a real version (policy-base appears once a DPO run the fuzzer
        # queued starts) runs SmolLM2 on the CPU: short replies keep it well inside its timeout.
        "GENERATE_MAX_NEW_TOKENS": "16",
        # The throttles are tested by the test suite; here they would only hide the logic behind them.
        **{f"THROTTLE_{scope}_RATE": "100000/minute" for scope in ("LABEL", "WRITE", "SCORE", "IMPORT", "GENERATE")},
    })
    studio = None
    failures = []
    try:
        manage(env, "migrate", "--noinput")
        manage(env, "seed_demo")
        tokens = {role: token_of(manage(env, "add_user", f"schemathesis-{role}", "--role", role)) for role in ("researcher", "admin")}
        log = open(var_dir / "studio.log", "w")
        studio = subprocess.Popen([PYTHON, "manage.py", "serve", "--port", str(port), "--default-concurrency", "1"], cwd=ROOT, env=env,
                                  stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        schema = f"http://127.0.0.1:{port}/api/schema/"
        wait_for_schema(schema, studio)
        manage(env, "import_preferences", str(preferences_write(var_dir / "preferences.jsonl")))
        manage(env, "train_reward_model", "--wait", "--timeout", "300")  # on the studio's gpu worker
        for i, (role, token) in enumerate(tokens.items()):
            share = int((deadline - time.monotonic()) / (len(tokens) - i))  # the runs still to go split what is left
            if share < 30:
                failures.append(f"{role}: no time left in the {BUDGET_SECONDS} s budget")
                continue
            print(f"== schemathesis as {role} (at most {share} s)", flush=True)
            command = ["timeout", str(share), PYTHON, "-m", "schemathesis.cli", "--config-file", str(ROOT / ".ci" / "schemathesis.toml"),
                       "run", schema, "--header", f"Authorization: Token {token}", "--max-examples", MAX_EXAMPLES, "--workers", "1", "--no-color",
                       # Every text field refuses NUL (PostgreSQL stores none); the schema does not repeat it on each string.
                       "--generation-allow-x00", "false",
                       # DELETE on the token endpoint revokes the very token the run authenticates with, after
                       # which every call is a 401 and the rest of the run tests nothing (its own tests cover it).
                       "--exclude-name", "DELETE /api/v1/auth/token/"]
            code = subprocess.run(command, cwd=var_dir, env={**os.environ, "PYTHONUNBUFFERED": "1"}).returncode
            if code:
                failures.append(f"{role}: schemathesis exited with {code}" + (" (timed out)" if code == 124 else ""))
        print(manage(env, "shell", "-c", CANCEL_RUNS).strip())
    finally:
        if studio is not None:
            studio_stop(studio)
            if failures:
                print(f"== studio log (last lines of {var_dir / 'studio.log'})")
                print("".join(open(var_dir / "studio.log").readlines()[-60:]))
        if not failures or os.environ.get("SCHEMATHESIS_KEEP") != "1":
            shutil.rmtree(var_dir, ignore_errors=True)
    for failure in failures:
        print(f"FAILED {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
