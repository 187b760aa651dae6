"""The studio as a small cluster on this machine, under load, with a web process killed mid-load.

PostgreSQL (Debian's, a scratch cluster), Redis (the embedded server), two web processes
serving HTTP (the WSGI entry point on Granian) on two ports and one serving websockets (the
ASGI entry point on uvicorn), behind nginx (Debian's), and the workers apart: the ``default`` and
``score`` queues in one Celery worker, ``gpu`` and ``policy`` in another, and beat, so automatic
refits and dashboard pushes run during the load. ``label_load`` then drives nginx with
``--raters`` raters; after ``--kill-after`` seconds the first web process is killed (SIGKILL).
nginx sends what that process no longer answers to the other one (a label submit is idempotent,
so a retried POST stores nothing twice), and the audit must still be clean. nginx sheds load: past
``--max-in-flight`` HTTP requests at once it answers 503 with ``Retry-After`` itself (the WSGI
processes queue what their threads cannot take yet; only the ASGI entry point sheds on its own).
Everything binds to 127.0.0.1 and stops on exit; the exit status is label_load's (non-zero when
the audit fails).

The database connection budget is printed: pool size per web process × web processes, plus one
per worker process and beat, must stay within PostgreSQL's ``max_connections``.

    .venv/bin/python -m bench.cluster --raters 50 --seconds 40 --kill-after 15

Needs the Debian packages ``postgresql`` and ``nginx`` (``apt-get install postgresql nginx``);
run it as root (PostgreSQL runs as the ``postgres`` user) or as a user who can run ``initdb``.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

NGINX_CONF = """
{user}
worker_processes 1;
daemon off;
pid {scratch}/nginx.pid;
error_log {scratch}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {scratch}/nginx-body;
    proxy_temp_path {scratch}/nginx-proxy;
    fastcgi_temp_path {scratch}/nginx-fastcgi;
    uwsgi_temp_path {scratch}/nginx-uwsgi;
    scgi_temp_path {scratch}/nginx-scgi;
    upstream studio {{
        server 127.0.0.1:{web_1} max_fails=1 fail_timeout=30s;
        server 127.0.0.1:{web_2} max_fails=1 fail_timeout=30s;
        keepalive 64;
    }}
    upstream sockets {{
        server 127.0.0.1:{sockets};
    }}
    # Load shedding: past {max_in_flight} HTTP requests at once, a 503 with Retry-After from here.
    limit_conn_zone $server_addr zone=in_flight:1m;
    server {{
        listen 127.0.0.1:{port};
        location /ws/ {{
            proxy_pass http://sockets;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection upgrade;
            proxy_set_header Host $http_host;  # with its port: the CSRF and websocket origin checks compare it with Origin
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_read_timeout 1h;
        }}
        location / {{
            limit_conn in_flight {max_in_flight};
            limit_conn_status 503;
            error_page 503 = @busy;
            proxy_pass http://studio;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;  # with its port: the CSRF and websocket origin checks compare it with Origin
            proxy_set_header X-Forwarded-For $remote_addr;
            # A web process that died takes its requests with it: try the other. Label submits are
            # idempotent (a repeated submit returns the first label), so POSTs may be retried too.
            proxy_next_upstream error timeout http_502 non_idempotent;
            proxy_next_upstream_tries 2;
            proxy_read_timeout 60s;
        }}
        location ~ ^/(healthz|readyz)$ {{  # monitors are never shed
            proxy_pass http://studio;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
        }}
        location @busy {{
            default_type application/json;
            add_header Retry-After 1 always;
            add_header Cache-Control no-store always;
            return 503 '{{"detail": "The studio is busy. Try again in 1 s."}}';
        }}
    }}
}}
"""


class Cluster:
    def __init__(self, scratch: Path) -> None:
        self.scratch, self.children, self.pg_stop = scratch, [], None

    def start(self, name: str, command: list[str], env: dict) -> subprocess.Popen:
        log = open(self.scratch / f"{name}.log", "wb")
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.children.append((name, process))
        return process

    def stop(self) -> None:
        for name, process in reversed(self.children):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
        if self.pg_stop:
            self.pg_stop()


def postgres_start(cluster: Cluster, *, port: int, max_connections: int) -> str:
    """Start a scratch PostgreSQL cluster on 127.0.0.1:``port``; return its URL (database ``feedback``)."""
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: [int(x) for x in p.split("/")[4].split(".") if x.isdigit()])
    if not bins:
        sys.exit("PostgreSQL is not installed: apt-get install postgresql")
    pgbin, data = bins[-1], cluster.scratch / "pg"
    data.mkdir()
    as_postgres = os.geteuid() == 0
    if as_postgres:
        shutil.chown(cluster.scratch, "postgres")
        shutil.chown(data, "postgres")

    def pg(*command: str) -> None:
        line = " ".join(command)
        subprocess.run(["su", "postgres", "-s", "/bin/bash", "-c", line] if as_postgres else ["bash", "-c", line], check=True,
                       stdout=subprocess.DEVNULL)

    pg(f"{pgbin}/initdb", "-D", str(data), "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8")
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {data} -c max_connections={max_connections} -c fsync=off"
    pg(f"{pgbin}/pg_ctl", "-D", str(data), "-l", str(data / "server.log"), "-w", "-o", f"'{options}'", "start")
    cluster.pg_stop = lambda: pg(f"{pgbin}/pg_ctl", "-D", str(data), "-m", "fast", "stop")
    pg(f"{pgbin}/createdb", "-h", "127.0.0.1", "-p", str(port), "feedback")
    return f"postgres://postgres@127.0.0.1:{port}/feedback"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--raters", type=int, default=50)
    p.add_argument("--seconds", type=float, default=40)
    p.add_argument("--kill-after", type=float, default=15, help="seconds into the load when the first web process is killed (0: never)")
    p.add_argument("--pool-max", type=int, default=20, help="database connections per web process (DB_POOL_MAX)")
    p.add_argument("--max-connections", type=int, default=100, help="PostgreSQL's max_connections")
    p.add_argument("--combined", action="store_true", help="label?next=1: one call per label")
    p.add_argument("--max-in-flight", type=int, default=200, help="HTTP requests nginx lets through at once; past that, 503")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if nginx is None:
        sys.exit("nginx is not installed: apt-get install nginx")
    from feedback_app.devsupport import asgi_server_command, free_port, scratch_redis_start, wait_for_port, wsgi_server_command

    web_processes, worker_processes = 3, 3  # two for HTTP and one for websockets; two Celery workers and beat hold one connection at most
    budget = args.pool_max * web_processes + worker_processes
    if budget > args.max_connections - 5:
        sys.exit(f"connection budget {args.pool_max} per web process x {web_processes} + {worker_processes} = {budget} "
                 f"exceeds PostgreSQL's max_connections {args.max_connections} less 5 for the audit and administration")
    scratch = Path(tempfile.mkdtemp(prefix="cluster-"))
    scratch.chmod(0o755)
    cluster = Cluster(scratch)
    try:
        database_url = postgres_start(cluster, port=free_port(), max_connections=args.max_connections)
        redis, redis_url = scratch_redis_start(scratch / "redis")
        cluster.children.append(("redis", redis))
        env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url, "VAR_DIR": str(scratch / "var"),
               "MODEL_STORE": str(scratch / "models"), "SECRET_KEY": "cluster-scratch-" + os.urandom(8).hex(),
               "DJANGO_SETTINGS_MODULE": "feedback_app.settings", "LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1",
               "DB_POOL_MAX": str(args.pool_max)}
        python = sys.executable
        subprocess.run([python, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
        celery = [python, "-m", "celery", "-A", "feedback_app"]
        workers = {**env, "DB_POOL": "0", "TORCH_THREADS": "1"}
        cluster.start("worker-default-score", celery + ["worker", "-Q", "default,score", "-c", "1", "-n", "cpu@cluster", "--without-gossip",
                                                          "--without-mingle", "-l", "warning"], workers)
        cluster.start("worker-gpu-policy", celery + ["worker", "-Q", "gpu,policy", "-c", "1", "-n", "gpu@cluster", "--without-gossip",
                                                       "--without-mingle", "-l", "warning"], workers)
        cluster.start("beat", celery + ["beat", "-l", "warning", "-s", str(scratch / "beat-schedule")], workers)
        ports, sockets_port = [free_port(), free_port()], free_port()
        webs = [cluster.start(f"web-{i + 1}", wsgi_server_command(host="127.0.0.1", port=port, workers=1), env) for i, port in enumerate(ports)]
        sockets = cluster.start("sockets", asgi_server_command(host="127.0.0.1", port=sockets_port), env)
        for web, port in [*zip(webs, ports), (sockets, sockets_port)]:
            wait_for_port("127.0.0.1", port, timeout=60, process=web)
        nginx_port = free_port()
        (scratch / "nginx.conf").write_text(NGINX_CONF.format(user="user root;" if os.geteuid() == 0 else "", scratch=scratch,
                                                              web_1=ports[0], web_2=ports[1], sockets=sockets_port, port=nginx_port,
                                                              max_in_flight=args.max_in_flight))
        proxy = cluster.start("nginx", [nginx, "-c", str(scratch / "nginx.conf"), "-p", str(scratch)], env)
        wait_for_port("127.0.0.1", nginx_port, timeout=30, process=proxy)
        print(f"cluster: PostgreSQL (max_connections {args.max_connections}), Redis, HTTP on :{ports[0]} and :{ports[1]} and websockets "
              f"on :{sockets_port} behind nginx :{nginx_port}, 2 Celery workers and beat; connection budget {args.pool_max} x {web_processes} + {worker_processes} = {budget}",
              flush=True)
        out = scratch / "load.json"
        load = subprocess.Popen([python, "-m", "bench.label_load", "--url", f"http://127.0.0.1:{nginx_port}", "--raters", str(args.raters),
                                 "--seconds", str(args.seconds), "--json", str(out), *(["--combined"] if args.combined else [])],
                                cwd=ROOT, env=env)
        killed_at = None
        if args.kill_after:
            # label_load first creates its raters and comparisons: the clock starts at its first stored label
            started = _first_label_time(env, load)
            time.sleep(max(0.0, started + args.kill_after - time.monotonic()))
            if load.poll() is None:
                os.killpg(webs[0].pid, signal.SIGKILL)
                killed_at = round(time.monotonic() - started, 1)
                print(f"killed web-1 (:{ports[0]}) {killed_at} s into the load", flush=True)
        status = load.wait()
        result = {"raters": args.raters, "seconds": args.seconds, "killed_web_after_s": killed_at, "web_processes": web_processes,
                  "connection_budget": {"pool_max_per_web": args.pool_max, "web_processes": web_processes, "worker_connections": worker_processes,
                                        "total": budget, "max_connections": args.max_connections},
                  "web_2_alive": webs[1].poll() is None, "load": json.loads(out.read_text()) if out.exists() else None}
        print(f"web-2 still serving: {result['web_2_alive']}; label_load exit status {status}")
        if args.json:
            args.json.write_text(json.dumps(result, indent=1))
        return status
    finally:
        cluster.stop()
        shutil.rmtree(scratch, ignore_errors=True)


def _first_label_time(env: dict, load: subprocess.Popen) -> float:
    """Wait until the load has stored its first label (its setup may take a while); return that moment (monotonic)."""
    import psycopg

    url = env["DATABASE_URL"]
    while load.poll() is None:
        try:
            with psycopg.connect(url, connect_timeout=5) as connection:
                if connection.execute("SELECT EXISTS (SELECT 1 FROM feedback_app_preferencelabel)").fetchone()[0]:
                    return time.monotonic()
        except psycopg.Error:
            pass
        time.sleep(0.5)
    return time.monotonic()


if __name__ == "__main__":
    sys.exit(main())
