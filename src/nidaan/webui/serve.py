"""Serve the built web application at ``/`` beside the API, as a single-page app.

Files come from ``dist/`` (built by ``make web`` from ``web/``, shipped in the wheel). Hashed
assets are cached for a year; the shell and the service worker are revalidated on every load
so a new release reaches the lab at the next reload. Any other path that is not an API path
gets the shell, whose router shows the screen.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from starlette.routing import Match, Route
from starlette.types import Scope

DIST = Path(__file__).parent / "dist"
SHELL = "index.html"
#: Paths that belong to the server; an unknown one is a 404, never the app's shell.
SERVER_PREFIXES = (
    "api/",
    "graphql",
    "fhir",
    "webhooks",
    "verify/",
    "docs",
    "redoc",
    "openapi.json",
    "my-privacy/",
    "healthz",
    "readyz",
    "metrics",
)
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    # The page's own CSP (script hashes) is a <meta> tag; frame-ancestors only works here.
    "Content-Security-Policy": "frame-ancestors 'none'",
    "Permissions-Policy": "camera=(self), microphone=(), geolocation=()",
}
NOT_BUILT = """<!doctype html><html lang="en"><meta charset="utf-8"><title>Nidaan</title>
<body style="font-family:sans-serif;max-width:40rem;margin:4rem auto">
<h1>Nidaan</h1><p>The web application has not been built in this installation.
Run <code>make web</code> in the source tree (needs Node.js 20), or install a wheel that
ships it. The API is at <a href="/docs">/docs</a>.</p></body></html>"""

mimetypes.add_type("application/manifest+json", ".webmanifest")
mimetypes.add_type("text/javascript", ".js")


def _encoded(file: Path, accept_encoding: str) -> tuple[Path, str | None]:
    """The precompressed sibling the client accepts (brotli, then gzip), else the file."""
    for encoding, suffix in (("br", ".br"), ("gzip", ".gz")):
        if encoding in accept_encoding:
            candidate = file.with_name(file.name + suffix)
            if candidate.is_file():
                return candidate, encoding
    return file, None


def _file_response(file: Path, request: Request, cache: str) -> Response:
    media_type = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
    served, encoding = _encoded(file, request.headers.get("accept-encoding", ""))
    headers = {"Cache-Control": cache, "Vary": "Accept-Encoding", **SECURITY_HEADERS}
    if encoding:
        headers["Content-Encoding"] = encoding
    if file.name == "service-worker.js":
        headers["Service-Worker-Allowed"] = "/"
    return FileResponse(served, media_type=media_type, headers=headers)


def resolve(dist: Path, path: str) -> Path | None:
    """The file under ``dist`` that ``path`` names, or None (also for ``..`` escapes)."""
    if not path:
        return None
    candidate = (dist / path).resolve()
    root = dist.resolve()
    if root not in candidate.parents or not candidate.is_file():
        return None
    return candidate


class WebAppRoute(Route):
    """A catch-all that only claims GET/HEAD requests for paths the server does not own, so
    an unknown API path or method keeps its usual 404/405 problem answer."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
            return Match.NONE, {}
        if scope["path"].lstrip("/").startswith(SERVER_PREFIXES):
            return Match.NONE, {}
        return super().matches(scope)


def mount_web_app(app: FastAPI, dist: Path = DIST) -> None:
    """Add the catch-all route; call it after every API router is included."""

    async def web_app(request: Request) -> Response:
        path = request.path_params["path"]
        shell = dist / SHELL
        if not shell.is_file():
            return HTMLResponse(NOT_BUILT, status_code=503, headers=SECURITY_HEADERS)
        file = resolve(dist, path)
        if file is not None:
            immutable = path.startswith("_app/immutable/")
            return _file_response(file, request, IMMUTABLE if immutable else REVALIDATE)
        if "." in path.rsplit("/", 1)[-1]:
            # A missing asset (an old hashed file after an upgrade) is a 404, not the shell.
            return Response("Not found", status_code=404, media_type="text/plain")
        return _file_response(shell, request, REVALIDATE)

    app.router.routes.append(
        WebAppRoute("/{path:path}", web_app, methods=["GET", "HEAD"], name="web_app")
    )
