"""Django's SQLite backend, with write transactions that wait their turn in line instead of polling.

SQLite lets one writer in at a time; the studio starts every transaction with BEGIN IMMEDIATE, so
a second writer waits in SQLite's busy handler, which sleeps and retries with growing pauses (up
to 100 ms each). Under load those pauses, not the work, set the latency: with 50 raters on one
web process a label waited seconds at p99 while the database sat idle between retries. Here a
transaction first takes the write turn of its process (a lock its threads queue on) and then of
the database (an ``flock`` on a file beside it, which every process of the studio takes), and
gives both back at COMMIT or ROLLBACK, so the next writer starts the instant the last one ends.
Waiting longer than the connection's ``timeout`` raises "database is locked", as SQLite would.
Statements outside a transaction (autocommit) still meet SQLite's own lock, as before.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time

from django.db import OperationalError
from django.db.backends.sqlite3 import base, creation

_process_turn = threading.Lock()  # one write transaction at a time among this process's threads
_turn_files: dict[tuple[int, str], int] = {}  # (pid, lock file) -> descriptor; a forked child opens its own
_turn_files_lock = threading.Lock()


def _after_fork_in_child() -> None:
    # A thread of the parent may have held the locks at the fork; in the child that thread does not exist.
    global _process_turn, _turn_files_lock
    _process_turn, _turn_files_lock = threading.Lock(), threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _turn_file(path: str) -> int:
    key = (os.getpid(), path)
    with _turn_files_lock:
        if key not in _turn_files:  # an inherited descriptor shares the parent's lock: never use one across a fork
            _turn_files[key] = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        return _turn_files[key]


class DatabaseCreation(creation.DatabaseCreation):
    def _destroy_test_db(self, test_database_name, verbosity):
        super()._destroy_test_db(test_database_name, verbosity)
        if not self.is_in_memory_db(test_database_name):
            with contextlib.suppress(FileNotFoundError):
                os.remove(f"{test_database_name}-writer")


class DatabaseWrapper(base.DatabaseWrapper):
    creation_class = DatabaseCreation
    _turn_fd: int | None = None  # the descriptor holding the database's write turn, while this connection holds it

    def _turn_path(self) -> str | None:
        name = str(self.settings_dict["NAME"])
        return None if self.is_in_memory_db() else f"{name}-writer"

    def _start_transaction_under_autocommit(self):
        path = self._turn_path()
        if path is None or self._turn_fd is not None:
            return super()._start_transaction_under_autocommit()
        timeout = float(self.settings_dict["OPTIONS"].get("timeout", 5))
        deadline = time.monotonic() + timeout
        if not _process_turn.acquire(timeout=timeout):
            raise OperationalError(f"database is locked: no write turn within {timeout:g} s (another thread of this process held it)")
        try:
            fd = _take_turn(path, deadline, timeout)
            try:
                super()._start_transaction_under_autocommit()
            except BaseException:
                _give_turn(path, fd)
                raise
        except BaseException:
            _process_turn.release()
            raise
        self._turn_fd = fd

    def _give_turn_back(self) -> None:
        if self._turn_fd is not None:
            fd, self._turn_fd = self._turn_fd, None
            _give_turn(self._turn_path(), fd)
            _process_turn.release()

    def _ending(self, end):
        """Run ``end`` (COMMIT, ROLLBACK or close), then give the turn back whatever it did."""
        try:
            return end()
        finally:
            self._give_turn_back()

    def _commit(self):
        return self._ending(super()._commit)

    def _rollback(self):
        return self._ending(super()._rollback)

    def _close(self):
        return self._ending(super()._close)


def _take_turn(path: str, deadline: float, timeout: float) -> int:
    """Take the database's write turn (an exclusive flock on the file ``path``) by ``deadline``; return the descriptor that holds it."""
    fd = _turn_file(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return fd
    except BlockingIOError:
        pass
    # flock has no timeout: wait on a helper thread, through a descriptor of its own (a lock belongs to the open file,
    # so a helper given up on and granted the turn later lets go of its own lock, never of one this process took since)
    waiting = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    done, decided = threading.Event(), threading.Lock()
    state = {"taken": False, "abandoned": False}

    def take() -> None:
        fcntl.flock(waiting, fcntl.LOCK_EX)
        with decided:
            if state["abandoned"]:
                os.close(waiting)  # and with it the lock
            else:
                state["taken"] = True
        done.set()

    threading.Thread(target=take, daemon=True, name="sqlite-writer-turn").start()
    done.wait(max(0.0, deadline - time.monotonic()))
    with decided:
        if state["taken"]:
            return waiting
        state["abandoned"] = True
    raise OperationalError(f"database is locked: another process held the write turn for {timeout:g} s")


def _give_turn(path: str, fd: int) -> None:
    fcntl.flock(fd, fcntl.LOCK_UN)
    if fd != _turn_file(path):
        os.close(fd)
