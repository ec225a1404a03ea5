"""Webhook delivery: Standard Webhooks signing, an SSRF guard, and one attempt per call.

- The guard resolves the host once and refuses unless *every* address is public (or in an
  allowed network); the connection then goes to one of those vetted addresses, so a DNS answer
  cannot change between the check and the request. Addresses are tried in the resolver's order,
  IPv4 first, falling back to the next on a connection error.
- An attempt has one total deadline (connect, TLS, send and read together): a watchdog closes the
  socket when it passes, so a receiver that drips bytes cannot hold a worker longer.
- The outcome says what the caller should do: `delivered`, `retry` (5xx, 408, 429, timeouts,
  connection and DNS errors, with the receiver's `Retry-After` if it sent one), `gone` (410: stop
  for good) or `rejected` (any other answer: a redirect or 4xx will not heal).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import http.client
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from enum import StrEnum
from urllib.parse import urlsplit

from chorus.core.errors import WebhookRefused
from chorus.core.settings import Network

Resolver = Callable[[str, int], Sequence[str]]
MAX_URL_LENGTH = 2048
MAX_RESPONSE_BYTES = 64 * 1024  # what a receiver can make us read
USER_AGENT = "chorus-webhooks/1"


class WebhookUnresolvable(WebhookRefused):
    """The host did not resolve: refused at submit, retried at send time (DNS heals)."""


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256>` over `id.timestamp.body`, per the Standard Webhooks spec."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    content = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()


def signatures(secrets: Sequence[str], message_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header: one `v1,…` per secret, space-separated (during a secret
    rotation the new and the old one; a receiver accepts any signature it can verify)."""
    return " ".join(sign(secret, message_id, timestamp, body) for secret in secrets)


def resolve_addresses(host: str, port: int) -> list[str]:
    """The resolver's answers in its own order (RFC 6724 preference), without duplicates."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str
    addresses: tuple[str, ...]  # vetted; connections go only to these, in this order


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
    except (OSError, UnicodeError) as exc:
        raise WebhookUnresolvable(f"webhook host {parts.hostname!r} does not resolve: {exc}") from exc
    if not addresses:
        raise WebhookUnresolvable(f"webhook host {parts.hostname!r} does not resolve")
    for address in addresses:
        _require_allowed(parts.hostname, address, allowed_networks)
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    ordered = sorted(addresses, key=lambda a: ":" in a)  # stable: IPv4 first, resolver order kept
    return Target(parts.scheme, parts.hostname, port, path, tuple(ordered))


def _require_allowed(host: str, address: str, allowed_networks: Sequence[Network]) -> None:
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    if any(ip in network for network in allowed_networks):
        return
    if not ip.is_global or ip.is_multicast or ip.is_reserved:
        raise WebhookRefused(f"webhook host {host!r} resolves to a non-public address ({ip})")


class Outcome(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"
    GONE = "gone"
    REJECTED = "rejected"


@dataclass(frozen=True)
class Attempt:
    outcome: Outcome
    detail: str  # the receiver's status or the error, for the record
    retry_after: float | None = None  # seconds the receiver asked us to wait (429/503)


class _Deadline:
    """A total time budget for one attempt; `arm` closes the socket when it runs out."""

    def __init__(self, seconds: float) -> None:
        self._end = time.monotonic() + seconds
        self._timer: threading.Timer | None = None
        self.expired = False

    def remaining(self) -> float:
        left = self._end - time.monotonic()
        if left <= 0:
            self.expired = True
            raise TimeoutError("the attempt ran out of time")
        return left

    def arm(self, sock: socket.socket) -> None:
        def expire() -> None:
            self.expired = True
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

        self._timer = threading.Timer(self.remaining(), expire)
        self._timer.daemon = True
        self._timer.start()

    def disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()


def _open(target: Target, deadline: _Deadline) -> socket.socket:
    """Connect to the first vetted address that answers, within the deadline."""
    last: OSError | None = None
    for address in target.addresses:
        try:
            sock = socket.create_connection((address, target.port), timeout=deadline.remaining())
        except OSError as exc:
            last = exc
            continue
        deadline.arm(sock)
        if target.scheme == "https":
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=target.host)
        return sock
    raise last or OSError("no address to connect to")


class _VettedConnection(http.client.HTTPConnection):
    """http.client on a socket we opened ourselves (to a vetted address, TLS already set up)."""

    def __init__(self, target: Target, deadline: _Deadline) -> None:
        super().__init__(target.host, target.port, timeout=None)
        self._target = target
        self._deadline = deadline

    def connect(self) -> None:
        self.sock = _open(self._target, self._deadline)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    with contextlib.suppress(ValueError):
        return max(0.0, float(int(value.strip())))
    with contextlib.suppress(TypeError, ValueError, IndexError):
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    return None


def post(
    url: str,
    message_id: str,
    body: bytes,
    secrets: Sequence[str],
    *,
    allowed_networks: Sequence[Network],
    deadline_seconds: float,
    resolve: Resolver | None = None,
) -> Attempt:
    """One POST signed with each of `secrets`; redirects are never followed. Raises WebhookRefused if the target is not
    allowed (checked again at send time: DNS may have changed since the request was accepted)."""
    try:
        target = vet(url, allowed_networks, resolve)
    except WebhookUnresolvable as exc:
        return Attempt(Outcome.RETRY, exc.message)
    timestamp = int(time.time())
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "host": target.host if target.port in {80, 443} else f"{target.host}:{target.port}",
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signatures(secrets, message_id, timestamp, body),
    }
    deadline = _Deadline(deadline_seconds)
    connection = _VettedConnection(target, deadline)
    try:
        connection.request("POST", target.path, body=body, headers=headers)
        response = connection.getresponse()
        response.read(MAX_RESPONSE_BYTES)
        status = response.status
        retry_after = _retry_after(response.getheader("retry-after"))
    except (OSError, http.client.HTTPException) as exc:
        if deadline.expired:
            return Attempt(Outcome.RETRY, f"no complete answer within {deadline_seconds:g} s")
        return Attempt(Outcome.RETRY, f"{type(exc).__name__}: {exc}"[:500])
    finally:
        deadline.disarm()
        connection.close()
    if 200 <= status < 300:
        return Attempt(Outcome.DELIVERED, f"receiver answered {status}")
    detail = f"receiver answered {status}"
    if status == 410:
        return Attempt(Outcome.GONE, detail)
    if status >= 500 or status in {408, 429}:
        return Attempt(Outcome.RETRY, detail, retry_after if status in {429, 503} else None)
    return Attempt(Outcome.REJECTED, detail)
