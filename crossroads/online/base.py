"""The online selector: choose, remember, learn from feedback, share what was learned.

On :meth:`~OnlineSelector.aselect` a learner gives a distribution over the candidates and
its greedy choice (highest predicted quality − λ·cost); the explore mass (everything but the
greedy choice) is scaled down to at most ``max_explore``, one candidate is drawn, and its
probability is the ``propensity`` the trace records. The context, the arm, the propensity
and the candidate's estimated cost are remembered under the trace id: in memory on this
replica and, within a second, as a record in the state backend that lives
``feedback_ttl_s`` (any replica can then take the feedback; none waits for it).

:meth:`~OnlineSelector.observe` turns a quality in [0, 1] into statistics (and the reward
``quality − λ·cost`` into their ``r`` counter), applies them to the local view at once and
queues them as counter increments. A background task (every ``sync_interval_s``) writes the
queued records and increments and reads back what every replica added, so the request path
never waits on the network. When the backend is down, selection goes on from the last view
and the increments wait (they are sent when it answers again).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import orjson

from crossroads.config import StateConfig
from crossroads.exceptions import StateUnavailableError
from crossroads.online.features import FeatureMap
from crossroads.online.priors import Prior, read_artifact, resolve_priors
from crossroads.online.stats import SharedStatistics
from crossroads.selection import Selector
from crossroads.state import GuardedState, StateBackend, open_state
from crossroads.types import Candidate, RoutingRequest

if TYPE_CHECKING:
    from crossroads.config import Config

log = logging.getLogger("crossroads.online")
OBSERVED = "observed"  # the record of a trace whose feedback was taken
MAX_PENDING = 20_000  # contexts kept in memory at most (older ones are read from the backend)
MAX_QUEUED = 100_000  # records waiting to be written at most


@dataclass(slots=True)
class Pending:
    """What a selection remembers until its feedback arrives."""

    arm: int
    x: np.ndarray | None
    propensity: float
    cost: float
    at: float


def bound_exploration(probs: list[float], greedy: int, max_explore: float) -> list[float]:
    """``probs`` with the mass off ``greedy`` scaled down to at most ``max_explore``.

    >>> bound_exploration([0.0, 1.0], 0, 0.1)
    [0.9, 0.1]
    """
    explore = 1.0 - probs[greedy]
    if explore <= max_explore:
        return probs
    scale = max_explore / explore
    out = [p * scale for p in probs]
    out[greedy] = 1.0 - max_explore
    return out


class OnlineSelector(Selector):
    """Base of the learners: subclasses implement :meth:`distribution` (and set
    ``contextual = False`` if they ignore the request's features)."""

    is_async = True
    contextual: ClassVar[bool] = True

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.decision = "default"
        self.models: list[str] = []
        self.gateway_config: Config | None = None
        self.state_backend: StateBackend | None = None  # set to share an open backend
        self.clock = time.time
        self.autosync = True  # False: the caller runs :meth:`sync` (replays, tests)

    def bind(self, decision: str, models: Sequence[str], config: Config | None) -> None:
        self.decision = decision
        self.models = list(models)
        self.gateway_config = config

    def prepare(self) -> None:
        cfg = self.config
        gateway = self.gateway_config
        if not self.models:
            raise ValueError("bind(decision, models, config) the selector before prepare()")
        profiles = {m.name: m for m in gateway.models} if gateway is not None else {}
        warm = None
        if cfg.warm_start is not None:
            warm = read_artifact(cfg.warm_start.router, cfg.warm_start.model_map)
        self.priors: list[Prior] = resolve_priors(self.models, profiles, cfg, warm)
        if cfg.objective is not None:
            self.lam = float(cfg.objective["lambda"])
        else:
            self.lam = warm.lam if warm is not None and warm.lam is not None else 0.0
        seed = int.from_bytes(hashlib.sha1(self.decision.encode()).digest()[:4], "big")
        self.features: FeatureMap | None = None
        layout = f"{cfg.method}"
        if self.contextual:
            self.features = FeatureMap(cfg.features, seed)
            layout += self.features.layout()
        d = self.features.dimension if self.features is not None else 0
        self.stats = SharedStatistics(self.models, d, cfg.decay)
        self.index = {m: i for i, m in enumerate(self.models)}
        self._rng = np.random.default_rng(cfg.seed)
        settings = (gateway.state if gateway is not None else None) or StateConfig()
        digest = hashlib.sha1(layout.encode()).hexdigest()[:10]
        self.prefix = f"{settings.key_prefix}online:{self.decision}:{digest}:"
        timeout = settings.timeout_ms / 1000
        backend = self.state_backend or open_state(settings.backend, timeout_s=timeout)
        self.state = GuardedState(backend, timeout, settings.retry_after_s)
        self.ttl_s = float(cfg.feedback_ttl_s)
        self._pending: OrderedDict[str, Pending] = OrderedDict()
        self._writes: dict[str, Pending | str] = {}  # records to write (or OBSERVED)
        self._arms: dict[tuple[str, ...], np.ndarray] = {}
        self._deltas: dict[str, np.ndarray] = {}  # summed increments per statistics key
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.selected = self.explored = self.observed = self.syncs = 0

    # ------------------------------------------------------------------ learners

    def distribution(
        self, x: np.ndarray | None, arms: np.ndarray, costs: np.ndarray
    ) -> tuple[list[float], int, np.ndarray]:
        """For candidates ``arms`` (model indices) with estimated ``costs``: the policy's
        probability of each, the greedy one's position, and each one's score."""
        raise NotImplementedError

    def learn(self, arm: int, x: np.ndarray | None, quality: float) -> None:
        """Apply one local observation to the learner's model (it is already in the
        statistics; the model is rebuilt from them after each read from the backend)."""

    def prior_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Prior quality and strength per model."""
        return (
            np.array([p.quality for p in self.priors]),
            np.array([p.strength for p in self.priors]),
        )

    # ------------------------------------------------------------------ selection

    async def aselect(self, request: RoutingRequest, candidates: list[Candidate]) -> Candidate:
        if self.autosync:
            self._ensure_task()
        x = None
        if self.features is not None:
            spec = self.features.config
            if spec.embedding_dims and spec.embedding == "compute" and request.vector is None:
                from crossroads.signals.learned import request_vector

                request.vector = await request_vector(request.prompt)
            x = self.features.vector(request)
        return self.choose(request.trace_id, x, candidates)

    def select(self, request: RoutingRequest, candidates: list[Candidate]) -> Candidate:
        x = self.features.vector(request) if self.features is not None else None
        return self.choose(request.trace_id, x, candidates)

    def choose(
        self, trace_id: str | None, x: np.ndarray | None, candidates: list[Candidate]
    ) -> Candidate:
        """Draw a candidate for context ``x`` and remember it under ``trace_id``."""
        names = tuple(c.model for c in candidates)
        arms = self._arms.get(names)
        if arms is None:
            arms = self._arms[names] = np.array([self.index[m] for m in names])
        costs = np.array([c.estimated_cost for c in candidates], dtype=np.float64)
        probs, greedy, scores = self.distribution(x, arms, costs)
        weights = bound_exploration(probs, greedy, self.config.max_explore)
        u = self._rng.random() * sum(weights)
        i = len(weights) - 1
        for j, w in enumerate(weights):
            u -= w
            if u < 0:
                i = j
                break
        for c, score in zip(candidates, scores.tolist(), strict=True):
            c.score = round(score, 6)
        chosen = candidates[i]
        chosen.propensity = round(weights[i], 6)
        self.selected += 1
        self.explored += i != greedy
        if trace_id is not None:
            pending = Pending(int(arms[i]), x, chosen.propensity, costs.item(i), self.clock())
            self._pending[trace_id] = pending
            if len(self._pending) > MAX_PENDING:
                self._pending.popitem(last=False)
            if len(self._writes) < MAX_QUEUED:
                self._writes[self._record_key(trace_id)] = pending  # serialised when written
        return chosen

    def _record(self, pending: Pending) -> str:
        return orjson.dumps(
            {
                "arm": self.models[pending.arm],
                "x": None if pending.x is None else np.round(pending.x, 6).tolist(),
                "p": pending.propensity,
                "c": pending.cost,
                "t": pending.at,
            }
        ).decode()

    # ------------------------------------------------------------------ feedback

    async def observe(self, trace_id: str, reward: float) -> bool:
        """Learn from the quality (in [0, 1]) of the answer to ``trace_id``; False when this
        decision did not route it or its context expired (``feedback_ttl_s``)."""
        quality = float(reward)
        if not 0.0 <= quality <= 1.0:
            raise ValueError(f"reward is a quality in [0, 1]; got {reward!r}")
        now = self.clock()
        key = self._record_key(trace_id)
        pending = self._pending.pop(trace_id, None)
        raw = self._writes.get(key)  # not yet written: the newest word on it is here
        if raw is None:
            # Written: another replica may have taken its feedback already.
            try:
                (raw,) = await self.state.call(lambda: self.state.backend.get_records([key]))
            except StateUnavailableError:
                if pending is None:
                    return False
        if raw == OBSERVED:
            return False
        if pending is None:
            pending = raw if isinstance(raw, Pending) else self._decode(raw)
            if pending is None:
                return False
        if now - pending.at > self.ttl_s:
            return False
        r = quality - self.lam * pending.cost
        stats = self.stats
        stats.observe(pending.arm, stats.codec.moments(pending.x, quality, r))
        self.learn(pending.arm, pending.x, quality)
        bucket = stats.buckets.current(now)
        increments = stats.codec.encode(pending.x, quality, r)
        key_stats = self._stats_key(pending.arm, bucket)
        known = self._deltas.get(key_stats)
        self._deltas[key_stats] = increments if known is None else known + increments
        self._writes[key] = OBSERVED
        self.observed += 1
        return True

    def forget(self, trace_id: str) -> None:
        """Drop the context of ``trace_id``: its feedback will be refused everywhere (the
        model chosen did not answer it)."""
        self._pending.pop(trace_id, None)
        self._writes[self._record_key(trace_id)] = OBSERVED

    def _decode(self, raw: str | None) -> Pending | None:
        if raw is None or raw == OBSERVED:
            return None
        try:
            record = orjson.loads(raw)
            arm = self.index[record["arm"]]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return None  # a record of another layout or model set: not ours to learn from
        x = None if record["x"] is None else np.asarray(record["x"], dtype=np.float64)
        if self.features is not None and (x is None or x.shape != (self.features.dimension,)):
            return None
        return Pending(arm, x, float(record["p"]), float(record["c"]), float(record["t"]))

    def _record_key(self, trace_id: str) -> str:
        return f"{self.prefix}p:{trace_id}"

    def _stats_key(self, arm: int, bucket: int) -> str:
        return f"{self.prefix}s:{self.models[arm]}:{bucket}"

    # ------------------------------------------------------------------ sharing

    async def sync(self) -> bool:
        """Write queued records and increments, read back every replica's statistics;
        False if the backend did not answer (nothing is lost: it is tried again)."""
        now = self.clock()
        backend = self.state.backend
        writes, self._writes = self._writes, {}
        if writes:
            ttl = self.ttl_s

            async def put() -> None:
                await asyncio.gather(
                    *(
                        backend.put_record(k, v if isinstance(v, str) else self._record(v), ttl)
                        for k, v in writes.items()
                    )
                )

            try:
                await self.state.call(put)
            except StateUnavailableError:
                self._writes = {**writes, **self._writes}
                return False
        deltas, self._deltas = self._deltas, {}
        self.stats.begin_sync()
        if deltas:
            updates = {k: self.stats.codec.counters(v) for k, v in deltas.items()}
            ttl_s = self.stats.buckets.ttl_s
            try:
                await self.state.call(lambda: backend.add_counters(updates, ttl_s))
            except StateUnavailableError:
                self.stats.abort_sync()
                for k, v in deltas.items():
                    known = self._deltas.get(k)
                    self._deltas[k] = v if known is None else known + v
                return False
        read = self.stats.to_read(now)
        keys = [self._stats_key(arm, bucket) for arm, bucket in read]
        try:
            rows = await self.state.call(lambda: backend.read_counters(keys))
        except StateUnavailableError:
            return False  # sent: kept in the view until the next read brings them back
        self.stats.absorb(read, rows, now)
        self.syncs += 1
        return True

    def _ensure_task(self) -> None:
        loop = asyncio.get_running_loop()
        if self._task is not None and self._loop is loop and not self._task.done():
            return
        self._loop = loop
        self._task = loop.create_task(self._run())

    async def _run(self) -> None:
        while True:
            try:
                await self.sync()
            except Exception:  # a bug must not stop learning for good
                log.exception("synchronising the online statistics of %s failed", self.decision)
            await asyncio.sleep(self.config.sync_interval_s)

    async def aclose(self) -> None:
        """Stop the sync task, send what is queued, release the backend."""
        task, self._task = getattr(self, "_task", None), None
        if task is None and not hasattr(self, "state"):
            return
        if task is not None and self._loop is asyncio.get_running_loop():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(Exception):
            await self.sync()
        if self.state_backend is None:
            await self.state.backend.aclose()

    def stats_summary(self) -> dict[str, Any]:
        """Counts for metrics and tests: selections, explorations, feedback, syncs."""
        return {
            "selected": self.selected,
            "explored": self.explored,
            "observed": self.observed,
            "syncs": self.syncs,
            "pending": len(self._pending),
        }
