"""The web app is served at / beside the API: shell for app paths, assets with the right caching,
precompressed files when accepted, and API paths untouched."""

from __future__ import annotations

import gzip
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from nidaan.webui.serve import IMMUTABLE, REVALIDATE, mount_web_app


@pytest.fixture
def dist(tmp_path: Path) -> Path:
    (tmp_path / "_app" / "immutable" / "chunks").mkdir(parents=True)
    (tmp_path / "index.html").write_text("<!doctype html><title>shell</title>")
    asset = tmp_path / "_app" / "immutable" / "chunks" / "app.abc123.js"
    asset.write_text("console.log('app')")
    (asset.parent / (asset.name + ".gz")).write_bytes(gzip.compress(asset.read_bytes()))
    (tmp_path / "service-worker.js").write_text("self.addEventListener('fetch', () => {})")
    (tmp_path / "manifest.webmanifest").write_text("{}")
    (tmp_path.parent / "secret.txt").write_text("outside")
    return tmp_path


@pytest.fixture
async def web(dist: Path):  # type: ignore[no-untyped-def]
    app = FastAPI()

    @app.get("/api/v1/ping")
    async def ping() -> dict[str, str]:
        return {"pong": "yes"}

    mount_web_app(app, dist)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://lab") as client:
        yield client


async def test_app_paths_get_the_shell_without_caching(web: httpx.AsyncClient) -> None:
    for path in ("/", "/desk", "/desk/patients/0190e7a0-0000-7000-8000-000000000000"):
        response = await web.get(path)
        assert response.status_code == 200, path
        assert "<title>shell</title>" in response.text
        assert response.headers["cache-control"] == REVALIDATE
        assert response.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


async def test_hashed_assets_are_immutable_and_precompressed(web: httpx.AsyncClient) -> None:
    path = "/_app/immutable/chunks/app.abc123.js"
    plain = await web.get(path, headers={"Accept-Encoding": "identity"})
    zipped = await web.get(path, headers={"Accept-Encoding": "gzip, br"})
    assert plain.headers["cache-control"] == IMMUTABLE
    assert plain.headers["content-type"].startswith("text/javascript")
    assert "content-encoding" not in plain.headers
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.text == plain.text == "console.log('app')"  # httpx decodes gzip


async def test_service_worker_and_manifest(web: httpx.AsyncClient) -> None:
    worker = await web.get("/service-worker.js")
    assert worker.headers["cache-control"] == REVALIDATE
    assert worker.headers["service-worker-allowed"] == "/"
    manifest = await web.get("/manifest.webmanifest")
    assert manifest.headers["content-type"] == "application/manifest+json"


async def test_server_paths_and_other_methods_are_not_the_app(web: httpx.AsyncClient) -> None:
    assert (await web.get("/api/v1/ping")).json() == {"pong": "yes"}
    for path in ("/api/v1/nothing-here", "/graphql/nope", "/healthz/x", "/verify/ABC"):
        assert (await web.get(path)).status_code == 404, path
    # A POST to an app path is not claimed by the catch-all: a plain 404, not a 405.
    assert (await web.post("/desk")).status_code == 404
    assert (await web.post("/api/v1/ping")).status_code == 405


async def test_missing_assets_and_escapes_are_404(web: httpx.AsyncClient) -> None:
    assert (await web.get("/_app/immutable/chunks/old.js")).status_code == 404
    assert (await web.get("/../secret.txt")).status_code in (200, 404)
    escaped = await web.get("/%2e%2e/secret.txt")
    assert "outside" not in escaped.text


async def test_without_a_build_the_root_says_how_to_build_it(tmp_path: Path) -> None:
    app = FastAPI()
    mount_web_app(app, tmp_path / "missing")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://lab") as client:
        response = await client.get("/")
    assert response.status_code == 503
    assert "make web" in response.text


async def test_the_real_app_keeps_api_404s_as_problem_documents(client: httpx.AsyncClient) -> None:
    missing = await client.get("/api/v1/no-such-thing")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert (await client.post("/api/v1/no-such-thing")).status_code == 404
    root = await client.get("/")
    assert root.status_code in (200, 503)  # built by `make web`, or the how-to page
