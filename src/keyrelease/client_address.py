"""The client's address behind trusted proxies: what rate limits count a request against.

An HTTP concern, kept beside the middleware: the service's rate limiter takes the address as
a plain string. ``KEYRELEASE_TRUSTED_PROXIES`` (:func:`parse_networks`) says which peers may
speak for the client in ``X-Forwarded-For``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from starlette.requests import Request

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(text: str) -> tuple[IPNetwork, ...]:
    """``"10.0.0.0/8, 192.0.2.1"`` → networks. Raises ValueError naming a bad entry."""
    networks = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"not an IP address or CIDR network: {item!r}") from None
    return tuple(networks)


def client_address(peer: str | None, forwarded_for: Sequence[str], trusted: Sequence[IPNetwork]) -> str:
    """The address to count a request against.

    The connecting peer, unless it is a trusted proxy: then the right-most entry of
    ``X-Forwarded-For`` that is not itself a trusted proxy (entries to its left were written
    by the client and prove nothing). With no trusted proxies configured the header is ignored.
    """
    address = peer or "unknown"
    if not trusted or not _is_trusted(address, trusted):
        return address
    entries = [entry.strip() for header in forwarded_for for entry in header.split(",") if entry.strip()]
    for entry in reversed(entries):
        if not _is_trusted(entry, trusted):
            return entry
    return entries[0] if entries else address


def of_request(request: Request, trusted: Sequence[IPNetwork]) -> str:
    """:func:`client_address` of a Starlette request."""
    peer = request.client.host if request.client else None
    return client_address(peer, request.headers.getlist("x-forwarded-for"), trusted)


def _parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _is_trusted(text: str, trusted: Sequence[IPNetwork]) -> bool:
    address = _parse_ip(text)
    return address is not None and any(address in network for network in trusted)
