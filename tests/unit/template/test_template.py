"""template.yaml checked as code: the properties that keep Chorus reliable and safe in AWS.

The template is read with cfn-lint's loader, so `!Ref X` arrives as {"Ref": "X"}, `!Sub s` as
{"Fn::Sub": s} and so on. What a function's code needs (its settings, its AWS calls) is read from
the code itself (`iam_code.py`) and what it is granted from its policies (`iam_policies.py`); the
tables below state the intent and the tests hold the template, the code and the tables together.
The last three tests run the real tools (cfn-lint, sam validate, sam build).
"""

from __future__ import annotations

import ast
import inspect
import json
import os
import re
import re._parser as sre_parse
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from fnmatch import fnmatchcase
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import cfn_yaml

from chorus.core import settings as chorus_settings
from tests.unit.template import iam_code
from tests.unit.template.iam_policies import (
    STACK_KEY_TARGET,
    WILDCARD_EXCEPTIONS,
    Grant,
    arn_text,
    as_list,
    bucket_name,
    grants,
    is_read,
    is_stack_key,
    matches,
    resource_policy_statements,
    sam_policy_templates,
    sub_strings,
    targets,
)

ROOT = Path(__file__).resolve().parents[3]
TEMPLATE = ROOT / "template.yaml"
STATE_MACHINES = ROOT / "statemachines"

# shared with test_transformed_template.py
__all__ = ["NO_ON_FAILURE_DESTINATION", "PUBLIC_ROUTES", "TEMPLATE", "WILDCARD_EXCEPTIONS", "as_list"]

# --- the intent, as tables ----------------------------------------------------------------------

# Environment every function shares; anything else is set per function.
GLOBAL_ENVIRONMENT = {
    "POWERTOOLS_SERVICE_NAME": "chorus",
    # One namespace per stage, so each stage's dashboard and alarms see only its own metrics.
    "POWERTOOLS_METRICS_NAMESPACE": {"Fn::Sub": "Chorus/${Stage}"},
    "LOG_LEVEL": "INFO",
}

# The settings classes (chorus.core.settings) each function's code loads, as traced from its
# handler's module (app.py but for the capture transformation's capture.py);
# test_function_settings_table_is_what_the_code_loads checks this against the code.
FUNCTION_SETTINGS = {
    "NewPredictionFunction": {
        "TableSettings",
        "IdempotencySettings",
        "PayloadSettings",
        "RegistrySettings",
        "DeadlineQueueSettings",  # upload expiry and the client's deadline
        "DeliveryQueueSettings",  # redelivery, and a cancel announces its callback
        "WebhookGuardSettings",  # a webhook URL is vetted when the prediction is created
        "TenantsSettings",  # the tenant's callback allow-lists; POST /webhooks/secret/rotate; wait slots
        "AuditSettings",  # a rotation is recorded
        "WaitSettings",  # how many Prefer: wait requests of one tenant may hold their answer
        "VersionSettings",  # a canary's deadline enforced on read (cancel, redeliver) is trial evidence
    },
    "ResultsFunction": {
        "TableSettings",
        "PayloadSettings",  # presigned output links
        "RegistrySettings",
        "DeliveryQueueSettings",  # a deadline enforced on read announces the final state
        "TenantsSettings",  # GET /webhooks/secret
        "VersionSettings",  # GET /services/{name}; a canary's deadline enforced on read is trial evidence
    },
    "ProcessInputFunction": {
        "TableSettings",
        "PayloadSettings",
        "RegistrySettings",
        "ExecutionSettings",
        "TopicSettings",
        "DeadlineQueueSettings",
        "DeliveryQueueSettings",
        "DeadLetterSettings",
        "VersionSettings",  # which version serves a prediction (and its shadow); trial evidence
    },
    "NotificationsFunction": {
        "TableSettings",
        "DeliveryQueueSettings",
        "RegistrySettings",
        "CaptureSettings",  # a finished prediction its service captures goes to the capture stream
        "VersionSettings",  # a finished trial prediction's evidence
    },
    "GetTransformCallFunction": {
        "TableSettings",
        "PayloadSettings",
        "RegistrySettings",
        "ExecutionSettings",
        "TopicSettings",
        "DeadlineQueueSettings",
        "DeliveryQueueSettings",
        "VersionSettings",  # which version serves a step on a model service; trial evidence
    },
    "DeliveriesFunction": {
        "TableSettings",
        "PayloadSettings",
        "RegistrySettings",
        "DeliveryQueueSettings",
        "WebhookSettings",
        "EmailSettings",
        "TenantsSettings",  # the tenant's signing secrets and allow-lists
    },
    "AuthorizerFunction": {"TokensSettings"},  # finds and touches tokens
    # The capture transformation reads the objects each product line names, bucket included: no settings.
    "CaptureFunction": set(),
    "MonitorFunction": {"PayloadSettings", "RegistrySettings"},  # capture, baselines, reports; which services capture
    # The approval workflow's tasks and the approval pages: versions, their approvers (the
    # registry), the links' key and the canary margin, the approvers' e-mail, the version events.
    "ApprovalsFunction": {
        "RegistrySettings",
        "VersionSettings",
        "ApprovalSettings",
        "EmailSettings",
        "EventBusSettings",  # the default bus unless EVENT_BUS_NAME says otherwise: not configured
    },
}

# The variables each function is given: the required fields of its settings, and the optional
# ones the stack configures (test_function_environment_fits_its_settings).
FUNCTION_ENVIRONMENT = {
    "NewPredictionFunction": {
        "PREDICTIONS_TABLE",
        "IDEMPOTENCY_TABLE",
        "PAYLOADS_BUCKET",
        "UPLOAD_URL_TTL_SECONDS",
        "REGISTRY_FILE",
        "DEADLINE_QUEUE_URL",
        "DELIVERY_QUEUE_URL",
        "WEBHOOK_ALLOWED_NETWORKS",
        "TENANTS_TABLE",
        "AUDIT_TABLE",
        "MAX_WAITS_PER_TENANT",
        "VERSIONS_TABLE",
        "VERSION_CACHE_SECONDS",
    },
    "ResultsFunction": {
        "PREDICTIONS_TABLE",
        "PAYLOADS_BUCKET",
        "REGISTRY_FILE",
        "DELIVERY_QUEUE_URL",
        "TENANTS_TABLE",
        "VERSIONS_TABLE",
        "VERSION_CACHE_SECONDS",
    },
    "ProcessInputFunction": {
        "PREDICTIONS_TABLE",
        "PAYLOADS_BUCKET",
        "REGISTRY_FILE",
        "STATE_MACHINE_ARN_PREFIX",
        "SUCCESS_TOPIC_ARN",
        "ERROR_TOPIC_ARN",
        "DEADLINE_QUEUE_URL",
        "DELIVERY_QUEUE_URL",
        "UPLOAD_DLQ_ARN",
        "VERSIONS_TABLE",
        "VERSION_CACHE_SECONDS",
    },
    "NotificationsFunction": {
        "PREDICTIONS_TABLE",
        "DELIVERY_QUEUE_URL",
        "REGISTRY_FILE",
        "CAPTURE_STREAM",
        "VERSIONS_TABLE",
        "VERSION_CACHE_SECONDS",
    },
    "GetTransformCallFunction": {
        "PREDICTIONS_TABLE",
        "PAYLOADS_BUCKET",
        "REGISTRY_FILE",
        "STATE_MACHINE_ARN_PREFIX",
        "SUCCESS_TOPIC_ARN",
        "ERROR_TOPIC_ARN",
        "DEADLINE_QUEUE_URL",
        "DELIVERY_QUEUE_URL",
        "VERSIONS_TABLE",
        "VERSION_CACHE_SECONDS",
    },
    "DeliveriesFunction": {
        "PREDICTIONS_TABLE",
        "PAYLOADS_BUCKET",
        "REGISTRY_FILE",
        "DELIVERY_QUEUE_URL",
        "TENANTS_TABLE",
        "WEBHOOK_ALLOWED_NETWORKS",
        "WEBHOOK_ATTEMPT_SECONDS",
        "WEBHOOK_RETRY_SCHEDULE",
        "SENDER_EMAIL",
    },
    "AuthorizerFunction": {"TOKENS_TABLE"},
    "CaptureFunction": set(),
    "MonitorFunction": {"PAYLOADS_BUCKET", "REGISTRY_FILE"},
    "ApprovalsFunction": {
        "REGISTRY_FILE",
        "VERSIONS_TABLE",
        "VERSION_CACHE_SECONDS",
        "APPROVAL_LINK_KEY_ID",
        "CANARY_FAILURE_MARGIN",
        "SENDER_EMAIL",
    },
}

# The one value each variable has, whichever function it is given to (PAYLOADS_BUCKET: the bucket's name).
ENVIRONMENT_VALUES: dict[str, Any] = {
    "PREDICTIONS_TABLE": {"Ref": "PredictionsTable"},
    "IDEMPOTENCY_TABLE": {"Ref": "IdempotencyTable"},
    "UPLOAD_URL_TTL_SECONDS": {"Ref": "UploadUrlTtlSeconds"},
    "REGISTRY_FILE": {"Ref": "RegistryFile"},
    "DEADLINE_QUEUE_URL": {"Ref": "DeadlineQueue"},  # a queue's Ref is its URL
    "DELIVERY_QUEUE_URL": {"Ref": "DeliveryQueue"},
    "WEBHOOK_ALLOWED_NETWORKS": {"Ref": "WebhookAllowedNetworks"},
    "STATE_MACHINE_ARN_PREFIX": {
        "Fn::Sub": "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:stateMachine:chorus-${Stage}-"
    },
    "SUCCESS_TOPIC_ARN": {"Ref": "SuccessTopic"},  # a topic's Ref is its ARN
    "ERROR_TOPIC_ARN": {"Ref": "ErrorTopic"},
    "UPLOAD_DLQ_ARN": {"Fn::GetAtt": ["UploadDLQ", "Arn"]},
    "WEBHOOK_ATTEMPT_SECONDS": {"Ref": "WebhookAttemptSeconds"},
    "WEBHOOK_RETRY_SCHEDULE": {"Ref": "WebhookRetrySchedule"},
    "SENDER_EMAIL": {"Ref": "SenderEmail"},
    "TENANTS_TABLE": {"Ref": "TenantsTable"},
    "TOKENS_TABLE": {"Ref": "TokensTable"},
    "AUDIT_TABLE": {"Ref": "AuditTable"},
    "MAX_WAITS_PER_TENANT": {"Ref": "MaxWaitsPerTenant"},
    "CAPTURE_STREAM": {"Ref": "CaptureStream"},  # a delivery stream's Ref is its name, which PutRecord takes
    "VERSIONS_TABLE": {"Ref": "VersionsTable"},
    "VERSION_CACHE_SECONDS": {"Ref": "VersionCacheSeconds"},
    "APPROVAL_LINK_KEY_ID": {"Fn::GetAtt": ["ApprovalLinkKey", "Arn"]},  # GenerateMac/VerifyMac take the key's ARN
    "CANARY_FAILURE_MARGIN": {"Ref": "CanaryFailureMargin"},
}

# What each AWS-calling definition of the code needs: (action, target) as iam_policies.targets names them.
MISSING_IS_NO_SUCH_KEY = ("s3:ListBucket", "PayloadsBucket")  # see the data capture entries
AWS_CALLS: dict[str, set[tuple[str, str]]] = {
    "chorus.adapters.predictions.find": {("dynamodb:GetItem", "PredictionsTable")},
    "chorus.adapters.predictions.children": {("dynamodb:Query", "PredictionsTable")},  # index by-parent
    "chorus.adapters.listings.list_for_tenant": {("dynamodb:Query", "PredictionsTable")},  # by-tenant, by-parent
    "chorus.adapters.predictions.create": {("dynamodb:PutItem", "PredictionsTable")},
    "chorus.adapters.predictions._update": {("dynamodb:UpdateItem", "PredictionsTable")},
    # A presigned request acts with its signer's permissions.
    "chorus.adapters.payloads.presigned_upload": {("s3:PutObject", "PayloadsBucket")},
    "chorus.adapters.payloads.presigned_download": {("s3:GetObject", "PayloadsBucket")},
    "chorus.adapters.payloads.put_bytes": {("s3:PutObject", "PayloadsBucket")},
    "chorus.adapters.payloads.read_bytes": {("s3:GetObject", "PayloadsBucket")},
    "chorus.adapters.payloads.read_prefix": {("s3:GetObject", "PayloadsBucket")},
    "chorus.adapters.payloads.describe": {("s3:GetObject", "PayloadsBucket")},  # HeadObject needs s3:GetObject
    "chorus.adapters.queues._send": set(),  # the queue is its caller's:
    "chorus.adapters.queues.schedule_deadline": {("sqs:SendMessage", "DeadlineQueue")},
    "chorus.adapters.queues.schedule_delivery": {("sqs:SendMessage", "DeliveryQueue")},
    "chorus.adapters.topics.publish_result": {("sns:Publish", "SuccessTopic"), ("sns:Publish", "ErrorTopic")},
    "chorus.adapters.executions.start": {("states:StartExecution", "states:stateMachine")},
    "chorus.adapters.executions.stop": {("states:StopExecution", "states:execution")},
    "chorus.adapters.executions._send": {("states:SendTaskSuccess", "*"), ("states:SendTaskFailure", "*")},
    "chorus.adapters.endpoints.run_sync": {("sagemaker:InvokeEndpoint", "sagemaker:endpoint")},
    "chorus.adapters.endpoints.invoke_async": {("sagemaker:InvokeEndpointAsync", "sagemaker:endpoint")},
    "chorus.adapters.notifier.send_email": {("ses:SendEmail", "ses:identity")},
    "chorus.adapters.notifier.send_mail": {("ses:SendEmail", "ses:identity")},  # approvers' e-mails
    # Tenants and tokens: the authorizer finds and touches tokens; the rest is `chorus admin`'s.
    "chorus.adapters.tenants.create_tenant": {("dynamodb:PutItem", "TenantsTable")},
    "chorus.adapters.tenants.find_tenant": {("dynamodb:GetItem", "TenantsTable")},
    "chorus.adapters.tenants.list_tenants": {("dynamodb:Scan", "TenantsTable")},
    "chorus.adapters.tenants.update_tenant": {("dynamodb:UpdateItem", "TenantsTable")},
    "chorus.adapters.tenants.rotate_webhook_secret": {("dynamodb:UpdateItem", "TenantsTable")},
    "chorus.adapters.audit.record": {("dynamodb:PutItem", "AuditTable")},
    "chorus.adapters.audit.list_events": {("dynamodb:Query", "AuditTable")},
    "chorus.adapters.tokens.create_token": {("dynamodb:PutItem", "TokensTable")},
    "chorus.adapters.tokens.find_token": {("dynamodb:GetItem", "TokensTable")},
    "chorus.adapters.tokens.list_tokens": {("dynamodb:Scan", "TokensTable")},
    "chorus.adapters.tokens.revoke_token": {("dynamodb:UpdateItem", "TokensTable")},
    "chorus.adapters.tokens.touch_token": {("dynamodb:UpdateItem", "TokensTable")},
    "chorus.adapters.tokens.stamp_usage_key": {("dynamodb:UpdateItem", "TokensTable")},
    # Prefer: wait slots, a lease item per tenant in the tenants table.
    "chorus.adapters.waits._update": {("dynamodb:UpdateItem", "TenantsTable")},
    "chorus.adapters.waits.claim_slot": {("dynamodb:GetItem", "TenantsTable")},
    # Usage plans: `chorus admin` only (with the administrator's own credentials), no function.
    "chorus.adapters.usage_plans.create_plan": {
        ("apigateway:POST", "apigateway:/apikeys"),
        ("apigateway:POST", "apigateway:/usageplans"),
        ("apigateway:POST", "apigateway:/usageplans/*/keys"),
    },
    "chorus.adapters.usage_plans.update_limits": {("apigateway:PATCH", "apigateway:/usageplans/*")},
    "chorus.adapters.usage_plans._unless_gone": {
        ("apigateway:DELETE", "apigateway:/usageplans/*"),
        ("apigateway:DELETE", "apigateway:/usageplans/*/keys/*"),
        ("apigateway:DELETE", "apigateway:/apikeys/*"),
    },
    # Data capture and drift monitoring (the key layout: chorus.adapters.monitoring). A GetObject of a
    # missing key answers NoSuchKey only to a caller that may also s3:ListBucket the bucket, and
    # AccessDenied otherwise; these readers turn NoSuchKey into "none" (an expired payload, a service
    # without a baseline or a report yet), so they need the ListBucket too.
    "chorus.adapters.capture.put": {("firehose:PutRecord", "CaptureStream")},
    "chorus.adapters.monitoring.read_document": {("s3:GetObject", "PayloadsBucket"), MISSING_IS_NO_SUCH_KEY},
    "chorus.adapters.monitoring.write_document": {("s3:PutObject", "PayloadsBucket")},
    "functions.monitor.store.read_object": {("s3:GetObject", "PayloadsBucket"), MISSING_IS_NO_SUCH_KEY},
    "functions.monitor.store.capture_keys": {("s3:ListBucket", "PayloadsBucket")},  # ListObjectsV2
    "functions.monitor.store._write_json": {("s3:PutObject", "PayloadsBucket")},
    # Model versions (adapters/versions.py): routing, versions, trial evidence and history.
    "chorus.adapters.versions.routing": {("dynamodb:GetItem", "VersionsTable")},
    "chorus.adapters.versions.fresh_routing": {("dynamodb:GetItem", "VersionsTable")},
    "chorus.adapters.versions.initialize": {("dynamodb:PutItem", "VersionsTable")},
    "chorus.adapters.versions.next_version_id": {("dynamodb:UpdateItem", "VersionsTable")},
    "chorus.adapters.versions.find": {("dynamodb:GetItem", "VersionsTable")},
    "chorus.adapters.versions.approval": {("dynamodb:GetItem", "VersionsTable")},
    "chorus.adapters.versions.await_decision": {("dynamodb:UpdateItem", "VersionsTable")},
    # TransactWriteItems is authorized per item by the item's own action: its callers write Update
    # (transition, add_candidate) and Put (add_candidate) items, never a ConditionCheck or a Delete.
    "chorus.adapters.versions._transact": {
        ("dynamodb:UpdateItem", "VersionsTable"),
        ("dynamodb:PutItem", "VersionsTable"),
    },
    "chorus.adapters.trial_evidence.record_outcome": {("dynamodb:UpdateItem", "VersionsTable")},
    "chorus.adapters.trial_evidence.append_history": {("dynamodb:PutItem", "VersionsTable")},
    "chorus.adapters.versions.query": {("dynamodb:Query", "VersionsTable")},
    # Approval links: an HMAC made and checked inside KMS with the link key.
    "chorus.adapters.signing.sign": {("kms:GenerateMac", "ApprovalLinkKey")},
    "chorus.adapters.signing.verify": {("kms:VerifyMac", "ApprovalLinkKey")},
    # Version events on the account's default bus (EventBusSettings), named by its ARN.
    "chorus.adapters.bus.publish_version_event": {("events:PutEvents", "events:event-bus")},
    # Registering a version starts its approval: `chorus admin versions register` only (with the
    # administrator's own credentials, APPROVAL_STATE_MACHINE_ARN from the stack's outputs), no function.
    "chorus.adapters.executions.start_approval": {("states:StartExecution", "ApprovalStateMachine")},
    # Powertools idempotency: get, put (conditional), update and delete of its own records.
    "functions.new_prediction.app._submit_once": {
        (f"dynamodb:{verb}", "IdempotencyTable") for verb in ("GetItem", "PutItem", "UpdateItem", "DeleteItem")
    },
}
CLIENT_SERVICES = {"sagemaker-runtime": "sagemaker", "stepfunctions": "states"}

# Branches the static reach follows but the function never takes, each with its reason.
NEVER_TAKEN: dict[str, dict[str, str]] = {}

# Grants wider than the code's calls, accepted on purpose.
ACCEPTED_WIDER_GRANTS = {
    ("NewPredictionFunction", "DynamoDBCrudPolicy", "IdempotencyTable"): (
        "the policy template Powertools idempotency documents; the table holds only short-lived records"
    ),
}

PREDICTIONS_FORBIDDEN = ("dynamodb:Scan", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem")

# What an action on a resource encrypted with the stack's key needs of the key, and the service that
# asks KMS on the caller's behalf (the grant's kms:ViaService). From AWS's documentation: SQS senders
# need GenerateDataKey and Decrypt, receivers Decrypt; SNS publishers both; an S3 PutObject
# GenerateDataKey, a GetObject (a presigned GET included) Decrypt; DynamoDB decrypts the table key
# with the caller's credentials for every item action. HeadObject is granted by s3:GetObject and so
# counts as a read here, although it decrypts nothing. A Firehose PutRecord needs nothing of the key:
# a CUSTOMER_MANAGED_CMK stream encrypts with the grant Firehose creates on the key for itself.
KEY_USES: dict[str, tuple[str, frozenset[str]]] = {
    "sqs:SendMessage": ("sqs", frozenset({"kms:GenerateDataKey", "kms:Decrypt"})),
    "sqs:ReceiveMessage": ("sqs", frozenset({"kms:Decrypt"})),
    "sns:Publish": ("sns", frozenset({"kms:GenerateDataKey", "kms:Decrypt"})),
    "s3:PutObject": ("s3", frozenset({"kms:GenerateDataKey"})),
    "s3:GetObject": ("s3", frozenset({"kms:Decrypt"})),
}
DYNAMODB_KEY_USE = ("dynamodb", frozenset({"kms:Decrypt"}))

# The services the key policy admits, each with why (everything else uses the key through IAM).
KEY_POLICY_SERVICES = {
    "s3.amazonaws.com": "S3 sends upload events to the encrypted UploadQueue",
    "events.amazonaws.com": "EventBridge dead-letters the backstop rule's events to the encrypted NotificationsDLQ",
    "cloudwatch.amazonaws.com": "alarms publish to the encrypted AlarmTopic",
    "logs.${AWS::Region}.${AWS::URLSuffix}": "CloudWatch Logs encrypts the stack's log groups",
}

# --- helpers ------------------------------------------------------------------------------------


@cache
def load_template() -> dict[str, Any]:
    return dict(cfn_yaml.load(str(TEMPLATE)))


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def resources_of(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == resource_type}


def functions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return resources_of(template, "AWS::Serverless::Function")


def function_names() -> list[str]:
    return sorted(functions(load_template()))


def function_property(template: dict[str, Any], function: dict[str, Any], name: str) -> Any:
    """A function's property, falling back to Globals.Function as SAM does."""
    return function["Properties"].get(name, template.get("Globals", {}).get("Function", {}).get(name))


def environment(function: dict[str, Any]) -> dict[str, Any]:
    return dict(function["Properties"].get("Environment", {}).get("Variables", {}))


def ref(value: Any) -> str:
    assert isinstance(value, dict) and set(value) == {"Ref"}, f"expected a !Ref, got {value!r}"
    return str(value["Ref"])


def getatt(value: Any, attribute: str = "Arn") -> str:
    """The logical id in `!GetAtt X.<attribute>`."""
    assert isinstance(value, dict) and set(value) == {"Fn::GetAtt"}, f"expected !GetAtt X.{attribute}, got {value!r}"
    target = value["Fn::GetAtt"]
    name, got = target if isinstance(target, list) else str(target).split(".", 1)
    assert got == attribute, f"expected !GetAtt X.{attribute}, got {value!r}"
    return str(name)


def getatt_arn(value: Any) -> str:
    return getatt(value, "Arn")


def tool(name: str) -> str:
    """A console script from the interpreter's own environment (the project's venv), else PATH."""
    candidate = Path(sys.executable).parent / name
    found = str(candidate) if candidate.exists() else shutil.which(name)
    assert found, f"{name} is not installed"
    return found


def tool_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(SAM_CLI_TELEMETRY="0", AWS_DEFAULT_REGION="us-east-1")
    # `sam build` looks for the runtime's interpreter (python3.11) on PATH.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def app_of(template: dict[str, Any], function: str) -> str:
    """The module of a function's handler: `functions.<folder>.app`, or the module its Handler names."""
    resource = template["Resources"][function]
    handler = str(function_property(template, resource, "Handler"))
    return iam_code.handler_module(str(resource["Properties"]["CodeUri"]), handler)


def never_taken(function: str) -> frozenset[str]:
    return frozenset(NEVER_TAKEN.get(function, {}))


def settings_classes() -> dict[str, type[chorus_settings._Settings]]:
    return {
        name: cls
        for name, cls in vars(chorus_settings).items()
        if inspect.isclass(cls) and issubclass(cls, chorus_settings._Settings) and name.endswith("Settings")
    }


def fields(class_names: set[str] | frozenset[str]) -> set[str]:
    classes = settings_classes()
    return {name for c in class_names for name in classes[c].model_fields}


def required_fields(class_names: set[str] | frozenset[str]) -> set[str]:
    classes = settings_classes()
    return {name for c in class_names for name, info in classes[c].model_fields.items() if info.is_required()}


def property_fields(cls: type) -> dict[str, set[str]]:
    """Each property of a settings class -> the fields it reads (`self.<field>`)."""
    found: dict[str, set[str]] = {}
    own = [k for k in cls.__mro__ if k.__module__ == chorus_settings.__name__]
    for name, member in ((n, m) for k in own for n, m in vars(k).items() if isinstance(m, property)):
        tree = ast.parse(textwrap.dedent(inspect.getsource(member.fget)))
        found[name] = {
            node.attr
            for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self"
        }
    return found


def data_needs(template: dict[str, Any], function: str) -> set[tuple[str, str]]:
    """(action, target) pairs of a function's code's AWS calls, and what Lambda does with its role on
    its behalf (sending to its on-failure destination)."""
    reached = iam_code.reach(app_of(template, function), never_taken(function))
    needs = {need for name in reached if name not in never_taken(function) for need in AWS_CALLS.get(name, set())}
    properties = template["Resources"][function]["Properties"]
    on_failure = properties.get("EventInvokeConfig", {}).get("DestinationConfig", {}).get("OnFailure")
    if on_failure and on_failure["Type"] == "SQS":
        needs.add(("sqs:SendMessage", getatt_arn(on_failure["Destination"])))
    return needs


def uses_stack_key(value: Any) -> bool:
    """Whether a resource's properties name the stack's key anywhere."""
    if is_stack_key(value):
        return True
    if isinstance(value, dict):
        return any(uses_stack_key(v) for v in value.values())
    if isinstance(value, list):
        return any(uses_stack_key(v) for v in value)
    return False


def key_use(action: str) -> tuple[str, frozenset[str]] | None:
    if action.startswith("dynamodb:"):
        return DYNAMODB_KEY_USE
    return KEY_USES.get(action)


def key_needs_of(template: dict[str, Any], uses: set[tuple[str, str]]) -> dict[str, set[str]]:
    """kms action -> the services it is needed through, for (action, target) uses of the stack's resources."""
    needs: dict[str, set[str]] = {}
    for action, target in uses:
        use = key_use(action)
        resource = template["Resources"].get(target)
        if use is None or resource is None or not uses_stack_key(resource.get("Properties", {})):
            continue
        service, kms_actions = use
        for kms_action in kms_actions:
            needs.setdefault(kms_action, set()).add(service)
    return needs


def key_needs(template: dict[str, Any], function: str) -> dict[str, set[str]]:
    """What a function needs of the stack's key: for its code's calls, and for the queues Lambda
    receives from with its role (its SQS event sources)."""
    receives = {
        ("sqs:ReceiveMessage", getatt_arn(event["Properties"]["Queue"]))
        for event in template["Resources"][function]["Properties"].get("Events", {}).values()
        if event["Type"] == "SQS"
    }
    return key_needs_of(template, data_needs(template, function) | receives)


def code_needs(template: dict[str, Any], function: str) -> set[tuple[str, str]]:
    """(action, target) pairs a function needs: its data needs and the stack key's actions they need."""
    return data_needs(template, function) | {(a, STACK_KEY_TARGET) for a in key_needs(template, function)}


def key_grants(template: dict[str, Any], owner: str) -> dict[str, set[str]]:
    """kms action -> the services (kms:ViaService) an owner may use the stack's key through."""
    found: dict[str, set[str]] = {}
    for grant in grants(template):
        if grant.owner != owner or not grant.allows or not any(is_stack_key(r) for r in grant.resources):
            continue
        assert len(grant.resources) == 1, f"{owner}: the stack's key has a statement of its own"
        condition = grant.statement.get("Condition", {})
        assert set(condition) == {"StringEquals"} and set(condition["StringEquals"]) == {"kms:ViaService"}, (
            f"{owner}: a grant on the stack's key is conditioned on kms:ViaService (and only on it)"
        )
        services = set()
        for via in as_list(condition["StringEquals"]["kms:ViaService"]):
            text = via["Fn::Sub"]
            assert re.fullmatch(r"[a-z0-9-]+\.\$\{AWS::Region\}\.\$\{AWS::URLSuffix\}", text), text
            services.add(text.split(".", 1)[0])
        for action in grant.actions:
            found.setdefault(action, set()).update(services)
    return found


def granted(template: dict[str, Any], owner: str) -> list[tuple[str, str, Grant]]:
    """(action pattern, target, grant) of every Allow statement an owner holds."""
    return [
        (action, target, grant)
        for grant in grants(template)
        if grant.owner == owner and grant.allows
        for resource in grant.resources
        for target in targets(template, resource)
        for action in grant.actions
    ]


def covers(patterns: list[tuple[str, str, Grant]], action: str, target: str) -> bool:
    return any(matches(p, action) and t in (target, "*") for p, t, _ in patterns)


# --- functions ----------------------------------------------------------------------------------


def test_every_function_logs_to_its_own_group_with_retention(template: dict[str, Any]) -> None:
    # Given the functions and the log groups of the template
    log_groups = resources_of(template, "AWS::Logs::LogGroup")
    used: list[str] = []
    for name, function in functions(template).items():
        # When the function's logging configuration is resolved
        group = ref(function["Properties"]["LoggingConfig"]["LogGroup"])
        # Then it names a log group of the stack that keeps logs for a bounded time
        assert group in log_groups, f"{name} logs to {group}, not a log group of the stack"
        assert log_groups[group]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}, name
        # And the group is the one Lambda would name after the function
        function_name = function["Properties"]["FunctionName"]["Fn::Sub"]
        assert log_groups[group]["Properties"]["LogGroupName"] == {"Fn::Sub": f"/aws/lambda/{function_name}"}, name
        used.append(group)
    assert len(used) == len(set(used)), "two functions share a log group"


def test_every_log_group_has_retention(template: dict[str, Any]) -> None:
    for name, group in resources_of(template, "AWS::Logs::LogGroup").items():
        assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}, name


def test_every_function_handler_is_a_handler_of_a_module_of_its_existing_code_folder(template: dict[str, Any]) -> None:
    handlers = []
    for name, function in functions(template).items():
        code = ROOT / function["Properties"]["CodeUri"]
        assert code.is_dir(), f"{name}: CodeUri {code} does not exist"
        assert str(function["Properties"]["CodeUri"]).startswith("functions/"), name
        # app.handler, or the `handler` of another module of the same folder (the capture
        # transformation shares the monitor's package, and numpy/scipy/Pillow with it)
        handler = str(function_property(template, function, "Handler"))
        module, _, attribute = handler.rpartition(".")
        assert re.fullmatch(r"[a-z_]+", module) and attribute == "handler", f"{name}: Handler {handler}"
        assert (code / f"{module}.py").is_file(), f"{name}: no {module}.py in {code}"
        definition = iam_code.load_module(app_of(template, name)).definitions.get("handler")
        assert isinstance(definition, ast.FunctionDef), f"{name}: {module}.py defines no top-level handler"
        handlers.append((str(function["Properties"]["CodeUri"]), handler))
    assert len(handlers) == len(set(handlers)), "two functions run the same handler"


def test_functions_share_the_layer_runtime_and_tracing(template: dict[str, Any]) -> None:
    layer = resources_of(template, "AWS::Serverless::LayerVersion")["ChorusLayer"]
    for name, function in functions(template).items():
        assert function_property(template, function, "Layers") == [{"Ref": "ChorusLayer"}], name
        assert function_property(template, function, "Runtime") in layer["Properties"]["CompatibleRuntimes"], name
        assert function_property(template, function, "Tracing") == "Active", name
        architectures = function_property(template, function, "Architectures")
        assert architectures == layer["Properties"]["CompatibleArchitectures"], name
        assert architectures == [layer["Metadata"]["BuildArchitecture"]], name


# --- environment --------------------------------------------------------------------------------


def test_globals_set_only_the_powertools_variables_and_log_level(template: dict[str, Any]) -> None:
    assert template["Globals"]["Function"]["Environment"]["Variables"] == GLOBAL_ENVIRONMENT


def test_the_tables_cover_exactly_the_functions_of_the_template(template: dict[str, Any]) -> None:
    assert set(FUNCTION_SETTINGS) == set(FUNCTION_ENVIRONMENT) == set(functions(template))
    assert set(NEVER_TAKEN) <= set(functions(template))


def test_settings_are_read_from_variables_named_after_their_fields() -> None:
    # The rule "variable = upper-cased field" holds only without prefixes or aliases.
    classes = settings_classes()
    assert set().union(*FUNCTION_SETTINGS.values()) <= set(classes)
    for name, cls in classes.items():
        assert not cls.model_config.get("env_prefix"), name
        assert cls.model_config.get("case_sensitive") in (None, False), name
        for field, info in cls.model_fields.items():
            assert info.alias is None and info.validation_alias is None, f"{name}.{field}"


@pytest.mark.parametrize("function", function_names())
def test_function_settings_table_is_what_the_code_loads(template: dict[str, Any], function: str) -> None:
    # Given the function's code, followed from its app.py
    app = app_of(template, function)
    # When the settings classes it can load are collected (branches it never takes left out)
    loaded = iam_code.settings_loaded(app, never_taken(function))
    # Then they are the table's, and every branch left out is one the code really has
    assert loaded == FUNCTION_SETTINGS[function]
    assert never_taken(function) <= iam_code.reach(app)


@pytest.mark.parametrize("function", function_names())
def test_function_environment_is_exactly_its_table_entry(template: dict[str, Any], function: str) -> None:
    assert set(environment(template["Resources"][function])) == FUNCTION_ENVIRONMENT[function]


@pytest.mark.parametrize("function", function_names())
def test_function_environment_fits_its_settings(function: str) -> None:
    # Given the settings the function loads and the variables it is given
    classes = FUNCTION_SETTINGS[function]
    given = {name.lower() for name in FUNCTION_ENVIRONMENT[function]}
    # Then every required field is given (or loading the settings fails), and nothing else is
    assert required_fields(classes) <= given, f"{function} lacks {sorted(required_fields(classes) - given)}"
    assert given <= fields(classes), (
        f"{function} is given {sorted(given - fields(classes))}, read by none of its settings"
    )


def test_every_environment_variable_is_a_field_of_some_settings_class(template: dict[str, Any]) -> None:
    known = fields(frozenset(settings_classes()))
    for name, function in functions(template).items():
        unread = {v for v in environment(function) if v.lower() not in known}
        assert unread == set(), f"{name} sets {sorted(unread)}, which no settings class reads"


def test_every_configured_setting_reaches_every_function_that_reads_it(template: dict[str, Any]) -> None:
    # A field the stack configures somewhere must be configured wherever it is read: a function
    # left without it would silently use the default instead of the operator's value.
    configured = {v.lower() for f in functions(template).values() for v in environment(f)}
    classes = settings_classes()
    for function in functions(template):
        app = app_of(template, function)
        read = iam_code.attributes_read(app, never_taken(function))
        for cls_name in FUNCTION_SETTINGS[function]:
            cls = classes[cls_name]
            used = {f for f in cls.model_fields if f in read}
            used |= {f for prop, reads in property_fields(cls).items() if prop in read for f in reads}
            missing = {f.upper() for f in used & configured} - FUNCTION_ENVIRONMENT[function]
            assert missing == set(), f"{function} reads {sorted(missing)} ({cls_name}) without being given it"


def test_the_webhook_secret_itself_is_never_an_environment_variable(template: dict[str, Any]) -> None:
    for name, function in functions(template).items():
        assert "WEBHOOK_SECRET" not in environment(function), name  # tenants' secrets live in TenantsTable


def test_every_variable_has_its_one_value(template: dict[str, Any]) -> None:
    expected = {**ENVIRONMENT_VALUES, "PAYLOADS_BUCKET": {"Fn::Sub": bucket_name(template)}}
    for name, function in functions(template).items():
        for variable, value in environment(function).items():
            assert value == expected[variable], f"{name}.{variable}"


def test_parameters_passed_to_settings_are_valid_settings_at_their_default_and_bounds(
    template: dict[str, Any],
) -> None:
    classes = settings_classes()
    owner = {field: cls for cls in classes.values() for field in cls.model_fields}
    for variable, value in ENVIRONMENT_VALUES.items():
        parameter = template["Parameters"].get(value.get("Ref", ""))
        if parameter is None:
            continue
        cls = owner[variable.lower()]
        dummies = {f: "x" for f, info in cls.model_fields.items() if info.is_required() and f != variable.lower()}
        for key in ("Default", "MinValue", "MaxValue"):
            if key in parameter:
                cls(**dummies, **{variable.lower(): parameter[key]})  # raises if the settings refuse it


def test_a_webhook_attempt_fits_in_one_invocation(template: dict[str, Any]) -> None:
    timeout = int(template["Resources"]["DeliveriesFunction"]["Properties"]["Timeout"])
    assert int(template["Parameters"]["WebhookAttemptSeconds"]["MaxValue"]) < timeout


def test_the_state_machine_prefix_names_this_stage_state_machines(template: dict[str, Any]) -> None:
    # The prefix plus an ensemble name is that ensemble's state machine ARN.
    prefix = ENVIRONMENT_VALUES["STATE_MACHINE_ARN_PREFIX"]["Fn::Sub"]
    for name, machine in resources_of(template, "AWS::Serverless::StateMachine").items():
        assert machine["Properties"]["Name"]["Fn::Sub"].startswith(prefix.rsplit(":", 1)[1]), name


# --- asynchronous paths and dead-letter queues --------------------------------------------------


def dead_letter_references(value: Any) -> Iterator[Any]:
    """Every dead-letter target named anywhere in a resource: SQS redrive policies, Lambda
    on-failure destinations and dead-letter queues, rule targets' and subscriptions' DLQs."""
    if isinstance(value, dict):
        for key, inner in value.items():
            if key in ("deadLetterTargetArn",):
                yield inner
            elif key == "DeadLetterConfig" and isinstance(inner, dict) and "Arn" in inner:
                yield inner["Arn"]
            elif key == "OnFailure" and isinstance(inner, dict) and "Destination" in inner:
                yield inner["Destination"]
            elif key == "DeadLetterQueue" and isinstance(inner, dict):
                yield inner["TargetArn"]
            else:
                yield from dead_letter_references(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from dead_letter_references(inner)


def dead_letter_queues(template: dict[str, Any]) -> set[str]:
    queues = resources_of(template, "AWS::SQS::Queue")
    found = {getatt_arn(r) for resource in template["Resources"].values() for r in dead_letter_references(resource)}
    assert found <= set(queues), f"dead letters go to {sorted(found - set(queues))}, not queues of the stack"
    return found


def queue_consumers() -> list[tuple[str, str]]:
    template = load_template()
    return sorted(
        (name, getatt_arn(event["Properties"]["Queue"]))
        for name, function in functions(template).items()
        for event in function["Properties"].get("Events", {}).values()
        if event["Type"] == "SQS"
    )


def test_the_stack_has_the_dead_letter_queues_it_alarms_on(template: dict[str, Any]) -> None:
    assert dead_letter_queues(template) == {"UploadDLQ", "NotificationsDLQ", "DeliveryDLQ"}


def test_every_queue_that_is_not_a_dead_letter_queue_redrives_to_one(template: dict[str, Any]) -> None:
    dlqs = dead_letter_queues(template)
    for name, queue in resources_of(template, "AWS::SQS::Queue").items():
        if name in dlqs:
            continue
        redrive = queue["Properties"].get("RedrivePolicy")
        assert redrive, f"{name} is no dead-letter queue and has no RedrivePolicy"
        assert getatt_arn(redrive["deadLetterTargetArn"]) in dlqs, name
        assert int(redrive["maxReceiveCount"]) >= 5, name


def test_every_queue_feeding_a_function_reports_batch_item_failures(template: dict[str, Any]) -> None:
    for name, function in functions(template).items():
        for event in function["Properties"].get("Events", {}).values():
            if event["Type"] == "SQS":
                # Failed records are retried one by one, not with the whole batch
                assert event["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"], name


def test_every_dead_letter_queue_keeps_messages_for_fourteen_days(template: dict[str, Any]) -> None:
    for name in dead_letter_queues(template):
        assert template["Resources"][name]["Properties"]["MessageRetentionPeriod"] == 1209600, name


def test_every_queue_is_encrypted_with_the_stack_key(template: dict[str, Any]) -> None:
    for name, queue in resources_of(template, "AWS::SQS::Queue").items():
        properties = queue["Properties"]
        assert is_stack_key(properties.get("KmsMasterKeyId")), name
        assert "SqsManagedSseEnabled" not in properties, name  # SSE-SQS and SSE-KMS exclude each other
        # SQS's bounds; a longer reuse means fewer KMS calls (one per sender and receiver per period)
        assert 60 <= int(properties["KmsDataKeyReusePeriodSeconds"]) <= 86400, name


def _visibility_cases() -> list[Any]:
    cases = []
    for function, queue in queue_consumers():
        marks: list[Any] = []
        cases.append(pytest.param(function, queue, marks=marks, id=f"{function}-{queue}"))
    return cases


@pytest.mark.parametrize(("function", "queue"), _visibility_cases())
def test_queue_visibility_is_at_least_six_times_the_consumer_timeout(
    template: dict[str, Any], function: str, queue: str
) -> None:
    # Lambda refuses a queue whose visibility is below the function timeout; AWS advises 6 times it.
    timeout = int(function_property(template, template["Resources"][function], "Timeout"))
    visibility = int(template["Resources"][queue]["Properties"].get("VisibilityTimeout", 30))  # SQS default
    assert visibility >= 6 * timeout, f"{queue}: {visibility} s < 6 x {function}'s {timeout} s"


def asynchronously_invoked(template: dict[str, Any]) -> set[str]:
    """Functions some service invokes asynchronously: SNS, S3 and schedule events, rule targets,
    and functions a permission lets events, SNS or S3 invoke."""
    found = set()
    for name, function in functions(template).items():
        events = {e["Type"] for e in function["Properties"].get("Events", {}).values()}
        if events & {"SNS", "S3", "EventBridgeRule", "CloudWatchEvent", "Schedule", "ScheduleV2"}:
            found.add(name)
    for rule in resources_of(template, "AWS::Events::Rule").values():
        found |= {getatt_arn(t["Arn"]) for t in rule["Properties"]["Targets"] if "Arn" in t} & set(functions(template))
    for permission in resources_of(template, "AWS::Lambda::Permission").values():
        principal = str(permission["Properties"]["Principal"])
        if principal.split(".")[0] in ("events", "sns", "s3"):
            found.add(ref(permission["Properties"]["FunctionName"]))
    return found


# Asynchronously invoked functions whose invocations that fail for good are dropped on purpose, with why.
NO_ON_FAILURE_DESTINATION = {
    # EventBridge Scheduler's runs: a failed run is alarmed (its Errors alarm) and the next run
    # judges the next window; a dead letter would hold only a schedule's fixed input, nothing to replay.
    "MonitorFunction": "a failed scheduled run is alarmed and the next run judges the next window",
}


def test_every_asynchronously_invoked_function_has_an_on_failure_destination(template: dict[str, Any]) -> None:
    queues = resources_of(template, "AWS::SQS::Queue")
    invoked = asynchronously_invoked(template)
    assert "NotificationsFunction" in invoked
    assert set(NO_ON_FAILURE_DESTINATION) <= invoked
    for name in invoked:
        config = template["Resources"][name]["Properties"]["EventInvokeConfig"]
        assert 0 <= int(config["MaximumRetryAttempts"]) <= 2, name
        if name in NO_ON_FAILURE_DESTINATION:
            # not retried, no destination, and its errors alarmed
            assert int(config["MaximumRetryAttempts"]) == 0, name
            assert "DestinationConfig" not in config, name
            assert len(alarms_on(template, "AWS/Lambda", "Errors", "FunctionName", {"Ref": name})) == 1, name
            continue
        on_failure = config["DestinationConfig"]["OnFailure"]
        assert on_failure["Type"] == "SQS", name
        assert getatt_arn(on_failure["Destination"]) in queues, name


def test_no_function_uses_sam_event_rules_which_create_their_own_dead_letter_queue(template: dict[str, Any]) -> None:
    # SAM's EventBridgeRule event ignores DeadLetterConfig.Destination and creates an unalarmed,
    # unencrypted queue; rules are written as AWS::Events::Rule with the stack's own queue.
    for name, function in functions(template).items():
        for event_name, event in function["Properties"].get("Events", {}).items():
            assert event["Type"] not in ("EventBridgeRule", "CloudWatchEvent"), f"{name}.{event_name}"


def test_the_ensemble_ended_rule_dead_letters_to_the_notifications_dlq(template: dict[str, Any]) -> None:
    rule = template["Resources"]["EnsembleEndedRule"]
    assert rule["Type"] == "AWS::Events::Rule"
    (target,) = rule["Properties"]["Targets"]
    assert getatt_arn(target["Arn"]) == "NotificationsFunction"
    assert getatt_arn(target["DeadLetterConfig"]["Arn"]) == "NotificationsDLQ"
    assert int(target["RetryPolicy"]["MaximumRetryAttempts"]) >= 1
    # Only this stage's ensembles, and only the ends they did not report themselves
    pattern = rule["Properties"]["EventPattern"]
    assert pattern["source"] == ["aws.states"]
    assert pattern["detail-type"] == ["Step Functions Execution Status Change"]
    assert set(pattern["detail"]["status"]) == {"FAILED", "TIMED_OUT", "ABORTED"}
    assert pattern["detail"]["stateMachineArn"] == [{"prefix": ENVIRONMENT_VALUES["STATE_MACHINE_ARN_PREFIX"]}]


@pytest.mark.parametrize("rule", sorted(resources_of(load_template(), "AWS::Events::Rule")))
def test_every_rule_target_retries_and_dead_letters_where_only_that_rule_may_send(
    template: dict[str, Any], rule: str
) -> None:
    for target in template["Resources"][rule]["Properties"]["Targets"]:
        # Given a rule target with its retry policy and dead-letter queue
        assert "RetryPolicy" in target, f"{rule}: {target['Id']}"
        dlq = getatt_arn(target["DeadLetterConfig"]["Arn"])
        # Then a queue policy lets EventBridge send to that queue, for this rule only
        allowing = [
            s
            for policy in resources_of(template, "AWS::SQS::QueuePolicy").values()
            if {"Ref": dlq} in policy["Properties"]["Queues"]
            for s in policy["Properties"]["PolicyDocument"]["Statement"]
            if s["Effect"] == "Allow" and s.get("Principal") == {"Service": "events.amazonaws.com"}
        ]
        assert allowing, f"no queue policy lets events.amazonaws.com send to {dlq}"
        for statement in allowing:
            assert as_list(statement["Action"]) == ["sqs:SendMessage"]
            assert statement["Resource"] == {"Fn::GetAtt": [dlq, "Arn"]}
            condition = statement["Condition"]
            (operator,) = condition
            assert operator in ("ArnEquals", "ArnLike")
            assert condition[operator] == {"aws:SourceArn": {"Fn::GetAtt": [rule, "Arn"]}}
        # And the target function may be invoked by this rule only
        if getatt_arn(target["Arn"]) in functions(template):
            permissions = [
                p["Properties"]
                for p in resources_of(template, "AWS::Lambda::Permission").values()
                if p["Properties"]["FunctionName"] == {"Ref": getatt_arn(target["Arn"])}
            ]
            assert [p["Principal"] for p in permissions] == ["events.amazonaws.com"]
            assert [p["SourceArn"] for p in permissions] == [{"Fn::GetAtt": [rule, "Arn"]}]


def test_resource_policies_admit_no_anonymous_principal(template: dict[str, Any]) -> None:
    account = {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}}
    for owner, statement in resource_policy_statements(template):
        if statement["Effect"] == "Allow":
            assert statement.get("Principal") not in ("*", {"AWS": "*"}), owner
            if statement.get("Principal") == account:
                continue  # the account itself, which delegates through IAM (the key policy)
            assert "Condition" in statement, f"{owner}: a service principal without a source condition"


# --- alarms -------------------------------------------------------------------------------------


def alarms(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: a["Properties"] for name, a in resources_of(template, "AWS::CloudWatch::Alarm").items()}


def alarms_on(template: dict[str, Any], namespace: str, metric: str, dimension: str, value: Any) -> list[str]:
    return [
        name
        for name, alarm in alarms(template).items()
        if alarm.get("Namespace") == namespace
        and alarm.get("MetricName") == metric
        and alarm.get("Dimensions") == [{"Name": dimension, "Value": value}]
    ]


def fires_on_the_first(alarm: dict[str, Any]) -> bool:
    return (
        alarm["ComparisonOperator"] == "GreaterThanThreshold"
        and float(alarm["Threshold"]) == 0
        and int(alarm["EvaluationPeriods"]) == 1
        and alarm.get("TreatMissingData") == "notBreaching"
    )


# Functions whose Errors alarm is metric math: (errors) - (the expected errors the code counts).
EXPECTED_ERRORS = {
    # A refused token raises "Unauthorized" (API Gateway's 401 contract); Lambda counts it as an error.
    "AuthorizerFunction": ({"Fn::Sub": "Chorus/${Stage}"}, "TokensRefused"),
}


def math_alarms_on(template: dict[str, Any], function: str) -> list[str]:
    """Alarms on `errors - FILL(<expected>, 0)`: the function's Errors less the errors its code counts."""
    found = []
    for name, alarm in alarms(template).items():
        stats = {m["Id"]: m["MetricStat"] for m in alarm.get("Metrics", []) if "MetricStat" in m}
        returned = [m for m in alarm.get("Metrics", []) if m.get("ReturnData", True)]
        if "errors" not in stats or len(stats) != 2 or len(returned) != 1:
            continue
        ((expected_id, expected),) = ((i, m) for i, m in stats.items() if i != "errors")
        errors = stats["errors"]
        if (
            errors["Metric"]
            == {
                "Namespace": "AWS/Lambda",
                "MetricName": "Errors",
                "Dimensions": [{"Name": "FunctionName", "Value": {"Ref": function}}],
            }
            and (expected["Metric"]["Namespace"], expected["Metric"]["MetricName"]) == EXPECTED_ERRORS[function]
            and errors["Stat"] == expected["Stat"] == "Sum"
            and errors["Period"] == expected["Period"]
            and returned[0].get("Expression") == f"errors - FILL({expected_id}, 0)"
        ):
            found.append(name)
    return found


def test_expected_errors_are_counted_by_the_code_with_the_service_dimension(template: dict[str, Any]) -> None:
    namespace = template["Globals"]["Function"]["Environment"]["Variables"]["POWERTOOLS_METRICS_NAMESPACE"]
    service = template["Globals"]["Function"]["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"]
    for function, (metric_namespace, metric) in EXPECTED_ERRORS.items():
        assert metric_namespace == namespace, function
        # the code adds the metric (Powertools flushes it even when the handler raises)
        code = "\n".join(p.read_text() for p in (ROOT / "layers" / "chorus" / "chorus").rglob("*.py"))
        assert f'add_metric(name="{metric}"' in code, metric
        (alarm,) = math_alarms_on(template, function)
        stats = [m["MetricStat"]["Metric"] for m in alarms(template)[alarm]["Metrics"] if "MetricStat" in m]
        dimensions = [m["Dimensions"] for m in stats if m["MetricName"] == metric]
        assert dimensions == [[{"Name": "service", "Value": service}]], alarm


@pytest.mark.parametrize("metric", ["Errors", "Throttles"])
def test_every_function_has_an_errors_and_a_throttles_alarm(template: dict[str, Any], metric: str) -> None:
    for name in functions(template):
        if metric == "Errors" and name in EXPECTED_ERRORS:
            (found_math,) = math_alarms_on(template, name)
            assert fires_on_the_first(alarms(template)[found_math]), found_math
            assert alarms_on(template, "AWS/Lambda", metric, "FunctionName", {"Ref": name}) == []
            continue
        found = alarms_on(template, "AWS/Lambda", metric, "FunctionName", {"Ref": name})
        assert len(found) == 1, f"{name}: {metric} alarms {found}"
        alarm = alarms(template)[found[0]]
        assert alarm["Statistic"] == "Sum" and fires_on_the_first(alarm), found[0]


@pytest.mark.parametrize("metric", ["ExecutionsFailed", "ExecutionsTimedOut"])
def test_every_state_machine_has_a_failed_and_a_timed_out_alarm(template: dict[str, Any], metric: str) -> None:
    machines = resources_of(template, "AWS::Serverless::StateMachine")
    assert machines
    for name in machines:
        found = alarms_on(template, "AWS/States", metric, "StateMachineArn", {"Ref": name})
        assert len(found) == 1, f"{name}: {metric} alarms {found}"
        alarm = alarms(template)[found[0]]
        assert alarm["Statistic"] == "Sum" and fires_on_the_first(alarm), found[0]


def test_every_dead_letter_queue_has_a_depth_and_an_age_alarm(template: dict[str, Any]) -> None:
    for name in dead_letter_queues(template):
        value = {"Fn::GetAtt": [name, "QueueName"]}
        (depth,) = alarms_on(template, "AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", value)
        assert alarms(template)[depth]["Statistic"] == "Maximum" and fires_on_the_first(alarms(template)[depth])
        (age,) = alarms_on(template, "AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", value)
        # The age alarm fires long before SQS drops the message.
        retention = int(template["Resources"][name]["Properties"]["MessageRetentionPeriod"])
        assert 0 < float(alarms(template)[age]["Threshold"]) <= retention / 2, age
        assert alarms(template)[age]["ComparisonOperator"] == "GreaterThanThreshold", age


# Queues a function consumes whose oldest message's age is alarmed, with the threshold's reason;
# the others, with why not.
QUEUE_AGE_ALARMS = {
    "UploadQueue": 900,  # an input waiting 15 minutes: a backlog, or a message failing and retried
    "DeliveryQueue": 1800,  # attempts wait up to 15 minutes by design (the retry schedule)
}
NO_QUEUE_AGE_ALARM = {
    # Its messages wait for their deadlines by design (delayed, re-queued every 15 minutes); one that
    # fails five times reaches UploadDLQ, which is alarmed.
    "DeadlineQueue",
}


def test_every_consumed_queue_has_an_age_alarm_or_a_reason_not_to(template: dict[str, Any]) -> None:
    dlqs = dead_letter_queues(template)
    consumed = {queue for _, queue in queue_consumers()} - dlqs
    assert consumed == set(QUEUE_AGE_ALARMS) | NO_QUEUE_AGE_ALARM
    for name, threshold in QUEUE_AGE_ALARMS.items():
        value = {"Fn::GetAtt": [name, "QueueName"]}
        (age,) = alarms_on(template, "AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", value)
        alarm = alarms(template)[age]
        assert (alarm["Statistic"], float(alarm["Threshold"])) == ("Maximum", threshold), age
        assert alarm["ComparisonOperator"] == "GreaterThanThreshold", age
        # well before SQS would drop the message
        assert threshold <= int(template["Resources"][name]["Properties"]["MessageRetentionPeriod"]) / 2, age
    for name in NO_QUEUE_AGE_ALARM:
        value = {"Fn::GetAtt": [name, "QueueName"]}
        assert alarms_on(template, "AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", value) == [], name


def test_the_api_has_a_5xx_alarm(template: dict[str, Any]) -> None:
    api_name = template["Resources"]["ChorusApi"]["Properties"]["Name"]
    (found,) = alarms_on(template, "AWS/ApiGateway", "5XXError", "ApiName", api_name)
    assert alarms(template)[found]["Statistic"] == "Sum" and fires_on_the_first(alarms(template)[found])


def test_every_alarm_notifies_the_alarm_topic(template: dict[str, Any]) -> None:
    assert template["Resources"]["AlarmTopic"]["Type"] == "AWS::SNS::Topic"
    for name, alarm in alarms(template).items():
        assert {"Ref": "AlarmTopic"} in alarm.get("AlarmActions", []), name


def test_the_alarm_email_subscribes_to_the_alarm_topic_when_given(template: dict[str, Any]) -> None:
    (subscription,) = resources_of(template, "AWS::SNS::Subscription").values()
    assert subscription["Condition"] == "HasAlarmEmail"
    assert template["Conditions"]["HasAlarmEmail"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]}
    assert subscription["Properties"] == {
        "TopicArn": {"Ref": "AlarmTopic"},
        "Protocol": "email",
        "Endpoint": {"Ref": "AlarmEmail"},
    }


# --- state machines -----------------------------------------------------------------------------


# State machines written by hand, not compiled from the registry's ensembles, each with what it is.
HAND_WRITTEN_STATE_MACHINES = {
    "ApprovalStateMachine": "a model version's approval workflow (statemachines/versions/approval.asl.json)",
}


def asl_files() -> list[Path]:
    """The compiled ensembles' definitions (statemachines/*.asl.json; hand-written ones live below)."""
    return sorted(STATE_MACHINES.glob("*.asl.json"))


def state_machines_by_file(template: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    return {
        str(r["Properties"]["DefinitionUri"]): (name, r)
        for name, r in resources_of(template, "AWS::Serverless::StateMachine").items()
    }


def test_every_compiled_ensemble_is_deployed_as_a_named_standard_state_machine(template: dict[str, Any]) -> None:
    deployed = state_machines_by_file(template)
    assert asl_files(), "no statemachines/*.asl.json"
    for path in asl_files():
        relative = path.relative_to(ROOT).as_posix()
        assert relative in deployed, f"{relative} has no AWS::Serverless::StateMachine"
        name, machine = deployed[relative]
        ensemble = path.name.removesuffix(".asl.json")
        expected_id = "".join(part.title() for part in ensemble.split("-")) + "StateMachine"
        assert name == expected_id
        assert machine["Properties"]["Type"] == "STANDARD", name  # Express has no .waitForTaskToken
        assert machine["Properties"]["Name"] == {"Fn::Sub": f"chorus-${{Stage}}-{ensemble}"}, name


def test_every_state_machine_file_exists(template: dict[str, Any]) -> None:
    for uri in state_machines_by_file(template):
        assert (ROOT / uri).is_file(), uri


@pytest.mark.parametrize("path", asl_files(), ids=lambda p: p.name)
def test_asl_placeholders_and_definition_substitutions_match(template: dict[str, Any], path: Path) -> None:
    # Given a compiled ensemble and the state machine that deploys it
    deployed = state_machines_by_file(template)
    relative = path.relative_to(ROOT).as_posix()
    assert relative in deployed, f"{relative} has no AWS::Serverless::StateMachine"
    _, machine = deployed[relative]
    json.loads(path.read_text())  # valid JSON
    # When its ${...} placeholders are collected
    placeholders = set(re.findall(r"\$\{([^}]+)\}", path.read_text()))
    # Then each has a substitution, and each substitution is used
    assert placeholders == set(machine["Properties"]["DefinitionSubstitutions"])


def test_hand_written_state_machines_are_named_standard_machines_whose_placeholders_are_substituted(
    template: dict[str, Any],
) -> None:
    machines = resources_of(template, "AWS::Serverless::StateMachine")
    assert set(HAND_WRITTEN_STATE_MACHINES) <= set(machines)
    for name in HAND_WRITTEN_STATE_MACHINES:
        properties = machines[name]["Properties"]
        path = ROOT / str(properties["DefinitionUri"])
        assert path.parent != STATE_MACHINES, f"{name}: not among the compiled ensembles' files"
        json.loads(path.read_text())  # valid JSON
        assert properties["Type"] == "STANDARD", name  # waits on a task token for days
        assert properties["Name"]["Fn::Sub"].startswith("chorus-${Stage}-"), name
        placeholders = set(re.findall(r"\$\{([^}]+)\}", path.read_text()))
        assert placeholders == set(properties["DefinitionSubstitutions"]), name


def test_state_machines_trace_and_log_without_execution_data(template: dict[str, Any]) -> None:
    log_groups = resources_of(template, "AWS::Logs::LogGroup")
    for name, machine in resources_of(template, "AWS::Serverless::StateMachine").items():
        properties = machine["Properties"]
        assert properties["Tracing"] == {"Enabled": True}, name
        logging = properties["Logging"]
        assert logging["IncludeExecutionData"] is False, name  # payloads may carry personal data
        (destination,) = logging["Destinations"]
        assert getatt_arn(destination["CloudWatchLogsLogGroup"]["LogGroupArn"]) in log_groups, name


# --- payloads bucket ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bucket(template: dict[str, Any]) -> dict[str, Any]:
    return dict(template["Resources"]["PayloadsBucket"]["Properties"])


def test_bucket_encrypts_by_default_with_the_stack_key_and_a_bucket_key(bucket: dict[str, Any]) -> None:
    (rule,) = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    assert is_stack_key(rule["ServerSideEncryptionByDefault"]["KMSMasterKeyID"])
    assert rule["BucketKeyEnabled"] is True  # S3 asks KMS per bucket and period, not per object


def test_bucket_blocks_all_public_access(bucket: dict[str, Any]) -> None:
    settings = bucket["PublicAccessBlockConfiguration"]
    assert settings == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert bucket["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]


def test_bucket_policy_denies_requests_without_tls(template: dict[str, Any]) -> None:
    (policy,) = [
        p
        for p in resources_of(template, "AWS::S3::BucketPolicy").values()
        if p["Properties"]["Bucket"] == {"Ref": "PayloadsBucket"}
    ]
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    denies = [
        s
        for s in statements
        if s["Effect"] == "Deny"
        and s["Principal"] == "*"
        and s["Action"] == "s3:*"
        and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    ]
    assert len(denies) == 1
    resources = as_list(denies[0]["Resource"])
    assert {"Fn::GetAtt": ["PayloadsBucket", "Arn"]} in resources
    assert {"Fn::Sub": "${PayloadsBucket.Arn}/*"} in resources


def test_bucket_expires_every_payload_prefix_and_aborts_stale_multipart_uploads(bucket: dict[str, Any]) -> None:
    rules = [r for r in bucket["LifecycleConfiguration"]["Rules"] if r["Status"] == "Enabled"]
    expiring = {r["Prefix"] for r in rules if "ExpirationInDays" in r}
    assert {"inputs/", "steps/", "outputs/", "async-outputs/", "async-failures/"} <= expiring
    assert any("AbortIncompleteMultipartUpload" in r and "Prefix" not in r for r in rules)


def test_only_the_inputs_prefix_raises_upload_events(template: dict[str, Any], bucket: dict[str, Any]) -> None:
    (notification,) = bucket["NotificationConfiguration"]["QueueConfigurations"]
    assert notification["Event"] == "s3:ObjectCreated:*"
    assert getatt_arn(notification["Queue"]) == "UploadQueue"
    assert notification["Filter"]["S3Key"]["Rules"] == [{"Name": "prefix", "Value": "inputs/"}]
    # S3 checks its permission to send when the notification is created.
    assert template["Resources"]["PayloadsBucket"]["DependsOn"] == "UploadQueuePolicy"


def test_bucket_name_matches_the_name_functions_and_policies_use(
    template: dict[str, Any], bucket: dict[str, Any]
) -> None:
    # Every function given the bucket gets its name (not a Ref, which would be circular through
    # the bucket's notification), and the upload queue admits S3 events from that bucket only.
    for name, function in functions(template).items():
        if "PAYLOADS_BUCKET" in environment(function):
            assert environment(function)["PAYLOADS_BUCKET"] == bucket["BucketName"], name
    (statement,) = template["Resources"]["UploadQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    source = statement["Condition"]["ArnLike"]["aws:SourceArn"]["Fn::Sub"]
    assert source == "arn:${AWS::Partition}:s3:::" + bucket["BucketName"]["Fn::Sub"]
    assert statement["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}


# --- the REST API -------------------------------------------------------------------------------


# The routes that opt out of the token authorizer and the API key, each with why. Nothing else may.
PUBLIC_ROUTES = {
    # An approval link's pages: approvers are people reached by e-mail, with no Chorus token. The
    # link's signed, single-use, expiring token is the credential (domain/approval_links.py); the GET
    # changes nothing, and the POST decides only with a valid, unspent link.
    ("ApprovalsFunction", "get", "/approvals/{token}"): "an approval link's confirmation page",
    ("ApprovalsFunction", "post", "/approvals/{token}"): "an approval link's decision",
}
PUBLIC_ROUTE_AUTH = {"Authorizer": "NONE", "ApiKeyRequired": False}


def test_every_api_event_is_on_the_api_whose_default_authorizer_is_the_token_authorizer(
    template: dict[str, Any],
) -> None:
    auth = template["Resources"]["ChorusApi"]["Properties"]["Auth"]
    assert auth["DefaultAuthorizer"] == "TokenAuthorizer"
    authorizer = auth["Authorizers"]["TokenAuthorizer"]
    assert authorizer == {
        "FunctionPayloadType": "REQUEST",
        "FunctionArn": {"Fn::GetAtt": ["AuthorizerFunction", "Arn"]},
        "Identity": {"Headers": ["Authorization"], "ReauthorizeEvery": 60},
    }
    events = [
        (name, event["Properties"])
        for name, function in functions(template).items()
        for event in function["Properties"].get("Events", {}).values()
        if event["Type"] == "Api"
    ]
    assert events
    public = set()
    for name, properties in events:
        where = f"{name} {properties['Method']} {properties['Path']}"
        assert properties["RestApiId"] == {"Ref": "ChorusApi"}, where
        if (name, properties["Method"], properties["Path"]) in PUBLIC_ROUTES:
            # no token and no API key, and nothing else changed
            assert properties.get("Auth") == PUBLIC_ROUTE_AUTH, where
            public.add((name, properties["Method"], properties["Path"]))
            continue
        assert "Auth" not in properties, f"{where}: no route opts out of (or changes) the authorizer"
    assert public == set(PUBLIC_ROUTES)
    assert "Events" not in template["Resources"]["AuthorizerFunction"]["Properties"]


API_FUNCTIONS = {
    "AuthorizerFunction": ("AuthorizerReservedConcurrency", "ReserveAuthorizerConcurrency"),
    "NewPredictionFunction": ("NewPredictionReservedConcurrency", "ReserveNewPredictionConcurrency"),
    "ResultsFunction": ("ResultsReservedConcurrency", "ReserveResultsConcurrency"),
}


@pytest.mark.parametrize("function", sorted(API_FUNCTIONS))
def test_api_functions_have_reserved_concurrency_that_a_small_account_turns_off(
    template: dict[str, Any], function: str
) -> None:
    # So a flood on the API neither starves the rest of the account nor is starved by it
    parameter, condition = API_FUNCTIONS[function]
    properties = template["Resources"][function]["Properties"]
    assert properties["ReservedConcurrentExecutions"] == {
        "Fn::If": [condition, {"Ref": parameter}, {"Ref": "AWS::NoValue"}]
    }
    assert template["Conditions"][condition] == {"Fn::Not": [{"Fn::Equals": [{"Ref": parameter}, 0]}]}
    spec = template["Parameters"][parameter]
    assert spec["Type"] == "Number" and spec["MinValue"] == 0 and spec["Default"] > 0
    # And checkov's reserved-concurrency check is no longer skipped
    skipped = {s["id"] for s in template["Resources"][function].get("Metadata", {}).get("checkov", {}).get("skip", [])}
    assert "CKV_AWS_115" not in skipped


def test_reserved_concurrency_leaves_lambdas_unreserved_minimum_in_a_default_account(template: dict[str, Any]) -> None:
    # Lambda keeps 100 of an account's concurrency (1,000 by default) unreserved
    reserved = sum(int(template["Parameters"][parameter]["Default"]) for parameter, _ in API_FUNCTIONS.values())
    assert reserved <= 1000 - 100
    # and new-prediction, which holds Prefer: wait requests, has room for ten tenants' waits and more
    waits = int(template["Parameters"]["MaxWaitsPerTenant"]["Default"])
    assert int(template["Parameters"]["NewPredictionReservedConcurrency"]["Default"]) >= 10 * waits


def test_the_usage_plan_stage_is_the_api_stage_and_its_id_an_output(template: dict[str, Any]) -> None:
    # chorus admin attaches each tenant's plan to <ApiId>/<UsagePlanSettings.api_stage>
    stage = chorus_settings.UsagePlanSettings.model_fields["api_stage"].default
    assert template["Resources"]["ChorusApi"]["Properties"]["StageName"] == stage
    assert template["Outputs"]["ApiId"]["Value"] == {"Ref": "ChorusApi"}


def test_the_authorizer_answers_well_within_api_gateway_limits(template: dict[str, Any]) -> None:
    # API Gateway waits for an authorizer as part of the request's 29 s
    assert int(template["Resources"]["AuthorizerFunction"]["Properties"]["Timeout"]) <= 10


# --- tables -------------------------------------------------------------------------------------


def test_predictions_table_is_on_demand_with_pitr_ttl_and_by_parent_index(template: dict[str, Any]) -> None:
    table = template["Resources"]["PredictionsTable"]
    properties = table["Properties"]
    assert properties["BillingMode"] == "PAY_PER_REQUEST"
    assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert properties["TimeToLiveSpecification"] == {"AttributeName": "ttl", "Enabled": True}
    assert properties["SSESpecification"]["SSEEnabled"] is True  # with the stack key: see the key tests
    assert properties["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    indexes = {index["IndexName"]: index for index in properties["GlobalSecondaryIndexes"]}
    assert set(indexes) == {"by-parent", "by-tenant"}
    assert indexes["by-parent"]["KeySchema"] == [
        {"AttributeName": "parentId", "KeyType": "HASH"},
        {"AttributeName": "stepName", "KeyType": "RANGE"},
    ]
    assert table["DeletionPolicy"] == table["UpdateReplacePolicy"] == "Retain"


def test_predictions_table_lists_a_tenant_predictions_by_creation_time(template: dict[str, Any]) -> None:
    # GET /predictions: one tenant's predictions, in order of createdAt (ISO 8601 strings sort by time)
    properties = template["Resources"]["PredictionsTable"]["Properties"]
    (index,) = [i for i in properties["GlobalSecondaryIndexes"] if i["IndexName"] == "by-tenant"]
    assert index == {
        "IndexName": "by-tenant",
        "KeySchema": [
            {"AttributeName": "tenant", "KeyType": "HASH"},
            {"AttributeName": "createdAt", "KeyType": "RANGE"},
        ],
        "Projection": {"ProjectionType": "ALL"},
    }
    types = {a["AttributeName"]: a["AttributeType"] for a in properties["AttributeDefinitions"]}
    assert types["tenant"] == types["createdAt"] == "S"


def test_idempotency_table_expires_records_on_the_powertools_attribute(template: dict[str, Any]) -> None:
    properties = template["Resources"]["IdempotencyTable"]["Properties"]
    assert properties["BillingMode"] == "PAY_PER_REQUEST"
    assert properties["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert properties["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}
    assert properties["SSESpecification"]["SSEEnabled"] is True  # with the stack key: see the key tests


# --- IAM ----------------------------------------------------------------------------------------


def test_functions_hold_only_sam_policy_templates_and_written_statements(template: dict[str, Any]) -> None:
    # No Role of their own, no managed policy by name: every grant is visible to these tests.
    for name, function in functions(template).items():
        properties = function["Properties"]
        assert "Role" not in properties, name
        for policy in as_list(properties.get("Policies", [])):
            assert isinstance(policy, dict), f"{name}: {policy!r}"
            assert "Statement" in policy or (len(policy) == 1 and next(iter(policy)) in sam_policy_templates())


def test_the_aws_calls_table_covers_every_call_of_the_code() -> None:
    # Given every place the code calls client(...), the only way it reaches AWS
    assert iam_code.boto3_importers() == []
    callers = iam_code.aws_callers()
    # Then each is a top-level function with its needs in AWS_CALLS, for the service it calls
    for caller, services in callers.items():
        assert "<" not in caller, f"client(...) called outside a top-level function: {caller}"
        assert caller in AWS_CALLS, f"{caller} calls {services}: add its needs to AWS_CALLS"
        for service in services:
            prefix = CLIENT_SERVICES.get(service.strip("'\""), service.strip("'\""))
            assert all(a.startswith(prefix + ":") for a, _ in AWS_CALLS[caller]), caller
    # And every entry of AWS_CALLS names a definition of the code
    for name in AWS_CALLS:
        module, _, definition = name.rpartition(".")
        assert definition in iam_code.load_module(module).definitions, name


@pytest.mark.parametrize("function", function_names())
def test_every_function_is_granted_what_its_code_calls(template: dict[str, Any], function: str) -> None:
    # Given what the function's code calls (and what Lambda sends with its role)
    needs = code_needs(template, function)
    # When its grants are read
    have = granted(template, function)
    # Then every call is allowed
    missing = sorted(need for need in needs if not covers(have, *need))
    assert missing == [], f"{function} may not {missing}"


def _least_privilege_cases() -> list[Any]:
    reasons: dict[str, str] = {}  # a known over-grant being fixed: function -> why (strict xfail)
    return [
        pytest.param(f, marks=[pytest.mark.xfail(strict=True, reason=reasons[f])] if f in reasons else [])
        for f in function_names()
    ]


@pytest.mark.parametrize("function", _least_privilege_cases())
def test_no_function_is_granted_what_its_code_never_calls(template: dict[str, Any], function: str) -> None:
    # Given what the function's code calls
    needs = code_needs(template, function)
    # Then every action it is granted is one of those calls, on the same target (a SAM policy
    # template counts once any of its actions is needed, or when accepted as wider on purpose)
    extra = []
    for pattern, target, grant in granted(template, function):
        if grant.sam_template and (function, grant.sam_template, target) in ACCEPTED_WIDER_GRANTS:
            continue
        if not any(matches(pattern, action) and t == target for action, t in needs):
            extra.append(f"{pattern} on {target}")
    assert extra == [], f"{function} is granted what its code never calls: {sorted(set(extra))}"


def test_no_grant_scans_deletes_or_batch_writes_predictions(template: dict[str, Any]) -> None:
    offending = [
        f"{grant.owner}: {action} on {resource}"
        for grant in grants(template)
        if grant.allows
        for resource in grant.resources
        if targets(template, resource) & {"PredictionsTable", "*"}
        for action in grant.actions
        if any(matches(action, forbidden) for forbidden in PREDICTIONS_FORBIDDEN)
    ]
    assert offending == []


def test_no_sam_policy_template_on_predictions_implies_a_scan_delete_or_batch_write(template: dict[str, Any]) -> None:
    # A DynamoDB policy template (DynamoDBCrudPolicy, DynamoDBWritePolicy, DynamoDBReadPolicy...)
    # brings Scan, DeleteItem or BatchWriteItem with it: none may name the predictions table.
    for owner, resource in template["Resources"].items():
        for policy in as_list(resource.get("Properties", {}).get("Policies", [])):
            if not isinstance(policy, dict) or "Statement" in policy or resource["Type"] == "AWS::IAM::Role":
                continue
            ((name, parameters),) = policy.items()
            names_predictions = "PredictionsTable" in json.dumps(parameters)
            assert not (names_predictions and name.startswith("DynamoDB")), f"{owner}: {name} on PredictionsTable"
    crud = [
        (g.owner, str(g.sam_parameters))
        for g in grants(template)
        if g.sam_template in ("DynamoDBCrudPolicy", "DynamoDBWritePolicy")
    ]
    assert crud == [("NewPredictionFunction", str({"TableName": {"Ref": "IdempotencyTable"}}))]


def test_resource_star_is_only_for_task_callbacks_and_vended_logs(template: dict[str, Any]) -> None:
    offending = [
        f"{grant.owner}: {action}"
        for grant in grants(template)
        if grant.allows and "*" in grant.resources
        for action in grant.actions
        if action not in WILDCARD_EXCEPTIONS
    ]
    assert offending == []
    # and no action is a wildcard of its own on any resource
    assert [(g.owner, a) for g in grants(template) for a in g.actions if a.endswith(":*") or a == "*"] == []


def test_no_statement_grants_send_task_heartbeat(template: dict[str, Any]) -> None:
    assert "states:SendTaskHeartbeat" not in WILDCARD_EXCEPTIONS
    holders = [g.owner for g in grants(template) if any(matches(a, "states:SendTaskHeartbeat") for a in g.actions)]
    assert holders == []


def test_task_callbacks_are_granted_exactly_to_the_functions_whose_code_sends_them(template: dict[str, Any]) -> None:
    granted_to = {g.owner for g in grants(template) if "states:SendTaskSuccess" in g.actions}
    sending = {f for f in functions(template) if ("states:SendTaskSuccess", "*") in code_needs(template, f)}
    assert granted_to == sending
    assert "DeliveriesFunction" not in granted_to  # the one function that never resumes an ensemble


def test_functions_that_only_read_a_resource_get_only_read_actions_on_it(template: dict[str, Any]) -> None:
    # Given, per function, the resources its code never writes
    for function in functions(template):
        needs = code_needs(template, function)
        read_only = {t for _, t in needs} - {t for a, t in needs if not is_read(a)}
        # Then every action it is granted on them reads
        writes = [f"{p} on {t}" for p, t, _ in granted(template, function) if t in read_only and not is_read(p)]
        assert writes == [], function
    results = granted(template, "ResultsFunction")
    assert not covers(results, "s3:PutObject", "PayloadsBucket")
    assert not covers(results, "dynamodb:PutItem", "PredictionsTable")


def test_only_dispatching_functions_invoke_endpoints_or_publish_results(template: dict[str, Any]) -> None:
    invoking = {
        f
        for f in functions(template)
        if covers(granted(template, f), "sagemaker:InvokeEndpoint", "sagemaker:endpoint")
        or covers(granted(template, f), "sagemaker:InvokeEndpointAsync", "sagemaker:endpoint")
    }
    publishing = {
        f
        for f in functions(template)
        for topic in ("SuccessTopic", "ErrorTopic")
        if covers(granted(template, f), "sns:Publish", topic)
    }
    assert invoking == publishing == {"ProcessInputFunction", "GetTransformCallFunction"}
    # Outside the functions, only the ensembles' final states and the endpoints' policy publish
    # results: the compiled ensembles' state machines, not the approval workflow, which only
    # invokes ApprovalsFunction (a version's routing changes what dispatch invokes, not who does)
    others = {
        g.owner
        for g in grants(template)
        if g.owner not in functions(template) and any(matches(a, "sns:Publish") for a in g.actions)
    }
    ensembles = set(resources_of(template, "AWS::Serverless::StateMachine")) - set(HAND_WRITTEN_STATE_MACHINES)
    assert others == ensembles | {"SageMakerEndpointPolicy"}


def test_only_deliveries_and_approvals_send_email_and_nothing_reads_ssm(template: dict[str, Any]) -> None:
    # Webhook signing secrets are each tenant's, on its record in TenantsTable: no SSM parameter.
    assert not {g.owner for g in grants(template) if any(a.lower().startswith("ssm:") for a in g.actions)}
    senders = {g.owner for g in grants(template) if any(a.lower().startswith("ses:") for a in g.actions)}
    # Deliveries sends predictions' e-mail callbacks; Approvals the approvers' e-mails (a version's
    # approval links, its canary rolled back), the issue's human in the loop.
    assert senders == {"DeliveriesFunction", "ApprovalsFunction"}
    for grant in grants(template):
        if grant.owner in senders and any(a.lower().startswith("ses:") for a in grant.actions):
            # as the configured sender only
            assert grant.statement["Condition"] == {"StringEquals": {"ses:FromAddress": {"Ref": "SenderEmail"}}}


def test_only_chorus_admin_and_the_secret_routes_write_tenants(template: dict[str, Any]) -> None:
    writers = {
        g.owner
        for g in grants(template)
        if any(matches(a, "dynamodb:UpdateItem") or matches(a, "dynamodb:PutItem") for a in g.actions)
        and any("TenantsTable" in json.dumps(r) for r in g.resources)
    }
    assert writers == {"NewPredictionFunction"}  # POST /webhooks/secret/rotate (admin scope); wait slots


# --- the stack's KMS key ------------------------------------------------------------------------

# Where each resource type names its key.
KEY_PROPERTIES = {
    "AWS::DynamoDB::Table": ("SSESpecification", "KMSMasterKeyId"),
    "AWS::SQS::Queue": ("KmsMasterKeyId",),
    "AWS::SNS::Topic": ("KmsMasterKeyId",),
    "AWS::Logs::LogGroup": ("KmsKeyId",),
}
ACCOUNT_ROOT = {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}}


def key_policy(template: dict[str, Any]) -> list[dict[str, Any]]:
    return list(template["Resources"]["ChorusKey"]["Properties"]["KeyPolicy"]["Statement"])


def service_principal(statement: dict[str, Any]) -> str | None:
    service = statement.get("Principal", {}).get("Service")
    return str(service["Fn::Sub"]) if isinstance(service, dict) else service


def encrypted_with_stack_key(template: dict[str, Any], logical_id: str) -> bool:
    return uses_stack_key(template["Resources"][logical_id].get("Properties", {}))


# The stack's keys that are not its encryption key: HMAC keys that sign, each with what and for whom.
SIGNING_KEYS = {
    "ApprovalLinkKey": "approval links (adapters/signing.py): GenerateMac and VerifyMac by ApprovalsFunction",
}


def test_signing_keys_only_sign(template: dict[str, Any]) -> None:
    for name, reason in SIGNING_KEYS.items():
        key = template["Resources"][name]
        assert key["Type"] == "AWS::KMS::Key", name
        properties = key["Properties"]
        # An HMAC key can make and check MACs, never encrypt: no table, queue or log is under it
        assert re.fullmatch(r"HMAC_(224|256|384|512)", properties["KeySpec"]), name
        assert properties["KeyUsage"] == "GENERATE_VERIFY_MAC", name
        # KMS rotates only symmetric encryption keys automatically (checkov's CKV_AWS_7 skipped, with why)
        assert "EnableKeyRotation" not in properties, name
        skipped = {s["id"] for s in key.get("Metadata", {}).get("checkov", {}).get("skip", [])}
        assert skipped == {"CKV_AWS_7"}, name
        # The account administers it and delegates through IAM; no service uses it on its own
        (statement,) = properties["KeyPolicy"]["Statement"]
        assert statement["Principal"] == ACCOUNT_ROOT and statement["Action"] == "kms:*", name
        assert "Condition" not in statement, name
        # And every grant on it is a MAC action (who holds which: the least-privilege tests)
        actions = {a for g in grants(template) for r in g.resources if name in targets(template, r) for a in g.actions}
        assert actions and actions <= {"kms:GenerateMac", "kms:VerifyMac"}, f"{name} ({reason}): {sorted(actions)}"


def test_the_stack_creates_its_key_with_rotation_and_an_alias_unless_one_is_given(template: dict[str, Any]) -> None:
    # Given the KmsKeyArn parameter: empty (the default) or a key's ARN, never an alias (IAM
    # statements and log groups need the key's own ARN)
    pattern = template["Parameters"]["KmsKeyArn"]["AllowedPattern"]
    assert template["Parameters"]["KmsKeyArn"]["Default"] == ""
    assert re.fullmatch(pattern, "")
    assert re.fullmatch(pattern, "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab")
    assert not re.fullmatch(pattern, "arn:aws:kms:eu-west-1:123456789012:alias/chorus-prod")
    # Then the stack creates one encryption key, with rotation and alias/chorus-<Stage>, only when
    # none is given (its other keys sign and encrypt nothing: test_signing_keys_only_sign)
    assert template["Conditions"]["CreateKmsKey"] == {"Fn::Equals": [{"Ref": "KmsKeyArn"}, ""]}
    keys = resources_of(template, "AWS::KMS::Key")
    assert set(keys) == {STACK_KEY_TARGET, *SIGNING_KEYS}
    (key_id,) = set(keys) - set(SIGNING_KEYS)
    key = template["Resources"][key_id]
    assert key_id == STACK_KEY_TARGET and key["Condition"] == "CreateKmsKey"
    assert key["Properties"]["EnableKeyRotation"] is True
    # A retained table (and its backups) must stay readable after the stack is deleted
    assert key["DeletionPolicy"] == key["UpdateReplacePolicy"] == "Retain"
    (alias,) = resources_of(template, "AWS::KMS::Alias").values()
    assert alias["Condition"] == "CreateKmsKey"
    assert alias["Properties"] == {
        "AliasName": {"Fn::Sub": "alias/chorus-${Stage}"},
        "TargetKeyId": {"Ref": STACK_KEY_TARGET},
    }
    # And its ARN is an output (for the endpoints' AsyncInferenceConfig.OutputConfig.KmsKeyId)
    assert is_stack_key(template["Outputs"]["EncryptionKeyArn"]["Value"])


@pytest.mark.parametrize("resource_type", sorted(KEY_PROPERTIES))
def test_every_table_queue_topic_and_log_group_is_encrypted_with_the_stack_key(
    template: dict[str, Any], resource_type: str
) -> None:
    found = resources_of(template, resource_type)
    assert found
    for name, resource in found.items():
        value: Any = resource["Properties"]
        for key in KEY_PROPERTIES[resource_type]:
            assert key in value, f"{name} has no {key}"
            value = value[key]
        assert is_stack_key(value), f"{name} is not encrypted with the stack's key"
        if resource_type == "AWS::DynamoDB::Table":
            assert resource["Properties"]["SSESpecification"]["SSEEnabled"] is True, name
            assert resource["Properties"]["SSESpecification"]["SSEType"] == "KMS", name


def test_the_state_machines_log_to_groups_encrypted_with_the_stack_key(template: dict[str, Any]) -> None:
    for name, machine in resources_of(template, "AWS::Serverless::StateMachine").items():
        (destination,) = machine["Properties"]["Logging"]["Destinations"]
        group = getatt_arn(destination["CloudWatchLogsLogGroup"]["LogGroupArn"])
        assert is_stack_key(template["Resources"][group]["Properties"]["KmsKeyId"]), name


def test_the_key_policy_lets_the_account_administer_the_key_and_names_only_service_principals(
    template: dict[str, Any],
) -> None:
    statements = key_policy(template)
    assert all(s["Effect"] == "Allow" and s["Resource"] == "*" for s in statements)  # "*" is the key itself
    # The account administers the key, so its IAM policies can delegate its use (the grants above)
    (account,) = [s for s in statements if "AWS" in s["Principal"]]
    assert account["Principal"] == ACCOUNT_ROOT and account["Action"] == "kms:*" and "Condition" not in account
    # Every other statement is one service's, with conditions
    services = [str(service_principal(s)) for s in statements if s is not account]
    assert sorted(services) == sorted(KEY_POLICY_SERVICES), "one statement per service of KEY_POLICY_SERVICES"
    assert all(s.get("Condition") for s in statements if s is not account)
    # SageMaker async endpoints write outputs and publish with the endpoint's execution role (the
    # SageMakerEndpointPolicy's grants), not as a service principal
    assert not any("sagemaker" in str(s) for s in services)


def test_the_key_policy_admits_a_service_exactly_when_it_writes_to_something_the_key_encrypts(
    template: dict[str, Any],
) -> None:
    # Given what AWS services deliver to on the stack's behalf
    needed: set[str] = set()
    for bucket in resources_of(template, "AWS::S3::Bucket").values():
        notifications = bucket["Properties"].get("NotificationConfiguration", {})
        for item in notifications.get("QueueConfigurations", []) + notifications.get("TopicConfigurations", []):
            target = item.get("Queue") or item.get("Topic")
            if encrypted_with_stack_key(template, getatt_arn(target) if "Fn::GetAtt" in target else ref(target)):
                needed.add("s3.amazonaws.com")
    for rule in resources_of(template, "AWS::Events::Rule").values():
        for target in rule["Properties"]["Targets"]:
            destinations = [target["Arn"], target.get("DeadLetterConfig", {}).get("Arn")]
            if any(d and encrypted_with_stack_key(template, getatt_arn(d)) for d in destinations):
                needed.add("events.amazonaws.com")
    for alarm in alarms(template).values():
        if any(encrypted_with_stack_key(template, ref(action)) for action in alarm.get("AlarmActions", [])):
            needed.add("cloudwatch.amazonaws.com")
    for subscription in resources_of(template, "AWS::SNS::Subscription").values():
        endpoint = subscription["Properties"]["Endpoint"]
        if subscription["Properties"]["Protocol"] == "sqs" and encrypted_with_stack_key(template, getatt_arn(endpoint)):
            needed.add("sns.amazonaws.com")
    if any(encrypted_with_stack_key(template, g) for g in resources_of(template, "AWS::Logs::LogGroup")):
        needed.add("logs.${AWS::Region}.${AWS::URLSuffix}")
    # Then the key policy admits exactly those services (no SNS: its only subscribers are Lambda
    # functions and e-mail, which need nothing of the key)
    admitted = {service_principal(s) for s in key_policy(template)} - {None}
    assert admitted == needed == set(KEY_POLICY_SERVICES)


def test_services_use_the_key_only_for_this_account_and_this_stack(template: dict[str, Any]) -> None:
    by_service = {service_principal(s): s for s in key_policy(template) if "Service" in s["Principal"]}
    account = {"Ref": "AWS::AccountId"}
    # S3 and EventBridge: AWS documents aws:SourceArn or aws:SourceAccount for encrypted SQS queues
    for service in ("s3.amazonaws.com", "events.amazonaws.com"):
        assert sorted(as_list(by_service[service]["Action"])) == ["kms:Decrypt", "kms:GenerateDataKey"]
        assert by_service[service]["Condition"] == {"StringEquals": {"aws:SourceAccount": account}}, service
    # CloudWatch alarms: this account, and the alarm topic only (SNS's encryption context)
    cloudwatch = by_service["cloudwatch.amazonaws.com"]
    topic = template["Resources"]["AlarmTopic"]["Properties"]["TopicName"]["Fn::Sub"]
    assert sorted(as_list(cloudwatch["Action"])) == ["kms:Decrypt", "kms:GenerateDataKey"]
    assert cloudwatch["Condition"] == {
        "StringEquals": {
            "aws:SourceAccount": account,
            "kms:EncryptionContext:aws:sns:topicArn": {
                "Fn::Sub": "arn:${AWS::Partition}:sns:${AWS::Region}:${AWS::AccountId}:" + topic
            },
        }
    }
    # CloudWatch Logs: the log groups of this stack only (CloudWatch Logs' encryption context)
    logs = by_service["logs.${AWS::Region}.${AWS::URLSuffix}"]
    (operator,) = logs["Condition"]
    assert operator == "ArnLike" and set(logs["Condition"][operator]) == {"kms:EncryptionContext:aws:logs:arn"}
    patterns = [str(p["Fn::Sub"]) for p in logs["Condition"][operator]["kms:EncryptionContext:aws:logs:arn"]]
    prefix = "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:"
    for pattern in patterns:
        assert pattern.startswith(prefix) and pattern.endswith("chorus-${Stage}-*"), pattern
    for name, group in resources_of(template, "AWS::Logs::LogGroup").items():
        arn = prefix + group["Properties"]["LogGroupName"]["Fn::Sub"]
        assert any(fnmatchcase(arn, pattern) for pattern in patterns), f"{name}: CloudWatch Logs may not use the key"


@pytest.mark.parametrize("function", function_names())
def test_every_function_may_use_the_key_exactly_as_its_calls_need_through_the_services_making_them(
    template: dict[str, Any], function: str
) -> None:
    # Given what the function's calls on encrypted resources need of the key, and through which
    # service KMS sees each request (SQS, SNS, S3, DynamoDB)
    needs = key_needs(template, function)
    # Then its grants on the key are exactly those actions, each only through those services
    assert needs, f"{function} uses nothing the key encrypts?"
    assert key_grants(template, function) == needs


# Service roles that write to S3 in parts: completing a multipart upload encrypted with SSE-KMS
# needs kms:Decrypt as well as kms:GenerateDataKey (AWS's documentation), each with the reason.
MULTIPART_WRITERS = {
    "CaptureDeliveryRole": "Firehose writes its batches (64 MB and more) to S3 as multipart uploads",
}


def test_state_machines_endpoint_and_service_roles_may_use_the_key_exactly_as_their_other_grants_need(
    template: dict[str, Any],
) -> None:
    owners = [
        *resources_of(template, "AWS::Serverless::StateMachine"),
        "SageMakerEndpointPolicy",
        *MULTIPART_WRITERS,
    ]
    for owner in owners:
        uses = {(action, target) for action, target, _ in granted(template, owner) if not action.startswith("kms:")}
        needs = key_needs_of(template, uses)
        if owner in MULTIPART_WRITERS and "s3" in needs.get("kms:GenerateDataKey", set()):
            needs.setdefault("kms:Decrypt", set()).add("s3")
        assert key_grants(template, owner) == needs, owner
    # The endpoints read inputs, write outputs (SSE-KMS) and publish results with their own role
    assert key_grants(template, "SageMakerEndpointPolicy") == {
        "kms:Decrypt": {"s3", "sns"},
        "kms:GenerateDataKey": {"s3", "sns"},
    }
    # Firehose writes the capture batches (and failed records) to the encrypted bucket, through S3 only
    assert key_grants(template, "CaptureDeliveryRole") == {"kms:Decrypt": {"s3"}, "kms:GenerateDataKey": {"s3"}}


# --- stage prefixes -----------------------------------------------------------------------------


def _characters(parsed: Any) -> Iterator[tuple[str, Any]]:
    """Every (opcode, argument) of a parsed regex, sub-patterns included."""
    for op, arg in parsed:
        yield str(op), arg
        if str(op) in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            yield from _characters(arg[2])
        elif str(op) == "SUBPATTERN":
            yield from _characters(arg[-1])
        elif str(op) == "BRANCH":
            for branch in arg[1]:
                yield from _characters(branch)


def test_the_stage_pattern_can_never_contain_a_hyphen(template: dict[str, Any]) -> None:
    # So the prefix chorus-<Stage>- of one stage is never a prefix of another stage's names.
    pattern = template["Parameters"]["Stage"]["AllowedPattern"]
    parsed = list(sre_parse.parse(pattern))
    assert (str(parsed[0][0]), str(parsed[0][1])) == ("AT", "AT_BEGINNING"), "unanchored start"
    assert (str(parsed[-1][0]), str(parsed[-1][1])) == ("AT", "AT_END"), "unanchored end"
    hyphen = ord("-")
    for op, arg in _characters(parsed):
        assert op not in ("ANY", "NOT_LITERAL", "CATEGORY"), f"{pattern}: {op} may match '-'"
        if op == "LITERAL":
            assert arg != hyphen, pattern
        if op == "IN":
            for item_op, item in arg:
                assert str(item_op) in ("LITERAL", "RANGE"), f"{pattern}: {item_op} may match '-'"
                low, high = (item, item) if str(item_op) == "LITERAL" else item
                assert not low <= hyphen <= high, f"{pattern} admits '-'"
    assert re.fullmatch(pattern, template["Parameters"]["Stage"]["Default"])
    for stage in ("dev", "prod", "pr42"):
        assert re.fullmatch(pattern, stage), stage
    for stage in ("dev-2", "-", "Dev", "", "a" * 17, "1dev"):
        assert not re.fullmatch(pattern, stage), stage


def test_every_name_pattern_built_from_the_stage_continues_with_a_hyphen(template: dict[str, Any]) -> None:
    # In every grant, resource policy and ARN prefix, chorus-${Stage} is followed by "-"; only a
    # whole name (the layer, the API) may end with it, and such a name is no pattern.
    statements = [g.statement for g in grants(template)] + [s for _, s in resource_policy_statements(template)]
    iam_texts = [arn_text(r) for s in statements for r in as_list(s.get("Resource", []))]
    iam_texts += [text for s in statements for text in sub_strings(s.get("Condition", {}))]
    prefixes = [ENVIRONMENT_VALUES["STATE_MACHINE_ARN_PREFIX"]["Fn::Sub"]]
    prefixes += [
        p["prefix"]["Fn::Sub"]
        for p in template["Resources"]["EnsembleEndedRule"]["Properties"]["EventPattern"]["detail"]["stateMachineArn"]
    ]
    checked = [t for t in iam_texts + prefixes if "chorus-${Stage}" in t]
    assert checked, "no name built from chorus-${Stage} found"
    for text in checked:
        assert re.search(r"chorus-\$\{Stage\}(?!-)", text) is None, text
    # The dashboard's body is one JSON text: test_dashboard.py checks its names value by value.
    resources = {name: r for name, r in template["Resources"].items() if r["Type"] != "AWS::CloudWatch::Dashboard"}
    for text in sub_strings(resources):
        for match in re.finditer(r"chorus-\$\{Stage\}(?!-)", text):
            assert match.end() == len(text) and "*" not in text, f"{text!r} uses chorus-${{Stage}} as a prefix"


# --- the real tools -----------------------------------------------------------------------------


def test_cfn_lint_passes() -> None:
    result = subprocess.run(
        [tool("cfn-lint"), "--", str(TEMPLATE)], cwd=ROOT, env=tool_env(), capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_sam_validate_lint_passes() -> None:
    result = subprocess.run(
        [tool("sam"), "validate", "--lint", "--region", "us-east-1", "--template-file", str(TEMPLATE)],
        cwd=ROOT,
        env=tool_env(),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_sam_build_succeeds(template: dict[str, Any], tmp_path: Path) -> None:
    # Given the repository as it is (functions, layer, state machines)
    build = tmp_path / "build"
    # When sam builds it (the layer's wheels come from PyPI)
    result = subprocess.run(
        [
            tool("sam"),
            "build",
            "--template-file",
            str(TEMPLATE),
            "--build-dir",
            str(build),
            "--cache-dir",
            str(tmp_path / "cache"),
        ],
        cwd=ROOT,
        env=tool_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # Then the layer holds the domain package, its data files and its dependencies built for arm64 Lambda
    layer = build / "ChorusLayer" / "python"
    package = ROOT / "layers" / "chorus" / "chorus"
    for source in package.rglob("*"):
        if source.is_file() and "__pycache__" not in source.parts:
            relative = source.relative_to(package.parent)
            assert (layer / relative).is_file(), f"{relative} is missing from the built layer"
    assert (layer / "chorus" / "model" / "services.json").is_file()
    assert (layer / "pydantic").is_dir()
    assert (layer / "aws_lambda_powertools").is_dir()
    assert list((layer / "pydantic_core").glob("_pydantic_core.*aarch64-linux-gnu.so"))
    # And every function's package holds its handler's module
    for name, function in functions(template).items():
        module = str(function_property(template, function, "Handler")).rpartition(".")[0]
        assert (build / name / f"{module}.py").is_file(), name
