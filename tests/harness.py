"""Shared test scaffolding: a ``RelayServer`` for tests, run (with or without its control API) on an
asyncio loop of its own in a background thread, so that a test can talk to it over real sockets.

Whatever fails in that thread is raised in the test, not lost; on the way out the server is stopped (every
call ended, recordings finalised) and the thread must end.
"""

from __future__ import annotations

import asyncio
import http.client
import threading
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bleepline.audio.codecs import PCMU
from bleepline.call import Listener
from bleepline.control import make_app, start_control
from bleepline.redact.policy import RedactionPolicy
from bleepline.server import DEFAULT_MAX_CALLS, RelayServer
from bleepline.store.keys import load_recipient
from bleepline.webrtc.gateway import WebRtcGateway, WebRtcOptions

Address = tuple[str, int]
#: Model names for a relay whose listener is scripted (or absent): no Whisper, no PII model.
TEST_MODELS = {"asr": "test", "pii": "test"}
#: A static-mode port on loopback, picked by the OS.
LOOPBACK_ANY: Address = ("127.0.0.1", 0)


def make_server(
    store: Path,
    pub: Path,
    factory: Callable[[int], Listener | None] = lambda rate: None,
    *,
    policy: RedactionPolicy | None = None,
    models: dict[str, str] | None = None,
    idle_timeout_s: float = 5.0,
    max_calls: int = DEFAULT_MAX_CALLS,
) -> RelayServer:
    """A PCMU relay recording into ``store`` (made if missing) for the public key at ``pub``; by default
    unheard (everything masked, and fast), with the default policy and the test model names."""
    store.mkdir(parents=True, exist_ok=True)
    return RelayServer(
        codec=PCMU,
        recipients=[load_recipient(pub)],
        store=store,
        policy=policy if policy is not None else RedactionPolicy(),
        listener_factory=factory,
        models=models if models is not None else TEST_MODELS,
        idle_timeout_s=idle_timeout_s,
        max_calls=max_calls,
    )


def sdp_offer(media: str, *attributes: str) -> str:
    """An SDP offer from 127.0.0.1 with one media line (``media``: what follows ``m=``) and its attribute
    lines, CRLF-terminated."""
    header = ["v=0", "o=- 1 1 IN IP4 127.0.0.1", "s=-", "c=IN IP4 127.0.0.1", "t=0 0"]
    return "\r\n".join([*header, f"m={media}", *attributes]) + "\r\n"


def request(
    address: Address,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    *,
    timeout: float = 10.0,
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request on a fresh connection: status, headers and body."""
    connection = http.client.HTTPConnection(*address, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


@contextmanager
def on_a_thread(
    server: RelayServer,
    main: Callable[[Callable[[], None]], Coroutine[Any, Any, None]],
    *,
    ready_timeout: float = 10.0,
    join_timeout: float = 20.0,
) -> Iterator[asyncio.AbstractEventLoop]:
    """Run ``main(ready)`` on a new loop in a daemon thread, and enter once it has called ``ready()``;
    yields that loop. On the way out, ``server.stop()``, and the thread must end within ``join_timeout``."""
    ready = threading.Event()
    loops: list[asyncio.AbstractEventLoop] = []
    failure: list[BaseException] = []

    async def started() -> None:
        loops.append(asyncio.get_running_loop())
        await main(ready.set)

    def thread_main() -> None:
        try:
            asyncio.run(started())
        except BaseException as exc:  # shown by the test, not lost in the thread
            failure.append(exc)
            ready.set()

    thread = threading.Thread(target=thread_main, daemon=True)
    thread.start()
    assert ready.wait(ready_timeout)
    assert not failure, failure
    try:
        yield loops[0]
    finally:
        server.stop()
        thread.join(join_timeout)
        assert not thread.is_alive()
        assert not failure, failure


async def run_server(server: RelayServer, static: Address | None, ready: Callable[[], None]) -> None:
    """``server.run`` until stopped: in static mode on ``static`` (``ready`` once its port is bound), or
    with no static port (``ready`` once ``stop`` can be called)."""
    if static is not None:
        await server.run(*static, ready=lambda _: ready())
        return
    # Runs once server.run has set up its stop event (it does not await before that without a port).
    asyncio.get_running_loop().call_soon(ready)
    await server.run(None)


@contextmanager
def running(
    server: RelayServer,
    *,
    static: Address | None = None,
    ready_timeout: float = 10.0,
    join_timeout: float = 20.0,
) -> Iterator[asyncio.AbstractEventLoop]:
    """The server alone (no control API) on its own loop in a thread; yields that loop. With ``static``,
    its static-mode port is bound there (``server.local_address``) before the test goes on."""

    async def main(ready: Callable[[], None]) -> None:
        await run_server(server, static, ready)

    with on_a_thread(server, main, ready_timeout=ready_timeout, join_timeout=join_timeout) as loop:
        yield loop


@contextmanager
def serving(
    server: RelayServer,
    *,
    token: str,
    rtp_ports: range = range(0),
    allow_plain_rtp: bool = False,
    metrics_token: str | None = None,
    demo: bool = False,
    webrtc: WebRtcOptions | None = None,
    static: Address | None = None,
    ready_timeout: float = 10.0,
    join_timeout: float = 20.0,
) -> Iterator[Address]:
    """The server and its control API on 127.0.0.1 (calls on 127.0.0.1 from ``rtp_ports``), on one loop
    in a thread; yields the control API's address. The keywords up to ``webrtc`` are ``make_app``'s;
    ``webrtc`` None is the default gateway, options a gateway made with them. ``static`` as in ``running``.
    """
    address: list[Address] = []

    async def main(ready: Callable[[], None]) -> None:
        gateway = None if webrtc is None else WebRtcGateway(server, webrtc)
        app = make_app(
            server,
            token=token,
            rtp_host="127.0.0.1",
            rtp_ports=rtp_ports,
            metrics_token=metrics_token,
            allow_plain_rtp=allow_plain_rtp,
            demo=demo,
            webrtc=gateway,
        )
        runner, bound = await start_control(app, "127.0.0.1", 0)
        address.append(bound)
        try:
            await run_server(server, static, ready)
        finally:
            await runner.cleanup()

    with on_a_thread(server, main, ready_timeout=ready_timeout, join_timeout=join_timeout):
        yield address[0]
