"""Browser sessions: the refresh token in an httpOnly cookie, and the CSRF token bound to it.

The access token never touches a cookie (the web app keeps it in memory and sends it as a
bearer header), so only the three session endpoints read cookies, and those check that the
request comes from our own pages: the Origin (or Sec-Fetch-Site) header and a double-submit
token that is an HMAC of the refresh token, so a cookie planted by a sibling site is useless.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlsplit

from nidaan.config import Settings

REFRESH_COOKIE = "nidaan_refresh"
CSRF_COOKIE = "nidaan_csrf"
CSRF_HEADER = "x-csrf-token"
#: The refresh cookie is sent to the session endpoints only.
SESSION_PATH = "/api/v1/auth/session"


def csrf_token(settings: Settings, refresh_token: str) -> str:
    """The CSRF token that goes with a refresh token (not derivable without our key)."""
    key = hashlib.sha256(b"nidaan-csrf:" + settings.jwt_secret().encode()).digest()
    return hmac.new(key, refresh_token.encode(), hashlib.sha256).hexdigest()[:43]


def csrf_matches(settings: Settings, refresh_token: str, presented: str | None) -> bool:
    return bool(presented) and hmac.compare_digest(
        csrf_token(settings, refresh_token), str(presented)
    )


def same_origin(origin: str | None, fetch_site: str | None, host: str | None) -> bool:
    """Whether the browser says the request came from a page of this host.

    Browsers send Origin on every POST and Sec-Fetch-Site on every request; a request with
    neither (curl, a test client) is not a cross-site browser request.
    """
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return False
    if origin is None or origin == "null":
        return origin is None
    return urlsplit(origin).netloc.lower() == (host or "").lower()
