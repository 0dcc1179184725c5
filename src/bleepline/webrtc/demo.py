"""``GET /v1/demo``: one self-contained page that publishes a browser's microphone over WHIP and listens to a
call's redacted audio over WHEP. Off unless the relay is started with the demo enabled.

The page needs no token to load: it holds no secret. The user pastes one, or passes it in the address's
fragment (``#token=...``), which the browser never sends, so it never reaches a log.
"""

from __future__ import annotations

import base64
import hashlib
import re
from functools import cache
from importlib import resources

from aiohttp import web
from aiohttp.typedefs import Handler

DEMO_PATH = "/v1/demo"


@cache
def demo_page() -> str:
    """The page's HTML (package data ``demo.html``)."""
    return resources.files(__package__ or "bleepline.webrtc").joinpath("demo.html").read_text("utf-8")


def _inline_hash(html: str, tag: str) -> str:
    """The CSP source for the one inline ``<tag>`` block: only that exact text may run or style the page."""
    match = re.search(rf"<{tag}>(.*?)</{tag}>", html, re.DOTALL)
    if match is None:
        raise ValueError(f"the demo page has no <{tag}>")
    digest = base64.b64encode(hashlib.sha256(match.group(1).encode("utf-8")).digest()).decode("ascii")
    return f"'sha256-{digest}'"


@cache
def _headers() -> dict[str, str]:
    html = demo_page()
    policy = "; ".join(
        [
            "default-src 'none'",
            f"script-src {_inline_hash(html, 'script')}",
            f"style-src {_inline_hash(html, 'style')}",
            # Any origin: a test's recording goes to an upload URL it chose; the tokens are given by the
            # user for this server, and the page sends them only to its own origin's API paths.
            "connect-src *",
            "media-src 'self' blob: mediastream:",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",  # no framing: a page that drives a microphone is no widget
        ]
    )
    return {
        "Content-Security-Policy": policy,
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
    }


def _page_response() -> web.Response:
    return web.Response(text=demo_page(), content_type="text/html", charset="utf-8", headers=_headers())


async def _serve_demo(request: web.Request) -> web.StreamResponse:
    # Reached only if the middleware below is not in front (it answers first); the route also gives
    # other methods on the path a 405 rather than a 404.
    return _page_response()


@web.middleware
async def _demo_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    # Ahead of the control API's bearer-token check: the page is public; everything it calls is not.
    if request.path == DEMO_PATH and request.method in ("GET", "HEAD"):
        return _page_response()
    return await handler(request)


def add_demo_route(app: web.Application) -> None:
    """Serve the demo page at ``GET /v1/demo`` on ``app``, without a token (call before the app starts)."""
    app.router.add_get(DEMO_PATH, _serve_demo)
    # First in the chain, so that it answers before the token check; only this one path and method.
    app.middlewares.insert(0, _demo_middleware)
