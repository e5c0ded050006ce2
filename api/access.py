"""Who may call what, and how often: API keys and a per-client rate limit, checked before a request's
body is read, so an unauthenticated or throttled upload costs the server nothing.

Keys come as `Authorization: Bearer KEY`, an `X-API-Key` header, or the `mmsearch_key` cookie (which the
web page sets, so that <img> and <video> sources carry it too). A read key may call everything but
/admin; an admin key may call everything. With no keys configured every caller is an admin, which
`check_exposure` allows only on a loopback address.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import time
from dataclasses import dataclass
from http.cookies import SimpleCookie
from urllib.parse import unquote

from starlette.types import ASGIApp, Receive, Scope, Send

from mmsearch.api.errors import error_json
from mmsearch.config import ApiSettings
from mmsearch.errors import ConfigError

OPEN_PATHS = ("/health", "/web/")  # and "/" itself: liveness and the page's own files, no data
ADMIN_PREFIX = "/admin"
COOKIE = "mmsearch_key"
MAX_CLIENTS = 10_000  # buckets kept before idle ones are dropped


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def check_exposure(api: ApiSettings) -> None:
    """Refuses to serve an index to the network with no keys."""
    if not is_loopback(api.host) and not (api.read_keys or api.admin_keys):
        raise ConfigError(
            f"refusing to serve on {api.host} without API keys: set MMSEARCH_API__READ_KEYS and/or "
            "MMSEARCH_API__ADMIN_KEYS (JSON lists, e.g. '[\"a-long-random-key\"]'), or bind 127.0.0.1"
        )


def presented_key(scope: Scope) -> str | None:
    headers = dict(scope.get("headers", ()))
    auth = headers.get(b"authorization", b"").decode("latin-1")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    if api_key := headers.get(b"x-api-key", b"").decode("latin-1").strip():
        return api_key
    cookie = SimpleCookie()
    try:
        cookie.load(headers.get(b"cookie", b"").decode("latin-1"))
    except Exception:  # a malformed Cookie header is no key, not an error
        return None
    morsel = cookie.get(COOKIE)
    return unquote(morsel.value) if morsel and morsel.value else None  # the page URL-encodes it


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


@dataclass
class Bucket:
    tokens: float
    at: float


class RateLimiter:
    """Token buckets per client: `burst` requests at once, refilled at `per_s` a second."""

    def __init__(self, per_s: float, burst: int):
        self.per_s, self.burst = per_s, burst
        self.buckets: dict[str, Bucket] = {}

    def wait_s(self, client: str, now: float | None = None) -> float:
        """0 when the request may go ahead (and is counted), else seconds until it could."""
        now = time.monotonic() if now is None else now
        bucket = self.buckets.get(client)
        if bucket is None:
            if len(self.buckets) >= MAX_CLIENTS:
                self._drop_idle(now)
            bucket = self.buckets[client] = Bucket(float(self.burst), now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.per_s)
        bucket.at = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / self.per_s

    def _drop_idle(self, now: float) -> None:
        full_after = self.burst / self.per_s
        self.buckets = {c: b for c, b in self.buckets.items() if now - b.at < full_after}


class AccessMiddleware:
    def __init__(self, app: ASGIApp, api: ApiSettings):
        self.app = app
        self.read = {_digest(k) for k in api.read_keys}
        self.admin = {_digest(k) for k in api.admin_keys}
        self.limiter = RateLimiter(api.rate_per_s, api.rate_burst) if api.rate_per_s else None

    def _role(self, key: str | None) -> str | None:
        """'admin', 'read', or None for a missing or unknown key (when keys are configured)."""
        if not (self.read or self.admin):
            return "admin"
        if key is None:
            return None
        digest = _digest(key)
        # compare_digest against every key: the time taken does not tell which key was close.
        is_admin = any([hmac.compare_digest(digest, k) for k in self.admin])
        is_read = any([hmac.compare_digest(digest, k) for k in self.read])
        return "admin" if is_admin else "read" if is_read else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path == "/" or path.startswith(OPEN_PATHS):
            await self.app(scope, receive, send)
            return
        key = presented_key(scope)
        role = self._role(key)
        address = (scope.get("client") or ("?",))[0]
        client = f"key:{_digest(key).hex()[:16]}" if role and key else f"ip:{address}"
        if self.limiter and (wait := self.limiter.wait_s(client)):
            retry = str(max(1, round(wait + 0.5)))
            message = f"too many requests: retry in {retry} s"
            headers = {"Retry-After": retry}
            await error_json(429, message, "RateLimitError", headers=headers)(scope, receive, send)
            return
        if role is None:
            message = "an API key is required" if key is None else "the API key is not valid"
            headers = {"WWW-Authenticate": 'Bearer realm="mmsearch"'}
            await error_json(401, message, "AuthenticationError", headers=headers)(scope, receive, send)
            return
        if path.startswith(ADMIN_PREFIX) and role != "admin":
            await error_json(403, "this route needs an admin key", "PermissionError")(scope, receive, send)
            return
        scope.setdefault("state", {})["role"] = role  # request.state.role: what paths it may see
        await self.app(scope, receive, send)
