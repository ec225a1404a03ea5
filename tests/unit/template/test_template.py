"""template.yaml checked as code: the properties that keep Chorus reliable and safe in AWS.

The template is read with cfn-lint's loader, so `!Ref X` arrives as {"Ref": "X"}, `!Sub s` as
{"Fn::Sub": s} and so on. The last three tests run the real tools (cfn-lint, sam validate, sam build).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import cfn_yaml

ROOT = Path(__file__).resolve().parents[3]
TEMPLATE = ROOT / "template.yaml"
STATE_MACHINES = ROOT / "statemachines"

# Actions IAM authorizes only with Resource "*" (docs/decisions.md, 2026-11-22).
WILDCARD_EXCEPTIONS = frozenset(
    {
        # Step Functions task callbacks: the task token, not an ARN, names the task.
        "states:SendTaskSuccess",
        "states:SendTaskFailure",
        "states:SendTaskHeartbeat",
        # CloudWatch Logs vended-log delivery, required for state machine logging.
        "logs:CreateLogDelivery",
        "logs:GetLogDelivery",
        "logs:UpdateLogDelivery",
        "logs:DeleteLogDelivery",
        "logs:ListLogDeliveries",
        "logs:PutResourcePolicy",
        "logs:DescribeResourcePolicies",
        "logs:DescribeLogGroups",
    }
)
READ_VERBS = ("Get", "List", "Describe", "BatchGet", "Query", "Scan", "Head")

CONTRACT_ENVIRONMENT = {
    "PREDICTIONS_TABLE",
    "IDEMPOTENCY_TABLE",
    "PAYLOADS_BUCKET",
    "SUCCESS_TOPIC_ARN",
    "ERROR_TOPIC_ARN",
    "REGISTRY_FILE",
    "STATE_MACHINE_ARN_PREFIX",
    "WEBHOOK_SECRET_PARAMETER",
    "WEBHOOK_ALLOWED_NETWORKS",
    "SENDER_EMAIL",
    "UPLOAD_URL_TTL_SECONDS",
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    "LOG_LEVEL",
}


# --- helpers ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return cfn_yaml.load(str(TEMPLATE))


def resources_of(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == resource_type}


def functions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return resources_of(template, "AWS::Serverless::Function")


def function_property(template: dict[str, Any], function: dict[str, Any], name: str) -> Any:
    """A function's property, falling back to Globals.Function as SAM does."""
    return function["Properties"].get(name, template.get("Globals", {}).get("Function", {}).get(name))


def ref(value: Any) -> str:
    assert isinstance(value, dict) and set(value) == {"Ref"}, f"expected a !Ref, got {value!r}"
    return str(value["Ref"])


def getatt_arn(value: Any) -> str:
    """The logical id in `!GetAtt X.Arn`."""
    assert isinstance(value, dict) and set(value) == {"Fn::GetAtt"}, f"expected !GetAtt X.Arn, got {value!r}"
    target = value["Fn::GetAtt"]
    name, attribute = target if isinstance(target, list) else str(target).split(".", 1)
    assert attribute == "Arn"
    return str(name)


def policy_statements(template: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every inline IAM statement: SAM `Policies` documents and IAM/resource policies."""
    for name, resource in template["Resources"].items():
        properties = resource.get("Properties", {})
        if resource["Type"] in ("AWS::Serverless::Function", "AWS::Serverless::StateMachine"):
            for policy in properties.get("Policies", []):
                if isinstance(policy, dict) and "Statement" in policy:
                    yield from ((name, s) for s in policy["Statement"])
        document = properties.get("PolicyDocument")
        if isinstance(document, dict):
            yield from ((name, s) for s in document["Statement"])
        for policy in properties.get("Policies", []) if resource["Type"] == "AWS::IAM::Role" else []:
            yield from ((name, s) for s in policy["PolicyDocument"]["Statement"])


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


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
        used.append(group)
    assert len(used) == len(set(used)), "two functions share a log group"


def test_every_log_group_has_retention(template: dict[str, Any]) -> None:
    for name, group in resources_of(template, "AWS::Logs::LogGroup").items():
        assert "RetentionInDays" in group["Properties"], name


def test_every_function_uses_app_handler_and_an_existing_code_folder(template: dict[str, Any]) -> None:
    for name, function in functions(template).items():
        assert function_property(template, function, "Handler") == "app.handler", name
        code = ROOT / function["Properties"]["CodeUri"]
        assert code.is_dir(), f"{name}: CodeUri {code} does not exist"
        assert str(function["Properties"]["CodeUri"]).startswith("functions/"), name


def test_functions_share_the_layer_runtime_and_tracing(template: dict[str, Any]) -> None:
    layer = resources_of(template, "AWS::Serverless::LayerVersion")["ChorusLayer"]
    for name, function in functions(template).items():
        assert function_property(template, function, "Layers") == [{"Ref": "ChorusLayer"}], name
        assert function_property(template, function, "Runtime") in layer["Properties"]["CompatibleRuntimes"], name
        assert function_property(template, function, "Tracing") == "Active", name
        architectures = function_property(template, function, "Architectures")
        assert architectures == layer["Properties"]["CompatibleArchitectures"], name
        assert architectures == [layer["Metadata"]["BuildArchitecture"]], name


def test_function_environment_carries_the_contract_variables(template: dict[str, Any]) -> None:
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    assert set(variables) >= CONTRACT_ENVIRONMENT
    # The prefix plus an ensemble name is that ensemble's state machine ARN.
    prefix = variables["STATE_MACHINE_ARN_PREFIX"]["Fn::Sub"]
    assert prefix.endswith(":stateMachine:chorus-${Stage}-")


# --- asynchronous paths -------------------------------------------------------------------------


def test_every_queue_feeding_a_function_redrives_to_a_dlq(template: dict[str, Any]) -> None:
    queues = resources_of(template, "AWS::SQS::Queue")
    for name, function in functions(template).items():
        for event in function["Properties"].get("Events", {}).values():
            if event["Type"] != "SQS":
                continue
            # Given a queue that feeds the function
            queue = queues[getatt_arn(event["Properties"]["Queue"])]["Properties"]
            # Then poison messages land in a dead-letter queue after a few receives
            redrive = queue["RedrivePolicy"]
            assert getatt_arn(redrive["deadLetterTargetArn"]) in queues, name
            assert int(redrive["maxReceiveCount"]) >= 5, name
            # And failed records are retried one by one, not with the whole batch
            assert event["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"], name


def test_every_asynchronously_invoked_function_has_an_on_failure_destination(template: dict[str, Any]) -> None:
    queues = resources_of(template, "AWS::SQS::Queue")
    for name, function in functions(template).items():
        event_types = {e["Type"] for e in function["Properties"].get("Events", {}).values()}
        if not event_types & {"SNS", "S3", "EventBridgeRule", "CloudWatchEvent", "Schedule"}:
            continue
        config = function["Properties"]["EventInvokeConfig"]
        assert 0 <= int(config["MaximumRetryAttempts"]) <= 2, name
        on_failure = config["DestinationConfig"]["OnFailure"]
        assert on_failure["Type"] == "SQS", name
        assert getatt_arn(on_failure["Destination"]) in queues, name


def test_queue_visibility_is_at_least_six_times_the_consumer_timeout(template: dict[str, Any]) -> None:
    queues = resources_of(template, "AWS::SQS::Queue")
    for name, function in functions(template).items():
        timeout = int(function_property(template, function, "Timeout"))
        for event in function["Properties"].get("Events", {}).values():
            if event["Type"] == "SQS":
                queue = queues[getatt_arn(event["Properties"]["Queue"])]["Properties"]
                assert int(queue["VisibilityTimeout"]) >= 6 * timeout, name


def test_every_dead_letter_queue_has_an_alarm(template: dict[str, Any]) -> None:
    alarmed = {
        dimension["Value"]["Fn::GetAtt"][0]
        for alarm in resources_of(template, "AWS::CloudWatch::Alarm").values()
        for dimension in alarm["Properties"].get("Dimensions", [])
        if dimension["Name"] == "QueueName"
    }
    assert {"UploadDLQ", "NotificationsDLQ"} <= alarmed


def test_every_dead_letter_queue_keeps_messages_for_fourteen_days(template: dict[str, Any]) -> None:
    for name in ("UploadDLQ", "NotificationsDLQ"):
        assert template["Resources"][name]["Properties"]["MessageRetentionPeriod"] == 1209600


# --- state machines -----------------------------------------------------------------------------


def asl_files() -> list[Path]:
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


def test_bucket_encrypts_by_default(bucket: dict[str, Any]) -> None:
    (rule,) = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")


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


def test_bucket_name_matches_the_name_functions_are_given(template: dict[str, Any], bucket: dict[str, Any]) -> None:
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    assert bucket["BucketName"] == variables["PAYLOADS_BUCKET"]
    (statement,) = template["Resources"]["UploadQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    source = statement["Condition"]["ArnLike"]["aws:SourceArn"]["Fn::Sub"]
    assert source == "arn:${AWS::Partition}:s3:::" + bucket["BucketName"]["Fn::Sub"]


# --- tables -------------------------------------------------------------------------------------


def test_predictions_table_is_on_demand_with_pitr_ttl_and_by_parent_index(template: dict[str, Any]) -> None:
    table = template["Resources"]["PredictionsTable"]
    properties = table["Properties"]
    assert properties["BillingMode"] == "PAY_PER_REQUEST"
    assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert properties["TimeToLiveSpecification"] == {"AttributeName": "ttl", "Enabled": True}
    assert properties["SSESpecification"] == {"SSEEnabled": True}
    assert properties["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    (index,) = properties["GlobalSecondaryIndexes"]
    assert index["IndexName"] == "by-parent"
    assert index["KeySchema"] == [
        {"AttributeName": "parentId", "KeyType": "HASH"},
        {"AttributeName": "stepName", "KeyType": "RANGE"},
    ]
    assert table["DeletionPolicy"] == table["UpdateReplacePolicy"] == "Retain"


def test_idempotency_table_expires_records_on_the_powertools_attribute(template: dict[str, Any]) -> None:
    properties = template["Resources"]["IdempotencyTable"]["Properties"]
    assert properties["BillingMode"] == "PAY_PER_REQUEST"
    assert properties["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert properties["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}


# --- IAM ----------------------------------------------------------------------------------------


def is_write(action: str) -> bool:
    verb = action.split(":", 1)[1]
    return not verb.startswith(READ_VERBS)


def test_no_statement_grants_a_write_action_on_every_resource(template: dict[str, Any]) -> None:
    offending = []
    for name, statement in policy_statements(template):
        if statement["Effect"] != "Allow" or "*" not in as_list(statement.get("Resource", [])):
            continue
        for action in as_list(statement["Action"]):
            if "*" in action or (is_write(action) and action not in WILDCARD_EXCEPTIONS):
                offending.append(f"{name}: {action}")
    assert offending == []


def test_task_callbacks_are_granted_only_to_functions_that_resume_ensembles(template: dict[str, Any]) -> None:
    granted = {
        name
        for name, statement in policy_statements(template)
        if "states:SendTaskSuccess" in as_list(statement.get("Action", []))
    }
    assert granted == {"NotificationsFunction", "GetTransformCallFunction", "NewPredictionFunction"}


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
    # Then the layer holds the domain package and its dependencies built for arm64 Lambda
    layer = build / "ChorusLayer" / "python"
    assert (layer / "chorus" / "__init__.py").is_file()
    assert (layer / "chorus" / "services.json").is_file()
    assert (layer / "pydantic").is_dir()
    assert (layer / "aws_lambda_powertools").is_dir()
    assert list((layer / "pydantic_core").glob("_pydantic_core.*aarch64-linux-gnu.so"))
    # And every function's package holds its handler
    for name in functions(template):
        assert (build / name / "app.py").is_file(), name
