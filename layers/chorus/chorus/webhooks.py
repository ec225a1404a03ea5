"""Webhook delivery: Standard Webhooks signing, an SSRF guard, and a connection pinned to the
address the guard approved (so a DNS answer cannot change between the check and the request)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import ipaddress
import socket
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from chorus.errors import DeliveryFailed, WebhookRefused
from chorus.settings import Network

Resolver = Callable[[str, int], Sequence[str]]
MAX_URL_LENGTH = 2048


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256>` over `id.timestamp.body`, per the Standard Webhooks spec."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    content = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()


def resolve_addresses(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str
    address: str  # the vetted IP the connection is made to


def vet(url: str, allowed_networks: Sequence[Network], resolve: Resolver | None = None) -> Target:
    """Refuse anything but http(s) to public addresses (or explicitly allowed networks).

    Every address the name resolves to must pass: one private answer is enough to refuse.
    """
    if len(url) > MAX_URL_LENGTH:
        raise WebhookRefused("webhook URL is too long")
    parts = urlsplit(url)
    if parts.scheme not in {"https", "http"}:
        raise WebhookRefused(f"webhook URL must use https (or http), not {parts.scheme or 'nothing'!r}")
    if not parts.hostname:
        raise WebhookRefused("webhook URL has no host")
    if parts.username or parts.password:
        raise WebhookRefused("webhook URL must not carry credentials")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise WebhookRefused(f"webhook URL has an invalid port: {exc}") from exc
    try:
        addresses = list((resolve or resolve_addresses)(parts.hostname, port))
    except OSError as exc:
        raise WebhookRefused(f"webhook host {parts.hostname!r} does not resolve: {exc}") from exc
    if not addresses:
        raise WebhookRefused(f"webhook host {parts.hostname!r} does not resolve")
    for address in addresses:
        _require_allowed(parts.hostname, address, allowed_networks)
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return Target(parts.scheme, parts.hostname, port, path, addresses[0])


def _require_allowed(host: str, address: str, allowed_networks: Sequence[Network]) -> None:
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    if any(ip in network for network in allowed_networks):
        return
    if not ip.is_global or ip.is_multicast or ip.is_reserved:
        raise WebhookRefused(f"webhook host {host!r} resolves to a non-public address ({ip})")


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to a fixed IP while certificate checks and SNI use the URL's host name."""

    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout, context=ssl.create_default_context())
        self._address = target.address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


def _connection(target: Target, timeout: float) -> http.client.HTTPConnection:
    if target.scheme == "https":
        return _PinnedHTTPSConnection(target, timeout)
    return http.client.HTTPConnection(target.address, target.port, timeout=timeout)


@dataclass(frozen=True)
class Delivery:
    status: int
    attempts: int


def deliver(
    url: str,
    message_id: str,
    body: bytes,
    secret: str,
    *,
    allowed_networks: Sequence[Network],
    timeout: float,
    attempts: int,
    backoff: float,
    resolve: Resolver | None = None,
) -> Delivery:
    """POST a signed webhook; retry transient failures with exponential backoff.

    Redirects are never followed (a 3xx is a failure). A 4xx other than 408/429 will not heal, so it
    is not retried; 410 means the receiver wants no more. Raises DeliveryFailed when it gives up.
    """
    target = vet(url, allowed_networks, resolve)
    last_error = ""
    for attempt in range(1, attempts + 1):
        timestamp = int(time.time())
        headers = {
            "content-type": "application/json",
            "user-agent": "chorus-webhooks/1",
            "host": target.host if target.port in {80, 443} else f"{target.host}:{target.port}",
            "webhook-id": message_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(secret, message_id, timestamp, body),
        }
        connection = _connection(target, timeout)
        try:
            connection.request("POST", target.path, body=body, headers=headers)
            response = connection.getresponse()
            response.read(64 * 1024)  # cap what a receiver can make us read
            status = response.status
        except (OSError, http.client.HTTPException) as exc:
            last_error = f"{type(exc).__name__}: {exc}"
        else:
            if 200 <= status < 300:
                return Delivery(status=status, attempts=attempt)
            last_error = f"receiver answered {status}"
            if 300 <= status < 500 and status not in {408, 429}:
                raise WebhookRefused(f"webhook to {target.host} refused: {last_error}")
        finally:
            connection.close()
        if attempt < attempts:
            time.sleep(backoff * 2 ** (attempt - 1))
    raise DeliveryFailed(f"webhook to {target.host} failed after {attempts} attempts: {last_error}")
