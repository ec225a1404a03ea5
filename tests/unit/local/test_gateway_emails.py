"""`/_local/emails`: the e-mails SES accepted through the gateway, sent with an unmodified boto3."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import boto3
import pytest
import requests

from chorus_local.gateway import TEST_CREDENTIALS, AwsGateway, gateway_server

REGION = "us-east-1"
SENDER = "approvals@chorus.example"
APPROVE_LINK = "http://127.0.0.1:3000/approvals/abc/confirm?token=t0k"


@pytest.fixture
def gateway_url() -> Iterator[str]:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    # SES never reaches the Lambda runtime or the SNS deliveries.
    gateway = AwsGateway(DomainDispatcherApplication(create_backend_app), runtime=None, sns_deliveries=None)  # type: ignore[arg-type]
    server = gateway_server(gateway, 0)
    server.start()
    yield f"http://127.0.0.1:{server.port}"
    server.stop()


def aws(gateway_url: str, service: str) -> Any:
    return boto3.session.Session().client(
        service,  # type: ignore[call-overload]
        endpoint_url=gateway_url,
        region_name=REGION,
        **TEST_CREDENTIALS,
    )


@pytest.fixture
def ses(gateway_url: str) -> Any:
    client = aws(gateway_url, "ses")
    client.verify_email_identity(EmailAddress=SENDER)
    requests.delete(f"{gateway_url}/_local/emails", timeout=5)
    return client


def emails(gateway_url: str) -> list[dict[str, Any]]:
    answer = requests.get(f"{gateway_url}/_local/emails", timeout=5)
    answer.raise_for_status()
    return list(answer.json()["emails"])


def test_send_email_with_text_and_html_is_listed_with_both_bodies(gateway_url: str, ses: Any) -> None:
    # Given an e-mail with a text and an HTML body (moto itself keeps only the HTML)
    # When it is sent through the gateway
    sent = ses.send_email(
        Source=SENDER,
        Destination={"ToAddresses": ["ops@tenant.example"], "CcAddresses": ["lead@tenant.example"]},
        Message={
            "Subject": {"Data": "Approve digits v2"},
            "Body": {
                "Text": {"Data": f"Approve: {APPROVE_LINK}"},
                "Html": {"Data": f"<a href='{APPROVE_LINK}'>Approve</a>"},
            },
        },
    )

    # Then /_local/emails lists it with both bodies and moto's MessageId
    (listed,) = emails(gateway_url)
    assert listed.pop("sentAt").endswith("Z")
    assert listed == {
        "id": sent["MessageId"],
        "from": SENDER,
        "to": ["ops@tenant.example", "lead@tenant.example"],
        "subject": "Approve digits v2",
        "text": f"Approve: {APPROVE_LINK}",
        "html": f"<a href='{APPROVE_LINK}'>Approve</a>",
    }


def test_send_raw_email_is_parsed_into_its_text_and_html_parts(gateway_url: str, ses: Any) -> None:
    # Given a multipart/alternative MIME e-mail with a non-ASCII subject
    message = EmailMessage()
    message["From"] = f"Chorus <{SENDER}>"
    message["To"] = "Ops <ops@tenant.example>"
    message["Subject"] = "Modèle à approuver"
    message.set_content(f"Approuver : {APPROVE_LINK}\n")
    message.add_alternative(f"<p><a href='{APPROVE_LINK}'>Approuver</a></p>\n", subtype="html")

    # When it is sent raw
    sent = ses.send_raw_email(RawMessage={"Data": message.as_bytes()})

    # Then its parts, subject and recipients are listed
    (listed,) = emails(gateway_url)
    assert (listed["id"], listed["from"], listed["to"]) == (
        sent["MessageId"],
        f"Chorus <{SENDER}>",
        ["ops@tenant.example"],
    )
    assert listed["subject"] == "Modèle à approuver"
    assert listed["text"] == f"Approuver : {APPROVE_LINK}\n"
    assert listed["html"] == f"<p><a href='{APPROVE_LINK}'>Approuver</a></p>\n"


def test_sesv2_send_email_is_listed(gateway_url: str, ses: Any) -> None:
    # Given the SES v2 API
    sesv2 = aws(gateway_url, "sesv2")

    # When it sends a text-only e-mail
    sent = sesv2.send_email(
        FromEmailAddress=SENDER,
        Destination={"ToAddresses": ["ops@tenant.example"]},
        Content={"Simple": {"Subject": {"Data": "v2"}, "Body": {"Text": {"Data": APPROVE_LINK}}}},
    )

    # Then it is listed, with no HTML part
    (listed,) = emails(gateway_url)
    assert (listed["id"], listed["to"], listed["text"], listed["html"]) == (
        sent["MessageId"],
        ["ops@tenant.example"],
        APPROVE_LINK,
        None,
    )


def test_emails_are_listed_oldest_first_and_delete_clears_them(gateway_url: str, ses: Any) -> None:
    # Given two e-mails sent one after the other
    for subject in ("first", "second"):
        ses.send_email(
            Source=SENDER,
            Destination={"ToAddresses": ["ops@tenant.example"]},
            Message={"Subject": {"Data": subject}, "Body": {"Text": {"Data": "."}}},
        )
    assert [listed["subject"] for listed in emails(gateway_url)] == ["first", "second"]

    # When the mailbox is deleted
    answer = requests.delete(f"{gateway_url}/_local/emails", timeout=5)

    # Then it is empty
    assert answer.json() == {"emails": []}
    assert emails(gateway_url) == []


def test_an_email_ses_rejects_is_not_listed(gateway_url: str, ses: Any) -> None:
    # Given a sender that is not verified
    # When SES refuses the e-mail
    with pytest.raises(ses.exceptions.MessageRejected):
        ses.send_email(
            Source="stranger@elsewhere.example",
            Destination={"ToAddresses": ["ops@tenant.example"]},
            Message={"Subject": {"Data": "nope"}, "Body": {"Text": {"Data": "."}}},
        )

    # Then nothing is listed
    assert emails(gateway_url) == []


def test_each_accepted_email_is_logged_with_its_text(
    gateway_url: str, ses: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # When an e-mail is sent
    with caplog.at_level(logging.INFO, logger="chorus_local.gateway"):
        ses.send_email(
            Source=SENDER,
            Destination={"ToAddresses": ["ops@tenant.example"]},
            Message={"Subject": {"Data": "Approve digits v2"}, "Body": {"Text": {"Data": f"Approve: {APPROVE_LINK}"}}},
        )

    # Then the log shows the recipient and subject on one line, then the text with the link
    (record,) = [r for r in caplog.records if r.name == "chorus_local.gateway"]
    assert record.levelno == logging.INFO
    assert record.getMessage().splitlines() == [
        "e-mail to ops@tenant.example: Approve digits v2",
        f"Approve: {APPROVE_LINK}",
    ]
