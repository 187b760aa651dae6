"""Keep a set of child processes running: restart a crashed one with backoff, tee its output to
the console and a size-rotated log file, and stop them all within a grace period.

Standard library only, so tests drive it with stand-in children; `manage.py serve` gives it the
studio's processes.
"""

from __future__ import annotations

import ctypes
import logging
import logging.handlers
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

PR_SET_PDEATHSIG = 1
try:
    # Loaded here, not in the forked child: between fork and exec only the prctl call itself runs.
    _prctl = ctypes.CDLL("libc.so.6", use_errno=True).prctl
except OSError:
    _prctl = None


def _die_with_parent() -> None:
    """Ask Linux to stop this child when the supervisor dies, however it dies."""
    if _prctl is not None:
        _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class _LogFileHandler(logging.handlers.RotatingFileHandler):
    """A rotating log file that, when it cannot be written (a full disk), says so once on stderr
    and carries on with the console alone, instead of a traceback for every line; it reopens the
    file on the next line, so it is written again once there is space."""

    failing = False

    def emit(self, record: logging.LogRecord) -> None:
        failed_before, self._written = self.failing, True
        super().emit(record)  # calls handleError, which clears _written, when the write fails
        if failed_before and self._written:
            self.failing = False
            sys.stderr.write(f"log file {self.baseFilename} is written again\n")

    def handleError(self, record: logging.LogRecord) -> None:
        self._written = False
        if not self.failing:
            self.failing = True
            sys.stderr.write(f"cannot write the log file {self.baseFilename} ({sys.exc_info()[1]}); the console has every line meanwhile\n")
        if self.stream is not None:
            try:
                self.stream.close()
            except OSError:
                pass
            self.stream = None


class ChildFailedToStart(RuntimeError):
    """A child exited, or never listened, during the first start."""


def wait_for_port(host: str, port: int, *, timeout: float, process: subprocess.Popen | None = None) -> None:
    """Return once something accepts connections on host:port; raise ChildFailedToStart if it never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise ChildFailedToStart(f"{process.args[0]} exited with status {process.returncode} before listening on {host}:{port}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise ChildFailedToStart(f"nothing listens on {host}:{port} after {timeout:.0f} s")


@dataclass(frozen=True)
class ChildSpec:
    """How to run one child; ``listens`` is waited for at the first start only."""

    name: str
    command: list[str]
    env: dict[str, str] = field(default_factory=dict)
    listens: tuple[str, int] | None = None
    listen_timeout: float = 60.0
    stop_last: bool = False  # stopped after the others, which need it to finish cleanly (Redis)


@dataclass(frozen=True)
class Backoff:
    """Wait ``initial`` s before the first restart, doubling up to ``maximum`` while the child keeps
    crashing; a child that ran ``stable_after`` s counts as healthy again."""

    initial: float = 1.0
    maximum: float = 30.0
    stable_after: float = 60.0

    def delay(self, failures: int) -> float:
        """Return the wait before the restart that follows ``failures`` crashes in a row."""
        return min(self.maximum, self.initial * 2 ** max(0, failures - 1))


@dataclass
class _Child:
    spec: ChildSpec
    log: logging.Logger
    process: subprocess.Popen | None = None
    started: float = 0.0
    restarts: int = 0
    failures: int = 0
    last_exit: int | None = None
    last_exit_at: str | None = None
    last_restart_at: str | None = None
    restart_due: float | None = None
    reader: threading.Thread | None = None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _describe(code: int) -> str:
    if code < 0:
        try:
            return f"{code} ({signal.Signals(-code).name})"
        except ValueError:
            pass
    return str(code)


class Supervisor:
    """Run children, restart the ones that exit, stop them all on request."""

    def __init__(self, specs: list[ChildSpec], *, log_dir: Path, log_max_bytes: int, log_backups: int, grace: float,
                 backoff: Backoff = Backoff(), on_change: Callable[[dict], None] | None = None, console=None):
        self.grace = grace
        self.backoff = backoff
        self.on_change = on_change
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        console_handler = logging.StreamHandler(console or sys.stdout)
        self._rotation = {"maxBytes": log_max_bytes, "backupCount": log_backups, "encoding": "utf-8"}
        self._console = console_handler
        self.log = self._logger("serve", console_format="%(message)s")
        self.children = [_Child(spec=spec, log=self._logger(spec.name, console_format=f"{spec.name} | %(message)s")) for spec in specs]
        self.stopping = False

    def _logger(self, name: str, *, console_format: str) -> logging.Logger:
        # A logger of its own (not in logging's registry): two supervisors in one process share nothing.
        logger = logging.Logger(f"studio.{name}", logging.INFO)
        file_handler = _LogFileHandler(self.log_dir / f"{name.replace(' ', '-')}.log", **self._rotation)
        file_handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        logger.addHandler(file_handler)
        console = logging.StreamHandler(self._console.stream)
        console.setFormatter(logging.Formatter(console_format))
        console.lock = self._console.lock  # one lock for the console: lines of two children never mix
        logger.addHandler(console)
        return logger

    def start(self) -> None:
        """Start every child in order, waiting for those that listen; raise ChildFailedToStart."""
        for child in self.children:
            self._spawn(child)
            if child.spec.listens:
                host, port = child.spec.listens
                wait_for_port(host, port, timeout=child.spec.listen_timeout, process=child.process)
        self._changed()

    def run(self, should_stop: Callable[[], bool], *, interval: float = 0.2) -> None:
        """Watch the children until ``should_stop()``, restarting those that exit."""
        while not should_stop():
            self.poll()
            time.sleep(interval)

    def poll(self) -> None:
        """Note the children that exited and restart those whose backoff is over."""
        if self.stopping:
            return
        changed = False
        for child in self.children:
            if child.restart_due is None and child.process is not None and child.process.poll() is not None:
                self._note_exit(child)
                changed = True
            if child.restart_due is not None and time.monotonic() >= child.restart_due:
                child.restarts += 1
                child.last_restart_at = _now()
                self._spawn(child)
                self.log.info("%s restarted (pid %s, restart %d)", child.spec.name, child.process.pid, child.restarts)
                changed = True
        if changed:
            self._changed()

    def _note_exit(self, child: _Child) -> None:
        ran = time.monotonic() - child.started
        child.failures = 1 if ran >= self.backoff.stable_after else child.failures + 1
        child.last_exit = child.process.returncode
        child.last_exit_at = _now()
        delay = self.backoff.delay(child.failures)
        child.restart_due = time.monotonic() + delay
        self.log.warning("%s exited with status %s after %.1f s; restarting in %.1f s", child.spec.name, _describe(child.last_exit), ran, delay)

    def _spawn(self, child: _Child) -> None:
        child.restart_due = None
        child.process = subprocess.Popen(
            child.spec.command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=_die_with_parent, env={**os.environ, **child.spec.env},
        )
        child.started = time.monotonic()
        child.reader = threading.Thread(target=self._tee, args=(child.process.stdout, child.log), daemon=True, name=f"tee {child.spec.name}")
        child.reader.start()

    @staticmethod
    def _tee(stream, log: logging.Logger) -> None:
        for line in iter(stream.readline, b""):
            log.info(line.decode("utf-8", "replace").rstrip("\n"))
        stream.close()

    def status(self) -> dict[str, dict]:
        """Return each child's pid, state, restarts and last exit, for the runtime file and the dashboard."""
        return {
            child.spec.name: {
                "pid": child.process.pid if child.process else None,
                "running": bool(child.process and child.process.poll() is None),
                "restarts": child.restarts,
                "last_exit": child.last_exit,
                "last_exit_at": child.last_exit_at,
                "last_restart_at": child.last_restart_at,
            }
            for child in self.children
        }

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change(self.status())

    def stop(self) -> None:
        """Stop every child with SIGTERM, those marked ``stop_last`` after the others; kill what
        is still running after the grace period."""
        self.stopping = True
        for last in (False, True):
            group = [c for c in self.children if c.spec.stop_last == last and c.process is not None and c.process.poll() is None]
            for child in group:
                child.process.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + self.grace
            for child in group:
                try:
                    child.process.wait(timeout=max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    self.log.error("%s did not stop in %.0f s; killing it.", child.spec.name, self.grace)
                    child.process.kill()
                    child.process.wait()
        for child in self.children:
            if child.reader is not None:
                child.reader.join(timeout=2)
        for logger in [self.log] + [c.log for c in self.children]:
            for handler in logger.handlers:
                if isinstance(handler, logging.FileHandler):
                    handler.close()
