"""The client address of a request: the one function every per-address limit asks (``client_address``).

A request's direct peer is the machine that opened the TCP connection. Behind a reverse proxy that is
the proxy, and the client's own address is in ``X-Forwarded-For``, which each proxy *appends* to: the
entries on the left are whatever the client wrote (anyone can send ``X-Forwarded-For: 1.2.3.4``), only
the entries added by proxies we trust are true. So:

- the header is read only when the direct peer is a trusted proxy: ``FORWARDED_ALLOW_IPS`` (comma-
  separated addresses or networks, as uvicorn names it; ``*`` = any peer);
- then the entries are walked from the right, skipping trusted proxies, and the first untrusted one is
  the client (uvicorn does the same, except that for ``*`` it takes the leftmost entry, which the client
  controls: here ``*`` means "the peer is a proxy, one hop": the rightmost entry);
- on a Hugging Face Space (``SPACE_ID`` set) with no ``FORWARDED_ALLOW_IPS``, the app is reachable only
  through the platform's proxy, so the peer is trusted as one hop: the rightmost entry, the address that
  connected to the platform. (If a platform ever adds several hops, every user reads as one address:
  per-address limits then act as global ones; set ``FORWARDED_ALLOW_IPS`` to its networks.)
- with neither, the header is ignored: the peer is the client (local use, the lesson benchmark).

uvicorn applies its own rule before the app sees the request and trusts ``127.0.0.1`` by default, which
lets any local client pick its address; ``keep_real_peer`` (called once by ``ui.app.build_demo``, before
launch) turns uvicorn's rewriting off so the app sees the real peer and this module alone decides.

IPv6 clients are keyed by their /64 network (one household or phone gets a whole /64).
"""

from __future__ import annotations

import ipaddress
import os

FORWARDED_ENV = "FORWARDED_ALLOW_IPS"
_SAVED_ENV = "RLHF_DEMO_FORWARDED_ALLOW_IPS"
"""Where ``keep_real_peer`` keeps the configured value once uvicorn's own variable is emptied."""


def configured_proxies() -> str:
    """The trusted proxies as configured ('' = none)."""
    return os.environ.get(_SAVED_ENV) or os.environ.get(FORWARDED_ENV) or ""


def keep_real_peer() -> None:
    """Make uvicorn (read at launch) leave the peer address alone; this module reads the setting instead."""
    value = os.environ.get(FORWARDED_ENV, "")
    if value:
        os.environ[_SAVED_ENV] = value
    os.environ[FORWARDED_ENV] = ""


class Trust:
    """Which peers are proxies: a list of addresses / networks, ``*`` (any peer, one hop), or none."""

    def __init__(self, spec: str, on_space: bool = False):
        spec = (spec or "").strip()
        self.one_hop = spec == "*" or (not spec and on_space)
        self.hosts, self.nets = set(), []
        for item in filter(None, (s.strip() for s in spec.split(","))):
            if item == "*":
                continue
            try:
                (self.nets.append(ipaddress.ip_network(item, strict=False)) if "/" in item else self.hosts.add(ipaddress.ip_address(item)))
            except ValueError:
                continue

    def is_proxy(self, host: str, peer: bool) -> bool:
        """Whether ``host`` is a trusted proxy (``peer``: it is the direct peer, not a header entry)."""
        if self.one_hop:
            return peer
        ip = _ip(host)
        return ip is not None and (ip in self.hosts or any(ip in n for n in self.nets))


def _ip(host: str):
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _host(entry: str) -> str:
    """An ``X-Forwarded-For`` entry without its port: ``1.2.3.4:5``, ``[::1]:5`` or a bare address."""
    entry = entry.strip()
    if entry.startswith("[") and "]" in entry:
        return entry[1 : entry.index("]")]
    if entry.count(":") == 1:
        return entry.split(":")[0]
    return entry


def key_of(host: str) -> str:
    """The key limits count under: the IPv4 address, an IPv6 address's /64, or the text itself (≤ 64 chars)."""
    ip = _ip(host)
    if ip is None:
        return (host or "unknown")[:64]
    if ip.version == 6:
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def resolve(peer: str, forwarded: str, trust: Trust) -> str:
    """The client's address from the direct ``peer`` and the ``X-Forwarded-For`` value (entries joined by commas)."""
    peer = peer or "unknown"
    hops = [_host(h) for h in (forwarded or "").split(",") if h.strip()]
    if not hops or not trust.is_proxy(peer, peer=True):
        return key_of(peer)
    for host in reversed(hops):
        if not trust.is_proxy(host, peer=False):
            return key_of(host)
    return key_of(hops[0])


def client_address(request) -> str:
    """The client address of ``request`` (a ``gr.Request``, a Starlette request, or None → 'local')."""
    if request is None:
        return "local"
    inner = getattr(request, "request", None)  # gr.Request wraps the Starlette request
    raw = inner if inner is not None and hasattr(inner, "scope") else request
    client = getattr(raw, "client", None)
    peer = getattr(client, "host", None) or ""
    headers = getattr(raw, "headers", None)
    forwarded = ""
    if headers is not None:
        getlist = getattr(headers, "getlist", None)
        forwarded = ",".join(getlist("x-forwarded-for")) if getlist else str(headers.get("x-forwarded-for", "") or "")
    if not peer and not forwarded:
        return "local"
    return resolve(peer, forwarded, Trust(configured_proxies(), on_space=bool(os.environ.get("SPACE_ID"))))
