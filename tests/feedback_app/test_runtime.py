import os
import subprocess
import sys
from pathlib import Path

import pytest

from feedback_app.runtime import (StudioAlreadyRunning, runtime_live, runtime_read, runtime_redis_url, runtime_remove, runtime_write, studio_id,
                                  studio_lock)


def test_studio_id_is_stable_per_var_dir_and_differs_between_them(tmp_path):
    """The same VAR_DIR gives the same id (however it is spelled); another gives another."""
    assert studio_id(tmp_path / "a") == studio_id(tmp_path / "x" / ".." / "a")
    assert studio_id(tmp_path / "a") != studio_id(tmp_path / "b")


def test_runtime_file_round_trip(tmp_path):
    """What is written is read back; a missing or broken file reads as nothing."""
    assert runtime_read(tmp_path) is None and runtime_redis_url(tmp_path) is None
    runtime_write(tmp_path, {"pid": os.getpid(), "redis_url": "redis://127.0.0.1:7001/0"})
    assert runtime_read(tmp_path) == {"pid": os.getpid(), "redis_url": "redis://127.0.0.1:7001/0"}
    assert (tmp_path / "studio.json").stat().st_mode & 0o077 == 0  # may hold a Redis password
    assert runtime_redis_url(tmp_path) == "redis://127.0.0.1:7001/0"
    (tmp_path / "studio.json").write_text("{not json")
    assert runtime_read(tmp_path) is None
    runtime_remove(tmp_path)
    runtime_remove(tmp_path)  # twice is fine
    assert not (tmp_path / "studio.json").exists()


def test_a_dead_studio_s_file_is_not_live(tmp_path):
    """The file of a supervisor that no longer runs is still readable but not live, and names no Redis."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    runtime_write(tmp_path, {"pid": gone.pid, "redis_url": "redis://127.0.0.1:7001/0"})
    assert runtime_read(tmp_path)["pid"] == gone.pid
    assert runtime_live(tmp_path) is None and runtime_redis_url(tmp_path) is None
    runtime_write(tmp_path, {"redis_url": "redis://127.0.0.1:7001/0"})  # no pid: nobody to vouch for it
    assert runtime_live(tmp_path) is None


def test_a_second_lock_on_the_same_var_dir_refuses_naming_the_running_studio(tmp_path):
    """While one process holds the lock, another is refused with the first one's pid and address."""
    fd = studio_lock(tmp_path)
    runtime_write(tmp_path, {"pid": 4242, "host": "127.0.0.1", "port": 8123})
    holder = "import sys; from feedback_app.runtime import studio_lock; studio_lock(sys.argv[1])"
    result = subprocess.run([sys.executable, "-c", holder, str(tmp_path)], capture_output=True, text=True)
    assert result.returncode != 0 and "already running (pid 4242) on http://127.0.0.1:8123/" in result.stderr
    with pytest.raises(StudioAlreadyRunning, match="http://127.0.0.1:8123/"):
        studio_lock(tmp_path)
    os.close(fd)
    os.close(studio_lock(tmp_path))  # free again once the holder let go


def test_priority_lower_lowers_a_process_and_its_autogroup_and_never_raises_it():
    """In a child process (the test's own priority stays): niceness 0 → 5, then asking for 3 leaves 5; the autogroup follows."""
    code = ("import os; from feedback_app.runtime import priority_lower; a = priority_lower(5); b = priority_lower(3); "
            "g = open('/proc/self/autogroup').read().split()[-1] if os.path.exists('/proc/self/autogroup') else 'none'; "
            "print(a, b, os.nice(0), g)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, start_new_session=True,
                         cwd=Path(__file__).resolve().parents[2]).stdout.split()
    assert out[:3] == ["5", "5", "5"]
    assert out[3] in ("none", "5")  # "nice 5" where the kernel has autogroups
