"""ICE set-up for the relay's peer connections: no STUN/TURN server, and host candidates only on the
addresses the operator chose (aioice 0.13 has no per-connection setting for that, so it is patched once).

aioice gathers host candidates from every interface except loopback; ``host_addresses`` narrows (or, for
127.0.0.1, widens) that for the peer connections whose local description is set inside it.
"""

from __future__ import annotations

import contextvars
import ipaddress
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import aioice.ice
from aiortc import RTCConfiguration, RTCPeerConnection

_original_host_addresses = aioice.ice.get_host_addresses

#: The addresses the peer connection being set up gathers on; None: aioice's own choice. A context
#: variable, not a global: ``asyncio.gather`` copies it into the tasks that gather, so each gateway (and a
#: test's client peer) gets its own addresses in one process.
_chosen: contextvars.ContextVar[tuple[str, ...] | None] = contextvars.ContextVar(
    "bleepline_ice_addresses", default=None
)


def _host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    chosen = _chosen.get()
    if chosen is None:
        return _original_host_addresses(use_ipv4, use_ipv6)
    wanted = []
    for address in chosen:
        version = ipaddress.ip_address(address).version
        if (version == 4 and use_ipv4) or (version == 6 and use_ipv6):
            wanted.append(address)
    return wanted


def check_addresses(addresses: Sequence[str]) -> tuple[str, ...]:
    """``addresses`` as literal unicast IPs in canonical form; ``ValueError`` (quoting none) otherwise."""
    checked = []
    for address in addresses:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            raise ValueError("ICE addresses must be literal IPv4 or IPv6 addresses") from None
        if ip.is_multicast or ip.is_unspecified:
            raise ValueError("ICE addresses must be unicast addresses")
        checked.append(str(ip))
    if not checked:
        raise ValueError("give at least one ICE address, or none at all for every interface")
    return tuple(checked)


@contextmanager
def host_addresses(addresses: Sequence[str] | None) -> Iterator[None]:
    """Within this block, ICE gathering (``setLocalDescription``) uses only ``addresses`` as host
    candidates (None: every interface but loopback, aioice's default)."""
    if aioice.ice.get_host_addresses is not _host_addresses:
        aioice.ice.get_host_addresses = _host_addresses
    token = _chosen.set(None if addresses is None else check_addresses(addresses))
    try:
        yield
    finally:
        _chosen.reset(token)


def new_peer_connection() -> RTCPeerConnection:
    """A peer connection that asks no STUN server (aiortc's default is a public one): the relay answers,
    and the offerer's own checks reach its host candidates (peer-reflexive candidates cover NAT)."""
    return RTCPeerConnection(RTCConfiguration(iceServers=[]))
