"""template.yaml → resources: intrinsic functions, parameters, and provisioning of the real template."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chorus_local.api_gateway import RestApi
from chorus_local.cloudformation import (
    NO_VALUE,
    Provisioner,
    Resolver,
    TemplateError,
    load_template,
    resolve_parameters,
)
from tests.integration.local.support import REPO_ROOT

TEMPLATE = {
    "Parameters": {
        "Stage": {"Type": "String", "Default": "dev", "AllowedPattern": "^[a-z]+$"},
        "Origins": {"Type": "CommaDelimitedList", "Default": "a.example,b.example"},
        "Days": {"Type": "Number", "Default": 7, "MinValue": 1},
    },
    "Conditions": {
        "IsProd": {"Fn::Equals": [{"Ref": "Stage"}, "prod"]},
        "NotProd": {"Fn::Not": [{"Condition": "IsProd"}]},
    },
    "Mappings": {"Sizes": {"dev": {"Memory": 256}}},
    "Resources": {},
}


@pytest.fixture
def resolver() -> Resolver:
    parameters = resolve_parameters(TEMPLATE, {"Stage": "test"})
    resolver = Resolver(TEMPLATE, parameters, stack_name="chorus-test")
    resolver.refs["Queue"] = "http://127.0.0.1/123456789012/q"
    resolver.attributes["Queue"] = {"Arn": "arn:aws:sqs:us-east-1:123456789012:q", "QueueName": "q"}
    return resolver


def test_sub_resolves_parameters_pseudo_parameters_attributes_and_escapes(resolver):
    assert resolver.resolve({"Fn::Sub": "chorus-${Stage}-${AWS::AccountId}-${AWS::Region}"}) == (
        "chorus-test-123456789012-us-east-1"
    )
    assert resolver.resolve({"Fn::Sub": "${Queue.Arn}|${Queue}|${!Literal}|${AWS::StackName}"}) == (
        "arn:aws:sqs:us-east-1:123456789012:q|http://127.0.0.1/123456789012/q|${Literal}|chorus-test"
    )
    assert resolver.resolve({"Fn::Sub": ["${Name}-${Stage}", {"Name": {"Fn::GetAtt": "Queue.QueueName"}}]}) == (
        "q-test"
    )
    assert resolver.resolve({"Fn::Sub": "arn:${AWS::Partition}:states"}) == "arn:aws:states"


def test_getatt_join_select_split_and_list_parameters(resolver):
    assert resolver.resolve({"Fn::GetAtt": ["Queue", "Arn"]}).endswith(":q")
    assert resolver.resolve({"Fn::Join": ["/", ["a", {"Ref": "Stage"}, {"Ref": "AWS::Region"}]]}) == (
        "a/test/us-east-1"
    )
    assert resolver.resolve({"Ref": "Origins"}) == ["a.example", "b.example"]
    assert resolver.resolve({"Fn::Select": [1, {"Ref": "Origins"}]}) == "b.example"
    assert resolver.resolve({"Fn::Select": ["0", {"Fn::Split": [",", "x,y"]}]}) == "x"
    assert resolver.resolve({"Ref": "Days"}) == "7"  # Ref of a Number parameter is a string
    assert resolver.resolve({"Fn::FindInMap": ["Sizes", "dev", "Memory"]}) == 256


def test_conditions_if_and_no_value(resolver):
    assert resolver.condition("NotProd") is True
    value = resolver.resolve(
        {
            "Keep": {"Fn::If": ["NotProd", "yes", "no"]},
            "Drop": {"Fn::If": ["IsProd", "x", {"Ref": "AWS::NoValue"}]},
            "List": ["a", {"Ref": "AWS::NoValue"}],
        }
    )
    assert value == {"Keep": "yes", "List": ["a"]}
    assert resolver.resolve({"Ref": "AWS::NoValue"}) is NO_VALUE


def test_parameter_constraints_and_unknown_overrides_fail_loudly():
    with pytest.raises(TemplateError, match="Stage"):
        resolve_parameters(TEMPLATE, {"Stage": "Not_Valid"})
    with pytest.raises(TemplateError, match="Days"):
        resolve_parameters(TEMPLATE, {"Days": "0"})
    with pytest.raises(TemplateError, match="Nope"):
        resolve_parameters(TEMPLATE, {"Nope": "1"})


def test_unreferenced_resource_and_unsupported_function_fail_loudly(resolver):
    with pytest.raises(TemplateError, match="Missing"):
        resolver.resolve({"Ref": "Missing"})
    with pytest.raises(TemplateError, match=r"Queue\.Nope"):
        resolver.resolve({"Fn::GetAtt": "Queue.Nope"})
    with pytest.raises(TemplateError, match="Fn::ImportValue"):
        resolver.resolve({"Fn::ImportValue": "x"})


def test_globals_merge_like_sam():
    template = load_template(REPO_ROOT / "template.yaml")
    function = template["Resources"]["NotificationsFunction"]["Properties"]
    # Scalars from Globals unless overridden, maps merged, lists concatenated
    assert function["Handler"] == "app.handler"
    assert function["Timeout"] == 60
    assert "PREDICTIONS_TABLE" in function["Environment"]["Variables"]
    assert function["Layers"] == [{"Ref": "ChorusLayer"}]


def write_template(directory: Path, resources: dict) -> Path:
    path = directory / "template.yaml"
    path.write_text(json.dumps({"Resources": resources}))  # JSON is YAML
    return path


def test_unsupported_property_or_type_stops_provisioning_naming_it(local_stack, tmp_path):
    bogus_property = write_template(tmp_path, {"Queue": {"Type": "AWS::SQS::Queue", "Properties": {"Bogus": 1}}})
    with pytest.raises(TemplateError, match=r"Queue \(AWS::SQS::Queue\).*Bogus"):
        Provisioner(bogus_property, local_stack.endpoint, stack_name="bogus").provision()
    bogus_type = write_template(tmp_path, {"Stream": {"Type": "AWS::Kinesis::Stream"}})
    with pytest.raises(TemplateError, match="Stream: resource type AWS::Kinesis::Stream"):
        Provisioner(bogus_type, local_stack.endpoint, stack_name="bogus").provision()


@pytest.fixture(scope="module")
def product(local_stack):
    """The real template.yaml, provisioned into the running moto under another stage."""
    provisioner = Provisioner(
        REPO_ROOT / "template.yaml",
        local_stack.endpoint,
        parameter_overrides={"Stage": "resolve", "WebhookAllowedNetworks": "127.0.0.0/8"},
        stack_name="chorus-resolve",
    )
    return provisioner.provision()


def test_product_template_functions_are_fully_resolved(product):
    functions = {f.logical_id: f for f in product.functions}
    assert set(functions) >= {
        "NewPredictionFunction",
        "ResultsFunction",
        "ProcessInputFunction",
        "NotificationsFunction",
        "GetTransformCallFunction",
    }
    for function in functions.values():
        assert function.name.startswith("chorus-resolve-")
        assert function.handler == "app.handler"
        assert function.code_dir.is_dir() and (function.code_dir / "app.py").is_file()
        assert [p.relative_to(REPO_ROOT).as_posix() for p in function.layer_dirs] == ["layers/chorus"]
        for name, value in function.environment.items():
            assert isinstance(value, str) and "${" not in value, (function.name, name, value)
        env = function.environment
        assert env["PREDICTIONS_TABLE"] == product.ref("PredictionsTable")
        assert env["PAYLOADS_BUCKET"] == product.ref("PayloadsBucket")
        assert env["SUCCESS_TOPIC_ARN"] == product.ref("SuccessTopic")
        assert env["STATE_MACHINE_ARN_PREFIX"] == ("arn:aws:states:us-east-1:123456789012:stateMachine:chorus-resolve-")
        assert env["WEBHOOK_ALLOWED_NETWORKS"] == "127.0.0.0/8"
    notifications = functions["NotificationsFunction"].async_config
    assert notifications.maximum_retry_attempts == 2
    assert notifications.on_failure is not None
    assert notifications.on_failure.arn == product.attribute("NotificationsDLQ", "Arn")


def test_product_template_event_sources_and_api(product):
    mappings = {m.queue_arn: m for m in product.sqs_mappings}
    assert set(mappings) == {product.attribute("UploadQueue", "Arn"), product.attribute("DeadlineQueue", "Arn")}
    uploads = mappings[product.attribute("UploadQueue", "Arn")]
    assert (uploads.batch_size, uploads.report_batch_item_failures) == (10, True)
    assert {(s.function, s.topic_arn) for s in product.sns_subscriptions} == {
        ("NotificationsFunction", product.ref("SuccessTopic")),
        ("NotificationsFunction", product.ref("ErrorTopic")),
    }
    assert product.api is not None and product.api.stage == "v1"
    assert {(r.method, r.path) for r in product.api.routes} == {
        ("POST", "/predictions"),
        ("POST", "/predictions/{id}/cancel"),
        ("GET", "/predictions/{id}"),
        ("GET", "/services"),
    }
    # The API's GatewayResponses shape API Gateway's own errors, as in AWS
    error = RestApi(product.api, runtime=None).error(403, "req-1")  # type: ignore[arg-type]
    assert json.loads(error.get_data()) == {
        "error": {"code": "MISSING_AUTHENTICATION_TOKEN", "message": "Missing Authentication Token"}
    }


def test_product_template_resources_exist_as_declared(product, aws):
    # Queues: redrive to the DLQ after 5 receives, the visibility timeout from the template
    attributes = aws("sqs").get_queue_attributes(QueueUrl=product.ref("UploadQueue"), AttributeNames=["All"])[
        "Attributes"
    ]
    assert json.loads(attributes["RedrivePolicy"]) == {
        "deadLetterTargetArn": product.attribute("UploadDLQ", "Arn"),
        "maxReceiveCount": 5,
    }
    assert attributes["VisibilityTimeout"] == "540"
    # Bucket: inputs/ uploads notify the upload queue
    bucket = product.ref("PayloadsBucket")
    assert bucket == "chorus-resolve-payloads-123456789012-us-east-1"
    (queue_config,) = aws("s3").get_bucket_notification_configuration(Bucket=bucket)["QueueConfigurations"]
    assert queue_config["QueueArn"] == product.attribute("UploadQueue", "Arn")
    assert queue_config["Events"] == ["s3:ObjectCreated:*"]
    (rule,) = queue_config["Filter"]["Key"]["FilterRules"]
    assert (rule["Name"].lower(), rule["Value"]) == ("prefix", "inputs/")
    assert aws("s3").get_bucket_cors(Bucket=bucket)["CORSRules"][0]["AllowedOrigins"] == ["*"]
    # Tables: keys, the by-parent index and TTL
    table = aws("dynamodb").describe_table(TableName=product.ref("PredictionsTable"))["Table"]
    assert table["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    (index,) = table["GlobalSecondaryIndexes"]
    assert index["IndexName"] == "by-parent"
    assert [k["AttributeName"] for k in index["KeySchema"]] == ["parentId", "stepName"]
    ttl = aws("dynamodb").describe_time_to_live(TableName=product.ref("PredictionsTable"))
    assert ttl["TimeToLiveDescription"]["AttributeName"] == "ttl"
    # State machines: every ${...} substituted, the step function's ARN inside
    machines = [r for r, t in product.resources.items() if t == "AWS::Serverless::StateMachine"]
    assert machines
    step_arn = product.attribute("GetTransformCallFunction", "Arn")
    for logical_id in machines:
        described = aws("stepfunctions").describe_state_machine(stateMachineArn=product.ref(logical_id))
        assert described["name"].startswith("chorus-resolve-")
        assert "${" not in described["definition"]
        assert step_arn in described["definition"]
    # SES sender verified (CreateSenderIdentity defaults to true)
    assert "noreply@example.com" in aws("ses").list_identities()["Identities"]
