"""GraphQL over HTTP with a bearer token, and the classification of every failure.

All traffic goes through :meth:`Transport.send`, so a test harness can subclass this class (or
wrap the injected ``httpx.AsyncClient``'s transport) to drop a response after the server has
committed, deliver a request twice, or delay it.

Failure classes: the line, timeouts, 5xx and 429 are retryable (``NetworkError`` /
``ServerError``); a 401 that survives a refresh and a new login is ``AuthExpired``; anything else
the server refuses (bad input, forbidden) is ``PermanentError``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from nidaan.sync.client.errors import AuthExpired, NetworkError, PermanentError, ServerError
from nidaan.sync.client.protocol import (
    RESOLVE_MUTATION,
    STATUS_QUERY,
    SYNC_MUTATION,
    SyncResponse,
    parse_sync,
)

TOKEN_PATH = "/api/v1/auth/token"
REFRESH_PATH = "/api/v1/auth/refresh"
GRAPHQL_PATH = "/graphql"
HEALTH_PATH = "/healthz"

# GraphQL error codes that mean "the server had a problem", not "your request is wrong".
RETRYABLE_GRAPHQL_CODES = frozenset(
    {"INTERNAL_SERVER_ERROR", "INTERNAL", "SERVICE_UNAVAILABLE", "TIMEOUT", "UNAVAILABLE"}
)
AUTH_GRAPHQL_CODES = frozenset({"UNAUTHENTICATED", "NOT_AUTHENTICATED", "AUTHENTICATION_REQUIRED"})


def _problem(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    if isinstance(body, dict):
        detail = body.get("detail") or body.get("title") or body.get("code")
        return f"HTTP {response.status_code}: {detail}"
    return f"HTTP {response.status_code}"


class Transport:
    def __init__(
        self,
        server_url: str = "",
        *,
        email: str | None = None,
        password: str | None = None,
        access_token: str | None = None,
        http: httpx.AsyncClient | None = None,
        timeout_s: float = 60.0,
        heartbeat_timeout_s: float = 5.0,
    ) -> None:
        # An empty server_url sends relative paths to the injected client's base_url.
        self.server_url = server_url.rstrip("/")
        self.email = email
        self._password = password
        self._access_token = access_token
        self._refresh_token: str | None = None
        self._own_http = http is None
        self.http = http or httpx.AsyncClient(timeout=timeout_s)
        self.timeout_s = timeout_s
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self._auth_lock = asyncio.Lock()
        self._token_generation = 0

    async def aclose(self) -> None:
        if self._own_http:
            await self.http.aclose()

    def url(self, path: str) -> str:
        return f"{self.server_url}{path}"

    # -- the one place bytes leave ---------------------------------------------------------

    async def send(self, request: httpx.Request) -> httpx.Response:
        """Send one request; every network failure becomes ``NetworkError``."""
        try:
            return await self.http.send(request)
        except httpx.TimeoutException as exc:
            raise NetworkError(f"timed out: {request.method} {request.url.path}") from exc
        except httpx.TransportError as exc:
            raise NetworkError(f"{type(exc).__name__}: {exc}") from exc

    # -- auth ------------------------------------------------------------------------------

    async def login(self) -> None:
        """Get a token pair with e-mail and password (OAuth2 password form)."""
        if not self.email or self._password is None:
            raise AuthExpired("no e-mail and password to log in with")
        request = self.http.build_request(
            "POST",
            self.url(TOKEN_PATH),
            data={"username": self.email, "password": self._password},
            timeout=self.timeout_s,
        )
        response = await self.send(request)
        if response.status_code in (400, 401, 403, 422):
            raise AuthExpired(f"login refused: {_problem(response)}")
        self._raise_for_status(response)
        self._take_tokens(response.json())

    async def _refresh(self) -> bool:
        if self._refresh_token is None:
            return False
        request = self.http.build_request(
            "POST",
            self.url(REFRESH_PATH),
            json={"refresh_token": self._refresh_token},
            timeout=self.timeout_s,
        )
        response = await self.send(request)
        if response.status_code >= 500 or response.status_code == 429:
            self._raise_for_status(response)
        if response.status_code != 200:
            self._refresh_token = None  # single use, and this one is spent or revoked
            return False
        self._take_tokens(response.json())
        return True

    def _take_tokens(self, body: dict[str, Any]) -> None:
        self._access_token = body["access_token"]
        self._refresh_token = body.get("refresh_token")
        self._token_generation += 1

    async def _reauthenticate(self, seen_generation: int) -> None:
        """Refresh, else log in again; only one coroutine does it (refresh tokens work once)."""
        async with self._auth_lock:
            if self._token_generation != seen_generation and self._access_token:
                return  # another request already renewed the token
            if await self._refresh():
                return
            if self._password is None:
                raise AuthExpired("the token expired and could not be refreshed")
            await self.login()

    async def ensure_token(self) -> None:
        """Log in now if there is no token yet (so a login does not distort a timed call)."""
        if self._access_token is None:
            await self._reauthenticate(self._token_generation)

    async def _authorized(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        await self.ensure_token()
        for attempt in range(2):
            generation = self._token_generation
            request = self.http.build_request(
                method,
                self.url(path),
                headers={"Authorization": f"Bearer {self._access_token}"},
                timeout=self.timeout_s,
                **kwargs,
            )
            response = await self.send(request)
            if response.status_code != 401:
                return response
            if attempt == 0:
                await self._reauthenticate(generation)
        raise AuthExpired("the server refused a freshly issued token")

    # -- GraphQL ---------------------------------------------------------------------------

    @staticmethod
    def _raise_for_status(response: httpx.Response) -> None:
        status = response.status_code
        if status < 400:
            return
        if status == 429 or status >= 500:
            raise ServerError(_problem(response))
        if status == 401:
            raise AuthExpired(_problem(response))
        raise PermanentError(_problem(response))

    async def graphql(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        """Run one GraphQL document; returns ``data`` or raises a classified error."""
        response = await self._authorized(
            "POST", GRAPHQL_PATH, json={"query": query, "variables": variables}
        )
        if response.status_code >= 400 and not _is_graphql_body(response):
            self._raise_for_status(response)
        try:
            body = response.json()
        except ValueError as exc:
            self._raise_for_status(response)
            raise ServerError(f"not a GraphQL answer (HTTP {response.status_code})") from exc
        errors = body.get("errors") or []
        if errors:
            _raise_graphql(errors, response.status_code)
        self._raise_for_status(response)
        data = body.get("data")
        if not isinstance(data, dict):
            raise ServerError("a GraphQL answer without data")
        return data

    async def sync(self, variables: dict[str, Any]) -> SyncResponse:
        data = await self.graphql(SYNC_MUTATION, variables)
        return parse_sync(data["syncPendingOperations"])

    async def sync_status(self, client_id: str | None) -> dict[str, Any]:
        data = await self.graphql(STATUS_QUERY, {"clientId": client_id})
        return dict(data["getSyncStatus"])

    async def resolve_conflict(
        self,
        conflict_id: str,
        resolution: str,
        reason: str,
        *,
        value: Any = None,
        expected_version: int | None = None,
    ) -> dict[str, Any]:
        variables = {
            "conflictId": conflict_id,
            "resolution": resolution,
            "value": value,
            "reason": reason,
            "expectedVersion": expected_version,
        }
        data = await self.graphql(RESOLVE_MUTATION, variables)
        return dict(data["resolveConflict"])

    async def get_json(self, path: str, **params: Any) -> Any:
        """An authorised REST GET (e.g. ``/api/v1/branches``), classified like GraphQL calls."""
        response = await self._authorized("GET", path, params=params or None)
        self._raise_for_status(response)
        return response.json()

    async def heartbeat(self) -> float:
        """GET /healthz with a short timeout; returns the round-trip time in seconds."""
        started = time.monotonic()
        request = self.http.build_request(
            "GET", self.url(HEALTH_PATH), timeout=self.heartbeat_timeout_s
        )
        response = await self.send(request)
        self._raise_for_status(response)
        return time.monotonic() - started


def _is_graphql_body(response: httpx.Response) -> bool:
    return response.headers.get("content-type", "").startswith(
        ("application/json", "application/graphql-response+json")
    )


def _raise_graphql(errors: list[dict[str, Any]], http_status: int) -> None:
    """Nidaan puts its stable code and HTTP status in ``extensions``; decide from those."""
    message = "; ".join(str(error.get("message", "GraphQL error")) for error in errors)
    for error in errors:
        extensions = error.get("extensions") or {}
        code = str(extensions.get("code", "")).upper()
        status = int(extensions.get("status") or 0)
        if code in AUTH_GRAPHQL_CODES or status == 401:
            raise AuthExpired(message)
        if code in RETRYABLE_GRAPHQL_CODES or status == 429 or status >= 500:
            raise ServerError(message)
        if not code and error.get("path"):
            # An exception the server did not expect inside a resolver (a lost database
            # connection, a deadlock): transient until proven otherwise.
            raise ServerError(message)
    if http_status >= 500:
        raise ServerError(message)
    raise PermanentError(message)
