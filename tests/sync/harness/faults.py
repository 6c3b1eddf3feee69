"""A transport with faults, and the recorder that sees every delivery the server answered.

Faults are injected at :meth:`Transport.send` (the one place bytes leave the reference client):

* drop: the request reaches the server and commits, then the client gets a network error;
* duplicate: the same request is delivered twice (the client sees the second answer);
* reorder: an earlier request body of this device is delivered again before the current one.

Every answer the server gives — including the ones the client never sees — goes to the
:class:`Recorder`, which checks per delivery that replays answer exactly as the first time, that
cursors never go back and that a push's own rows come back in the same call's pull.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Any

import httpx

from nidaan.sync.client.errors import NetworkError
from nidaan.sync.client.transport import GRAPHQL_PATH, Transport
from nidaan.sync.hlc import now_ms

TERMINAL = ("APPLIED", "DUPLICATE", "REJECTED", "CONFLICT")


@dataclass
class FaultPlan:
    rng: random.Random
    p_drop: float = 0.12
    p_duplicate: float = 0.10
    p_replay: float = 0.10
    enabled: bool = True


@dataclass
class Observed:
    """The answers one op got: the first terminal one, and the time window it was applied in."""

    first: tuple[Any, ...] | None = None
    window: tuple[int, int] | None = None
    deliveries: int = 0


@dataclass
class Delivery:
    device: str
    headers: dict[str, str]
    content: bytes
    results: dict[str, tuple[Any, ...]]


@dataclass
class Recorder:
    observed: dict[str, Observed] = field(default_factory=dict)
    deliveries: list[Delivery] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    cursors: dict[str, tuple[int, int]] = field(default_factory=dict)
    dropped: int = 0
    duplicated: int = 0
    replayed: int = 0

    def observe(
        self,
        device: str,
        request: httpx.Request,
        response: httpx.Response,
        started: int,
        ended: int,
        *,
        replay: bool,
    ) -> None:
        try:
            body = response.json()
        except ValueError:
            return
        answer = (body.get("data") or {}).get("syncPendingOperations") if body else None
        if not answer:
            return
        sent = json.loads(request.content)
        variables = sent.get("variables") or {}
        results: dict[str, tuple[Any, ...]] = {}
        for result in answer["results"]:
            if result["status"] not in TERMINAL:
                continue
            key = (
                result["status"],
                result.get("reason"),
                tuple(
                    result.get("conflictIds")
                    or ([result["conflictId"]] * bool(result.get("conflictId")))
                ),
            )
            results[result["opId"]] = key
            seen = self.observed.setdefault(result["opId"], Observed())
            seen.deliveries += 1
            if seen.first is None:
                seen.first, seen.window = key, (started, ended)
            elif seen.first != key:
                self.violations.append(
                    f"op {result['opId']} answered {key} after {seen.first} (idempotent replay)"
                )
        self.deliveries.append(Delivery(device, dict(request.headers), request.content, results))
        if replay:
            return  # an old body carries an old cursor: its pull says nothing about ordering
        self._check_cursor(device, variables.get("cursor"), answer)
        self._check_own_effects(variables, answer)

    def _check_cursor(self, device: str, sent: str | None, answer: dict[str, Any]) -> None:
        cursor = answer.get("cursor")
        if answer.get("reset") or not cursor:
            self.cursors.pop(device, None)
            return
        _, epoch, seq, _ = cursor.split(".")
        now = (int(epoch), int(seq))
        before = self.cursors.get(device)
        if sent and before is not None and now[0] == before[0] and now[1] < before[1]:
            self.violations.append(f"{device}: cursor went back from {before} to {now}")
        self.cursors[device] = now
        for change in answer["changes"]:
            if sent and int(change["seq"]) <= int(sent.split(".")[2]):
                self.violations.append(f"{device}: pulled seq {change['seq']} at/below cursor")

    def _check_own_effects(self, variables: dict[str, Any], answer: dict[str, Any]) -> None:
        if answer.get("hasMore") or answer.get("reset"):
            return
        pulled = {c["entityId"] for c in answer["changes"]}
        ops = {op["opId"]: op for op in variables.get("ops") or []}
        for result in answer["results"]:
            op = ops.get(result["opId"])
            fresh = op is not None and op["operation"] in ("create", "append")
            if fresh and result["status"] == "APPLIED" and op["entityId"] not in pulled:
                # Only when this delivery applied it: a stored answer may predate the cursor.
                seen = self.observed.get(result["opId"])
                if seen is not None and seen.deliveries == 1:
                    self.violations.append(
                        f"op {result['opId']} ({op['entity']} create) not in its own pull"
                    )


class FaultyTransport(Transport):
    """The reference client's transport with drops, duplicates and reordered deliveries."""

    def __init__(
        self, *args: Any, device: str, plan: FaultPlan, recorder: Recorder, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.device = device
        self.plan = plan
        self.recorder = recorder
        self.history: list[tuple[dict[str, str], bytes]] = []

    async def _deliver(self, request: httpx.Request, *, replay: bool) -> httpx.Response:
        started = now_ms()
        response = await super().send(request)
        self.recorder.observe(self.device, request, response, started, now_ms(), replay=replay)
        return response

    def _again(self, headers: dict[str, str], content: bytes) -> httpx.Request:
        return self.http.build_request(
            "POST", self.url(GRAPHQL_PATH), headers=headers, content=content
        )

    async def send(self, request: httpx.Request) -> httpx.Response:
        if request.url.path != GRAPHQL_PATH or b"syncPendingOperations" not in request.content:
            return await super().send(request)
        plan, rng = self.plan, self.plan.rng
        if plan.enabled and self.history and rng.random() < plan.p_replay:
            # A delayed copy of an earlier request arrives before the current one.
            self.recorder.replayed += 1
            await self._deliver(self._again(*rng.choice(self.history)), replay=True)
        response = await self._deliver(request, replay=False)
        if plan.enabled and rng.random() < plan.p_duplicate:
            self.recorder.duplicated += 1
            response = await self._deliver(
                self._again(dict(request.headers), request.content), replay=True
            )
        self.history.append((dict(request.headers), request.content))
        if plan.enabled and rng.random() < plan.p_drop:
            self.recorder.dropped += 1
            raise NetworkError("harness: answer dropped after the server committed")
        return response
