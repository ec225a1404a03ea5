"""Create the stack's stateful resources in moto from template.yaml's own properties, so unit and
handler tests cannot drift from the infrastructure."""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

import boto3
from cfnlint.decode.cfn_yaml import load as load_cfn_yaml

REPO = Path(__file__).resolve().parents[2]
BUCKET = "chorus-test-payloads"
TABLE = "chorus-test-predictions"
IDEMPOTENCY_TABLE = "chorus-test-idempotency"
VERSIONS_TABLE = "chorus-test-versions"
WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # the seeded tenants' webhook signing secret
TENANCY_TABLES = {"TenantsTable": "TENANTS_TABLE", "TokensTable": "TOKENS_TABLE", "AuditTable": "AUDIT_TABLE"}
ALLOWED_RECIPIENTS = ("@example.com",)  # the seeded tenants may e-mail anyone at example.com
SENDER = "noreply@chorus.example.com"
REST_API_ID = "chorusapi1"  # the REST API tenants' usage plans apply to (moto does not check it exists)


@cache
def template() -> dict[str, Any]:
    return load_cfn_yaml(str(REPO / "template.yaml"))


def resource(logical_id: str) -> dict[str, Any]:
    return copy.deepcopy(template()["Resources"][logical_id]["Properties"])


def create_table(logical_id: str, name: str) -> None:
    props = resource(logical_id)
    kwargs: dict[str, Any] = {
        "TableName": name,
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
        "BillingMode": props["BillingMode"],
    }
    if props.get("GlobalSecondaryIndexes"):
        kwargs["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
    dynamodb = boto3.client("dynamodb")
    dynamodb.create_table(**kwargs)
    ttl = props.get("TimeToLiveSpecification")
    if ttl:
        dynamodb.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)


def provision() -> dict[str, str]:
    """Tables, bucket, topics (each with an observing queue) and SES sender."""
    create_table("PredictionsTable", TABLE)
    create_table("IdempotencyTable", IDEMPOTENCY_TABLE)
    env: dict[str, str] = {}
    for logical_id, variable in TENANCY_TABLES.items():
        create_table(logical_id, f"chorus-test-{logical_id}")
        env[variable] = f"chorus-test-{logical_id}"
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    sns = boto3.client("sns")
    sqs = boto3.client("sqs")
    for logical_id, variable in (("SuccessTopic", "SUCCESS_TOPIC_ARN"), ("ErrorTopic", "ERROR_TOPIC_ARN")):
        topic_arn = sns.create_topic(Name=f"chorus-test-{logical_id}")["TopicArn"]
        queue_url = sqs.create_queue(QueueName=f"observe-{logical_id}")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"})
        env[variable] = topic_arn
    deadline_queue = resource("DeadlineQueue")
    env["DEADLINE_QUEUE_URL"] = sqs.create_queue(
        QueueName="chorus-test-deadlines",
        Attributes={"VisibilityTimeout": str(deadline_queue["VisibilityTimeout"])},
    )["QueueUrl"]
    delivery_queue = resource("DeliveryQueue")
    env["DELIVERY_QUEUE_URL"] = sqs.create_queue(
        QueueName="chorus-test-deliveries",
        Attributes={"VisibilityTimeout": str(delivery_queue["VisibilityTimeout"])},
    )["QueueUrl"]
    boto3.client("ses").verify_email_identity(EmailAddress=SENDER)
    create_table("VersionsTable", VERSIONS_TABLE)
    env["VERSIONS_TABLE"] = VERSIONS_TABLE
    env["VERSION_CACHE_SECONDS"] = "0"  # every read sees the routing as stored
    link_key = resource("ApprovalLinkKey")
    env["APPROVAL_LINK_KEY_ID"] = boto3.client("kms").create_key(
        KeySpec=link_key["KeySpec"], KeyUsage=link_key["KeyUsage"]
    )["KeyMetadata"]["Arn"]
    return env


def seed_tenants() -> None:
    """The sample events' tenants (TENANT, OTHER_TENANT), signing with WEBHOOK_SECRET and allowed to
    e-mail ALLOWED_RECIPIENTS (the settings must point at the tables already)."""
    from chorus.adapters import tenants

    for name in (TENANT, OTHER_TENANT):
        tenants.create_tenant(name, "tests", email_recipients=ALLOWED_RECIPIENTS, webhook_secret=WEBHOOK_SECRET)


def published(logical_id: str) -> list[dict[str, Any]]:
    """SageMaker-format messages published to SuccessTopic / ErrorTopic so far."""
    sqs = boto3.client("sqs")
    url = sqs.get_queue_url(QueueName=f"observe-{logical_id}")["QueueUrl"]
    messages = []
    while True:
        batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not batch:
            return messages
        for message in batch:
            messages.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def run_deliveries() -> int:
    """Do what the deliveries function does with every delivery message that is due now (the
    handler's own domain call); returns how many messages were handled."""
    from chorus.domain import deliveries
    from chorus.events.models import DeliveryMessage

    sqs = boto3.client("sqs")
    url = sqs.get_queue_url(QueueName="chorus-test-deliveries")["QueueUrl"]
    handled = 0
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        for message in batch:
            deliveries.attempt(DeliveryMessage.model_validate_json(message["Body"]).delivery)
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            handled += 1
    return handled


def delayed_deadlines() -> int:
    """How many deadline messages wait, still delayed, in the deadline queue."""
    sqs = boto3.client("sqs")
    url = sqs.get_queue_url(QueueName="chorus-test-deadlines")["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesDelayed"])
    return int(attributes["Attributes"]["ApproximateNumberOfMessagesDelayed"])


def create_state_machine(ensemble: str) -> str:
    """The compiled ensemble, named as STATE_MACHINE_ARN_PREFIX in the `aws` fixture expects."""
    definition = (REPO / "statemachines" / f"{ensemble}.asl.json").read_text()
    return boto3.client("stepfunctions").create_state_machine(
        name=f"chorus-test-{ensemble}", definition=definition, roleArn="arn:aws:iam::123456789012:role/sfn"
    )["stateMachineArn"]


def load_event(name: str) -> dict[str, Any]:
    return json.loads((REPO / "events" / name).read_text())


def set_attribute(prediction_id: str, name: str, value: str) -> None:
    """Rewrite one stored attribute (e.g. move a clock into the past), as an operator could."""
    boto3.client("dynamodb").update_item(
        TableName=TABLE,
        Key={"id": {"S": prediction_id}},
        UpdateExpression="SET #n = :v",
        ExpressionAttributeNames={"#n": name},
        ExpressionAttributeValues={":v": {"S": value}},
    )


# --- tenancy ----------------------------------------------------------------------------------------

TENANT = "acme"  # the sample API events' tenant (events/*.json: requestContext.authorizer)
OTHER_TENANT = "globex"


def caller(tenant: str = TENANT, scopes: str = "predictions:create predictions:read") -> Any:
    """A Caller as the authorizer would establish it."""
    from chorus.model.tenancy import Caller, Scope

    token_id = {TENANT: "a1b2c3d4e5f6", OTHER_TENANT: "0f9e8d7c6b5a"}.get(tenant, "00112233aabb")
    return Caller(tenant=tenant, token_id=token_id, scopes=frozenset(Scope(s) for s in scopes.split()))


def authorizer(tenant: str = TENANT, scopes: str = "predictions:create predictions:read") -> dict[str, Any]:
    """requestContext.authorizer of an API Gateway proxy event for this caller."""
    token_id = caller(tenant, scopes).token_id
    return {"principalId": token_id, "tenant": tenant, "tokenId": token_id, "scopes": scopes}


def as_tenant(
    event: dict[str, Any], tenant: str, scopes: str = "predictions:create predictions:read"
) -> dict[str, Any]:
    """The proxy event sent by another tenant (or with other scopes)."""
    event["requestContext"]["authorizer"] = authorizer(tenant, scopes)
    return event
