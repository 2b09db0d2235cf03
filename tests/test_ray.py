"""--engine ray on a Ray cluster started here: same outputs as local, the shared store, cluster-wide rpm."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from summarizer.loopback import LoopbackServer

from .helpers import doc_number, make_docs, manifest_entries
from .raycluster import AUTH_ENV, Cluster, start_cluster

pytestmark = pytest.mark.ray
RUN_TIMEOUT = 120  # seconds for one `summarizer summarize` run, start-up included


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """Two nodes on this host: the head (2 CPUs) and one more (1 CPU); with --workers 2, an actor on each."""
    pytest.importorskip("ray")
    running = start_cluster(cpus=2)
    try:
        running.add_node(cpus=1)
        yield running
    finally:
        running.stop()


def command(docs: Path, out: Path, server: LoopbackServer, *extra: str, cluster: Cluster | None = None,
            cache: Path | None = None) -> tuple[list[str], dict[str, str]]:
    """`summarizer summarize` as arguments and environment, on the cluster when one is given."""
    env = dict(os.environ)
    args = [sys.executable, "-m", "summarizer", "summarize", str(docs), "--base-url", server.url,
            "--out", str(out), "--tables", "never", *extra]
    if cache is not None:
        args += ["--cache-dir", str(cache)]
    if cluster is not None:
        args += ["--engine", "ray"]
        env.update(AUTH_ENV, RAY_ADDRESS=cluster.address)
    return args, env


def summarize(*args: Any, cwd: Path | None = None, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run `command(...)` quietly, bounded in time."""
    argv, env = command(*args, **kwargs)
    return subprocess.run([*argv, "--quiet"], env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT, cwd=cwd)


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def running(pid: int) -> bool:
    """Whether the process is alive (a zombie is not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] not in "ZX"
    except (FileNotFoundError, ProcessLookupError):
        return False


def results(out: Path) -> dict[str, object]:
    return {p.relative_to(out).as_posix(): json.loads(p.read_text("utf-8"))["result"] for p in out.rglob("*.json")}


def statuses(out: Path) -> dict[str, str]:
    return {entry["relative"]: entry["status"] for entry in manifest_entries(out)}


def mixed_docs(folder: Path, count: int) -> Path:
    """Good documents, and two rows that fail (empty, binary) without failing the job."""
    make_docs(folder, count)
    (folder / "empty.txt").write_text("")
    (folder / "binary.txt").write_bytes(b"\x00\x01\x02PNG\x00" * 50)
    return folder


def test_ray_engine_gives_the_same_outputs_and_statuses_as_the_local_engine(cluster, tmp_path):
    docs = mixed_docs(tmp_path / "docs", 16)
    with LoopbackServer() as server:
        local = summarize(docs, tmp_path / "local", server, "--concurrency", "8", cache=tmp_path / "c1")
        sent_local = len(server.requests)
        # A relative --cache-dir is the driver's: actors run elsewhere (here: in the nodes' folder).
        on_ray = summarize(docs, tmp_path / "ray", server, "--concurrency", "8", "--workers", "2",
                           cluster=cluster, cache=Path("c2"), cwd=tmp_path)
        sent_ray = len(server.requests) - sent_local
        again = summarize(docs, tmp_path / "again", server, "--workers", "2", cluster=cluster, cache=tmp_path / "c2")
        assert len(server.requests) - sent_local == sent_ray, again.stderr  # all from that cache
    assert local.returncode == on_ray.returncode == 1, (local.stderr, on_ray.stderr)  # two rows failed
    assert sent_local == sent_ray == 16
    assert results(tmp_path / "ray") == results(tmp_path / "local") and len(results(tmp_path / "local")) == 16
    ray_statuses = statuses(tmp_path / "ray")
    assert ray_statuses == statuses(tmp_path / "local")
    assert sorted(set(ray_statuses.values())) == ["empty", "not_text", "ok"]


NOTE_SCHEMA = """
from typing import Annotated
from pydantic import BaseModel, Field
from summarizer.traits import English, Title, Verbatim

class Note(BaseModel):
    title: Annotated[str, Title(), English()] = Field(description="A title in English.")
    numbers: list[Annotated[str, Verbatim()]] = Field(description="Document numbers as written.")
"""


def test_a_user_schema_file_works_on_the_actors_as_it_does_locally(cluster, tmp_path):
    (tmp_path / "note.py").write_text(NOTE_SCHEMA)  # on the driver's disk only: travels by value
    docs = make_docs(tmp_path / "docs", 6)

    def note(body: dict[str, Any]) -> Any:
        from summarizer.loopback import Reply

        number = doc_number(SimpleNamespace(body=body))
        # Odd documents get a number their text does not have: flagged by the verbatim check.
        return Reply.json({"title": f"Note {number}", "numbers": [f"Document {number + number % 2 * 100}"]})

    with LoopbackServer(note) as server:
        runs = {engine: summarize(docs, tmp_path / engine, server, "--schema", "note.py:Note", "--workers", "2",
                                  cluster=cluster if engine == "ray" else None, cache=tmp_path / f"c-{engine}",
                                  cwd=tmp_path)
                for engine in ("local", "ray")}
    assert runs["ray"].returncode == runs["local"].returncode == 1, runs["ray"].stderr  # flagged documents
    assert statuses(tmp_path / "ray") == statuses(tmp_path / "local")
    assert sorted(statuses(tmp_path / "ray").values()) == ["flagged"] * 3 + ["ok"] * 3
    assert results(tmp_path / "ray") == results(tmp_path / "local")


def test_a_schema_importing_a_module_the_nodes_lack_stops_the_run_naming_it(cluster, tmp_path):
    # The driver finds notehelp.py on its PYTHONPATH; the nodes, started without it, do not.
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "notehelp.py").write_text("def shout(value):\n    return value\n")
    (tmp_path / "note.py").write_text(NOTE_SCHEMA.replace("class Note", "import notehelp\n\nclass Note")
                                      + "    _shout = staticmethod(notehelp.shout)\n")
    docs = make_docs(tmp_path / "docs", 20)
    with LoopbackServer() as server:
        argv, env = command(docs, tmp_path / "out", server, "--schema", str(tmp_path / "note.py") + ":Note",
                            "--workers", "2", cluster=cluster)
        env["PYTHONPATH"] = str(tmp_path / "lib")
        run = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT)
        assert len(server.requests) == 0
    assert run.returncode == 2, run.stderr
    assert "the Ray actors cannot start: ModuleNotFoundError: No module named 'notehelp'" in run.stderr
    assert "its documents go to" not in run.stderr  # not mistaken for a lost node


@pytest.mark.parametrize("kind", ["file", "s3"])
def test_a_second_run_with_a_fresh_cache_and_the_same_store_sends_nothing(cluster, tmp_path, kind, request):
    if kind == "s3":
        s3 = request.getfixturevalue("s3_server")
        store = ["--store", f"s3://{s3.bucket}/{uuid.uuid4().hex[:8]}", "--store-endpoint", s3.url]
    else:
        store = ["--store", (tmp_path / "shared").as_uri()]
    docs = make_docs(tmp_path / "docs", 12)
    with LoopbackServer() as server:
        first = summarize(docs, tmp_path / "out1", server, *store, "--workers", "2", cluster=cluster,
                          cache=tmp_path / "node1")
        assert first.returncode == 0, first.stderr
        assert len(server.requests) == 12
        second = summarize(docs, tmp_path / "out2", server, *store, "--workers", "2", cluster=cluster,
                           cache=tmp_path / "node2")
        assert second.returncode == 0, second.stderr
        assert len(server.requests) == 12  # every result came from the store
        # The local engine, on yet another node's cache, reads the same store (the key has the server's URL).
        third = summarize(docs, tmp_path / "out3", server, *store, cache=tmp_path / "node3")
        assert third.returncode == 0 and len(server.requests) == 12
    assert set(statuses(tmp_path / "out2").values()) == set(statuses(tmp_path / "out3").values()) == {"cached"}
    assert results(tmp_path / "out2") == results(tmp_path / "out3") == results(tmp_path / "out1")


def test_cluster_wide_rpm_holds_against_a_server_that_enforces_it(cluster, tmp_path):
    rpm, count = 600, 60  # the figure; an actor on each node
    docs = make_docs(tmp_path / "docs", count)
    with LoopbackServer(rpm=rpm, latency=0.05) as server:
        run = summarize(docs, tmp_path / "out", server, "--rpm", str(rpm), "--concurrency", "16",
                        "--workers", "2", cluster=cluster)
        assert run.returncode == 0, run.stderr
        assert server.rejected_429 == 0
        times = sorted(r.at for r in server.requests)
    assert len(times) == count
    rate = (len(times) - 1) / (times[-1] - times[0]) * 60
    assert 0.9 * rpm <= rate <= 1.05 * rpm, rate


KILL_LIMITS = """
import ray
ray.init(address=ADDRESS, namespace="summarizer", logging_level="ERROR")
names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if a["name"].startswith("summarizer-limits-")]
assert len(names) == 1, names
ray.kill(ray.get_actor(names[0], namespace="summarizer"), no_restart=False)
"""


def test_the_limits_actor_restarts_mid_run_and_the_rate_still_holds(cluster, tmp_path):
    rpm, count = 1200, 100
    docs = make_docs(tmp_path / "docs", count)
    with LoopbackServer(rpm=rpm, latency=0.05) as server:
        argv, env = command(docs, tmp_path / "out", server, "--rpm", str(rpm), "--concurrency", "16",
                            "--workers", "2", cluster=cluster)
        run = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wait_for(lambda: len(server.requests) >= 10, 60, "the run to get going")
            killer = subprocess.run([sys.executable, "-c", f"ADDRESS = {cluster.address!r}\n{KILL_LIMITS}"],
                                    env=env, capture_output=True, text=True, timeout=60)
            assert killer.returncode == 0, killer.stderr
            killed_at = len(server.requests)
            _, stderr = run.communicate(timeout=RUN_TIMEOUT)
        finally:
            run.kill()
        assert run.returncode == 0, stderr
        assert killed_at < count  # the limiter died mid-run
        assert server.rejected_429 == 0
        assert len(server.requests) == count  # nothing lost, nothing sent twice
    assert set(statuses(tmp_path / "out").values()) == {"ok"}


class HeldAnswers:
    """A responder that answers the first `free` requests, then holds every other one until `release()`:
    with it the test sees every actor's requests in flight, however slowly the nodes start."""

    def __init__(self, free: int) -> None:
        self._free = free
        self._open = threading.Event()
        self._lock = threading.Lock()
        self.seen = self.held = 0

    def __call__(self, body: dict[str, Any]) -> Any:
        from summarizer.loopback import canned_responder

        with self._lock:  # by arrival, not by the server's count: two requests may arrive at once
            self.seen += 1
            hold = self.seen > self._free and not self._open.is_set()
            self.held += hold
        if hold:
            self._open.wait(RUN_TIMEOUT)
        return canned_responder(body)

    def release(self) -> None:
        self._open.set()


def test_killing_a_nodes_raylet_mid_run_loses_no_document_and_the_same_command_finishes(cluster, tmp_path):
    count, concurrency, free = 60, 12, 12
    docs = make_docs(tmp_path / "docs", count)
    node = cluster.add_node(cpus=1)  # a third node, this test's to kill
    store = ["--store", (tmp_path / "shared").as_uri()]
    try:
        with LoopbackServer() as server:
            answers = HeldAnswers(free)
            server.responder = answers
            argv, env = command(docs, tmp_path / "out", server, "--concurrency", str(concurrency), "--workers", "3",
                                *store, cluster=cluster, cache=tmp_path / "cache")
            run = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                # Each actor has concurrency/3 requests in flight at most: all held means every actor,
                # the third node's included, is mid-document.
                wait_for(lambda: answers.held == concurrency, RUN_TIMEOUT, "every actor's requests in flight")
                actors = [pid for pid, a in node.processes().items() if "DocumentActor" in a]
                assert len(actors) == 1  # one actor per node (round-robin, hard affinity)
                assert len(server.requests) == free + concurrency
                node.kill_raylet()
                # An actor outlives its raylet by a moment (the driver calls it directly): the answers
                # wait until it has gone, so that the run must carry on without it.
                wait_for(lambda: not any(map(running, actors)), 60, "the lost node's actor to end")
                answers.release()
                _, stderr = run.communicate(timeout=RUN_TIMEOUT)
            finally:
                answers.release()
                run.kill()
            assert "died" in stderr  # the lost node's actor was noticed, its documents went to the others
            first = len(server.requests)
            again = summarize(docs, tmp_path / "out", server, *store, cluster=cluster, cache=tmp_path / "cache")
            assert again.returncode == 0, again.stderr
            total = len(server.requests)
    finally:
        node.stop()
        cluster.nodes.remove(node)
    outputs = sorted(p.name for p in (tmp_path / "out").iterdir() if p.suffix == ".json")
    assert outputs == [f"doc{i:03d}.json" for i in range(count)]  # each document exactly one output
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]  # no temporary left
    # Resent at most what was in flight on the lost node: its actor's share of --concurrency.
    assert count <= first <= total <= count + concurrency // 3, (first, total)
    assert set(statuses(tmp_path / "out").values()) <= {"ok", "cached"}


def test_a_token_budget_and_a_401_stop_the_whole_cluster(cluster, tmp_path):
    docs = make_docs(tmp_path / "docs", 40)
    with LoopbackServer(latency=0.05) as server:
        budget = summarize(docs, tmp_path / "out", server, "--concurrency", "4", "--workers", "2",
                           "--max-tokens-total", "1500", cluster=cluster)
        sent = len(server.requests)
    assert budget.returncode == 1 and "token budget of 1500 reached" in budget.stderr
    # 150 tokens a request: 10 reach the budget; at most the 4 in flight across both actors go beyond.
    assert 10 <= sent <= 14, sent
    assert len(list((tmp_path / "out").glob("doc*.json"))) == sent

    def first_five_then_401(body):
        from summarizer.loopback import Reply, canned_responder

        return canned_responder(body) if len(server.requests) <= 5 else Reply.error(401, "bad key")

    with LoopbackServer(first_five_then_401, latency=0.05) as server:
        refused = summarize(docs, tmp_path / "out401", server, "--concurrency", "4", "--workers", "2",
                            cluster=cluster)
        sent = len(server.requests)
    assert refused.returncode == 2, refused.stderr
    assert sent <= 5 + 4  # after the first 401, only what was already in flight
