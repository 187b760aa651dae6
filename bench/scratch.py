"""A throwaway studio for benches and the docs' screenshots: SQLite in a scratch VAR_DIR, its own
Redis and, on request, one daphne, all on 127.0.0.1 and all stopped on exit, whatever happens.

    with ScratchStudio("ws-fanout-") as studio:   # Django is set up and migrated in this process
        ...                                       # fill the database through the services
        url = studio.start_web()                  # then serve it
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def rater_create(username: str) -> tuple:
    """``services.accounts.user_create`` for a bench's rater, who calls with a token or a session and never logs in with a
    password: theirs is hashed cheaply (a thousand raters took ten minutes at the studio's own hasher)."""
    from django.test import override_settings

    from feedback_app.models import Role
    from feedback_app.services.accounts import user_create

    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
        return user_create(username=username, role=Role.RATER)


class ScratchStudio:
    def __init__(self, prefix: str, *, env: dict[str, str] | None = None, keep: bool = False) -> None:
        self.prefix, self.extra_env, self.keep = prefix, env or {}, keep
        self.children: list[tuple[str, subprocess.Popen]] = []

    def __enter__(self) -> ScratchStudio:
        sys.path.insert(0, str(ROOT))
        from feedback_app.devsupport import scratch_redis_start

        self.scratch = Path(tempfile.mkdtemp(prefix=self.prefix))
        try:
            redis, redis_url = scratch_redis_start(self.scratch / "redis")
            self.children.append(("redis", redis))
            self.env = {**os.environ, "VAR_DIR": str(self.scratch), "MODEL_STORE": str(self.scratch / "models"),
                        "REDIS_URL": redis_url, "SECRET_KEY": "scratch-only-" + os.urandom(8).hex(),
                        "CELERY_TASK_ALWAYS_EAGER": "0", "LOG_LEVEL": "WARNING", "DJANGO_SETTINGS_MODULE": "feedback_app.settings",
                        **self.extra_env}
            self.env.pop("DATABASE_URL", None)
            os.environ.update(self.env)
            os.environ.pop("DATABASE_URL", None)
            import django

            django.setup()
            from django.core.management import call_command

            call_command("migrate", verbosity=0)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def start_web(self) -> str:
        """Serve the studio with daphne; return its base URL once it listens."""
        from feedback_app.devsupport import free_port, wait_for_port

        port = free_port()
        self._start("daphne", [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "feedback_app.asgi:application"],
                    open(self.scratch / "daphne.log", "wb"))
        wait_for_port("127.0.0.1", port, timeout=60, process=self.children[-1][1])
        return f"http://127.0.0.1:{port}"

    def _start(self, name: str, command: list[str], stdout) -> None:
        process = subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=stdout, stderr=subprocess.STDOUT, start_new_session=True)
        self.children.append((name, process))

    def __exit__(self, *exc_info) -> None:
        for name, child in reversed(self.children):  # daphne first, Redis last
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGTERM)
            try:
                child.wait(timeout=20)
            except subprocess.TimeoutExpired:
                print(f"{name} did not stop in 20 s; killing it", file=sys.stderr)
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()
        self.children.clear()
        if self.keep:
            print(f"scratch folder kept: {self.scratch}")
        else:
            shutil.rmtree(self.scratch, ignore_errors=True)
