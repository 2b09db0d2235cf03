"""A Ray cluster on this host for the tests: head (and more nodes) by `ray start --block`, stopped by PID."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

RAY = str(Path(sys.executable).with_name("ray"))
# Credentials for moto's S3 server: the actors' processes inherit the node's environment.
# Ray >= 2.5x authenticates its RPCs with a token: one per test session, given to nodes and drivers.
AUTH_ENV = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
NODE_ENV = {**AUTH_ENV, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1",
            "RAY_USAGE_STATS_ENABLED": "0",
            # A lost node is noticed in ~2 s rather than ~15 s.
            "RAY_health_check_period_ms": "500", "RAY_health_check_failure_threshold": "4", "PYTHONWARNINGS": "ignore::DeprecationWarning"}


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@dataclass
class Node:
    process: subprocess.Popen
    temp_dir: str

    def processes(self) -> dict[int, str]:
        """pid -> command line of every process this node started (its descendants: Ray's workers
        are in process groups of their own)."""
        out = subprocess.run(["ps", "-ww", "-eo", "pid=,ppid=,args="], capture_output=True, text=True,
                             timeout=10).stdout
        children: dict[int, list[int]] = {}
        args: dict[int, str] = {}
        for line in out.splitlines():
            pid, ppid, command = line.split(None, 2)
            children.setdefault(int(ppid), []).append(int(pid))
            args[int(pid)] = command
        found, todo = {}, [self.process.pid]
        while todo:
            pid = todo.pop()
            if pid in args:
                found[pid] = args[pid]
                todo.extend(children.get(pid, []))
        return found

    def kill_raylet(self) -> int:
        """SIGKILL this node's raylet (the node is lost to the cluster); its pid."""
        processes = self.processes()
        for pid, args in processes.items():
            if args.split()[0].endswith("/raylet"):
                os.kill(pid, signal.SIGKILL)
                return pid
        raise AssertionError(f"no raylet among: {processes}")

    def stop(self) -> None:
        """SIGKILL the processes this node started, nothing else, and remove its temp dir."""
        # (`ray start --block` takes ~20 s over a SIGTERM; `ray stop` would end every Ray on the host.)
        for pid in self.processes() if self.process.poll() is None else {}:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


@dataclass
class Cluster:
    address: str
    nodes: list[Node] = field(default_factory=list)

    def add_node(self, cpus: int = 1, timeout: float = 60) -> Node:
        """Start one more node and return once the cluster counts it alive."""
        node = _start(["--address", self.address], cpus)
        self.nodes.append(node)
        self.wait_for_nodes(len(self.nodes), timeout)
        return node

    def wait_for_nodes(self, count: int, timeout: float) -> None:
        # From a separate driver process: the test process itself stays out of the cluster.
        code = (f"import ray, time\nray.init(address={self.address!r}, logging_level='ERROR')\n"
                f"deadline = time.monotonic() + {timeout}\n"
                f"while sum(n['Alive'] for n in ray.nodes()) < {count}:\n"
                "    assert time.monotonic() < deadline, 'node did not join'\n    time.sleep(0.2)\n")
        subprocess.run([sys.executable, "-c", code], env={**os.environ, **AUTH_ENV}, check=True,
                       capture_output=True, timeout=timeout + 30)

    def stop(self) -> None:
        for node in reversed(self.nodes):
            node.stop()


def _start(role: list[str], cpus: int) -> Node:
    # Short temp dirs: Ray's unix sockets live there, and socket paths are limited to ~107 bytes.
    temp_dir = tempfile.mkdtemp(prefix="rt", dir="/tmp")
    manager, objects, agent_grpc, agent_http, runtime_env, metrics, dashboard = free_ports(7)
    args = [RAY, "start", *role, "--block", "--num-cpus", str(cpus), "--node-ip-address", "127.0.0.1",
            "--node-manager-port", str(manager), "--object-manager-port", str(objects),
            "--dashboard-agent-grpc-port", str(agent_grpc), "--dashboard-agent-listen-port", str(agent_http),
            "--runtime-env-agent-port", str(runtime_env), "--metrics-export-port", str(metrics),
            "--dashboard-port", str(dashboard), "--object-store-memory", str(200 * 1024 * 1024),
            "--disable-usage-stats"]
    if "--head" in role:
        args += ["--include-dashboard", "false", "--temp-dir", temp_dir]
    env = {**os.environ, **NODE_ENV}
    process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    return Node(process, temp_dir)


def start_cluster(cpus: int = 2, timeout: float = 60) -> Cluster:
    """A head node on free ports; returns once a driver can connect."""
    port = free_ports(1)[0]
    head = _start(["--head", "--port", str(port)], cpus)
    cluster = Cluster(f"127.0.0.1:{port}", [head])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if head.process.poll() is not None:
            break
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return cluster
        except OSError:
            time.sleep(0.2)
    cluster.stop()
    raise RuntimeError(f"the Ray head did not start within {timeout} s")
