"""/docs and /redoc work on a lab network without internet: every asset is served locally."""

from __future__ import annotations

import asyncio
import re
import shutil
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in {"src", "href"} and value:
                self.urls.append(value)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_docs_pages_load_every_asset_from_this_server(
    client: httpx.AsyncClient, page: str
) -> None:
    response = await client.get(page)
    assert response.status_code == 200
    html = response.text
    # No address of another host anywhere in the page (tags, inline scripts, CSS).
    assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", html, re.IGNORECASE), html
    links = _Links()
    links.feed(html)
    assert links.urls, html
    for url in links.urls:
        assert url.startswith("/"), url
        asset = await client.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 0, url
    scripts = [url for url in links.urls if url.endswith(".js")]
    assert scripts  # the UI bundle itself
    assert "/openapi.json" in html


async def test_swagger_ui_bundle_is_the_real_one(client: httpx.AsyncClient) -> None:
    bundle = await client.get("/docs/assets/swagger-ui-bundle.js")
    assert bundle.headers["content-type"].startswith(("application/javascript", "text/javascript"))
    assert b"SwaggerUIBundle" in bundle.content
    redoc = await client.get("/docs/assets/redoc.standalone.js")
    assert b"Redoc" in redoc.content
    redirect = await client.get("/docs/oauth2-redirect")
    assert redirect.status_code == 200


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (make browser-deps)")
@pytest.mark.parametrize(
    ("page", "rendered"),
    [
        # Swagger UI drew the operations it read from /openapi.json.
        ("/docs", ('class="swagger-ui', "opblock-summary-path", "/api/v1/results")),
        # ReDoc drew the API's title and its operations.
        ("/redoc", ("Nidaan LIS", "/api/v1/results")),
    ],
)
async def test_docs_render_in_a_browser_cut_off_from_the_internet(
    app: Any, page: str, rendered: tuple[str, ...]
) -> None:
    """A lab network without internet: chromium resolves no name but this server's."""
    from tests.notifications.conftest import Served

    async with Served(app) as served:
        browser = await asyncio.create_subprocess_exec(
            CHROMIUM,  # type: ignore[arg-type]
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            "--virtual-time-budget=30000",
            "--dump-dom",
            f"{served.url}{page}",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        dom, _ = await asyncio.wait_for(browser.communicate(), timeout=180)
    text = dom.decode()
    for marker in rendered:
        assert marker in text, (page, marker, text[:2000])
