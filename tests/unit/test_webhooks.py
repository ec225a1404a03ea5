"""Webhook signing and the SSRF guard. The guard must refuse before any connection is made: the
connection layer is replaced by a tripwire that fails the test if it is ever reached."""

from __future__ import annotations

import json
import socket

import pytest
from standardwebhooks.webhooks import Webhook

from chorus import webhooks
from chorus.errors import DeliveryFailed, WebhookRefused
from chorus.settings import Settings
from tests.support.webhook_receiver import WebhookReceiver

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
LOOPBACK_ALLOWED = Settings(
    predictions_table="t", payloads_bucket="b", webhook_allowed_networks="127.0.0.0/8"
).allowed_networks


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
        webhooks.deliver(url, "msg_1", b"{}", SECRET, allowed_networks=(), timeout=1, attempts=1, backoff=0)


def test_name_resolving_to_any_private_address_is_refused(tripwire):
    # Given a public-looking name whose DNS answer includes a private address (rebinding set-up)
    def resolve(host, port):
        return ["93.184.216.34", "10.0.0.5"]

    with pytest.raises(WebhookRefused, match=r"10\.0\.0\.5"):
        webhooks.deliver(
            "https://hooks.example.com/x",
            "msg_1",
            b"{}",
            SECRET,
            allowed_networks=(),
            timeout=1,
            attempts=1,
            backoff=0,
            resolve=resolve,
        )


@pytest.mark.parametrize("url", ["file:///etc/passwd", "gopher://example.com/", "https://user:pw@example.com/"])
def test_other_schemes_and_credentials_are_refused(tripwire, url):
    with pytest.raises(WebhookRefused):
        webhooks.vet(url, ())


def test_public_address_is_vetted_and_pinned(tripwire):
    target = webhooks.vet("https://hooks.example.com/x?a=1", (), resolve=lambda host, port: ["93.184.216.34"])
    assert (target.address, target.port, target.path) == ("93.184.216.34", 443, "/x?a=1")


def test_delivery_is_signed_verifiably_by_the_reference_library(receiver):
    body = json.dumps({"id": "abc", "status": "succeeded"}).encode()
    webhooks.deliver(
        receiver.url,
        "msg_abc_completed",
        body,
        SECRET,
        allowed_networks=LOOPBACK_ALLOWED,
        timeout=5,
        attempts=1,
        backoff=0,
    )
    [request] = receiver.received
    verified = Webhook(SECRET).verify(request.body, request.headers)
    assert verified == {"id": "abc", "status": "succeeded"}
    assert request.headers["webhook-id"] == "msg_abc_completed"


def test_transient_failures_are_retried_with_the_same_webhook_id(receiver):
    receiver.statuses.extend([500, 503])
    delivery = webhooks.deliver(
        receiver.url, "msg_x", b"{}", SECRET, allowed_networks=LOOPBACK_ALLOWED, timeout=5, attempts=3, backoff=0
    )
    assert delivery.attempts == 3
    assert {r.headers["webhook-id"] for r in receiver.received} == {"msg_x"}


def test_redirects_are_not_followed(receiver):
    receiver.statuses.append(307)
    receiver.redirect_to = "http://169.254.169.254/"
    with pytest.raises(WebhookRefused, match="307"):
        webhooks.deliver(
            receiver.url, "msg_x", b"{}", SECRET, allowed_networks=LOOPBACK_ALLOWED, timeout=5, attempts=3, backoff=0
        )
    assert len(receiver.received) == 1


def test_delivery_gives_up_after_its_attempts(receiver):
    receiver.statuses.extend([500, 500])
    with pytest.raises(DeliveryFailed, match="2 attempts"):
        webhooks.deliver(
            receiver.url, "msg_x", b"{}", SECRET, allowed_networks=LOOPBACK_ALLOWED, timeout=5, attempts=2, backoff=0
        )
