"""Which webhook targets may be called, and how a URL is written in logs. Pure, no I/O.

A webhook URL is configured by people (and, for a firm, may come from the firm): a target on the
platform's own network (the database, the broker, a cloud metadata endpoint at 169.254.169.254)
must not be reachable through it, and the notification must not travel in clear. So by default
only ``https://`` URLs whose host resolves to public addresses are called; ``http://`` and
loopback, private, link-local, shared, reserved or multicast addresses need the explicit setting
``LIFTWATCH_WEBHOOK_ALLOW_PRIVATE`` (a closed site network, the tests' local receivers). The
check runs on the addresses the host resolves to before every call, not on the name, so a
public name pointing at a private address is refused too.

URLs may carry credentials (``user:password@``, ``?key=...``): :func:`redact` is what any log
line or stored error shows of one.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from urllib.parse import SplitResult, urlsplit


class TargetRefused(ValueError):
    """A webhook URL the platform will not call; ``reason`` is the stable code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def _host(url: str) -> SplitResult:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TargetRefused("bad_url", f"not an http(s) URL with a host: {redact(url)}")
    return parts


def is_public(address: str) -> bool:
    """Whether an IP address is on the public internet (not loopback, private, link-local, ...)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 scope (fe80::1%eth0) is link-local anyway
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def check_url(url: str, *, allow_private: bool) -> tuple[str, int]:
    """The (host, port) to resolve for ``url``; raises :class:`TargetRefused` for what is refused by its text alone."""
    parts = _host(url)
    if parts.scheme != "https" and not allow_private:
        raise TargetRefused("insecure_scheme", f"http:// is not allowed (https only): {redact(url)}")
    host = parts.hostname
    assert host is not None
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise TargetRefused("bad_url", f"bad port: {redact(url)}") from None
    if not allow_private:
        if host == "localhost" or host.endswith((".localhost", ".local", ".internal")):
            raise TargetRefused("private_target", f"{host} is a local name")
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None and not is_public(host):
            raise TargetRefused("private_target", f"{host} is not a public address")
    return host, port


def check_addresses(host: str, addresses: Iterable[str], *, allow_private: bool) -> None:
    """Refuse a host that resolved to nothing or to any non-public address (unless allowed)."""
    resolved = list(addresses)
    if not resolved:
        raise TargetRefused("unresolved", f"{host} does not resolve")
    if allow_private:
        return
    private = [a for a in resolved if not is_public(a)]
    if private:
        raise TargetRefused("private_target", f"{host} resolves to a non-public address ({private[0]})")


def redact(url: str) -> str:
    """``url`` as logs may show it: no user or password, query values replaced by ``***``."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<unparseable url>"
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port is None else f"{host}:{port}"
    query = "&".join(f"{pair.split('=', 1)[0]}=***" for pair in parts.query.split("&") if pair)
    return SplitResult(parts.scheme, netloc, parts.path, query, "").geturl()
