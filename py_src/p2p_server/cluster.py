"""Several server processes behind nginx, each room on one of them.

    python -m p2p_server.cluster --processes 3 --port 8000 [-- server options...]

Why this design: a relay packet is 60 per second per player, so it must not cross processes. nginx
sends every connection of a room to the same process by hashing the room's name (the page puts it
in the Socket.IO URL's query), with consistent hashing, so both players meet there and all the
room's state (slots, pairing, relaying) stays in one process's memory. Nothing is shared between
processes: room tokens are signed, not stored, so any process checks them with the shared secret.
When a process dies, nginx sends its rooms' reconnecting players to the next process on the hash
ring (the same one for both players of a room); they join again, take their slots back (the token,
or the slot they had), and the pages carry on with the session they had, the DataChannel having
carried the game meanwhile. A shared message queue (python-socketio's Redis manager) would let
the two players of a room sit on different processes, at the price of a Redis round trip for
every relayed packet; with rooms co-located it buys nothing.

The door (see p2p_server.door) is kept twice. nginx limits each client address across the whole
cluster (``limit_conn``: connections open; ``limit_req``: new Socket.IO sessions and lean relay
sockets per second, nothing else, so a page's asset loads are never counted), refusing with 429;
and it overwrites ``X-Forwarded-For`` with the address it sees, which each process believes from
nginx's address only (``--trusted-proxy 127.0.0.1``), so every process counts the real client's
address, and a client cannot pass for another by sending the header itself.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from p2p_server.limits import ClientLimits

__all__ = ["Cluster", "NginxDoor", "main", "nginx_config"]

#: How long a process and nginx get to start listening.
START_TIMEOUT_S: Final = 20.0
#: A process nginx could not reach is left out this long before it is tried again.
FAIL_TIMEOUT_S: Final = 10
#: Where nginx connects to the processes from, which they trust for X-Forwarded-For.
NGINX_ADDRESS: Final = "127.0.0.1"


@dataclass(frozen=True)
class NginxDoor:
    """nginx's limits per client address, for the cluster as a whole. A participant holds two
    connections (its Socket.IO session and its lean relay socket) and opens both when it arrives,
    so each default is twice a process's own (``ClientLimits``), plus room for the page's asset
    loads in flight."""

    #: Connections one address may hold open through nginx (``limit_conn``).
    connections: int = 2 * ClientLimits().max_per_address + 100
    #: New Socket.IO sessions and lean relay sockets per second (``limit_req`` rate)...
    connects_per_s: float = 2 * ClientLimits().connects_per_address_per_s
    #: ... and at once (``limit_req`` burst).
    burst: int = 2 * ClientLimits().connect_burst_per_address

    def __post_init__(self) -> None:
        for name in ("connections", "connects_per_s", "burst"):
            if not getattr(self, name) > 0:
                raise ValueError(f"nginx's {name} per address must be positive")


def nginx_config(
    listen_port: int,
    upstream_ports: Sequence[int],
    workdir: Path,
    door: NginxDoor | None = None,
) -> str:
    """nginx in front of the processes on ``upstream_ports`` (all on 127.0.0.1)."""
    door = door if door is not None else NginxDoor()
    servers = "\n".join(
        f"        server 127.0.0.1:{port} max_fails=1 fail_timeout={FAIL_TIMEOUT_S}s;"
        for port in upstream_ports
    )
    return f"""# Written by p2p_server.cluster; see its docstring for the design.
worker_processes 1;
pid {workdir}/nginx.pid;
error_log {workdir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {workdir}/body;
    proxy_temp_path {workdir}/proxy;
    fastcgi_temp_path {workdir}/fastcgi;
    uwsgi_temp_path {workdir}/uwsgi;
    scgi_temp_path {workdir}/scgi;
    # Relay packets are small and real-time: no Nagle delay, no buffering.
    tcp_nodelay on;
    map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
    # The door, per client address across the cluster (each process keeps its own too).
    limit_conn_zone $binary_remote_addr zone=p2p_open:10m;
    # Only what opens a connection is rate-limited: a Socket.IO handshake (no sid yet) and a lean
    # relay socket. Every other request has an empty key, which limit_req does not count.
    map "$uri:$arg_sid" $p2p_connect_key {{
        "~^/socket[.]io/?:$" $binary_remote_addr;
        "~^/relay:" $binary_remote_addr;
        default "";
    }}
    limit_req_zone $p2p_connect_key zone=p2p_connects:10m rate={door.connects_per_s:g}r/s;
    limit_conn_status 429;
    limit_req_status 429;
    upstream p2p_servers {{
        # Both players of a room on the same process; the next one on the ring if it is down.
        hash $arg_room consistent;
{servers}
    }}
    server {{
        listen 127.0.0.1:{listen_port};
        limit_conn p2p_open {door.connections};
        limit_req zone=p2p_connects burst={door.burst} nodelay;
        location / {{
            proxy_pass http://p2p_servers;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $http_host;
            # The client's address as nginx sees it, replacing whatever the client sent.
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_buffering off;
            proxy_next_upstream error timeout;
            proxy_connect_timeout 2s;
            # A WebSocket may be quiet between Engine.IO's pings (10 s).
            proxy_read_timeout 3600s;
            proxy_send_timeout 3600s;
        }}
    }}
}}
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _wait_listening(port: int, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not start on 127.0.0.1:{port}") from None
            time.sleep(0.05)


class Cluster:
    """``processes`` servers and nginx in front, for a ``with`` block; ``.url`` is nginx's."""

    def __init__(
        self,
        processes: int = 3,
        port: int = 0,
        server_args: Sequence[str] = (),
        #: Pin every process (and nginx) to this core, for benchmarks.
        cpu: int | None = None,
        log_level: str = "warning",
        door: NginxDoor | None = None,
    ) -> None:
        if processes < 1:
            raise ValueError(f"processes must be at least 1, got {processes}")
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        if not Path(nginx).exists():
            raise RuntimeError("nginx is not installed: run scripts/setup.sh")
        self._nginx = nginx
        self.count = processes
        self.port = port or _free_port()
        self.server_args = list(server_args)
        self.cpu = cpu
        self.log_level = log_level
        self.door = door if door is not None else NginxDoor()
        self.ports: list[int] = []
        self.servers: list[subprocess.Popen[bytes]] = []
        self._nginx_proc: subprocess.Popen[bytes] | None = None
        self._workdir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pids(self) -> list[int]:
        """The process ids of the servers and nginx (a benchmark reads their CPU time)."""
        nginx = [self._nginx_proc.pid] if self._nginx_proc is not None else []
        return [proc.pid for proc in self.servers] + nginx

    def server_url(self, index: int) -> str:
        """One process's own address (its ``/stats``, say)."""
        return f"http://127.0.0.1:{self.ports[index]}"

    def start(self) -> Cluster:
        self._workdir = tempfile.TemporaryDirectory(prefix="p2p-cluster-")
        workdir = Path(self._workdir.name)
        pin = ["taskset", "-c", str(self.cpu)] if self.cpu is not None else []
        try:
            for _ in range(self.count):
                port = _free_port()
                proc = subprocess.Popen(
                    [
                        *pin,
                        sys.executable,
                        "-m",
                        "p2p_server",
                        "--port",
                        str(port),
                        "--log-level",
                        self.log_level,
                        "--trusted-proxy",
                        NGINX_ADDRESS,
                        *self.server_args,
                    ],
                    stdout=subprocess.DEVNULL,
                )
                self.ports.append(port)
                self.servers.append(proc)
            for port, proc in zip(self.ports, self.servers, strict=True):
                _wait_listening(port, proc, "p2p_server")
            config = workdir / "nginx.conf"
            config.write_text(nginx_config(self.port, self.ports, workdir, self.door))
            self._nginx_proc = subprocess.Popen(
                [*pin, self._nginx, "-c", str(config), "-p", str(workdir), "-g", "daemon off;"],
                stderr=subprocess.DEVNULL,
            )
            _wait_listening(self.port, self._nginx_proc, "nginx")
        except BaseException:
            self.stop()
            raise
        return self

    def kill(self, index: int) -> None:
        """Kill one process as a crash would (its connections close at once)."""
        proc = self.servers[index]
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)

    def stop(self) -> None:
        procs = [*self.servers, *([self._nginx_proc] if self._nginx_proc else [])]
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._nginx_proc = None
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m p2p_server.cluster",
        description="Run several p2p_server processes behind nginx, each room on one of them.",
        epilog="Arguments after -- go to every server process (e.g. --token-secret-file F).",
    )
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--port", type=int, default=8000, help="nginx's port on 127.0.0.1")
    defaults = NginxDoor()
    parser.add_argument(
        "--nginx-connections-per-address",
        type=int,
        default=defaults.connections,
        help="connections one client address may hold open through nginx (default: %(default)s)",
    )
    parser.add_argument(
        "--nginx-connects-per-address",
        type=float,
        default=defaults.connects_per_s,
        metavar="PER_S",
        help="Socket.IO sessions and relay sockets one address may open per second through "
        "nginx (default: %(default)s)",
    )
    parser.add_argument(
        "--nginx-connect-burst-per-address",
        type=int,
        default=defaults.burst,
        help="... and at once (default: %(default)s)",
    )
    args, server_args = parser.parse_known_args(argv)
    server_args = [a for a in server_args if a != "--"]
    try:
        door = NginxDoor(
            args.nginx_connections_per_address,
            args.nginx_connects_per_address,
            args.nginx_connect_burst_per_address,
        )
    except ValueError as error:
        parser.error(str(error))
    with Cluster(args.processes, args.port, server_args, log_level="info", door=door) as cluster:
        print(f"p2p_server cluster listening on {cluster.url}/", flush=True)
        for index, port in enumerate(cluster.ports):
            print(f"  process {index}: http://127.0.0.1:{port}/stats", flush=True)
        exited: set[int] = set()
        try:
            while True:
                for index, proc in enumerate(cluster.servers):
                    if proc.poll() is not None and index not in exited:
                        # nginx sends its rooms to the others; restarting it is a supervisor's job.
                        exited.add(index)
                        print(f"process {index} exited ({proc.returncode})", file=sys.stderr)
                time.sleep(1)
        except KeyboardInterrupt:
            print("p2p_server cluster stopped", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
