"""Which URLs a webhook may target: http(s) only, and never somewhere it should not reach.

A webhook makes the platform send requests on a user's behalf, so a careless
one is a server-side request forgery: `http://169.254.169.254/` would read the
cloud machine's credentials. The rule for an address:

- a cloud metadata address is refused, always (no setting opens it);
- an address inside one of the allowed networks (`SLUICEWAY_WEBHOOK_ALLOWED_NETWORKS`,
  e.g. `127.0.0.0/8,::1/128` for `sluice up` and the tests) is accepted;
- otherwise only public (globally routable, unicast) addresses are accepted, so
  loopback, private, link-local, CGNAT, multicast and reserved ranges are refused.

IPv6 forms that embed an IPv4 address (`::ffff:a.b.c.d`, 6to4, NAT64) are judged
by the IPv4 address inside. The API checks a URL when it is given (a literal
address, or a well-known metadata host name); the notifier checks every address
a host name resolves to before each attempt (`scheduler/webhooks/webhook_sender.py`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from urllib.parse import urlsplit

from core.errors import InvalidInput

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_URL_LENGTH = 2048

METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean
        "169.254.170.2",  # AWS ECS task metadata
        "fd00:ec2::254",  # AWS IMDS over IPv6
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud
    )
)
METADATA_HOSTNAMES = frozenset(
    {"metadata", "metadata.google.internal", "instance-data", "instance-data.ec2.internal"}
)
LOCALHOST_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
NAT64_PREFIX = ipaddress.ip_network("64:ff9b::/96")


def embedded_ipv4(address: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 address carries (mapped, 6to4, NAT64), else `address` itself."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.sixtofour is not None:
            return address.sixtofour
        if address in NAT64_PREFIX:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def _kind(address: IPAddress) -> str:
    """A short name for why a non-public address is not public, for error messages."""
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if address.is_unspecified:
        return "unspecified"
    if address.is_private:
        return "private"
    return "non-public"


def address_refusal(address: IPAddress, allowed: Sequence[Network]) -> str | None:
    """Why `address` may not be a webhook target, or None when it may.

    >>> address_refusal(ipaddress.ip_address("127.0.0.1"), [])
    'a loopback address'
    >>> address_refusal(ipaddress.ip_address("127.0.0.1"), [ipaddress.ip_network("127.0.0.0/8")])
    """
    inner = embedded_ipv4(address)
    candidates = {address, inner}
    if candidates & METADATA_ADDRESSES:
        return "a cloud metadata address"
    if any(c in net for c in candidates for net in allowed if net.version == c.version):
        return None
    if inner.is_global and not inner.is_multicast and not inner.is_reserved:
        return None
    return f"a {_kind(inner)} address"


def _allowed_hint(allowed: Sequence[Network]) -> str:
    listed = ", ".join(str(net) for net in allowed) or "none"
    return f"allowed non-public networks: {listed} (SLUICEWAY_WEBHOOK_ALLOWED_NETWORKS)"


def check_address(url: str, address: IPAddress, allowed: Sequence[Network]) -> None:
    """InvalidInput naming the URL and the address unless `address` may be targeted."""
    reason = address_refusal(address, allowed)
    if reason is not None:
        raise InvalidInput(
            f"webhook URL {url!r} targets {address}, {reason}; refused. {_allowed_hint(allowed)}"
        )


def check_webhook_url(url: str, *, allowed: Sequence[Network]) -> str:
    """The URL, stripped, or InvalidInput (422) saying what is wrong with it.

    Host names other than localhost and the metadata names are resolved later,
    by the notifier, which checks each address they resolve to before sending.
    """
    url = url.strip()
    if not url:
        raise InvalidInput("webhook URL is empty")
    if len(url) > MAX_URL_LENGTH:
        raise InvalidInput(f"webhook URL is {len(url)} characters; the limit is {MAX_URL_LENGTH}")
    if any(ord(ch) < 33 or ord(ch) == 127 for ch in url):
        raise InvalidInput(f"webhook URL {url!r} contains spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidInput(f"webhook URL {url!r} is not a valid URL: {exc}") from exc
    if parts.scheme.lower() not in ("http", "https"):
        scheme = parts.scheme or "(none)"
        raise InvalidInput(f"webhook URL {url!r} must be http:// or https://, not {scheme!r}")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise InvalidInput(f"webhook URL {url!r} has no host")
    if port == 0:
        raise InvalidInput(f"webhook URL {url!r} has port 0")
    if host in METADATA_HOSTNAMES:
        raise InvalidInput(f"webhook URL {url!r} names a cloud metadata host; refused")
    try:
        literal: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        check_address(url, literal, allowed)
    elif host in LOCALHOST_NAMES:
        check_address(url, ipaddress.ip_address("127.0.0.1"), allowed)
    return url
