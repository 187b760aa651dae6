"""`manage.py serve`: one studio per VAR_DIR, children restarted, clean shutdown with clients connected."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command

from feedback_app.devsupport import free_port
from feedback_app.management.commands.serve import DAPHNE_APPLICATION_CLOSE_TIMEOUT, studio_children
from feedback_app.models import Role
from feedback_app.runtime import runtime_read, runtime_write, studio_id, studio_lock
from tests.conftest import child_database_url, wait_until

MANAGE = Path(django_settings.BASE_DIR) / "manage.py"


def test_a_second_serve_on_the_same_var_dir_refuses_naming_the_port(settings, tmp_path):
    """While a studio holds VAR_DIR, serve refuses at once and says where that studio runs."""
    settings.VAR_DIR = tmp_path
    fd = studio_lock(tmp_path)
    try:
        runtime_write(tmp_path, {"pid": 999, "host": "127.0.0.1", "port": 8123, "redis_url": "redis://127.0.0.1:6391/0"})
        with pytest.raises(CommandError, match=r"already running \(pid 999\) on http://127.0.0.1:8123/"):
            call_command("serve", "--no-workers")
        assert runtime_read(tmp_path)["port"] == 8123  # the running studio's file is left alone
    finally:
        os.close(fd)


def test_serve_refuses_a_port_in_use_and_says_which_setting_moves_it(settings, tmp_path):
    """A web port something else listens on stops serve before it starts anything."""
    settings.VAR_DIR = tmp_path
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(CommandError, match=f"127.0.0.1:{port} is in use already.*PORT"):
            call_command("serve", "--no-workers", "--port", str(port))
    assert runtime_read(tmp_path) is None


def test_worker_names_are_unique_per_studio_and_stable_across_restarts(tmp_path):
    """Each worker is named after its queue, the host and the studio's id; children get the studio's Redis."""
    def children(var_dir):
        return studio_children(host="127.0.0.1", port=8000, redis_port=6391, redis_url="redis://127.0.0.1:6391/0", var_dir=var_dir,
                               workers=True, default_concurrency=2)

    first, again, other = children(tmp_path / "a"), children(tmp_path / "a"), children(tmp_path / "b")
    names = {spec.name: spec.command[spec.command.index("-n") + 1] for spec in first if "-n" in spec.command}
    assert names == {f"worker {q}": f"{q}@%h.{studio_id(tmp_path / 'a')}" for q in ("default", "gpu", "policy", "score")}
    assert [spec.command for spec in first] == [spec.command for spec in again]
    assert not set(names.values()) & {spec.command[spec.command.index("-n") + 1] for spec in other if "-n" in spec.command}
    assert all(spec.env["REDIS_URL"] == "redis://127.0.0.1:6391/0" and spec.env["VAR_DIR"] == str(tmp_path / "a") for spec in first if spec.name != "redis")
    web = next(spec for spec in first if spec.name == "web")
    assert web.command[web.command.index("--application-close-timeout") + 1] == str(DAPHNE_APPLICATION_CLOSE_TIMEOUT)
    assert DAPHNE_APPLICATION_CLOSE_TIMEOUT < django_settings.SERVE_GRACE_SECONDS


def test_policy_updates_have_their_own_worker_of_one_process(tmp_path):
    """serve starts a worker on the "policy" queue (concurrency 1, beside the "gpu" one), so a DPO run never holds up a refit."""
    specs = studio_children(host="127.0.0.1", port=8000, redis_port=None, redis_url="redis://127.0.0.1:6391/0", var_dir=tmp_path,
                            workers=True, default_concurrency=2)
    by_name = {spec.name: spec for spec in specs}
    policy, gpu = by_name["worker policy"].command, by_name["worker gpu"].command
    assert policy[policy.index("-Q") + 1] == "policy" and policy[policy.index("--concurrency") + 1] == "1"
    assert gpu[gpu.index("-Q") + 1] == "gpu"
    assert by_name["worker policy"].env["TORCH_THREADS"] == (os.environ.get("TORCH_THREADS") or "1")


def test_the_policy_worker_runs_at_a_lower_priority_and_the_others_do_not(tmp_path, settings):
    """Only the policy worker gets WORKER_NICE (POLICY_WORKER_NICE), so a DPO run yields the cores to the refits and the web."""
    settings.POLICY_WORKER_NICE = 7
    specs = studio_children(host="127.0.0.1", port=8000, redis_port=None, redis_url="redis://127.0.0.1:6391/0", var_dir=tmp_path,
                            workers=True, default_concurrency=2)
    nice = {spec.name: spec.env.get("WORKER_NICE") for spec in specs}
    assert nice.pop("worker policy") == "7"
    assert set(nice.values()) == {None}


@pytest.fixture
def studio(tmp_path, transactional_db):
    """`manage.py serve --no-workers` (embedded Redis and daphne) in a VAR_DIR of its own, on the test database."""
    var_dir, port, redis_port = tmp_path / "var", free_port(), free_port()
    env = {**os.environ, "VAR_DIR": str(var_dir), "SECRET_KEY": django_settings.SECRET_KEY, "DATABASE_URL": child_database_url(),
           "EMBEDDED_REDIS_PORT": str(redis_port), "SERVE_GRACE_SECONDS": "20", "PYTHONUNBUFFERED": "1"}
    env.pop("REDIS_URL", None)
    out = open(tmp_path / "serve.out", "w+")
    process = subprocess.Popen([sys.executable, str(MANAGE), "serve", "--no-workers", "--port", str(port)], env=env, stdout=out,
                               stderr=subprocess.STDOUT, start_new_session=True)
    studio = {"process": process, "env": env, "var_dir": var_dir, "port": port, "redis_port": redis_port, "out": tmp_path / "serve.out"}
    try:
        wait_until(lambda: "Feedback studio is running" in studio["out"].read_text() or process.poll() is not None, what="serve start")
        assert process.poll() is None, studio["out"].read_text()
        yield studio
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        out.close()


def manage(studio, *args, drop=("EMBEDDED_REDIS_PORT",)):
    env = {k: v for k, v in studio["env"].items() if k not in drop}
    return subprocess.run([sys.executable, str(MANAGE), *args], env=env, capture_output=True, text=True, timeout=120)


def test_the_studio_is_one_per_var_dir_survives_a_crash_and_stops_cleanly_with_clients(studio, make_user):
    """One run of serve: the runtime file guides commands, a second serve refuses, a killed Redis is
    restarted while the web keeps serving, and SIGTERM with a websocket open stops everything in time."""
    from django.test import Client
    from websockets.sync.client import connect

    base = f"http://127.0.0.1:{studio['port']}"
    runtime = runtime_read(studio["var_dir"])
    assert runtime["redis_url"] == f"redis://127.0.0.1:{studio['redis_port']}/0" and runtime["port"] == studio["port"]

    # A command run by hand, without EMBEDDED_REDIS_PORT or REDIS_URL, finds the studio's Redis.
    shell = manage(studio, "shell", "-c", "from django.conf import settings; print(settings.REDIS_URL)")
    assert shell.stdout.strip().splitlines()[-1] == runtime["redis_url"], shell.stderr

    second = manage(studio, "serve", "--no-workers", drop=())
    assert second.returncode != 0 and f"already running (pid {studio['process'].pid}) on {base}/" in second.stderr

    assert requests.get(f"{base}/healthz", timeout=10).text == "ok"
    ready = requests.get(f"{base}/readyz", timeout=10)
    assert ready.status_code == 503  # no workers, so no queue heartbeats
    assert ready.json()["redis"] == {"ok": True} and ready.json()["database"] == {"ok": True}
    assert ready.json()["processes"]["web"]["running"] and "pid" not in ready.json()["processes"]["web"]

    web_pid = runtime["processes"]["web"]["pid"]
    os.kill(runtime["processes"]["redis"]["pid"], signal.SIGKILL)
    restarted = wait_until(lambda: (runtime_read(studio["var_dir"]) or {}).get("processes", {}).get("redis", {}).get("restarts") == 1
                           and runtime_read(studio["var_dir"]), what="redis restart")
    assert restarted["processes"]["redis"]["last_exit"] == -signal.SIGKILL and restarted["processes"]["web"]["pid"] == web_pid
    wait_until(lambda: requests.get(f"{base}/readyz", timeout=10).json()["redis"]["ok"], what="redis back")
    assert "redis exited with status -9 (SIGKILL)" in (studio["var_dir"] / "logs" / "serve.log").read_text()

    client = Client()
    client.force_login(make_user(username="watcher", role=Role.RESEARCHER))
    headers = {"Cookie": f"sessionid={client.cookies['sessionid'].value}", "Origin": base}
    with connect(f"ws://127.0.0.1:{studio['port']}/ws/dashboard/", additional_headers=headers, open_timeout=30) as ws:
        assert 'id="counters"' in ws.recv(timeout=30)
        studio["process"].send_signal(signal.SIGTERM)
        assert studio["process"].wait(timeout=120) == 0
    out = studio["out"].read_text()
    assert "killing it" not in out and "No directory at" not in out, out  # WhiteNoise warns of a missing STATIC_ROOT
    assert runtime_read(studio["var_dir"]) is None
    assert (studio["var_dir"] / "logs" / "web.log").exists() and (studio["var_dir"] / "logs" / "redis.log").exists()


def test_a_judge_worker_runs_only_with_ai_feedback(tmp_path, settings):
    """With AI_FEEDBACK, serve adds a worker of one process on the "judge" queue (generative judges never run in the web)."""
    def queues():
        specs = studio_children(host="127.0.0.1", port=8000, redis_port=None, redis_url="redis://127.0.0.1:6391/0", var_dir=tmp_path,
                                workers=True, default_concurrency=2)
        return {spec.command[spec.command.index("-Q") + 1]: spec.command[spec.command.index("--concurrency") + 1]
                for spec in specs if "-Q" in spec.command}

    settings.AI_FEEDBACK = False
    assert "judge" not in queues()
    settings.AI_FEEDBACK = True
    assert queues()["judge"] == "1"
