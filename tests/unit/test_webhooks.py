"""Webhook signing, the SSRF guard and one delivery attempt. The guard must refuse before any
connection is made: the connection layer is replaced by a tripwire that fails the test if it is
ever reached."""

from __future__ import annotations

import json
import socket
import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from chorus.adapters import webhooks
from chorus.adapters.webhooks import Outcome
from chorus.core.errors import WebhookRefused
from chorus.core.settings import WebhookGuardSettings
from chorus.model.tenancy import new_webhook_secret
from tests.support.webhook_receiver import SlowReceiver, WebhookReceiver

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
LOOPBACK_ALLOWED = WebhookGuardSettings(webhook_allowed_networks="127.0.0.0/8").allowed_networks


@pytest.fixture
def tripwire(monkeypatch):
    """Any attempt to open a connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"the guard let a connection through: {args}")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.fixture
def receiver():
    server = WebhookReceiver()
    yield server
    server.close()


def post(url: str, **kwargs) -> webhooks.Attempt:
    options = {"allowed_networks": LOOPBACK_ALLOWED, "deadline_seconds": 5.0, **kwargs}
    return webhooks.post(url, "msg_x", b"{}", (SECRET,), **options)


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",  # instance metadata
        "http://[fd00:ec2::254]/latest/meta-data/",  # IPv6 instance metadata
        "http://127.0.0.1:9001/2018-06-01/runtime/invocation/next",  # Lambda runtime API
        "http://10.1.2.3/hook",
        "http://172.16.0.1/hook",
        "http://192.168.1.1/hook",
        "http://100.64.0.1/hook",  # carrier-grade NAT
        "http://[::1]/hook",
        "http://[::ffff:10.0.0.1]/hook",  # IPv4-mapped IPv6
        "http://[fe80::1]/hook",
        "http://0.0.0.0/hook",
    ],
)
def test_non_public_targets_are_refused_before_connecting(tripwire, url):
    with pytest.raises(WebhookRefused, match="non-public"):
        webhooks.post(url, "msg_1", b"{}", (SECRET,), allowed_networks=(), deadline_seconds=1)


def test_name_resolving_to_any_private_address_is_refused(tripwire):
    # Given a public-looking name whose DNS answer includes a private address (rebinding set-up)
    def resolve(host, port):
        return ["93.184.216.34", "10.0.0.5"]

    with pytest.raises(WebhookRefused, match=r"10\.0\.0\.5"):
        webhooks.post(
            "https://hooks.example.com/x",
            "msg_1",
            b"{}",
            (SECRET,),
            allowed_networks=(),
            deadline_seconds=1,
            resolve=resolve,
        )


@pytest.mark.parametrize("url", ["file:///etc/passwd", "gopher://example.com/", "https://user:pw@example.com/"])
def test_other_schemes_and_credentials_are_refused(tripwire, url):
    with pytest.raises(WebhookRefused):
        webhooks.vet(url, ())


def test_vetted_addresses_keep_resolver_order_with_ipv4_first(tripwire):
    # Given a dual-stack name whose resolver prefers IPv6
    answers = ["2606:2800:220:1:248:1893:25c8:1946", "93.184.216.34", "2606:4700::1111", "1.1.1.1"]
    target = webhooks.vet("https://hooks.example.com/x?a=1", (), resolve=lambda host, port: answers)
    # Then IPv4 comes first, each family in the resolver's own order (not a string sort)
    assert target.addresses == ("93.184.216.34", "1.1.1.1", "2606:2800:220:1:248:1893:25c8:1946", "2606:4700::1111")
    assert (target.port, target.path) == (443, "/x?a=1")


def test_an_unresolvable_host_is_retried_at_send_time_not_given_up(tripwire):
    def resolve(host, port):
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    attempt = webhooks.post(
        "https://hooks.example.com/x", "m", b"{}", (SECRET,), allowed_networks=(), deadline_seconds=1, resolve=resolve
    )
    assert attempt.outcome is Outcome.RETRY and "does not resolve" in attempt.detail


def test_delivery_is_signed_verifiably_by_the_reference_library(receiver):
    body = json.dumps({"id": "abc", "status": "succeeded"}).encode()
    attempt = webhooks.post(
        receiver.url, "msg_abc_completed", body, (SECRET,), allowed_networks=LOOPBACK_ALLOWED, deadline_seconds=5
    )
    assert attempt.outcome is Outcome.DELIVERED
    [request] = receiver.received
    assert Webhook(SECRET).verify(request.body, request.headers) == {"id": "abc", "status": "succeeded"}
    assert request.headers["webhook-id"] == "msg_abc_completed"


def test_during_a_rotation_both_secrets_sign_and_either_verifies(receiver):
    # Given a tenant's new and previous secret, both signing (the overlap after a rotation)
    new, old, stranger = new_webhook_secret(), SECRET, new_webhook_secret()
    body = b'{"id":"abc"}'
    attempt = webhooks.post(
        receiver.url, "msg_abc_completed", body, (new, old), allowed_networks=LOOPBACK_ALLOWED, deadline_seconds=5
    )
    assert attempt.outcome is Outcome.DELIVERED
    [request] = receiver.received
    # Then the header carries two space-separated v1 signatures, and a receiver holding either secret accepts
    assert [part[:3] for part in request.headers["webhook-signature"].split(" ")] == ["v1,", "v1,"]
    assert Webhook(new).verify(request.body, request.headers) == {"id": "abc"}
    assert Webhook(old).verify(request.body, request.headers) == {"id": "abc"}
    # And one holding neither does not
    with pytest.raises(WebhookVerificationError):
        Webhook(stranger).verify(request.body, request.headers)


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (500, Outcome.RETRY),
        (503, Outcome.RETRY),
        (408, Outcome.RETRY),
        (429, Outcome.RETRY),
        (410, Outcome.GONE),
        (400, Outcome.REJECTED),
        (401, Outcome.REJECTED),
        (404, Outcome.REJECTED),
        (307, Outcome.REJECTED),
    ],
)
def test_each_answer_decides_what_happens_next(receiver, status, outcome):
    receiver.statuses.append(status)
    receiver.redirect_to = "http://169.254.169.254/"
    attempt = post(receiver.url)
    assert attempt.outcome is outcome and str(status) in attempt.detail
    assert len(receiver.received) == 1  # a redirect is never followed


@pytest.mark.parametrize(("header", "expected"), [("120", 120.0), ("0", 0.0), ("soon", None)])
def test_retry_after_is_read_from_429_and_503(receiver, header, expected):
    receiver.statuses.append(429)
    receiver.retry_after = header
    assert post(receiver.url).retry_after == expected


def test_retry_after_as_an_http_date_is_honoured(receiver):
    receiver.statuses.append(503)
    receiver.retry_after = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 60))
    retry_after = post(receiver.url).retry_after
    assert retry_after is not None and 55 <= retry_after <= 61


@pytest.mark.parametrize("drip", [None, 0.2], ids=["black-hole", "byte-dripping"])
def test_an_attempt_ends_at_its_total_deadline(drip):
    # Given a receiver that never finishes its answer
    slow = SlowReceiver(drip=drip)
    try:
        started = time.monotonic()
        attempt = post(slow.url, deadline_seconds=1.0)
        elapsed = time.monotonic() - started
    finally:
        slow.close()
    # Then the attempt gave up at its deadline (not per socket operation) and will be retried
    assert attempt.outcome is Outcome.RETRY and "within 1 s" in attempt.detail
    assert elapsed < 3


def test_a_refused_address_falls_back_to_the_next_vetted_one(receiver, monkeypatch):
    # Given a name resolving to a dead loopback address first and the receiver's second
    port = int(receiver.url.split(":")[2].split("/")[0])
    closed = socket.create_server(("127.0.0.2", 0))
    dead = closed.getsockname()[1]
    closed.close()
    assert dead != port
    url = f"http://hooks.test:{port}/hooks/chorus"
    attempts = []
    real = socket.create_connection

    def connect(address, *args, **kwargs):
        attempts.append(address)
        host, _ = address
        return real((host, dead) if host == "127.0.0.2" else address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", connect)
    attempt = post(url, resolve=lambda host, p: ["127.0.0.2", "127.0.0.1"])
    # Then the first refused and the second delivered
    assert attempt.outcome is Outcome.DELIVERED
    assert [a[0] for a in attempts] == ["127.0.0.2", "127.0.0.1"]
