"""Serve a class: N Streamlit replicas of the app on loopback ports behind nginx, one command.

    python -m ui.serve --replicas 2 --port 8501

One Streamlit process computes one page run at a time (about 0.4 s of CPU each, under the GIL),
so a class of 60 needs several processes; Streamlit has no cluster mode, and the standard answer
is replicas behind a sticky load balancer. This starts `--replicas` processes of
`streamlit run app.py` on 127.0.0.1 (ports `--first-replica-port` upwards) and Debian's nginx in
front of them on `--host:--port`, then watches them: a replica whose process ends is started
again (`--no-restart` leaves it dead), and each replica's `/_stcore/health` is polled and its
state logged. Ctrl+C (or SIGTERM) stops everything.

Why nginx (`apt-get install -y nginx`): a maintained balancer from the distribution, with what a
Streamlit app needs: websockets forwarded (`Upgrade`/`Connection`), long-lived connections, and
consistent hashing for sticky sessions. Why a cookie rather than `ip_hash`: a lecture room's
students usually reach the server through one NAT or campus proxy, so `ip_hash` would pin the
whole class to one replica. nginx (the free version has no `sticky cookie`) hashes a cookie it
sets itself: a browser's first request gets a random key (`$request_id`) in the cookie
`inside_gpt_replica`, and every later request, the websocket included, carries it and reaches
the same replica. Health checks: the free nginx has passive ones only (`max_fails`,
`fail_timeout`: a replica that refuses connections is skipped for a while and the request goes to
another, `proxy_next_upstream`); this launcher adds the active poll of `/_stcore/health`.

A replica that dies loses only its own sessions' server state: their browsers reconnect, nginx
sends them to a live replica, and the page comes back from the address (every view setting is a
query parameter: text, model, layer, head, position, language, lecture mode). Several machines:
`--nginx-only` with `--upstream host:port` (repeated) writes and runs only the balancer in front
of replicas started elsewhere (`--replicas N --no-nginx` on each machine, with
`--replica-address 0.0.0.0` where the balancer is on another host); the README shows the
`upstream` block.

Nothing here imports Streamlit or the engine: it only starts processes.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

APP_DIR = Path(__file__).resolve().parent.parent
COOKIE = "inside_gpt_replica"
HEALTH_EVERY_S = 5.0

log = logging.getLogger("ui.serve")


def nginx_config(
    upstreams: list[str],
    listen: str,
    state_dir: Path,
    upstream_header: bool = False,
    run_as_root: bool | None = None,
) -> str:
    """The nginx.conf that balances `upstreams` ("host:port" of Streamlit replicas) for clients
    on `listen` ("host:port"), its pid, logs and temporary files under `state_dir`.
    `upstream_header`: add `X-Upstream` (the replica's address) to every response, for tests
    and the load test; off for a class (it names the server's loopback ports)."""
    if run_as_root is None:
        run_as_root = os.geteuid() == 0
    servers = "\n".join(f"        server {u} max_fails=1 fail_timeout=10s;" for u in upstreams)
    temp = "\n".join(
        f"    {kind}_temp_path {state_dir / 'tmp' / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    debug = (
        '            add_header X-Upstream "$upstream_addr" always;\n' if upstream_header else ""
    )
    return f"""# Written by `python -m ui.serve`; see the README, "Serving a class".
{"user nobody nogroup;" if run_as_root else "# (not root: the workers run as this user)"}
worker_processes auto;
daemon off;
pid {state_dir / "nginx.pid"};
error_log {state_dir / "error.log"} warn;

events {{
    worker_connections 4096;
}}

http {{
    access_log off;
{temp}
    # Websockets: forward the upgrade handshake.
    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ""      close;
    }}
    # Sticky sessions: the key is the browser's {COOKIE} cookie, or a new random one.
    map $cookie_{COOKIE} $sticky_key {{
        ""      $request_id;
        default $cookie_{COOKIE};
    }}

    upstream inside_gpt {{
        hash $sticky_key consistent;
{servers}
    }}

    server {{
        listen {listen};

        location / {{
            proxy_pass http://inside_gpt;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            # With the port: Streamlit compares the websocket's Origin with this Host.
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_read_timeout 1d;
            proxy_send_timeout 1d;
            proxy_connect_timeout 3s;
            proxy_next_upstream error timeout http_502 http_503;
            proxy_max_temp_file_size 0;
            add_header Set-Cookie "{COOKIE}=$sticky_key; Path=/; HttpOnly; SameSite=Lax" always;
{debug}        }}
    }}
}}
"""


@dataclass
class Replica:
    """One `streamlit run app.py` on `address:port`, its log file and process."""

    address: str
    port: int
    log_path: Path
    proc: subprocess.Popen | None = None
    starts: int = 0
    healthy: bool = False
    health_s: list[float] = field(default_factory=list)

    @property
    def base(self) -> str:
        host = "127.0.0.1" if self.address in ("0.0.0.0", "") else self.address
        return f"http://{host}:{self.port}"

    def start(self, extra_env: dict[str, str] | None = None) -> None:
        env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", **(extra_env or {})}
        flags = [
            f"--server.address={self.address}",
            f"--server.port={self.port}",
            "--server.headless=true",
            "--server.fileWatcherType=none",
            "--browser.gatherUsageStats=false",
        ]
        with self.log_path.open("a") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "streamlit", "run", "app.py", *flags],
                cwd=APP_DIR,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl+C reaches the launcher, which stops them in order
            )
        self.starts += 1

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def check(self, timeout_s: float = 10.0) -> bool:
        """GET /_stcore/health; records the latency (s) and whether it answered "ok"."""
        start = time.monotonic()
        try:
            with urllib.request.urlopen(f"{self.base}/_stcore/health", timeout=timeout_s) as r:
                self.healthy = r.read().decode().strip() == "ok"
        except OSError:
            self.healthy = False
        self.health_s.append(time.monotonic() - start)
        return self.healthy

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def wait_healthy(replicas: list[Replica], timeout_s: float = 120.0) -> None:
    """Until every replica answers its health check; RuntimeError (with the log's tail) if one
    exits or `timeout_s` passes."""
    deadline = time.monotonic() + timeout_s
    for replica in replicas:
        while not replica.check(timeout_s=2):
            if not replica.alive() or time.monotonic() > deadline:
                tail = replica.log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"replica on port {replica.port} did not start:\n{tail}")
            time.sleep(0.3)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the kernel's choice), for tests and the load test."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def nginx_binary() -> str | None:
    """The nginx executable (PATH, then Debian's /usr/sbin/nginx), or None."""
    found = shutil.which("nginx")
    if found:
        return found
    return "/usr/sbin/nginx" if Path("/usr/sbin/nginx").is_file() else None


class Cluster:
    """Replicas and nginx, started and stopped together (a context manager); used by `main`,
    the replica test and the load test."""

    def __init__(
        self,
        replicas: int,
        port: int,
        host: str = "0.0.0.0",
        first_replica_port: int | None = None,
        state_dir: Path | None = None,
        restart: bool = True,
        upstream_header: bool = False,
        replica_address: str = "127.0.0.1",
        nginx: bool = True,
        upstreams: list[str] | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.state_dir = Path(state_dir or tempfile.mkdtemp(prefix="inside-gpt-serve-"))
        self.listen = f"{host}:{port}"
        self.port = port
        self.restart = restart
        self.upstream_header = upstream_header
        self.use_nginx = nginx
        self.extra_env = extra_env
        first = first_replica_port if first_replica_port is not None else port + 100
        self.replicas = [
            Replica(replica_address, first + k, self.state_dir / f"replica-{k + 1}.log")
            for k in range(replicas)
        ]
        self.upstreams = upstreams or [f"127.0.0.1:{r.port}" for r in self.replicas]
        self.nginx: subprocess.Popen | None = None
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None

    def start(self) -> Cluster:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        for replica in self.replicas:
            replica.start(self.extra_env)
        try:
            wait_healthy(self.replicas)
            if self.use_nginx:
                self._start_nginx()
        except BaseException:
            self.stop()
            raise
        self._watcher = threading.Thread(target=self._watch, name="replica watch", daemon=True)
        self._watcher.start()
        return self

    def _start_nginx(self) -> None:
        binary = nginx_binary()
        if binary is None:
            raise RuntimeError("nginx is not installed (Debian: apt-get install -y nginx)")
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (self.state_dir / "tmp" / kind).mkdir(parents=True, exist_ok=True)
        conf = self.state_dir / "nginx.conf"
        conf.write_text(
            nginx_config(self.upstreams, self.listen, self.state_dir, self.upstream_header)
        )
        check = subprocess.run(
            [binary, "-t", "-q", "-c", str(conf), "-p", str(self.state_dir)],
            capture_output=True,
            text=True,
        )
        if check.returncode != 0:
            raise RuntimeError(f"nginx refused {conf}: {check.stderr.strip()}")
        with (self.state_dir / "nginx.out").open("a") as out:
            self.nginx = subprocess.Popen(
                [binary, "-c", str(conf), "-p", str(self.state_dir)],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 20
        while True:
            try:
                base = f"http://127.0.0.1:{self.port}"
                with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as r:
                    if r.read().decode().strip() == "ok":
                        return
            except OSError:
                pass
            if self.nginx.poll() is not None or time.monotonic() > deadline:
                err = (self.state_dir / "error.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"nginx did not start: {err}")
            time.sleep(0.2)

    def _watch(self) -> None:
        """Every HEALTH_EVERY_S: restart a replica whose process ended (if `restart`), poll each
        one's health and log changes. An unhealthy but running replica is left alone: under load
        the health check itself waits for the GIL, and killing it would drop its sessions."""
        while not self._stop.wait(HEALTH_EVERY_S):
            for replica in self.replicas:
                if not replica.alive():
                    if not self.restart or self._stop.is_set():
                        continue
                    code = replica.proc.returncode if replica.proc else None
                    log.warning("replica on port %d exited (%s): restarting", replica.port, code)
                    replica.start(self.extra_env)
                    continue
                was = replica.healthy
                if replica.check() != was:
                    state = "healthy" if replica.healthy else "NOT answering its health check"
                    log.info("replica on port %d is %s", replica.port, state)

    def stop(self) -> None:
        self._stop.set()
        if self.nginx is not None and self.nginx.poll() is None:
            self.nginx.send_signal(signal.SIGQUIT)  # graceful: finish open requests
            try:
                self.nginx.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.nginx.kill()
                self.nginx.wait()
        for replica in self.replicas:
            replica.stop()

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ui.serve",
        description="N Streamlit replicas of Inside GPT behind nginx (sticky sessions).",
    )
    parser.add_argument("--replicas", type=int, default=2, help="Streamlit processes (default 2)")
    parser.add_argument("--port", type=int, default=8501, help="where students connect (8501)")
    parser.add_argument("--host", default="0.0.0.0", help="nginx's address (0.0.0.0: all)")
    parser.add_argument(
        "--first-replica-port", type=int, help="the first replica's port (default port + 100)"
    )
    parser.add_argument(
        "--replica-address", default="127.0.0.1", help="where replicas listen (127.0.0.1)"
    )
    parser.add_argument("--state-dir", type=Path, help="nginx.conf, logs (default: a temp dir)")
    parser.add_argument("--no-restart", action="store_true", help="leave a dead replica dead")
    parser.add_argument("--no-nginx", action="store_true", help="replicas only (another host)")
    parser.add_argument(
        "--upstream",
        action="append",
        metavar="HOST:PORT",
        help="balance these replicas (started elsewhere) instead of starting any; repeatable",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if args.replicas < 0 or (args.replicas == 0 and not args.upstream):
        parser.error("--replicas must be at least 1 (or give --upstream)")
    if args.no_nginx and args.upstream:
        parser.error("--upstream needs nginx")
    cluster = Cluster(
        replicas=0 if args.upstream else args.replicas,
        port=args.port,
        host=args.host,
        first_replica_port=args.first_replica_port,
        state_dir=args.state_dir,
        restart=not args.no_restart,
        replica_address=args.replica_address,
        nginx=not args.no_nginx,
        upstreams=args.upstream,
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        cluster.start()
    except RuntimeError as err:
        print(err, file=sys.stderr)
        return 1
    where = f"http://{'localhost' if args.host == '0.0.0.0' else args.host}:{args.port}"
    ports = ", ".join(str(r.port) for r in cluster.replicas) or ", ".join(cluster.upstreams)
    log.info("serving %s (replicas: %s; config and logs in %s)", where, ports, cluster.state_dir)
    try:
        stop.wait()
    finally:
        log.info("stopping")
        cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
