"""The fan-out plan: ask several models at once, then merge their answers.

``first`` serves the fastest answer that passes the acceptance rules (simple checks by
default) and cancels the others; ``vote`` the answer of the largest group of agreeing
answers (it stops early, cancelling the rest, once a strict majority agrees); ``judge``
asks a configured model which answer is best; ``best_of`` serves the answer a learned
verifier rates highest. Streams are buffered like a cascade's cheap stage, so the client
reads one coherent stream. Every branch — served, lost, cancelled, failed, the judge — is
on the trace with its latency and cost.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import TYPE_CHECKING

from crossroads.config.plans import AgreementAccept, ChecksAccept, FanoutPlan
from crossroads.exceptions import UpstreamError
from crossroads.plans.accept import Acceptance, _agreeing
from crossroads.plans.answers import answer_key
from crossroads.plans.calls import Answer, call, deliver, record, record_failure, variant
from crossroads.types import Message, Request, Response, RoutingRequest, StageCall, Trace

if TYPE_CHECKING:
    from crossroads.engine import Engine, EngineStream

JUDGE_PROMPT = (
    "You are judging answers to a request. Reply with the number of the best answer "
    "(most correct, complete and helpful) and nothing else.\n\n# Request\n{request}\n\n{answers}"
)
JUDGE_ANSWER_CHARS = 4000
_FIRST_INT = re.compile(r"\d+")


class FanOut:
    """Runs a :class:`~crossroads.config.plans.FanoutPlan`."""

    kind = "fanout"

    def __init__(self, config: FanoutPlan) -> None:
        self.config = config

    def prepare(self) -> FanOut:
        """Compile the acceptance rules (simple checks when none are given)."""
        rules = self.config.accept or [ChecksAccept(rule="checks")]
        self.acceptance_ = Acceptance(rules).prepare()
        self.verifier_ = None
        if self.config.verifier is not None:
            from crossroads.plans.verifier import load_verifier

            self.verifier_ = load_verifier(self.config.verifier)
        return self

    async def serve(
        self, engine: Engine, request: Request, facts: RoutingRequest, trace: Trace, start: float
    ) -> Response | EngineStream:
        """Call every model, merge, serve one answer."""
        trace.plan, trace.stages = self.kind, []
        prefix = facts.text[: engine.prefix_chars]
        sent = variant(request, logprobs=self.acceptance_.logprobs, temperature=None)
        models = self.config.models
        started = time.perf_counter()
        tasks = {
            asyncio.create_task(call(engine, 0, name, sent, trace, prefix)): name for name in models
        }
        order = {name: i for i, name in enumerate(models)}
        answers: list[Answer] = []
        chosen: Answer | None = None
        reason = "accepted"
        score: float | None = None
        pending = set(tasks)
        failures: list[BaseException] = []
        ranks: dict[int, int] = {}  # answer -> its model's place in the plan
        try:
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in sorted(done, key=lambda t: order[tasks[t]]):
                    exc = task.exception()
                    if exc is None:
                        answers.append(task.result())
                        ranks[id(answers[-1])] = order[tasks[task]]
                    elif isinstance(exc, UpstreamError):
                        failures.append(exc)
                        record_failure(trace, 0, tasks[task], exc, started)
                    else:  # the request's fault or ours: every branch would say the same
                        for answer in answers:
                            await answer.release()
                        raise exc
                if self.config.merge == "first":
                    chosen = await self._first_acceptable(answers, request, facts)
                elif self.config.merge == "vote" and pending:
                    chosen = self._majority(answers, len(models), request)
                if chosen is not None:
                    break
            answers.sort(key=lambda a: ranks[id(a)])
            if chosen is None:
                chosen, reason, score = await self._merge(
                    engine, answers, request, facts, trace, prefix
                )
        finally:
            for task in pending:
                task.cancel()
            for task in pending:
                try:
                    late = await task
                except asyncio.CancelledError as exc:
                    record_failure(trace, 0, tasks[task], exc, started)
                except Exception as exc:  # noqa: BLE001 - a loser's failure is only recorded
                    record_failure(trace, 0, tasks[task], exc, started)
                else:
                    answers.append(late)
        for answer in answers:
            if answer is chosen:
                record(trace, answer, "accepted", f"{self.config.merge}: {reason}", score)
            else:
                record(
                    trace, answer, "lost", f"{self.config.merge}: another answer was served", None
                )
                await answer.release()
        if chosen is None:
            raise failures[-1] if failures else UpstreamError("every branch of the fan-out failed")
        return deliver(engine, chosen, request, trace, start)

    async def _first_acceptable(
        self, answers: list[Answer], request: Request, facts: RoutingRequest
    ) -> Answer | None:
        for answer in answers:
            if (await self.acceptance_.judge([answer], request, facts)).chosen is not None:
                return answer
        return None

    def _majority(self, answers: list[Answer], n: int, request: Request) -> Answer | None:
        """An answer a strict majority of all ``n`` branches already agree on (by key)."""
        json_mode = request.response_format is not None and request.response_format.type != "text"
        groups: dict[str, list[Answer]] = {}
        for a in answers:
            key = answer_key(a.text, a.tool_calls, json_mode, self.config.answer)
            if key is not None:
                groups.setdefault(key, []).append(a)
        for group in groups.values():
            if len(group) * 2 > n:
                return group[0]
        return None

    async def _merge(
        self,
        engine: Engine,
        answers: list[Answer],
        request: Request,
        facts: RoutingRequest,
        trace: Trace,
        prefix: str,
    ) -> tuple[Answer | None, str, float | None]:
        """Every branch has answered (or failed): pick one."""
        if not answers:
            return None, "every branch failed", None
        judged = await self.acceptance_.judge(answers, request, facts)
        passing = [a for i, a in enumerate(answers) if i not in judged.dropped] or answers
        merge = self.config.merge
        if merge == "first":
            return passing[0], "no answer passed the checks: the fastest is served", None
        if merge == "vote":
            rule = AgreementAccept(rule="agreement", answer=self.config.answer)
            group, share, _ = await _agreeing(rule, passing, request)
            if group:
                return passing[group[0]], f"{len(group)} of {len(passing)} agree", share
            return passing[0], "no two answers agree: the first model's is served", share
        if merge == "best_of":
            assert self.verifier_ is not None
            scores = [await self.verifier_.score(facts.text, a) for a in passing]
            best = max(range(len(passing)), key=scores.__getitem__)
            return passing[best], "highest verifier probability", scores[best]
        if len(passing) == 1:
            return passing[0], "the only answer that passed the checks", None
        pick = await self._judge(engine, passing, request, facts, trace, prefix)
        return passing[pick], f"the judge chose answer {pick + 1} of {len(passing)}", None

    async def _judge(
        self,
        engine: Engine,
        answers: list[Answer],
        request: Request,
        facts: RoutingRequest,
        trace: Trace,
        prefix: str,
    ) -> int:
        """Ask the judge model which answer is best (0-based); the first if it will not say."""
        judge = self.config.judge
        assert judge is not None
        listed = "\n\n".join(
            f"# Answer {i + 1}\n{_shown(a)[:JUDGE_ANSWER_CHARS]}" for i, a in enumerate(answers)
        )
        text = JUDGE_PROMPT.format(request=facts.text[:JUDGE_ANSWER_CHARS], answers=listed)
        ask = Request(
            "chat", judge, "openai_chat", [Message("user", text)], max_tokens=8, temperature=0.0
        )
        started = time.perf_counter()
        try:
            verdict = await call(engine, 0, judge, ask, trace, prefix)
        except UpstreamError as exc:
            record_failure(trace, 0, judge, exc, started)
            return 0
        assert trace.stages is not None
        found = _FIRST_INT.search(verdict.text)
        pick = int(found.group()) - 1 if found else 0
        trace.stages.append(
            StageCall(
                0,
                verdict.model.name,
                "judge",
                round(verdict.latency_ms, 3),
                verdict.usage,
                reason=f"chose {pick + 1}: {verdict.text[:40]!r}",
                upstream=verdict.upstream,
            )
        )
        return pick if 0 <= pick < len(answers) else 0


def _shown(answer: Answer) -> str:
    if answer.tool_calls:
        return "\n".join(f"(calls {c.name} with {c.arguments})" for c in answer.tool_calls)
    return answer.text
