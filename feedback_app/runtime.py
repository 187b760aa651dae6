"""The running studio's runtime file and lock under VAR_DIR, shared by `serve`, settings and commands.

Standard library only: settings import it before Django is set up.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from pathlib import Path

RUNTIME_FILE = "studio.json"
LOCK_FILE = "serve.lock"


class StudioAlreadyRunning(RuntimeError):
    """Another supervisor holds the lock of this VAR_DIR."""


def studio_id(var_dir: Path) -> str:
    """Return a short id of the studio that lives in ``var_dir``, the same across its restarts."""
    return hashlib.sha256(str(Path(var_dir).resolve()).encode()).hexdigest()[:8]


def runtime_read(var_dir: Path) -> dict | None:
    """Return what the running studio wrote about itself, or None when no studio wrote anything."""
    try:
        data = json.loads((Path(var_dir) / RUNTIME_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def runtime_live(var_dir: Path) -> dict | None:
    """Return the runtime file if the studio that wrote it still runs; a supervisor that was killed
    (SIGKILL, a crash of the machine) leaves its file behind."""
    data = runtime_read(var_dir)
    pid = (data or {}).get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, under another user
    return data


def runtime_write(var_dir: Path, data: dict) -> None:
    """Replace the runtime file in one rename, so a reader never sees half of it."""
    path = Path(var_dir) / RUNTIME_FILE
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    # Owner only: an external REDIS_URL may carry a password.
    with os.fdopen(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as file:
        json.dump(data, file, indent=1, sort_keys=True)
    os.replace(partial, path)


def runtime_remove(var_dir: Path) -> None:
    """Remove the runtime file, if any."""
    (Path(var_dir) / RUNTIME_FILE).unlink(missing_ok=True)


def runtime_redis_url(var_dir: Path) -> str | None:
    """Return the Redis URL the running studio uses, if it wrote one."""
    url = (runtime_live(var_dir) or {}).get("redis_url")
    return url if isinstance(url, str) and url else None


def studio_lock(var_dir: Path) -> int:
    """Take the studio's exclusive lock and return its descriptor; the lock lasts until it is closed
    or the process ends, however it ends. Raise StudioAlreadyRunning, naming the running studio."""
    var_dir = Path(var_dir)
    var_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(var_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StudioAlreadyRunning(_running_message(var_dir)) from None
    return fd


def _running_message(var_dir: Path) -> str:
    data = runtime_read(var_dir) or {}
    web = f"http://{data['host']}:{data['port']}/" if data.get("host") and data.get("port") else "a port it has not written yet"
    pid = f" (pid {data['pid']})" if data.get("pid") else ""
    return (
        f"The studio of {var_dir} is already running{pid} on {web}. Stop it first, or give a second "
        "studio its own VAR_DIR, PORT and EMBEDDED_REDIS_PORT."
    )


def priority_lower(nice: int) -> int:
    """Lower this process's CPU priority to niceness ``nice`` (never raise it) and return the niceness now.

    Also sets the niceness of the process's scheduler autogroup where Linux has one: `serve`
    starts each child in a session of its own, and with autogroups the kernel shares the CPU
    between sessions first, so a process's own niceness alone would not yield to another child.
    """
    current = os.nice(0)
    if nice > current:
        current = os.nice(nice - current)
    try:
        with open("/proc/self/autogroup", "w") as file:
            file.write(str(current))
    except OSError:  # no autogroups on this kernel, or not allowed: the process's niceness still applies
        pass
    return current
