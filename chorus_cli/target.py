"""Which Chorus the CLI administers: a deployed stack (`--stack-name`) or `make local` (`--local`).

Either way the outcome is the same: the environment variables the product's own settings read
(TENANTS_TABLE, TOKENS_TABLE, AUDIT_TABLE) name the stack's tables, REST_API_ID its REST API (the
stage every tenant's usage plan applies to), boto3's default session points at the right account
or endpoint, and the product's cached settings and clients are forgotten, so the next
`chorus.adapters.tenants` call uses them.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

TABLES = {"TenantsTable": "TENANTS_TABLE", "TokensTable": "TOKENS_TABLE", "AuditTable": "AUDIT_TABLE"}
REST_API = "ChorusApi"  # logical id; its physical id is the REST API id
RESOURCES = {**TABLES, REST_API: "REST_API_ID"}
# Only `chorus admin monitor` (chorus_cli/monitor.py) needs these: found when the stack has them.
OPTIONAL_RESOURCES = {
    "PayloadsBucket": "PAYLOADS_BUCKET",
    "MonitorFunction": "MONITOR_FUNCTION",
    # Only `chorus admin versions` (chorus_cli/versions.py) needs these.
    "VersionsTable": "VERSIONS_TABLE",
    "ApprovalStateMachine": "APPROVAL_STATE_MACHINE_ARN",
}
LOCAL_REGION = "us-east-1"
LOCAL_IDENTITY = "local"


class TargetError(Exception):
    """The target cannot be reached or is not a Chorus stack (a failure, exit 1)."""


@dataclass(frozen=True)
class Target:
    description: str
    resources: dict[str, str]  # logical id -> physical name (tables) or id (the REST API)
    identity: str  # who the caller is, recorded as createdBy


def _activate(resources: dict[str, str]) -> None:
    from chorus.core import clients, settings

    for logical_id, variable in {**RESOURCES, **OPTIONAL_RESOURCES}.items():
        if logical_id in resources:
            os.environ[variable] = resources[logical_id]
    settings.load.cache_clear()
    clients.reset_clients()


def local(ready_file: Path) -> Target:
    """A running `make local`: its ready file names the AWS endpoint and the tables."""
    try:
        ready: dict[str, Any] = json.loads(ready_file.read_text())
    except FileNotFoundError:
        raise TargetError(f"no ready file at {ready_file}: is `make local` running?") from None
    except (OSError, ValueError) as exc:
        raise TargetError(f"cannot read the ready file {ready_file}: {exc}") from None
    endpoint = ready.get("aws_endpoint_url")
    resources = ready.get("resources")
    if not isinstance(endpoint, str) or not isinstance(resources, dict):
        raise TargetError(f"{ready_file} has no aws_endpoint_url and resources: is it a `make local` ready file?")
    missing = [logical_id for logical_id in RESOURCES if not isinstance(resources.get(logical_id), str)]
    if missing:
        raise TargetError(f"the local stack in {ready_file} has no {' or '.join(missing)}")
    # Dummy credentials for the local gateway; a profile or session token from the shell must not leak in.
    for variable in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        os.environ.pop(variable, None)
    os.environ.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION=str(ready.get("region") or LOCAL_REGION),
    )
    boto3.setup_default_session()
    found = {logical_id: str(resources[logical_id]) for logical_id in RESOURCES}
    found |= {k: str(resources[k]) for k in OPTIONAL_RESOURCES if isinstance(resources.get(k), str)}
    _activate(found)
    return Target(f"local stack at {endpoint}", found, LOCAL_IDENTITY)


def aws(stack_name: str, region: str | None = None, profile: str | None = None) -> Target:
    """A deployed stack: CloudFormation names its tables and REST API, STS names the caller."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        boto3.setup_default_session(region_name=region, profile_name=profile)
        cloudformation = boto3.client("cloudformation")
        found = {}
        for logical_id in RESOURCES:
            detail = cloudformation.describe_stack_resource(StackName=stack_name, LogicalResourceId=logical_id)
            found[logical_id] = str(detail["StackResourceDetail"]["PhysicalResourceId"])
        for logical_id in OPTIONAL_RESOURCES:
            try:
                detail = cloudformation.describe_stack_resource(StackName=stack_name, LogicalResourceId=logical_id)
            except ClientError:
                continue  # a stack without monitoring: only `chorus admin monitor` needs it
            found[logical_id] = str(detail["StackResourceDetail"]["PhysicalResourceId"])
        identity = str(boto3.client("sts").get_caller_identity()["Arn"])
    except ClientError as exc:
        raise TargetError(f"stack {stack_name!r}: {exc.response['Error'].get('Message') or exc}") from None
    except BotoCoreError as exc:
        raise TargetError(f"stack {stack_name!r}: {exc}") from None
    _activate(found)
    return Target(f"stack {stack_name}", found, identity)
