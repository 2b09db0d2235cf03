"""The Ray engine: documents processed by async actors on a Ray cluster, limits held cluster-wide.

The driver (this process) keeps what must be in one place: the input listing, output names, the
manifest, progress, budget and stop (the scheduler), and it reads each input and writes each
output, so that nodes need no shared filesystem. Each `DocumentActor` builds the run's
DocumentProcessor through the same `ProcessorFactory` as the worker processes and answers an
Outcome per document. One named `Limits` actor paces requests (--rpm, --tpm), spreads a 429's
pause, and holds the stop flag, the usage against the budget and auto mode's fallback for the
whole cluster; its state is a few numbers that the driver restores after a restart.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import sys
import time
import uuid
import warnings
from pathlib import Path
from collections.abc import Callable
from typing import Any

from ..errors import ActorsFailed, ConfigError, ExtraMissing, NotStarted, RunStopper, SummarizerError
from ..inputs import STDIN, InputItem, display_path
from ..outcome import Outcome, Status
from ..pricing import Budget
from ..processor import ProcessorFactory, document_slots, file_cap, read_capped, write_output
from ..ratelimit import RateLimiter
from ..usage import Usage
from .workers import DOCUMENTS_PER_WORKER

INSTALL = "pip install 'summarizer[ray]'"
ATTEMPTS = 3  # a document whose actor died is sent to another actor this many times in all
CLOSE_TIMEOUT = 10.0
WATCH_EVERY = 0.25  # seconds between an actor's looks at the run's Limits
SYNC_EVERY = 1.0  # seconds between the driver's restorations of Limits' usage and stop
NAMESPACE = "summarizer"  # where a run's named Limits actor can be found (ray list actors)


def import_ray() -> Any:
    """The ray module, or an error naming the install command."""
    try:
        import ray
    except ImportError as exc:
        raise ExtraMissing(f"--engine ray needs Ray, which is not installed: {INSTALL}") from exc
    return ray


class Limits:
    """One per run, named, on the cluster: the rate limiter, stop flag, usage and auto mode's choice."""

    def __init__(self, rpm: float | None, tpm: float | None, budget: Budget | None) -> None:
        import ray

        self.limiter = RateLimiter(rpm, tpm)
        self.budget, self.stopped, self.usage, self.fallback = budget, False, Usage(), 0
        with warnings.catch_warnings():  # Ray's own property trips its own deprecation warning
            warnings.simplefilter("ignore")
            restarted = ray.get_runtime_context().was_current_actor_reconstructed
        if restarted:
            # The timelines and a 429's pause died with the old actor: hold everyone for a moment,
            # until the driver has restored the rest (sync) and a pause in force would mostly be over.
            self.limiter.pause(1.0)

    async def acquire(self, estimated_tokens: int, *spent: int) -> tuple[bool, int]:
        """Book one request (--rpm, --tpm); also takes the caller's usage since its last call."""
        self.spend(*spent)
        await self.limiter.acquire(estimated_tokens)
        return self.may_start(), self.fallback

    def state(self, *spent: int) -> tuple[bool, int, float]:
        """An actor's periodic look: may documents start, auto mode's choice, the pause left."""
        self.spend(*spent)
        return self.may_start(), self.fallback, self.limiter.paused_for()

    def reconcile(self, estimated_tokens: int, actual_tokens: int) -> None:
        self.limiter.reconcile(estimated_tokens, actual_tokens)

    def pause(self, seconds: float) -> None:
        self.limiter.pause(seconds)

    def may_start(self) -> bool:
        if not self.stopped and self.budget is not None and self.budget.reached(self.usage):
            self.stopped = True
        return not self.stopped

    def spend(self, prompt: int, completion: int, requests: int) -> None:
        self.usage += Usage(prompt, completion, requests)

    def stop(self) -> None:
        self.stopped = True

    def set_fallback(self, value: int) -> None:
        self.fallback = value

    def sync(self, stopped: bool, prompt: int, completion: int, requests: int) -> None:
        """The driver's view (after a restart: the state's floor): usage only grows, a stop stays."""
        self.stopped = self.stopped or stopped
        u = self.usage
        self.usage = Usage(max(u.prompt_tokens, prompt), max(u.completion_tokens, completion),
                           max(u.requests, requests))


class _RemoteLimiter:
    """The backend's rate limiter inside an actor: bookings through the Limits actor (with --rpm or
    --tpm), pauses kept here too, so that a pause learnt from the cluster holds this actor's requests."""

    def __init__(self, limits: Any, actor: DocumentActor, paced: bool) -> None:
        self._limits, self._actor, self._paced = limits, actor, paced
        self._local = RateLimiter()  # no pacing: only the pauses
        self.pauses = 0

    async def acquire(self, estimated_tokens: int = 0) -> None:
        if self._paced:
            may_start, fallback = await self._limits.acquire.remote(estimated_tokens, *self._actor.take_spent())
            self._actor.learn(may_start, fallback)
        elif self._actor.budgeted:  # the budget may have been reached on another node a moment ago
            may_start, fallback, _ = await self._limits.state.remote(*self._actor.take_spent())
            self._actor.learn(may_start, fallback)
        if not self._actor.may_send():
            raise NotStarted("the run has stopped")
        await self._local.acquire()

    def reconcile(self, estimated_tokens: int, actual_tokens: int) -> None:
        if self._paced:
            self._limits.reconcile.remote(estimated_tokens, actual_tokens)

    def pause(self, seconds: float) -> None:
        self.pauses += 1
        self._local.pause(seconds)
        self._limits.pause.remote(seconds)

    def learn_pause(self, seconds: float) -> None:
        if seconds > self._local.paused_for():
            self._local.pause(seconds)


class _RemoteFlag:
    """Auto mode's run-wide fallback choice (`.value`), as the backend reads it from shared memory."""

    def __init__(self, limits: Any) -> None:
        self._limits, self._value = limits, 0

    @property
    def value(self) -> int:
        return self._value

    @value.setter
    def value(self, value: int) -> None:
        self._value = value
        self._limits.set_fallback.remote(value)


class DocumentActor:
    """Runs the run's DocumentProcessor for the documents the driver sends; answers Outcomes."""

    def __init__(self, factory: ProcessorFactory, slots: int, limits: Any) -> None:
        self._limits, self._stopped = limits, False
        self._flag = _RemoteFlag(limits)
        settings = factory.spec.settings
        self._limiter = _RemoteLimiter(limits, self, paced=bool(settings.rpm or settings.tpm))
        factory = dataclasses.replace(factory, limiter=self._limiter, fallback_memory=self._flag)
        self._processor = factory(_warn, self.may_send, self._spend, slots)
        self._spent = Usage()  # not yet told to Limits
        # With a budget, usage is told at once and each document asks first (as worker processes
        # do): exact to the documents in flight, at one more small call per document.
        self.budgeted = factory.spec.settings.max_tokens_total is not None or settings.max_cost is not None
        self._watch: asyncio.Task[None] | None = None

    def learn(self, may_start: bool, fallback: int) -> None:
        self._stopped = self._stopped or not may_start
        self._flag._value = fallback

    def take_spent(self) -> tuple[int, int, int]:
        spent, self._spent = self._spent, Usage()
        return spent.prompt_tokens, spent.completion_tokens, spent.requests

    def may_send(self) -> bool:
        return not self._stopped

    def _spend(self, usage: Usage) -> None:
        self._spent += usage  # told to Limits with the next booking or look, within WATCH_EVERY
        if self.budgeted:
            self._limits.spend.remote(*self.take_spent())

    async def _look(self) -> None:
        # The cluster's stop, budget, auto mode's choice and 429 pause, a few times a second: one
        # small call per actor, whatever the number of documents.
        while True:
            try:
                may_start, fallback, paused_for = await self._limits.state.remote(*self.take_spent())
                self.learn(may_start, fallback)
                self._limiter.learn_pause(paused_for)
            except Exception as exc:  # Limits restarting: the next look will do
                _warn(f"cannot reach the run's Limits actor ({type(exc).__name__}); retrying")
            await asyncio.sleep(WATCH_EVERY)

    async def process(self, item: InputItem, final: bool) -> Outcome:
        if self._watch is None:
            self._watch = asyncio.get_running_loop().create_task(self._look())
        if self._stopped:
            return Outcome(item, Status.NOT_STARTED)
        outcome = await self._processor.process(item, final, None)  # the driver writes the output
        outcome.exception = None  # exceptions do not always survive pickling; the message does
        outcome.item = dataclasses.replace(item, data=None)  # the bytes need not travel back
        if outcome.stop is not None:
            self._stopped = True
            self._limits.stop.remote()  # at once, before the driver hears of it
        return outcome

    async def close(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
        await self._limits.state.remote(*self.take_spent())
        await self._processor.aclose()


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)  # Ray forwards an actor's stderr to the driver


def _worker_nodes(ray: Any) -> list[str]:
    """The ids of the live nodes that offer CPUs."""
    return [node["NodeID"] for node in ray.nodes() if node.get("Alive") and node.get("Resources", {}).get("CPU")]


def _ship_by_value(ray: Any, model: type) -> None:
    """A user's schema (a --schema file, or the caller's own module) travels to the actors by value:
    the nodes cannot import a module loaded from a file on the driver's disk."""
    name = model.__module__
    if name.partition(".")[0] != __name__.partition(".")[0] and name in sys.modules:
        ray.cloudpickle.register_pickle_by_value(sys.modules[name])


def auto_actors(concurrency: int, cluster_cpus: float) -> int:
    """Actors for a run when --workers is not given: one per 16 requests in flight, up to the CPUs."""
    return max(1, min(int(cluster_cpus), concurrency // DOCUMENTS_PER_WORKER))


class RayEngine:
    """Sends documents to DocumentActors on a Ray cluster; writes their outputs here."""

    def __init__(self, factory: ProcessorFactory, concurrency: int, *, budget: Budget | None = None,
                 address: str | None = None, actors: int | None = None) -> None:
        ray = import_ray()
        self._ray = ray
        self._owns = not ray.is_initialized()
        if self._owns:
            try:
                ray.init(address=address, namespace=NAMESPACE, include_dashboard=False,
                         logging_level=logging.WARNING, configure_logging=False)
            except ConnectionError as exc:
                raise ConfigError(f"cannot join the Ray cluster at {address}: {exc} (check --ray-address "
                                  "or RAY_ADDRESS, or leave both unset to start Ray on this machine)") from exc
        settings = factory.spec.settings
        _ship_by_value(ray, factory.spec.schema.model)
        factory = dataclasses.replace(factory, limiter=None, fallback_memory=None)  # the actors bring their own
        self._read_cap = file_cap(settings.max_doc_chars)
        count = actors or auto_actors(concurrency, ray.cluster_resources().get("CPU", 1))
        count = max(1, min(count, concurrency))
        # Restartable, small, on any node: the driver restores usage and stop after a restart.
        self._limits = ray.remote(Limits).options(
            name=f"summarizer-limits-{uuid.uuid4().hex[:12]}", num_cpus=0, max_restarts=-1,
            max_task_retries=-1, max_concurrency=100_000,
        ).remote(settings.rpm, settings.tpm, budget)
        remote_actor = ray.remote(DocumentActor)
        nodes = _worker_nodes(ray)
        self._actors: list[Any] = []
        for index in range(count):
            slots = concurrency // count + (1 if index < concurrency % count else 0)  # shares sum to --concurrency
            # Round-robin over the nodes, so that the actors, and a lost node's share of the run, are
            # even. Hard affinity: measured here, soft affinity put both actors of a two-node cluster on
            # one node in 2 of 3 tries. An actor whose node is gone before it starts fails like one
            # lost later: its documents go to the others.
            placement: Any = "SPREAD"
            if nodes:
                from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

                placement = NodeAffinitySchedulingStrategy(nodes[index % len(nodes)], soft=False)
            self._actors.append(remote_actor.options(
                num_cpus=0, max_concurrency=document_slots(slots) + 1, scheduling_strategy=placement,
            ).remote(factory, slots, self._limits))
        self._load = [0] * count
        self._dead: set[int] = set()
        self._stopped = False
        self._usage = Usage()
        self._synced = time.monotonic()
        self.warn: Callable[[str], None] = lambda message: None
        # Actors keep a backlog as deep as their share, so none waits for the driver between two.
        self.slots = concurrency * 2 + document_slots(concurrency)

    async def process(self, item: InputItem, final: bool, path: Path | None) -> Outcome:
        """Have the least busy live actor process one document; write its output here."""
        if self._stopped:
            return Outcome(item, Status.NOT_STARTED)
        shipped = await self._with_data(item)
        outcome: Outcome | None = None
        for _ in range(ATTEMPTS):
            index = self._pick()
            if index is None:
                break
            self._load[index] += 1
            try:
                outcome = await self._actors[index].process.remote(shipped, final)
                break
            except self._ray.exceptions.RayActorError as exc:
                if exc.actor_init_failed:  # not a lost node: the actor's constructor raised
                    return self._cannot_start(item, exc)
                if index not in self._dead:  # its node or process is gone: the document goes to another
                    self._dead.add(index)
                    self.warn(f"Ray actor {index} died ({type(exc).__name__}; a lost node?): its documents "
                              f"go to the {len(self._actors) - len(self._dead)} other(s)")
            finally:
                self._load[index] -= 1
        if outcome is None:
            return Outcome(item, Status.FAILED, error=f"{display_path(item.path)}: every Ray actor that took it "
                           "died (lost nodes?); re-run the same command to continue", error_class="WorkerFailed")
        outcome.item = item
        self._usage += outcome.usage
        if time.monotonic() - self._synced > SYNC_EVERY:
            self._sync()
        if outcome.envelope is not None and path is not None:
            await self._write(outcome, path)
        return outcome

    def _cannot_start(self, item: InputItem, exc: Exception) -> Outcome:
        """Stop the run: an actor that cannot start means a node lacks what the run needs."""
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        named = [line for line in lines if re.match(r"[\w.]+(Error|Exception)\b", line)]
        cause = (named or lines or [type(exc).__name__])[-1][:300]
        error = (f"the Ray actors cannot start: {cause} (every node needs summarizer[ray] and what a --schema "
                 "file imports: install it there, or keep the schema in one file)")
        return Outcome(item, Status.FAILED, error=error, error_class="ActorsFailed", stop=ActorsFailed)

    def _sync(self) -> None:
        self._synced = time.monotonic()
        self._limits.sync.remote(self._stopped, self._usage.prompt_tokens, self._usage.completion_tokens,
                                 self._usage.requests)

    def _pick(self) -> int | None:
        live = [i for i in range(len(self._actors)) if i not in self._dead]
        return min(live, key=self._load.__getitem__) if live else None

    async def _with_data(self, item: InputItem) -> InputItem:
        # The driver reads the input, so that actors on other nodes need no shared filesystem.
        if item.problem or item.data is not None or item.path == STDIN:
            return item
        try:
            data = await asyncio.to_thread(read_capped, item.path, self._read_cap, item.stream)
        except OSError as exc:
            return dataclasses.replace(item, problem=f"cannot read ({exc.strerror or exc})")
        except Exception as exc:  # InputError (not a regular file any more): the actor reports it
            return dataclasses.replace(item, problem=str(exc).split(": ", 1)[-1])
        return dataclasses.replace(item, data=data)

    async def _write(self, outcome: Outcome, path: Path) -> None:
        assert outcome.envelope is not None
        try:
            await asyncio.to_thread(write_output, path, outcome.envelope, outcome.cached)
        except SummarizerError as exc:
            outcome.status, outcome.error, outcome.error_class = Status.FAILED, str(exc), type(exc).__name__
            outcome.stop = type(exc) if isinstance(exc, RunStopper) else None
            return
        outcome.output_path = path

    def stop(self) -> None:
        """Start nothing new, on every node (documents in flight finish)."""
        self._stopped = True
        self._limits.stop.remote()

    async def aclose(self) -> None:
        """Close the actors' clients and caches, end the actors, and Ray if this run started it."""
        ray = self._ray
        closing = [actor.close.remote() for i, actor in enumerate(self._actors) if i not in self._dead]
        # One last call to Limits, so that the usage syncs queued before it are done when it ends.
        closing.append(self._limits.may_start.remote())
        await asyncio.wait([asyncio.ensure_future(ref) for ref in closing], timeout=CLOSE_TIMEOUT)
        for actor in [*self._actors, self._limits]:
            try:
                ray.kill(actor, no_restart=True)
            except Exception:  # already gone with its node
                pass
        if self._owns:
            ray.shutdown()
