"""Where a webhook may point: http(s) on a public address, unless an admin allows private
ones. Loopback, private, link-local, shared (CGNAT), multicast, reserved and unspecified
addresses are refused, at creation and again before each delivery (a name may come to
resolve elsewhere), so an endpoint cannot make the fleet call its own services."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from cca_core.errors import Invalid

MAX_URL = 2048


def check_url(url: str) -> str:
    """The endpoint's host; raise Invalid (field ``url``) for anything but http(s)://host."""
    if len(url) > MAX_URL:
        raise Invalid(f"url: at most {MAX_URL} characters", field="url")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Invalid("url: must be http:// or https:// with a host", field="url")
    if parts.username or parts.password:
        raise Invalid("url: must not carry credentials (the delivery is signed instead)", field="url")
    return parts.hostname


def private_addresses(host: str, port: int | None = None) -> list[str]:
    """The addresses ``host`` resolves to that are not public; raise Invalid when it does
    not resolve."""
    try:
        infos = socket.getaddrinfo(host, port or 443, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise Invalid(f"url: {host} does not resolve ({exc})", field="url") from None
    found = {str(info[4][0]) for info in infos}
    return sorted(address for address in found if not _public(address))


def check_target(url: str, allow_private: bool) -> None:
    """Raise Invalid unless ``url`` may be called (see the module's doc)."""
    host = check_url(url)
    if allow_private:
        return
    refused = private_addresses(host, urlsplit(url).port)
    if refused:
        raise Invalid(f"url: {host} resolves to {', '.join(refused)}, which is not a public "
                      "address; an admin may allow it (allow_private)", field="url")


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not (ip.is_multicast or ip.is_reserved)
