"""What the gateway simulators share: ids, money checks, the page frame, and the webhook
dispatcher that delivers signed events like the real gateways do — at least once, and on
demand twice, late, or in another order.

Delivery modes (``POST /_sim/webhooks/mode``):

* ``hold``: queue events instead of sending them; ``POST /_sim/webhooks/deliver`` sends the
  queue (optionally shuffled) and answers with each delivery's HTTP status;
* ``duplicate_rate``: the chance that an event is delivered a second time;
* ``shuffle``: deliver a held queue in random order (out-of-order delivery);
* ``seed``: makes the random choices repeatable.

A delivery that fails (connection error or non-2xx) stays in the queue and is retried on
the next ``deliver``, as gateways retry.
"""

from __future__ import annotations

import asyncio
import html
import random
import secrets
import string
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from pydantic import BaseModel

ALPHABET = string.ascii_letters + string.digits


def random_id(prefix: str, length: int = 14) -> str:
    """Gateway-style ids: ``plink_Ex1gb3Yw8c6Bw4``, ``pay_...``, ``cs_test_...``."""
    return prefix + "".join(secrets.choice(ALPHABET) for _ in range(length))


def local_path(request: Any) -> str:
    """The request path inside the simulator, also when it is mounted under a prefix."""
    path: str = request.url.path
    root: str = request.scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def now() -> int:
    return int(time.time())


@dataclass
class Delivery:
    event_id: str
    kind: str
    body: bytes
    headers: dict[str, str]
    attempts: int = 0
    results: list[int | str] = field(default_factory=list)
    # Gateways that sign each attempt (Stripe's timestamped signature) re-sign on sending.
    signer: Callable[[bytes], dict[str, str]] | None = None

    def current_headers(self) -> dict[str, str]:
        return {**self.headers, **self.signer(self.body)} if self.signer else self.headers


class WebhookMode(BaseModel):
    hold: bool | None = None
    duplicate_rate: float | None = None
    shuffle: bool | None = None
    seed: int | None = None
    target_url: str | None = None


class WebhookDispatcher:
    """Sends signed webhook bodies to the merchant's endpoint (our ``/webhooks/<gateway>``)."""

    def __init__(self, target_url: str | None) -> None:
        self.target_url = target_url
        self.hold = False
        self.duplicate_rate = 0.0
        self.shuffle = False
        self.random = random.Random()  # noqa: S311 - test traffic, not security
        self.queue: list[Delivery] = []
        self.log: list[Delivery] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def configure(self, mode: WebhookMode) -> dict[str, Any]:
        if mode.hold is not None:
            self.hold = mode.hold
        if mode.duplicate_rate is not None:
            self.duplicate_rate = max(0.0, min(1.0, mode.duplicate_rate))
        if mode.shuffle is not None:
            self.shuffle = mode.shuffle
        if mode.seed is not None:
            self.random.seed(mode.seed)
        if mode.target_url is not None:
            self.target_url = mode.target_url
        return self.state()

    def state(self) -> dict[str, Any]:
        return {
            "hold": self.hold,
            "duplicate_rate": self.duplicate_rate,
            "shuffle": self.shuffle,
            "queued": len(self.queue),
            "delivered": len(self.log),
            "target_url": self.target_url,
        }

    def emit(
        self,
        event_id: str,
        kind: str,
        body: bytes,
        headers: dict[str, str],
        signer: Callable[[bytes], dict[str, str]] | None = None,
    ) -> None:
        """Queue one event (twice, at ``duplicate_rate``); send at once unless holding."""
        copies = 2 if self.random.random() < self.duplicate_rate else 1
        batch = [
            Delivery(event_id, kind, body, dict(headers), signer=signer) for _ in range(copies)
        ]
        self.queue.extend(batch)
        if not self.hold:
            task = asyncio.get_running_loop().create_task(self._send_now(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send_now(self, batch: list[Delivery]) -> None:
        async with httpx.AsyncClient(timeout=10) as client:
            for delivery in batch:
                if delivery in self.queue and await self._send(client, delivery):
                    self.queue.remove(delivery)

    async def _send(self, client: httpx.AsyncClient, delivery: Delivery) -> bool:
        delivery.attempts += 1
        if not self.target_url:
            delivery.results.append("no target")
            return False
        try:
            response = await client.post(
                self.target_url, content=delivery.body, headers=delivery.current_headers()
            )
        except httpx.HTTPError as exc:
            delivery.results.append(type(exc).__name__)
            return False
        delivery.results.append(response.status_code)
        self.log.append(delivery)
        return 200 <= response.status_code < 300

    async def deliver(self) -> list[dict[str, Any]]:
        """Send everything queued (shuffled if asked); failures stay queued."""
        await self.settle()
        batch = list(self.queue)
        if self.shuffle:
            self.random.shuffle(batch)
        async with httpx.AsyncClient(timeout=30) as client:
            for delivery in batch:
                if await self._send(client, delivery):
                    self.queue.remove(delivery)
        return [{"event_id": d.event_id, "event": d.kind, "status": d.results[-1]} for d in batch]

    async def settle(self) -> None:
        """Wait for deliveries already under way."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def take(self) -> list[Delivery]:
        """Remove and return the queue (the benchmark sends the bodies itself)."""
        batch, self.queue = self.queue, []
        return batch


def control_router(dispatcher: WebhookDispatcher) -> APIRouter:
    router = APIRouter(prefix="/_sim/webhooks", include_in_schema=False)

    @router.get("")
    async def webhook_state() -> dict[str, Any]:
        return dispatcher.state()

    @router.post("/mode")
    async def webhook_mode(mode: WebhookMode) -> dict[str, Any]:
        return dispatcher.configure(mode)

    @router.post("/deliver")
    async def webhook_deliver() -> dict[str, Any]:
        return {"deliveries": await dispatcher.deliver(), **dispatcher.state()}

    @router.get("/log")
    async def webhook_log() -> list[dict[str, Any]]:
        return [
            {"event_id": d.event_id, "event": d.kind, "results": d.results} for d in dispatcher.log
        ]

    return router


PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title><style>
body{{font-family:system-ui,sans-serif;background:#f4f6f8;margin:0;padding:2rem;color:#1d2733}}
.card{{max-width:26rem;margin:auto;background:#fff;border-radius:10px;padding:1.5rem;
box-shadow:0 2px 10px #0002}} .brand{{font-weight:700;color:{colour}}}
.amount{{font-size:2rem;font-weight:700;margin:.5rem 0}} .muted{{color:#66727f;font-size:.9rem}}
button{{width:100%;padding:.8rem;margin-top:.6rem;border:0;border-radius:6px;font-size:1rem;
cursor:pointer}} .pay{{background:{colour};color:#fff}} .fail{{background:#e9ecef}}
.banner{{background:#fff3cd;border-radius:6px;padding:.5rem;font-size:.8rem}}
</style></head><body><div class="card">
<div class="banner">Simulator — no real money moves.</div>
<p class="brand">{brand}</p>{body}</div></body></html>"""


def page(brand: str, colour: str, title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        PAGE.format(title=html.escape(title), brand=html.escape(brand), colour=colour, body=body),
        status_code=status,
    )


def rupees_text(paise: int) -> str:
    return f"₹{paise // 100:,}.{paise % 100:02d}"
