"""A small in-memory server speaking the docs/sync.md protocol, for client tests without PostgreSQL.

It is a stand-in for the *server* (the client under test is real): idempotency by opId, per-client
sequence with GAP, a change log pulled by cursor, and switches for the failure modes the client
must survive (dropped response after commit, reset, upgradeRequired, a batch cut short, 401s).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class ProtocolServer:
    rows: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    applied: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    last_seq: dict[str, int] = field(default_factory=dict)
    head: int = 0
    clock_skew_ms: int = 0
    # Failure switches.
    drop_next_response: bool = False
    reset_next: bool = False
    upgrade_required: bool = False
    answer_only: int | None = None
    offline: bool = False
    reject_tokens: int = 0
    refuse_login: bool = False
    calls: int = 0
    tokens_issued: int = 0

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        if self.offline:
            raise httpx.ConnectError("no route to host", request=request)
        path = request.url.path
        if path == "/healthz":
            return httpx.Response(200, json={"status": "ok"})
        if path == "/api/v1/auth/token":
            if self.refuse_login:
                return httpx.Response(401, json={"code": "invalid_credentials"})
            return self._tokens()
        if path == "/api/v1/auth/refresh":
            return self._tokens()
        if path != "/graphql":
            return httpx.Response(404)
        if self.reject_tokens:
            self.reject_tokens -= 1
            return httpx.Response(401, json={"code": "not_authenticated"})
        variables = json.loads(request.content)["variables"]
        self.calls += 1
        body = {"data": {"syncPendingOperations": self.sync(**variables)}}
        if self.drop_next_response:
            self.drop_next_response = False  # committed, but the answer is lost on the line
            raise httpx.ReadError("connection reset", request=request)
        return httpx.Response(200, json=body)

    def _tokens(self) -> httpx.Response:
        self.tokens_issued += 1
        return httpx.Response(
            200,
            json={
                "access_token": f"a{self.tokens_issued}",
                "refresh_token": f"r{self.tokens_issued}",
                "token_type": "bearer",
                "expires_in": 900,
            },
        )

    def write(
        self, entity: str, entity_id: str, data: dict[str, Any], deleted: bool = False
    ) -> int:
        """A change made on the server side (REST, another client)."""
        self.head += 1
        row = self.rows.get((entity, entity_id), {"data": {"id": entity_id}, "version": 0})
        self.rows[(entity, entity_id)] = {
            "data": {**row["data"], **data},
            "version": self.head,  # as on the real server: the row version is its last seq
            "deleted": deleted,
            "seq": self.head,
        }
        return self.head

    def sync(
        self,
        clientId: str,  # noqa: N803 - GraphQL variable names
        protocolVersion: int,  # noqa: N803
        schemaVersion: int,  # noqa: N803
        cursor: str | None,
        ops: list[dict[str, Any]],
        pullLimit: int,  # noqa: N803
        branchId: str | None,  # noqa: N803
    ) -> dict[str, Any]:
        answer: dict[str, Any] = {
            "serverTime": int(time.time() * 1000) + self.clock_skew_ms,
            "serverHlc": f"{int(time.time() * 1000) + self.clock_skew_ms:015d}-00000-server",
            "reset": False,
            "upgradeRequired": False,
            "conflicts": [],
            "results": [],
            "changes": [],
            "cursor": cursor,
            "hasMore": False,
        }
        if self.upgrade_required:
            answer["upgradeRequired"] = True
            return answer
        gap = False
        for index, op in enumerate(ops):
            if self.answer_only is not None and index >= self.answer_only:
                break
            answer["results"].append(self._apply(clientId, op, gap))
            gap = gap or answer["results"][-1]["status"] == "GAP"
        self.answer_only = None
        if self.reset_next:
            self.reset_next = False
            answer["reset"] = True
            return answer
        after = int(cursor) if cursor else 0
        changed = sorted(
            (row["seq"], key, row) for key, row in self.rows.items() if row["seq"] > after
        )
        page = changed[:pullLimit]
        answer["changes"] = [
            {
                "seq": seq,
                "entity": entity,
                "entityId": entity_id,
                "deleted": row["deleted"],
                "data": row["data"],
            }
            for seq, (entity, entity_id), row in page
        ]
        answer["cursor"] = str(page[-1][0]) if page else cursor
        answer["hasMore"] = len(changed) > len(page)
        return answer

    def _apply(self, client_id: str, op: dict[str, Any], after_gap: bool) -> dict[str, Any]:
        key = (client_id, op["opId"])
        last = self.last_seq.get(client_id, 0)
        result: dict[str, Any] = {
            "opId": op["opId"],
            "seq": None,
            "reason": None,
            "conflictId": None,
            "expectedSeq": None,
        }
        if key in self.applied:
            return self.applied[key]
        if op["clientSeq"] <= last:
            return {**result, "status": "DUPLICATE"}
        if after_gap or op["clientSeq"] > last + 1:
            return {**result, "status": "GAP", "expectedSeq": last + 1}
        self.last_seq[client_id] = op["clientSeq"]
        row = self.rows.get((op["entity"], op["entityId"]))
        if op["entity"] == "forbidden":
            result = {**result, "status": "REJECTED", "reason": "forbidden"}
        elif "pregnant" in op["data"] and row and op["baseVersion"] != row["version"]:
            result = {**result, "status": "CONFLICT", "conflictId": f"k-{op['opId']}"}
        else:
            deleted = op["operation"] == "delete"
            seq = self.write(op["entity"], op["entityId"], op["data"], deleted)
            result = {**result, "status": "APPLIED", "seq": seq}
        self.applied[key] = result
        return result
