"""template.yaml → resources: intrinsic functions, parameters, the SAM transform and provisioning."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chorus_local.api_gateway import RestApi
from chorus_local.cloudformation import (
    LOCAL_ARTIFACTS_BUCKET,
    NO_VALUE,
    Provisioner,
    Resolver,
    TemplateError,
    resolve_parameters,
    transform_template,
)
from chorus_local.usage_plans import UsagePlans
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

APPROVAL_PAGES = {("GET", "/approvals/{token}"), ("POST", "/approvals/{token}")}


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


def write_template(directory: Path, resources: dict, **sections: Any) -> Path:
    path = directory / "template.yaml"
    path.write_text(json.dumps({**sections, "Resources": resources}))  # JSON is YAML
    return path


def sam_function(code_uri: str = "code", **properties: Any) -> dict[str, Any]:
    return {"Type": "AWS::Serverless::Function", "Properties": {"CodeUri": code_uri, **properties}}


def test_sam_transform_applies_globals_and_local_code_paths(tmp_path):
    (tmp_path / "code").mkdir()
    (tmp_path / "layer").mkdir()
    path = write_template(
        tmp_path,
        {
            "Layer": {"Type": "AWS::Serverless::LayerVersion", "Properties": {"ContentUri": "layer"}},
            "Fn": sam_function(Timeout=9, Environment={"Variables": {"OWN": "x"}}, Layers=[{"Ref": "Layer"}]),
        },
        Transform="AWS::Serverless-2016-10-31",
        Globals={
            "Function": {
                "Runtime": "python3.11",
                "Handler": "app.handler",
                "Timeout": 3,
                "Environment": {"Variables": {"SHARED": "y"}},
                "Layers": [{"Ref": "Layer"}],
            }
        },
    )
    resources = transform_template(path)["Resources"]
    function = resources["Fn"]
    # Generated by SAM: an AWS::Lambda::Function with Globals merged (scalars overridden, maps
    # merged, lists concatenated) and the local CodeUri as the stand-in artifact location
    assert function["Type"] == "AWS::Lambda::Function"
    props = function["Properties"]
    assert (props["Handler"], props["Timeout"]) == ("app.handler", 9)
    assert props["Environment"]["Variables"] == {"SHARED": "y", "OWN": "x"}
    (layer_id,) = [k for k, v in resources.items() if v["Type"] == "AWS::Lambda::LayerVersion"]
    assert props["Layers"] == [{"Ref": layer_id}, {"Ref": layer_id}]
    assert props["Code"] == {"S3Bucket": LOCAL_ARTIFACTS_BUCKET, "S3Key": "code"}
    assert resources["FnRole"]["Type"] == "AWS::IAM::Role"


def test_sam_transform_errors_fail_loudly(tmp_path):
    path = write_template(tmp_path, {"Fn": sam_function(Bogus=1)}, Transform="AWS::Serverless-2016-10-31")
    with pytest.raises(TemplateError, match=r"SAM transform failed: .*Fn.*Bogus"):
        transform_template(path)
    other = write_template(tmp_path, {}, Transform="AWS::LanguageExtensions")
    with pytest.raises(TemplateError, match="AWS::LanguageExtensions"):
        transform_template(other)


def test_unsupported_property_or_type_stops_provisioning_naming_it(local_stack, tmp_path):
    bogus_property = write_template(tmp_path, {"Queue": {"Type": "AWS::SQS::Queue", "Properties": {"Bogus": 1}}})
    with pytest.raises(TemplateError, match=r"Queue \(AWS::SQS::Queue\).*Bogus"):
        Provisioner(bogus_property, local_stack.endpoint, stack_name="bogus").provision()
    bogus_type = write_template(tmp_path, {"Stream": {"Type": "AWS::Kinesis::Stream"}})
    with pytest.raises(TemplateError, match="Stream: resource type AWS::Kinesis::Stream"):
        Provisioner(bogus_type, local_stack.endpoint, stack_name="bogus").provision()


@pytest.mark.parametrize(
    ("resources", "error"),
    [
        # What SAM generates is checked like any other resource: a property of a generated
        # resource the local stack does not apply names that resource and property
        (
            {"Fn": sam_function(Runtime="python3.11", Handler="app.handler", FileSystemConfigs=[])},
            r"Fn \(AWS::Lambda::Function\).*FileSystemConfigs",
        ),
        (
            {
                "Fn": sam_function(
                    Runtime="python3.11",
                    Handler="app.handler",
                    Events={"Tick": {"Type": "Schedule", "Properties": {"Schedule": "rate(1 minute)"}}},
                )
            },
            r"FnTick \(AWS::Events::Rule\).*ScheduleExpression",
        ),
        (
            {
                "Fn": sam_function(
                    Runtime="python3.11",
                    Handler="app.handler",
                    AutoPublishAlias="live",
                )
            },
            r"resource type AWS::Lambda::(Version|Alias)",
        ),
        (
            {"Fn": sam_function("s3://bucket/code.zip", Runtime="python3.11", Handler="app.handler")},
            r"Fn.Code: only a local path",
        ),
        (
            {"Fn": sam_function(Runtime="nodejs20.x", Handler="app.handler")},
            r"Fn: runtime 'nodejs20.x'",
        ),
    ],
    ids=["generated-property", "generated-rule", "generated-type", "remote-code", "runtime"],
)
def test_sam_generated_resources_are_checked_like_the_rest(local_stack, tmp_path, resources, error):
    (tmp_path / "code").mkdir()
    path = write_template(tmp_path, resources, Transform="AWS::Serverless-2016-10-31")
    with pytest.raises(TemplateError, match=error):
        Provisioner(path, local_stack.endpoint, stack_name="bogus").provision()


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
    # What each variable must resolve to, wherever a function has it (the environment comes from
    # the AWS::Lambda::Function SAM generates, Globals merged in)
    expected = {
        "PREDICTIONS_TABLE": product.ref("PredictionsTable"),
        "PAYLOADS_BUCKET": product.ref("PayloadsBucket"),
        "SUCCESS_TOPIC_ARN": product.ref("SuccessTopic"),
        "STATE_MACHINE_ARN_PREFIX": "arn:aws:states:us-east-1:123456789012:stateMachine:chorus-resolve-",
        "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
        "POWERTOOLS_METRICS_NAMESPACE": "Chorus/resolve",  # each stage's metrics apart
    }
    seen: set[str] = set()
    transformed = transform_template(REPO_ROOT / "template.yaml", {"Stage": "resolve"})
    for function in functions.values():
        assert function.name.startswith("chorus-resolve-")
        # app.handler everywhere but the capture transformation, which shares the monitor's package
        module, _, entry = function.handler.rpartition(".")
        assert entry == "handler" and (module == "app" or function.logical_id == "CaptureFunction"), function.handler
        assert function.code_dir.is_dir() and (function.code_dir / f"{module}.py").is_file()
        assert [p.relative_to(REPO_ROOT).as_posix() for p in function.layer_dirs] == ["layers/chorus"]
        generated = transformed["Resources"][function.logical_id]["Properties"]
        assert function.timeout_seconds == generated.get("Timeout", 3), function.name
        assert function.memory_mb == generated.get("MemorySize", 128), function.name
        for name, value in function.environment.items():
            assert isinstance(value, str) and "${" not in value, (function.name, name, value)
        for name in set(expected) & set(function.environment):
            assert function.environment[name] == expected[name], (function.name, name)
            seen.add(name)
    assert seen == set(expected)
    notifications = functions["NotificationsFunction"].async_config
    assert notifications.maximum_retry_attempts == 2
    assert notifications.on_failure is not None
    assert notifications.on_failure.arn == product.attribute("NotificationsDLQ", "Arn")


def test_the_dashboard_is_named_locally_but_only_aws_draws_it(product):
    # AWS-side only (no CloudWatch locally): its Ref is its name, as in AWS
    assert product.ref("Dashboard") == "chorus-resolve"


def test_product_template_event_sources_and_api(product):
    # Every event source SAM generated is running locally, with its settings
    generated = transform_template(REPO_ROOT / "template.yaml", {"Stage": "resolve"})["Resources"]
    of_type: dict[str, dict[str, Any]] = {}
    for logical_id, resource in generated.items():
        of_type.setdefault(resource["Type"], {})[logical_id] = resource.get("Properties") or {}
    functions = {f.logical_id: f for f in product.functions}
    mappings = {(m.queue_arn, m.function): m for m in product.sqs_mappings}
    assert len(mappings) == len(of_type["AWS::Lambda::EventSourceMapping"]) > 0
    for logical_id, props in of_type["AWS::Lambda::EventSourceMapping"].items():
        queue = product.attribute(props["EventSourceArn"]["Fn::GetAtt"][0], "Arn")
        mapping = mappings[(queue, functions[props["FunctionName"]["Ref"]].name)]
        assert mapping.batch_size == props.get("BatchSize", 10), logical_id
        assert mapping.report_batch_item_failures == (
            "ReportBatchItemFailures" in props.get("FunctionResponseTypes", [])
        )
    assert {(s.function, s.topic_arn) for s in product.sns_subscriptions} == {
        (props["Endpoint"]["Fn::GetAtt"][0], product.ref(props["TopicArn"]["Ref"]))
        for props in of_type["AWS::SNS::Subscription"].values()
        if props["Protocol"] == "lambda"
    }
    # Contracts that do not move: uploads are processed in batches with partial failures, and
    # the result topics reach a function
    uploads = [m for (queue, _), m in mappings.items() if queue == product.attribute("UploadQueue", "Arn")]
    assert [(m.batch_size, m.report_batch_item_failures) for m in uploads] == [(10, True)]
    topics = {s.topic_arn for s in product.sns_subscriptions}
    assert {product.ref("SuccessTopic"), product.ref("ErrorTopic")} <= topics
    # The REST API: stage v1 and a route per Api event (the generated OpenAPI document's paths)
    assert product.api is not None and product.api.stage == "v1"
    assert {(r.method, r.path) for r in product.api.routes} >= {
        ("POST", "/predictions"),
        ("POST", "/predictions/{id}/cancel"),
        ("GET", "/predictions/{id}"),
        ("GET", "/services"),
    }
    names = {f.name for f in product.functions}
    assert all(route.function in names for route in product.api.routes if route.mock is None)
    # Every method needs an API key, which the authorizer supplies (the tenant's usage plan), but the
    # approval pages: approvers are people with a signed link, not tenants (docs/versions.md)
    assert product.api.api_key_source == "AUTHORIZER"
    public = {(r.method, r.path) for r in product.api.routes if r.mock is None and not r.api_key_required}
    assert public == APPROVAL_PAGES
    # The API's GatewayResponses shape API Gateway's own errors, as in AWS
    plans = UsagePlans(apigateway=None, api_id=product.api.api_id, stage="v1")
    rest = RestApi(product.api, runtime=None, usage_plans=plans)  # type: ignore[arg-type]
    error = rest.error(403, "req-1")
    assert json.loads(error.get_data()) == {
        "error": {"code": "MISSING_AUTHENTICATION_TOKEN", "message": "Missing Authentication Token"}
    }
    throttled = rest.error("THROTTLED", "req-1")
    assert (throttled.status_code, throttled.headers["Retry-After"]) == (429, "1")
    assert json.loads(throttled.get_data())["error"]["code"] == "rate_limited"
    quota = rest.error("QUOTA_EXCEEDED", "req-1")
    assert (quota.status_code, quota.headers["Retry-After"]) == (429, "3600")
    assert json.loads(quota.get_data())["error"]["code"] == "quota_exceeded"


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
    # Tables: keys, the by-parent and by-tenant indexes and TTL
    table = aws("dynamodb").describe_table(TableName=product.ref("PredictionsTable"))["Table"]
    assert table["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    indexes = {index["IndexName"]: index for index in table["GlobalSecondaryIndexes"]}
    assert [k["AttributeName"] for k in indexes["by-parent"]["KeySchema"]] == ["parentId", "stepName"]
    assert [k["AttributeName"] for k in indexes["by-tenant"]["KeySchema"]] == ["tenant", "createdAt"]
    assert indexes["by-tenant"]["Projection"] == {"ProjectionType": "ALL"}
    tokens = aws("dynamodb").describe_table(TableName=product.ref("TokensTable"))["Table"]
    assert tokens["KeySchema"] == [{"AttributeName": "tokenId", "KeyType": "HASH"}]
    # The REST API: every route behind the template's token authorizer, cached for 60 s (the
    # approval pages have none: their signed link is the credential)
    assert product.api is not None
    authorizers = {route.authorizer for route in product.api.routes if (route.method, route.path) not in APPROVAL_PAGES}
    assert {(r.method, r.path) for r in product.api.routes if r.authorizer is None} == APPROVAL_PAGES
    (authorizer,) = authorizers
    assert authorizer is not None and authorizer.function == "chorus-resolve-authorizer"
    assert (authorizer.type, authorizer.identity_sources, authorizer.ttl_seconds) == (
        "REQUEST",
        (("header", "Authorization"),),
        60,
    )
    ttl = aws("dynamodb").describe_time_to_live(TableName=product.ref("PredictionsTable"))
    assert ttl["TimeToLiveDescription"]["AttributeName"] == "ttl"
    # State machines: every ${...} substituted, the step function's ARN inside (the approval
    # workflow's: the approvals function's, and the links' base URL)
    machines = [r for r, t in product.resources.items() if t == "AWS::StepFunctions::StateMachine"]
    assert machines
    for logical_id in machines:
        described = aws("stepfunctions").describe_state_machine(stateMachineArn=product.ref(logical_id))
        assert described["name"].startswith("chorus-resolve-")
        assert "${" not in described["definition"]
        task = "ApprovalsFunction" if logical_id == "ApprovalStateMachine" else "GetTransformCallFunction"
        assert product.attribute(task, "Arn") in described["definition"]
    # SES sender verified (CreateSenderIdentity defaults to true)
    assert "noreply@example.com" in aws("ses").list_identities()["Identities"]


def test_product_template_key_exists_in_kms_and_encrypts_what_the_template_says(product, aws):
    # The stack's key (KmsKeyArn left empty): created in moto's KMS, with rotation, alias and policy
    key_arn = product.attribute("ChorusKey", "Arn")
    assert product.outputs["EncryptionKeyArn"] == key_arn
    kms = aws("kms")
    metadata = kms.describe_key(KeyId="alias/chorus-resolve")["KeyMetadata"]
    assert (metadata["Arn"], metadata["KeyId"]) == (key_arn, product.ref("ChorusKey"))
    assert kms.get_key_rotation_status(KeyId=key_arn)["KeyRotationEnabled"] is True
    policy = json.loads(kms.get_key_policy(KeyId=key_arn, PolicyName="default")["Policy"])
    principals = {json.dumps(s["Principal"], sort_keys=True) for s in policy["Statement"]}
    assert json.dumps({"Service": "logs.us-east-1.amazonaws.com"}) in principals
    # Every encrypted resource names it: bucket default (with a bucket key), queues, topics, tables
    bucket = product.ref("PayloadsBucket")
    (rule,) = aws("s3").get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rule == {
        "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key_arn},
        "BucketKeyEnabled": True,
    }
    queue = aws("sqs").get_queue_attributes(QueueUrl=product.ref("UploadQueue"), AttributeNames=["All"])["Attributes"]
    assert (queue["KmsMasterKeyId"], queue["KmsDataKeyReusePeriodSeconds"]) == (key_arn, "3600")
    topic = aws("sns").get_topic_attributes(TopicArn=product.ref("AlarmTopic"))["Attributes"]
    assert topic["KmsMasterKeyId"] == key_arn
    table = aws("dynamodb").describe_table(TableName=product.ref("TenantsTable"))["Table"]
    assert table["SSEDescription"] == {"Status": "ENABLED", "SSEType": "KMS", "KMSMasterKeyArn": key_arn}
    # An object written without naming a key gets the bucket's default
    aws("s3").put_object(Bucket=bucket, Key="outputs/kms-probe", Body=b"{}")
    head = aws("s3").head_object(Bucket=bucket, Key="outputs/kms-probe")
    assert (head["ServerSideEncryption"], head["SSEKMSKeyId"], head["BucketKeyEnabled"]) == ("aws:kms", key_arn, True)


def test_a_given_key_arn_is_used_instead_of_creating_one(local_stack, tmp_path):
    # Given a key that exists already (another stack's, or the account's)
    key_arn = local_stack.endpoint.client("kms").create_key(Description="given")["KeyMetadata"]["Arn"]
    # When the template is provisioned with KmsKeyArn
    given = Provisioner(
        REPO_ROOT / "template.yaml",
        local_stack.endpoint,
        parameter_overrides={"Stage": "given", "KmsKeyArn": key_arn},
        stack_name="chorus-given",
    ).provision()
    # Then no key or alias is created and everything is encrypted with the given key
    assert "ChorusKey" not in given.resources and "ChorusKeyAlias" not in given.resources
    assert given.outputs["EncryptionKeyArn"] == key_arn
    attributes = local_stack.endpoint.client("sqs").get_queue_attributes(
        QueueUrl=given.ref("DeliveryQueue"), AttributeNames=["KmsMasterKeyId"]
    )["Attributes"]
    assert attributes["KmsMasterKeyId"] == key_arn


def test_sam_api_cors_gateway_responses_and_stage_come_from_the_generated_openapi(local_stack, tmp_path):
    (tmp_path / "code").mkdir()
    path = write_template(
        tmp_path,
        {
            "Api": {
                "Type": "AWS::Serverless::Api",
                "Properties": {
                    "StageName": "v2",
                    "Variables": {"color": "blue"},
                    "BinaryMediaTypes": ["image~1png"],
                    "Cors": {"AllowOrigin": "'https://app.example'", "AllowHeaders": "'Content-Type'"},
                    "GatewayResponses": {
                        "MISSING_AUTHENTICATION_TOKEN": {
                            "StatusCode": 404,
                            "ResponseParameters": {"Headers": {"X-Why": "'no-route'"}},
                            "ResponseTemplates": {"application/json": '{"code": "$context.error.responseType"}'},
                        }
                    },
                },
            },
            "Fn": sam_function(
                Runtime="python3.11",
                Handler="app.handler",
                Events={
                    "Get": {
                        "Type": "Api",
                        "Properties": {"RestApiId": {"Ref": "Api"}, "Path": "/a/{id}", "Method": "get"},
                    },
                    "Any": {"Type": "Api", "Properties": {"RestApiId": {"Ref": "Api"}, "Path": "/b", "Method": "any"}},
                },
            ),
        },
        Transform="AWS::Serverless-2016-10-31",
    )
    api = Provisioner(path, local_stack.endpoint, stack_name="cors").provision().api
    assert api is not None
    assert (api.stage, api.stage_variables, api.binary_media_types) == ("v2", {"color": "blue"}, ("image/png",))
    assert api.cors is not None and api.cors.allow_origin == "https://app.example"
    routes = {(r.method, r.path): r for r in api.routes}
    assert routes[("GET", "/a/{id}")].function == routes[("ANY", "/b")].function == "cors-Fn"
    # SAM's preflight methods: mock integrations with the headers SAM computed for each path
    rest = RestApi(api, runtime=None)  # type: ignore[arg-type]
    found = rest.find("OPTIONS", "/a/7")
    assert found is not None and found[0].mock is not None
    assert found[0].mock.headers["Access-Control-Allow-Methods"] == "GET,OPTIONS"
    assert found[0].mock.headers["Access-Control-Allow-Origin"] == "https://app.example"
    preflight = rest.find("OPTIONS", "/b")
    assert preflight is not None and preflight[0].mock is not None  # the path's own OPTIONS before ANY
    # The gateway response as customised: status, header and template
    error = rest.error(403, "req-1")
    assert (error.status_code, error.headers["X-Why"]) == (404, "no-route")
    assert json.loads(error.get_data()) == {"code": "MISSING_AUTHENTICATION_TOKEN"}


def test_one_served_rest_api_only(local_stack, tmp_path):
    (tmp_path / "code").mkdir()
    implicit = {"Type": "Api", "Properties": {"Path": "/implicit", "Method": "get"}}
    explicit = {"Type": "Api", "Properties": {"RestApiId": {"Ref": "Api"}, "Path": "/explicit", "Method": "get"}}
    path = write_template(
        tmp_path,
        {
            "Api": {"Type": "AWS::Serverless::Api", "Properties": {"StageName": "v1"}},
            "Fn": sam_function(Runtime="python3.11", Handler="app.handler", Events={"I": implicit, "E": explicit}),
        },
        Transform="AWS::Serverless-2016-10-31",
    )
    with pytest.raises(TemplateError, match=r"more than one REST API.*Api, ServerlessRestApi"):
        Provisioner(path, local_stack.endpoint, stack_name="apis").provision()
