"""SQLite writers wait their turn in line (feedback_app.dbsqlite): the turn is held exactly while a write transaction is open."""

import fcntl
import os
import threading

import pytest
from django.db import OperationalError, connection, connections, transaction

from feedback_app.dbsqlite import base

pytestmark = [pytest.mark.django_db(transaction=True),
              pytest.mark.skipif(connection.vendor != "sqlite", reason="the write turn is SQLite's")]


def _turn_is_free() -> bool:
    """Whether another process could take the database's write turn now (a descriptor of our own is another process to flock)."""
    fd = os.open(connection._turn_path(), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def test_the_turn_is_held_from_begin_to_commit_and_to_rollback():
    assert _turn_is_free()
    with transaction.atomic():
        assert not _turn_is_free()
        with transaction.atomic():  # a savepoint takes nothing more
            assert not _turn_is_free()
        assert not _turn_is_free()
    assert _turn_is_free()
    with pytest.raises(ZeroDivisionError):
        with transaction.atomic():
            1 / 0
    assert _turn_is_free()
    assert not base._process_turn.locked()


def test_threads_of_one_process_take_turns_and_none_is_refused():
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE turn_counter (n integer)")
        cursor.execute("INSERT INTO turn_counter VALUES (0)")
    errors = []

    def add_one_ten_times():
        try:
            for _ in range(10):
                with transaction.atomic(), connection.cursor() as cursor:
                    cursor.execute("SELECT n FROM turn_counter")
                    n = cursor.fetchone()[0]
                    cursor.execute("UPDATE turn_counter SET n = %s", [n + 1])
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=add_one_ten_times) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    with connection.cursor() as cursor:
        cursor.execute("SELECT n FROM turn_counter")
        assert cursor.fetchone()[0] == 60


def test_a_writer_that_cannot_get_the_turn_in_time_is_told_the_database_is_locked(monkeypatch):
    monkeypatch.setitem(connection.settings_dict["OPTIONS"], "timeout", 0.2)
    fd = os.open(connection._turn_path(), os.O_RDWR | os.O_CREAT, 0o600)  # another process holding the turn
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        with pytest.raises(OperationalError, match="database is locked: another process held the write turn for 0.2 s"):
            with transaction.atomic():
                pass
        assert not base._process_turn.locked()  # given back: the next writer of this process is not stuck behind it
    finally:
        os.close(fd)
    with transaction.atomic():  # and once the other process lets go, the turn is ours
        assert not _turn_is_free()


def test_a_forked_child_takes_turns_with_its_parent_not_beside_it():
    """A descriptor inherited over fork would share the parent's lock; the child opens its own."""
    with transaction.atomic():
        base._turn_file(connection._turn_path())  # the parent's descriptor exists before the fork
        pid = os.fork()
        if pid == 0:  # the child: while the parent holds the turn, its own descriptor cannot take it
            try:
                fcntl.flock(base._turn_file(connection._turn_path()), fcntl.LOCK_EX | fcntl.LOCK_NB)
                os._exit(1)
            except BlockingIOError:
                os._exit(0)
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_a_writer_waiting_for_another_process_gets_the_turn_when_it_lets_go_and_gives_it_back_at_commit():
    fd = os.open(connection._turn_path(), os.O_RDWR | os.O_CREAT, 0o600)  # another process holding the turn
    fcntl.flock(fd, fcntl.LOCK_EX)
    letting_go = threading.Timer(0.3, os.close, [fd])
    letting_go.start()
    with transaction.atomic():
        assert not _turn_is_free()
    letting_go.join()
    assert _turn_is_free()
    with transaction.atomic():  # the fast path afterwards
        assert not _turn_is_free()
    assert _turn_is_free()


def test_a_child_forked_while_a_thread_holds_the_turn_can_still_write():
    """The thread holding the parent's turn does not exist in the child: the child starts with the turn free."""
    with transaction.atomic():  # this thread holds the process's turn across the fork
        pid = os.fork()
        if pid == 0:
            try:
                os._exit(0 if base._process_turn.acquire(timeout=5) else 1)
            except BaseException:  # noqa: BLE001 - any failure is the child's exit code
                os._exit(2)
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
