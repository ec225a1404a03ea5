"""template.yaml → running local resources, the way CloudFormation and SAM would build them.

Four steps:
1. `load_template`: parse the YAML (cfn-lint's loader understands the short-form tags).
2. `transform`: the template's `AWS::Serverless-2016-10-31` transform, run by samtranslator (the
   library CloudFormation's SAM transform and the SAM CLI use), so Globals, function events,
   implicit APIs, roles, permissions and queues are exactly what SAM generates. Local
   `CodeUri`/`ContentUri`/`DefinitionUri` paths go in as `s3://chorus-local-artifacts/<path>`
   (what `sam package` would upload) and come out of the generated `Code`, `Content` and
   `DefinitionS3Location` as directories again. No AWS call: the region comes from a session
   object, managed policy names from samtranslator's bundled map.
3. `Resolver`: parameters (defaults, overrides, constraints), conditions, pseudo parameters and the
   intrinsic functions (Ref, Fn::Sub, Fn::GetAtt, Fn::Join, Fn::If, Fn::Select, ...).
4. `Provisioner`: creates every resource of the transformed template in dependency order through
   the AWS gateway (so moto sees the API calls CloudFormation would make), and turns functions,
   event source mappings, SNS subscriptions, event-invoke configs and the REST API's OpenAPI body
   into the configuration of the local Lambda runtime, REST API and event sources.

Nothing is listed by hand: each CloudFormation resource type has a handler that knows which
properties it applies and which are AWS-side only (IAM, logging, throttling). Any other property,
or a resource type without a handler, stops the stack with a `TemplateError` naming it, so the
local stack can never silently differ from what the template (and SAM) declares.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import dataclasses
import hashlib
import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chorus_local.api_gateway import ApiConfig, ApiRoute, Authorizer, CorsConfig, GatewayResponse
from chorus_local.delivery_streams import DeliveryStreamConfig
from chorus_local.event_sources import SnsSubscription, SqsMapping
from chorus_local.gateway import LOCAL_ACCOUNT_ID, AwsEndpoint
from chorus_local.lambda_runtime import AsyncInvokeConfig, Destination, FunctionConfig
from chorus_local.schedules import ScheduleConfig

log = logging.getLogger("chorus_local.cloudformation")

PARTITION = "aws"
URL_SUFFIX = "amazonaws.com"
DEFAULT_REGION = "us-east-1"
SAM_TRANSFORM = "AWS::Serverless-2016-10-31"
# Stands in for the bucket `sam package` uploads code to; its keys are paths next to the template.
LOCAL_ARTIFACTS_BUCKET = "chorus-local-artifacts"
# SAM properties that take a local path in a template `sam build`/`sam package` have not touched.
_LOCAL_URIS = {"Function": "CodeUri", "LayerVersion": "ContentUri", "StateMachine": "DefinitionUri"}


class TemplateError(Exception):
    """The template uses something the local stack cannot reproduce faithfully."""


class _NoValue:
    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE: Any = _NoValue()


# ----------------------------------------------------------------------------- loading


def _plain(node: Any) -> Any:
    """cfn-lint's node classes → plain dict/list/str, so nothing downstream sees them."""
    if isinstance(node, dict):
        return {str(key): _plain(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_plain(item) for item in node]
    if isinstance(node, str):
        return str(node)
    return node


def load_template(path: Path) -> dict[str, Any]:
    """The template as written (SAM resources and Globals untouched)."""
    from cfnlint.decode import cfn_yaml

    template = _plain(cfn_yaml.load(str(path)))
    if not isinstance(template, dict) or not isinstance(template.get("Resources"), dict):
        raise TemplateError(f"{path}: not a CloudFormation template (no Resources)")
    return template


def _local_uris_as_s3(template: dict[str, Any]) -> None:
    """Local paths → `{Bucket: LOCAL_ARTIFACTS_BUCKET, Key: path}`, in resources and Globals."""
    sections = [(f"AWS::Serverless::{name}", props) for name, props in (template.get("Globals") or {}).items()]
    sections += [(str(r.get("Type")), r.get("Properties")) for r in template["Resources"].values()]
    for resource_type, props in sections:
        key = _LOCAL_URIS.get(resource_type.removeprefix("AWS::Serverless::"))
        if key and isinstance(props, dict) and isinstance(props.get(key), str) and "://" not in props[key]:
            props[key] = {"Bucket": LOCAL_ARTIFACTS_BUCKET, "Key": props[key]}


def transform(
    template: Mapping[str, Any], parameters: Mapping[str, Any], *, region: str = DEFAULT_REGION
) -> dict[str, Any]:
    """CloudFormation's view of the template: the SAM transform applied by samtranslator."""
    declared = template.get("Transform") or []
    transforms = [declared] if isinstance(declared, str) else list(declared)
    unsupported = [str(t) for t in transforms if t != SAM_TRANSFORM]
    if unsupported:
        raise TemplateError(f"transform {', '.join(unsupported)} is not supported by the local stack")
    if not transforms:
        return copy.deepcopy(dict(template))
    import boto3
    from samtranslator.model.exceptions import ExceptionWithMessage, InvalidDocumentException
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator
    from samtranslator.utils.py27hash_fix import to_py27_compatible_template, undo_mark_unicode_str_in_template

    # With no feature-toggle configuration every feature is off (as in SAM's own default) and
    # samtranslator warns about each lookup; nothing to tell the developer.
    logging.getLogger("samtranslator.feature_toggle").setLevel(logging.ERROR)
    sam_template, parameter_values = copy.deepcopy(dict(template)), dict(parameters)
    _local_uris_as_s3(sam_template)
    # A session object only supplies the region (AWS::Region/AWS::Partition); nothing calls AWS.
    translator = Translator(None, Parser(), boto_session=boto3.session.Session(region_name=region))
    try:
        # As samtranslator.translator.transform.transform does: the same generated ids as the service.
        to_py27_compatible_template(sam_template, parameter_values)
        transformed = translator.translate(
            sam_template,
            parameter_values=parameter_values,
            # Policy names outside samtranslator's bundled map would need IAM's ListPolicies.
            get_managed_policy_map=dict,
        )
    except InvalidDocumentException as error:
        causes = "; ".join(cause.message for cause in error.causes)
        raise TemplateError(f"SAM transform failed: {causes}") from None
    except ExceptionWithMessage as error:
        raise TemplateError(f"SAM transform failed: {error.message}") from None
    finally:
        translator.metrics.publish()  # to a dummy publisher; otherwise it warns when collected
    return dict(undo_mark_unicode_str_in_template(transformed))


def transform_template(
    path: Path, parameter_overrides: Mapping[str, str] | None = None, *, region: str = DEFAULT_REGION
) -> dict[str, Any]:
    """template.yaml as CloudFormation deploys it (parameter overrides checked and applied)."""
    template = load_template(path)
    return transform(template, resolve_parameters(template, parameter_overrides or {}), region=region)


# ----------------------------------------------------------------------------- resolution


def _parameter_value(name: str, spec: Mapping[str, Any], raw: Any) -> str | list[str]:
    """Check a parameter value against its declaration, like CloudFormation does on deploy."""
    kind = str(spec.get("Type", "String"))
    if kind.startswith("AWS::SSM::Parameter::Value"):
        raise TemplateError(f"parameter {name}: type {kind} needs a real SSM lookup; override it")
    text = ",".join(map(str, raw)) if isinstance(raw, list) else str(raw)
    allowed = spec.get("AllowedValues")
    if kind in ("CommaDelimitedList", "List<Number>") or kind.startswith("List<"):
        items = [item.strip() for item in text.split(",")] if text else []
        if allowed is not None:
            for item in items:
                if item not in {str(a) for a in allowed}:
                    raise TemplateError(f"parameter {name}: {item!r} is not one of {allowed}")
        return items
    if allowed is not None and text not in {str(a) for a in allowed}:
        raise TemplateError(f"parameter {name}: {text!r} is not one of {allowed}")
    pattern = spec.get("AllowedPattern")
    if pattern is not None and not re.fullmatch(str(pattern), text):
        raise TemplateError(f"parameter {name}: {text!r} does not match {pattern}")
    if "MinLength" in spec and len(text) < int(spec["MinLength"]):
        raise TemplateError(f"parameter {name}: shorter than {spec['MinLength']}")
    if "MaxLength" in spec and len(text) > int(spec["MaxLength"]):
        raise TemplateError(f"parameter {name}: longer than {spec['MaxLength']}")
    if kind == "Number":
        try:
            number = float(text)
        except ValueError:
            raise TemplateError(f"parameter {name}: {text!r} is not a number") from None
        if "MinValue" in spec and number < float(spec["MinValue"]):
            raise TemplateError(f"parameter {name}: {text} is below {spec['MinValue']}")
        if "MaxValue" in spec and number > float(spec["MaxValue"]):
            raise TemplateError(f"parameter {name}: {text} is above {spec['MaxValue']}")
    return text


def resolve_parameters(template: Mapping[str, Any], overrides: Mapping[str, str]) -> dict[str, str | list[str]]:
    declared: Mapping[str, Any] = template.get("Parameters") or {}
    unknown = sorted(set(overrides) - set(declared))
    if unknown:
        raise TemplateError(f"parameter overrides not declared in the template: {', '.join(unknown)}")
    values: dict[str, str | list[str]] = {}
    for name, spec in declared.items():
        raw = overrides.get(name, spec.get("Default"))
        if raw is None:
            raise TemplateError(f"parameter {name} has no Default; pass it as an override")
        values[name] = _parameter_value(name, spec, raw)
    return values


_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")


class Resolver:
    """Evaluates intrinsic functions against parameters and provisioned resources."""

    def __init__(
        self,
        template: Mapping[str, Any],
        parameters: Mapping[str, str | list[str]],
        *,
        stack_name: str,
        region: str = "us-east-1",
        account_id: str = LOCAL_ACCOUNT_ID,
    ) -> None:
        self.template = template
        self.parameters = dict(parameters)
        self.region = region
        self.account_id = account_id
        self.stack_name = stack_name
        self.pseudo: dict[str, Any] = {
            "AWS::AccountId": account_id,
            "AWS::Region": region,
            "AWS::Partition": PARTITION,
            "AWS::StackName": stack_name,
            "AWS::StackId": (
                f"arn:{PARTITION}:cloudformation:{region}:{account_id}:stack/{stack_name}/"
                + hashlib.sha1(stack_name.encode()).hexdigest()[:8]
            ),
            "AWS::URLSuffix": URL_SUFFIX,
            "AWS::NotificationARNs": [],
        }
        self.refs: dict[str, Any] = {}  # logical id → Ref value of provisioned resources
        self.attributes: dict[str, dict[str, Any]] = {}  # logical id → GetAtt values
        self._conditions: dict[str, bool] = {}

    # -- conditions ------------------------------------------------------------------------

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            definitions = self.template.get("Conditions") or {}
            if name not in definitions:
                raise TemplateError(f"unknown condition {name}")
            self._conditions[name] = bool(self._condition_value(definitions[name]))
        return self._conditions[name]

    def _condition_value(self, node: Any) -> Any:
        if isinstance(node, dict) and len(node) == 1:
            ((key, value),) = node.items()
            if key == "Condition":
                return self.condition(value)
            if key == "Fn::Equals":
                left, right = (self._condition_value(v) for v in value)
                return str(left) == str(right)
            if key == "Fn::Not":
                return not self._condition_value(value[0])
            if key == "Fn::And":
                return all(self._condition_value(v) for v in value)
            if key == "Fn::Or":
                return any(self._condition_value(v) for v in value)
        return self.resolve(node)

    # -- intrinsic functions ---------------------------------------------------------------

    def resolve(self, node: Any) -> Any:
        if isinstance(node, list):
            return [v for v in (self.resolve(item) for item in node) if v is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, value),) = node.items()
            if key == "Ref":
                return self.ref(str(value))
            if key.startswith("Fn::"):
                return self._function(key, value)
        resolved = {key: self.resolve(value) for key, value in node.items()}
        return {key: value for key, value in resolved.items() if value is not NO_VALUE}

    def ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in self.refs:
            return self.refs[name]
        raise TemplateError(f"Ref {name}: not a parameter or a provisioned resource")

    def get_att(self, logical_id: str, attribute: str) -> Any:
        if logical_id not in self.attributes:
            raise TemplateError(f"GetAtt {logical_id}.{attribute}: resource not provisioned")
        attributes = self.attributes[logical_id]
        if attribute not in attributes:
            known = ", ".join(sorted(attributes)) or "none"
            raise TemplateError(f"GetAtt {logical_id}.{attribute}: unsupported (known: {known})")
        return attributes[attribute]

    def _function(self, name: str, value: Any) -> Any:
        if name == "Fn::Sub":
            return self._sub(value)
        if name == "Fn::GetAtt":
            logical_id, attribute = value.split(".", 1) if isinstance(value, str) else value
            return self.get_att(str(logical_id), str(self.resolve(attribute)))
        if name == "Fn::Join":
            delimiter, items = value
            return str(delimiter).join(str(item) for item in self.resolve(items))
        if name == "Fn::Select":
            index, items = self.resolve(value)
            return items[int(index)]
        if name == "Fn::Split":
            delimiter, text = self.resolve(value)
            return str(text).split(str(delimiter))
        if name == "Fn::If":
            condition, when_true, when_false = value
            return self.resolve(when_true if self.condition(condition) else when_false)
        if name in ("Fn::Equals", "Fn::Not", "Fn::And", "Fn::Or"):
            return self._condition_value({name: value})
        if name == "Fn::FindInMap":
            map_name, top, second, *default = value
            mapping = (self.template.get("Mappings") or {}).get(self.resolve(map_name), {})
            try:
                return self.resolve(mapping[self.resolve(top)][self.resolve(second)])
            except KeyError:
                if default:
                    return self.resolve(default[0]["DefaultValue"])
                raise TemplateError(f"Fn::FindInMap {value}: no such entry") from None
        if name == "Fn::Base64":
            return base64.b64encode(str(self.resolve(value)).encode()).decode()
        if name == "Fn::GetAZs":
            return [f"{self.region}{zone}" for zone in "abc"]
        if name == "Fn::ToJsonString":
            return json.dumps(self.resolve(value), separators=(",", ":"))
        if name == "Fn::Length":
            return len(self.resolve(value))
        raise TemplateError(f"intrinsic function {name} is not supported by the local stack")

    def _sub(self, value: Any) -> str:
        if isinstance(value, list):
            text, variables = value[0], {k: self.resolve(v) for k, v in value[1].items()}
        else:
            text, variables = value, {}

        def replace(match: re.Match[str]) -> str:
            expression = match.group(1)
            if expression.startswith("!"):  # ${!Literal} is the escape for a literal ${Literal}
                return "${" + expression[1:] + "}"
            if expression in variables:
                return str(variables[expression])
            if "." in expression and expression.split(".", 1)[0] not in self.parameters:
                logical_id, attribute = expression.split(".", 1)
                return str(self.get_att(logical_id, attribute))
            resolved = self.ref(expression)
            return ",".join(resolved) if isinstance(resolved, list) else str(resolved)

        return _SUB_VARIABLE.sub(replace, str(text))


def references(node: Any) -> set[str]:
    """Logical ids a node refers to (Ref, Fn::GetAtt, Fn::Sub variables), statically."""
    found: set[str] = set()
    if isinstance(node, list):
        for item in node:
            found |= references(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                found.add(value)
            elif key == "Fn::GetAtt":
                target = value.split(".", 1)[0] if isinstance(value, str) else value[0]
                found.add(str(target))
            elif key == "Fn::Sub":
                text, variables = (value[0], value[1]) if isinstance(value, list) else (value, {})
                for expression in _SUB_VARIABLE.findall(str(text)):
                    if not expression.startswith("!") and expression not in variables:
                        found.add(expression.split(".", 1)[0])
                found |= references(variables)
            else:
                found |= references(value)
    return found


# ----------------------------------------------------------------------------- provisioning


@dataclass
class ProvisionedStack:
    """What the rest of the local stack needs from the template, fully resolved."""

    stack_name: str
    parameters: dict[str, str | list[str]]
    resources: dict[str, str]  # logical id → resource type (provisioned or ignored)
    refs: dict[str, Any]
    attributes: dict[str, dict[str, Any]]
    functions: list[FunctionConfig] = field(default_factory=list)
    api: ApiConfig | None = None
    sqs_mappings: list[SqsMapping] = field(default_factory=list)
    sns_subscriptions: list[SnsSubscription] = field(default_factory=list)
    delivery_streams: list[DeliveryStreamConfig] = field(default_factory=list)
    schedules: list[ScheduleConfig] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)

    def ref(self, logical_id: str) -> Any:
        return self.refs[logical_id]

    def attribute(self, logical_id: str, name: str) -> Any:
        return self.attributes[logical_id][name]


@dataclass
class _Resource:
    logical_id: str
    type: str
    properties: dict[str, Any]


Handler = Callable[["Provisioner", _Resource], None]


@dataclass(frozen=True)
class _TypeSupport:
    handler: Handler
    applied: frozenset[str]
    ignored: Mapping[str, str]  # property → why it does not matter locally


@dataclass
class _RestApi:
    """One AWS::ApiGateway::RestApi and the stages that deploy it."""

    logical_id: str
    routes: list[ApiRoute]
    binary_media_types: list[str]
    cors: CorsConfig | None
    gateway_responses: dict[str, GatewayResponse]
    api_key_source: str = "HEADER"  # where a method that requires an API key takes it from
    stages: list[tuple[str, dict[str, str]]] = field(default_factory=list)  # (name, stage variables)
    deployment_stages: list[str] = field(default_factory=list)  # a Deployment's own StageName


def _int(value: Any) -> int:
    return int(str(value))


def _bool_text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _tags(tags: Any) -> list[dict[str, str]]:
    if isinstance(tags, dict):  # SAM's map form
        return [{"Key": str(k), "Value": str(v)} for k, v in tags.items()]
    return [{"Key": str(t["Key"]), "Value": str(t["Value"])} for t in tags or []]


def _only(context: str, mapping: Mapping[str, Any], allowed: Iterable[str]) -> None:
    extra = sorted(set(mapping) - set(allowed))
    if extra:
        raise TemplateError(f"{context}: unsupported by the local stack: {', '.join(extra)}")


class Provisioner:
    """Creates the template's resources through the AWS gateway and collects the local config."""

    def __init__(
        self,
        template_path: Path,
        endpoint: AwsEndpoint,
        *,
        parameter_overrides: Mapping[str, str] | None = None,
        stack_name: str = "chorus-local",
    ) -> None:
        self.template_path = template_path
        self.base_dir = template_path.parent
        self.endpoint = endpoint
        source = load_template(template_path)
        self.parameters = resolve_parameters(source, parameter_overrides or {})
        self.template = transform(source, self.parameters, region=endpoint.region)
        self.resolver = Resolver(self.template, self.parameters, stack_name=stack_name, region=endpoint.region)
        self.stack = ProvisionedStack(
            stack_name=stack_name,
            parameters=self.parameters,
            resources={},
            refs=self.resolver.refs,
            attributes=self.resolver.attributes,
        )
        self._layers: dict[str, Path] = {}  # layer version ARN → content directory
        self._functions: dict[str, FunctionConfig] = {}  # logical id → config (async config added later)
        self._function_ids: dict[str, str] = {}  # function name and ARN → logical id
        self._apis: dict[str, _RestApi] = {}  # REST API id → routes and stages

    # -- helpers for handlers --------------------------------------------------------------

    @property
    def region(self) -> str:
        return self.endpoint.region

    def arn(self, service: str, resource: str, *, region: bool = True, account: bool = True) -> str:
        return ":".join(
            [
                "arn",
                PARTITION,
                service,
                self.region if region else "",
                LOCAL_ACCOUNT_ID if account else "",
                resource,
            ]
        )

    def generated_name(self, logical_id: str, *, max_length: int = 64, lower: bool = False) -> str:
        # CloudFormation appends a random suffix; a stable name is friendlier locally.
        name = f"{self.stack.stack_name}-{logical_id}"[:max_length]
        return name.lower() if lower else name

    def register(self, logical_id: str, ref: Any, **attributes: Any) -> None:
        self.resolver.refs[logical_id] = ref
        self.resolver.attributes[logical_id] = attributes

    def path(self, relative: Any, context: str) -> Path:
        if not isinstance(relative, str):
            raise TemplateError(f"{context}: only a local path is supported, got {relative!r}")
        path = (self.base_dir / relative).resolve()
        if not path.exists():
            raise TemplateError(f"{context}: {path} does not exist")
        return path

    def artifact(self, location: Any, bucket_key: str, key_key: str, context: str) -> Path:
        """A local path that went through SAM as an S3 location (see `_local_uris_as_s3`)."""
        if not isinstance(location, dict) or location.get(bucket_key) != LOCAL_ARTIFACTS_BUCKET:
            raise TemplateError(f"{context}: only a local path next to the template runs locally, got {location!r}")
        return self.path(location.get(key_key), context)

    def function(self, name_or_arn: Any, context: str) -> FunctionConfig:
        """A function of this template by name, ARN (with or without qualifier) or logical id."""
        key = str(name_or_arn)
        if key.startswith("arn:") and len(key.split(":")) > 7:
            key = ":".join(key.split(":")[:7])  # drop a version or alias qualifier
        logical_id = self._function_ids.get(key, key)
        if logical_id not in self._functions:
            raise TemplateError(f"{context}: {name_or_arn} is not a function of this template")
        return self._functions[logical_id]

    def rest_api(self, api_id: Any, context: str) -> _RestApi:
        if str(api_id) not in self._apis:
            raise TemplateError(f"{context}: {api_id} is not a REST API of this template")
        return self._apis[str(api_id)]

    # -- the run ---------------------------------------------------------------------------

    def provision(self) -> ProvisionedStack:
        resources = self.template["Resources"]
        for logical_id in self._order(resources):
            definition = resources[logical_id]
            resource_type = str(definition.get("Type"))
            condition = definition.get("Condition")
            if condition is not None and not self.resolver.condition(condition):
                log.debug("%s skipped: condition %s is false", logical_id, condition)
                continue
            self.stack.resources[logical_id] = resource_type
            support = _SUPPORT.get(resource_type)
            if support is None:
                if resource_type in _AWS_SIDE_ONLY:
                    self._ignore(logical_id, resource_type, _AWS_SIDE_ONLY[resource_type])
                    continue
                raise TemplateError(f"{logical_id}: resource type {resource_type} is not supported by the local stack")
            raw = definition.get("Properties") or {}
            _only(f"{logical_id} ({resource_type}) properties", raw, support.applied | set(support.ignored))
            for name in sorted(set(raw) & set(support.ignored)):
                log.debug("%s.%s not applied locally: %s", logical_id, name, support.ignored[name])
            properties = self.resolver.resolve({k: v for k, v in raw.items() if k in support.applied})
            support.handler(self, _Resource(logical_id, resource_type, properties))
        self.stack.functions = self._labelled(list(self._functions.values()))
        self._finish_api()
        self.stack.outputs = self._outputs()
        return self.stack

    def _order(self, resources: Mapping[str, Any]) -> list[str]:
        """Dependency order (Ref, GetAtt, Sub, DependsOn), template order among equals."""
        dependencies: dict[str, set[str]] = {}
        for logical_id, definition in resources.items():
            depends_on = definition.get("DependsOn") or []
            needed = references(definition.get("Properties") or {})
            needed |= {depends_on} if isinstance(depends_on, str) else set(depends_on)
            dependencies[logical_id] = {d for d in needed if d in resources and d != logical_id}
        ordered: list[str] = []
        done: set[str] = set()
        while len(ordered) < len(resources):
            ready = [r for r in resources if r not in done and dependencies[r] <= done]
            if not ready:
                cycle = sorted(set(resources) - done)
                raise TemplateError(f"circular dependency among: {', '.join(cycle)}")
            for logical_id in ready:
                ordered.append(logical_id)
                done.add(logical_id)
        return ordered

    def _ignore(self, logical_id: str, resource_type: str, why: str) -> None:
        """AWS-side only; still give it a Ref/Arn so other resources can mention it."""
        log.debug("%s (%s) not created locally: %s", logical_id, resource_type, why)
        definition = self.template["Resources"][logical_id]
        properties = definition.get("Properties") or {}
        name_property = {
            "AWS::Logs::LogGroup": "LogGroupName",
            "AWS::IAM::Role": "RoleName",
            "AWS::CloudWatch::Alarm": "AlarmName",
            "AWS::CloudWatch::Dashboard": "DashboardName",
        }.get(resource_type)
        name = self.generated_name(logical_id)
        if name_property and name_property in properties:
            with contextlib.suppress(TemplateError):
                name = str(self.resolver.resolve(properties[name_property]))
        if resource_type == "AWS::Logs::LogGroup":
            arn = self.arn("logs", f"log-group:{name}:*")
            self.register(logical_id, name, Arn=arn)
        elif resource_type == "AWS::IAM::Role":
            arn = self.arn("iam", f"role/{name}", region=False)
            self.register(logical_id, name, Arn=arn, RoleId=hashlib.sha1(name.encode()).hexdigest())
        elif resource_type == "AWS::IAM::ManagedPolicy":
            arn = self.arn("iam", f"policy/{name}", region=False)
            self.register(logical_id, arn, PolicyArn=arn)
        elif resource_type == "AWS::CloudWatch::Alarm":
            self.register(logical_id, name, Arn=self.arn("cloudwatch", f"alarm:{name}"))
        else:
            self.register(logical_id, name)

    def _outputs(self) -> dict[str, Any]:
        outputs: dict[str, Any] = {}
        for name, output in (self.template.get("Outputs") or {}).items():
            condition = output.get("Condition")
            if condition is not None and not self.resolver.condition(condition):
                continue
            outputs[name] = self.resolver.resolve(output.get("Value"))
        return outputs

    @staticmethod
    def _labelled(functions: list[FunctionConfig]) -> list[FunctionConfig]:
        """Log labels: function names without the prefix they all share (chorus-local-…)."""
        if len(functions) < 2:
            return functions
        split = [f.name.split("-") for f in functions]
        shared = 0
        while all(len(parts) > shared + 1 and parts[shared] == split[0][shared] for parts in split):
            shared += 1
        return [
            dataclasses.replace(f, log_label="-".join(parts[shared:]))
            for f, parts in zip(functions, split, strict=True)
        ]

    def _finish_api(self) -> None:
        served = {api_id: api for api_id, api in self._apis.items() if api.routes}
        if not served:
            return
        if len(served) > 1:
            names = ", ".join(sorted(api.logical_id for api in served.values()))
            raise TemplateError(f"more than one REST API has routes; the local stack serves one ({names})")
        ((api_id, api),) = served.items()
        if len(api.stages) > 1:
            names = ", ".join(sorted(name for name, _ in api.stages))
            raise TemplateError(f"{api.logical_id}: more than one stage ({names}); the local stack serves one")
        if api.stages:
            (stage, variables), *_ = api.stages
        elif api.deployment_stages:
            stage, variables = api.deployment_stages[0], {}
        else:
            raise TemplateError(f"{api.logical_id}: no stage deploys it")
        for name in api.deployment_stages:
            if name != stage:
                log.debug("%s: the deployment's stage %s is not served (only %s)", api.logical_id, name, stage)
        seen: set[tuple[str, str]] = set()
        for route in api.routes:
            key = (route.path, route.method)
            if key in seen:
                raise TemplateError(f"{api.logical_id}: two integrations for {route.method} {route.path}")
            seen.add(key)
        self.stack.api = ApiConfig(
            stage=stage,
            routes=tuple(api.routes),
            binary_media_types=tuple(api.binary_media_types),
            cors=api.cors,
            api_id=api_id,
            stage_variables=variables,
            gateway_responses=api.gateway_responses,
            region=self.region,
            api_key_source=api.api_key_source,
        )


# ----------------------------------------------------------------------------- handlers


def _s3_bucket(p: Provisioner, r: _Resource) -> None:
    props = r.properties
    name = str(props.get("BucketName") or p.generated_name(r.logical_id, max_length=63, lower=True))
    s3 = p.endpoint.client("s3")
    s3.create_bucket(Bucket=name)
    if "BucketEncryption" in props:
        rules = []
        for rule in props["BucketEncryption"]["ServerSideEncryptionConfiguration"]:
            converted: dict[str, Any] = {"ApplyServerSideEncryptionByDefault": rule["ServerSideEncryptionByDefault"]}
            if "BucketKeyEnabled" in rule:
                converted["BucketKeyEnabled"] = bool(rule["BucketKeyEnabled"])
            rules.append(converted)
        s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules})
    if "PublicAccessBlockConfiguration" in props:
        s3.put_public_access_block(
            Bucket=name,
            PublicAccessBlockConfiguration={k: bool(v) for k, v in props["PublicAccessBlockConfiguration"].items()},
        )
    if "OwnershipControls" in props:
        s3.put_bucket_ownership_controls(Bucket=name, OwnershipControls=props["OwnershipControls"])
    if "VersioningConfiguration" in props:
        s3.put_bucket_versioning(
            Bucket=name,
            VersioningConfiguration={"Status": props["VersioningConfiguration"]["Status"]},
        )
    if "CorsConfiguration" in props:
        rules = []
        for rule in props["CorsConfiguration"]["CorsRules"]:
            _only(
                f"{r.logical_id} CorsRules",
                rule,
                {"AllowedHeaders", "AllowedMethods", "AllowedOrigins", "ExposedHeaders", "Id", "MaxAge"},
            )
            converted = {
                key: [str(v) for v in rule[key]]
                for key in ("AllowedHeaders", "AllowedMethods", "AllowedOrigins")
                if key in rule
            }
            if "ExposedHeaders" in rule:
                converted["ExposeHeaders"] = [str(v) for v in rule["ExposedHeaders"]]
            if "Id" in rule:
                converted["ID"] = str(rule["Id"])
            if "MaxAge" in rule:
                converted["MaxAgeSeconds"] = _int(rule["MaxAge"])
            rules.append(converted)
        s3.put_bucket_cors(Bucket=name, CORSConfiguration={"CORSRules": rules})
    if "LifecycleConfiguration" in props:
        # moto stores the rules but never expires objects; applying them still checks the shape.
        rules = []
        for rule in props["LifecycleConfiguration"]["Rules"]:
            _only(
                f"{r.logical_id} lifecycle rule",
                rule,
                {
                    "Id",
                    "Status",
                    "Prefix",
                    "ExpirationInDays",
                    "AbortIncompleteMultipartUpload",
                    "NoncurrentVersionExpirationInDays",
                },
            )
            converted = {"Status": rule["Status"], "Filter": {"Prefix": rule.get("Prefix", "")}}
            if "Id" in rule:
                converted["ID"] = rule["Id"]
            if "ExpirationInDays" in rule:
                converted["Expiration"] = {"Days": _int(rule["ExpirationInDays"])}
            if "AbortIncompleteMultipartUpload" in rule:
                days = rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"]
                converted["AbortIncompleteMultipartUpload"] = {"DaysAfterInitiation": _int(days)}
            if "NoncurrentVersionExpirationInDays" in rule:
                converted["NoncurrentVersionExpiration"] = {
                    "NoncurrentDays": _int(rule["NoncurrentVersionExpirationInDays"])
                }
            rules.append(converted)
        s3.put_bucket_lifecycle_configuration(Bucket=name, LifecycleConfiguration={"Rules": rules})
    if "NotificationConfiguration" in props:
        s3.put_bucket_notification_configuration(
            Bucket=name,
            NotificationConfiguration=_s3_notifications(r.logical_id, props["NotificationConfiguration"]),
        )
    if props.get("Tags"):
        s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": _tags(props["Tags"])})
    arn = p.arn("s3", name, region=False, account=False)
    p.register(
        r.logical_id,
        name,
        Arn=arn,
        DomainName=f"{name}.s3.{URL_SUFFIX}",
        RegionalDomainName=f"{name}.s3.{p.region}.{URL_SUFFIX}",
        DualStackDomainName=f"{name}.s3.dualstack.{p.region}.{URL_SUFFIX}",
        WebsiteURL=f"http://{name}.s3-website-{p.region}.{URL_SUFFIX}",
    )


def _s3_notifications(logical_id: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """CloudFormation's NotificationConfiguration → the S3 API's shape."""
    _only(f"{logical_id} NotificationConfiguration", config, {"QueueConfigurations", "TopicConfigurations"})
    converted: dict[str, Any] = {}
    for section, target_key, api_key in (
        ("QueueConfigurations", "Queue", "QueueArn"),
        ("TopicConfigurations", "Topic", "TopicArn"),
    ):
        for item in config.get(section, []):
            entry: dict[str, Any] = {api_key: item[target_key], "Events": [item["Event"]]}
            rules = ((item.get("Filter") or {}).get("S3Key") or {}).get("Rules")
            if rules:
                # S3 takes the rule names in any case; moto only filters on lower-case ones.
                entry["Filter"] = {
                    "Key": {"FilterRules": [{"Name": str(x["Name"]).lower(), "Value": x["Value"]} for x in rules]}
                }
            converted.setdefault(section, []).append(entry)
    return converted


_SQS_ATTRIBUTES = (
    "VisibilityTimeout",
    "MessageRetentionPeriod",
    "DelaySeconds",
    "MaximumMessageSize",
    "ReceiveMessageWaitTimeSeconds",
    "FifoQueue",
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "FifoThroughputLimit",
    "KmsMasterKeyId",
    "KmsDataKeyReusePeriodSeconds",
    "SqsManagedSseEnabled",
)


def _sqs_queue(p: Provisioner, r: _Resource) -> None:
    props = r.properties
    fifo = str(props.get("FifoQueue", "false")).lower() == "true"
    name = props.get("QueueName") or p.generated_name(r.logical_id, max_length=75) + (".fifo" if fifo else "")
    attributes = {key: _bool_text(props[key]) for key in _SQS_ATTRIBUTES if key in props}
    for key in ("RedrivePolicy", "RedriveAllowPolicy"):
        if key in props:
            value = props[key]
            attributes[key] = value if isinstance(value, str) else json.dumps(value)
    sqs = p.endpoint.client("sqs")
    url = sqs.create_queue(QueueName=str(name), Attributes=attributes)["QueueUrl"]
    if props.get("Tags"):
        sqs.tag_queue(QueueUrl=url, Tags={t["Key"]: t["Value"] for t in _tags(props["Tags"])})
    arn = p.arn("sqs", str(name))
    p.register(r.logical_id, url, Arn=arn, QueueUrl=url, QueueName=str(name))


def _sns_topic(p: Provisioner, r: _Resource) -> None:
    props = r.properties
    fifo = str(props.get("FifoTopic", "false")).lower() == "true"
    name = str(props.get("TopicName") or p.generated_name(r.logical_id, max_length=251) + (".fifo" if fifo else ""))
    attributes = {
        key: _bool_text(props[key])
        for key in (
            "DisplayName",
            "KmsMasterKeyId",
            "FifoTopic",
            "ContentBasedDeduplication",
            "SignatureVersion",
            "TracingConfig",
        )
        if key in props
    }
    sns = p.endpoint.client("sns")
    arn = sns.create_topic(Name=name, Attributes=attributes, Tags=_tags(props.get("Tags")))["TopicArn"]
    p.register(r.logical_id, arn, TopicArn=arn, TopicName=name)
    for subscription in props.get("Subscription") or []:
        _subscribe(p, r.logical_id, arn, subscription["Protocol"], subscription["Endpoint"], {})


def _subscribe(
    p: Provisioner, logical_id: str, topic_arn: str, protocol: str, endpoint: str, attributes: Mapping[str, Any]
) -> None:
    if protocol == "lambda":
        # Delivered by the local runtime once functions run (see event_sources.SnsDeliveries).
        function = p.function(endpoint, f"{logical_id} Endpoint")
        p.stack.sns_subscriptions.append(
            SnsSubscription(
                function=function.logical_id,
                topic_arn=topic_arn,
                filter_policy=attributes.get("FilterPolicy"),
                filter_policy_scope=attributes.get("FilterPolicyScope"),
            )
        )
        return
    if protocol not in ("sqs", "http", "https", "email", "email-json"):
        raise TemplateError(f"{logical_id}: SNS protocol {protocol} is not supported locally")
    text_attributes = {k: v if isinstance(v, str) else json.dumps(v) for k, v in attributes.items()}
    p.endpoint.client("sns").subscribe(
        TopicArn=topic_arn, Protocol=protocol, Endpoint=endpoint, Attributes=text_attributes
    )


def _sns_subscription(p: Provisioner, r: _Resource) -> None:
    props = r.properties
    attributes: dict[str, Any] = {
        key: _bool_text(props[key]) if isinstance(props[key], bool) else props[key]
        for key in ("FilterPolicy", "FilterPolicyScope", "RawMessageDelivery", "RedrivePolicy")
        if key in props
    }
    _subscribe(p, r.logical_id, props["TopicArn"], props["Protocol"], props["Endpoint"], attributes)
    p.register(r.logical_id, f"{props['TopicArn']}:{r.logical_id}")


def _dynamodb_table(p: Provisioner, r: _Resource) -> None:
    props = r.properties
    name = str(props.get("TableName") or p.generated_name(r.logical_id, max_length=255))
    request: dict[str, Any] = {
        "TableName": name,
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
        "BillingMode": props.get("BillingMode", "PROVISIONED"),
    }

    def throughput(spec: Mapping[str, Any]) -> dict[str, int]:
        return {k: _int(v) for k, v in spec.items()}

    if "ProvisionedThroughput" in props:
        request["ProvisionedThroughput"] = throughput(props["ProvisionedThroughput"])
    for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
        if key in props:
            indexes = []
            for index in props[key]:
                _only(
                    f"{r.logical_id} {key}",
                    index,
                    {
                        "IndexName",
                        "KeySchema",
                        "Projection",
                        "ProvisionedThroughput",
                        "ContributorInsightsSpecification",
                    },
                )
                converted = {k: v for k, v in index.items() if k != "ContributorInsightsSpecification"}
                if "ProvisionedThroughput" in converted:
                    converted["ProvisionedThroughput"] = throughput(converted["ProvisionedThroughput"])
                indexes.append(converted)
            request[key] = indexes
    if "StreamSpecification" in props:
        request["StreamSpecification"] = {
            "StreamEnabled": True,
            "StreamViewType": props["StreamSpecification"]["StreamViewType"],
        }
    if "SSESpecification" in props:
        sse = props["SSESpecification"]
        request["SSESpecification"] = {
            "Enabled": str(sse.get("SSEEnabled", "false")).lower() == "true",
            **{k: sse[k] for k in ("SSEType", "KMSMasterKeyId") if k in sse},
        }
    if "TableClass" in props:
        request["TableClass"] = props["TableClass"]
    if "DeletionProtectionEnabled" in props:
        request["DeletionProtectionEnabled"] = bool(props["DeletionProtectionEnabled"])
    if props.get("Tags"):
        request["Tags"] = _tags(props["Tags"])
    dynamodb = p.endpoint.client("dynamodb")
    description = dynamodb.create_table(**request)["TableDescription"]
    ttl = props.get("TimeToLiveSpecification")
    if ttl and str(ttl.get("Enabled", "false")).lower() == "true":
        dynamodb.update_time_to_live(
            TableName=name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]},
        )
    pitr = props.get("PointInTimeRecoverySpecification")
    if pitr is not None:
        dynamodb.update_continuous_backups(
            TableName=name,
            PointInTimeRecoverySpecification={
                "PointInTimeRecoveryEnabled": str(pitr.get("PointInTimeRecoveryEnabled")).lower() == "true"
            },
        )
    attributes: dict[str, Any] = {"Arn": description["TableArn"]}
    if "LatestStreamArn" in description:
        attributes["StreamArn"] = description["LatestStreamArn"]
    p.register(r.logical_id, name, **attributes)


def _ses_email_identity(p: Provisioner, r: _Resource) -> None:
    identity = str(r.properties["EmailIdentity"])
    ses = p.endpoint.client("ses")
    if "@" in identity:
        ses.verify_email_identity(EmailAddress=identity)  # moto marks it verified at once
    else:
        ses.verify_domain_identity(Domain=identity)
    p.register(r.logical_id, identity)


def _ssm_parameter(p: Provisioner, r: _Resource) -> None:
    props = r.properties
    name = str(props.get("Name") or p.generated_name(r.logical_id))
    request: dict[str, Any] = {
        "Name": name,
        "Value": str(props["Value"]),
        "Type": props["Type"],
        "Overwrite": True,
    }
    for key in ("Description", "AllowedPattern", "Tier", "DataType"):
        if key in props:
            request[key] = props[key]
    p.endpoint.client("ssm").put_parameter(**request)
    p.register(r.logical_id, name, Type=props["Type"], Value=str(props["Value"]))


def _layer_version(p: Provisioner, r: _Resource) -> None:
    props = r.properties
    name = str(props.get("LayerName") or r.logical_id)
    content = p.artifact(props.get("Content"), "S3Bucket", "S3Key", f"{r.logical_id}.Content")
    arn = p.arn("lambda", f"layer:{name}:1")
    # A python3.x BuildMethod copies ContentUri into the layer's python/ directory (/opt/python
    # on sys.path), so the directory itself goes on PYTHONPATH.
    p._layers[arn] = content
    p.register(r.logical_id, arn, LayerVersionArn=arn)


def _lambda_function(p: Provisioner, r: _Resource) -> None:
    props = r.properties
    context = r.logical_id
    if str(props.get("PackageType", "Zip")) != "Zip":
        raise TemplateError(f"{context}: only Zip functions run locally")
    runtime = str(props.get("Runtime", ""))
    if not runtime.startswith("python3"):
        raise TemplateError(f"{context}: runtime {runtime!r} cannot run locally (python3.x only)")
    name = str(props.get("FunctionName") or p.generated_name(r.logical_id))
    layer_dirs = []
    for layer in props.get("Layers") or []:
        if layer not in p._layers:
            raise TemplateError(f"{context}: layer {layer} is not a LayerVersion of this template")
        layer_dirs.append(p._layers[layer])
    variables = (props.get("Environment") or {}).get("Variables") or {}
    dead_letter = (props.get("DeadLetterConfig") or {}).get("TargetArn")
    config = FunctionConfig(
        logical_id=r.logical_id,
        name=name,
        handler=str(props["Handler"]),
        code_dir=p.artifact(props.get("Code"), "S3Bucket", "S3Key", f"{context}.Code"),
        timeout_seconds=_int(props.get("Timeout", 3)),
        memory_mb=_int(props.get("MemorySize", 128)),
        environment={str(k): _bool_text(v) for k, v in variables.items()},
        layer_dirs=tuple(layer_dirs),
        runtime=runtime,
        # Lambda's defaults until an EventInvokeConfig of the function says otherwise.
        async_config=AsyncInvokeConfig(
            dead_letter_queue=_destination(str(dead_letter), f"{context}.DeadLetterConfig") if dead_letter else None
        ),
    )
    arn = config.arn(p.region)
    p._functions[r.logical_id] = config
    p._function_ids.update({name: r.logical_id, arn: r.logical_id})
    p.register(r.logical_id, name, Arn=arn)


def _destination(arn: Any, context: str) -> Destination:
    destination = Destination(str(arn))
    if destination.arn.count(":") < 5 or destination.service not in ("sqs", "sns", "lambda"):
        raise TemplateError(f"{context}: destination {arn} is not supported locally (SQS, SNS or Lambda only)")
    return destination


def _event_invoke_config(p: Provisioner, r: _Resource) -> None:
    props = r.properties
    config = p.function(props["FunctionName"], f"{r.logical_id}.FunctionName")
    qualifier = str(props.get("Qualifier", "$LATEST"))
    if qualifier != "$LATEST":
        raise TemplateError(f"{r.logical_id}: qualifier {qualifier}: only $LATEST runs locally")
    destinations = props.get("DestinationConfig") or {}
    _only(f"{r.logical_id}.DestinationConfig", destinations, {"OnSuccess", "OnFailure"})
    on = {
        outcome: _destination(destinations[outcome]["Destination"], f"{r.logical_id} {outcome}")
        for outcome in ("OnSuccess", "OnFailure")
        if outcome in destinations
    }
    async_config = dataclasses.replace(
        config.async_config,
        maximum_retry_attempts=_int(props.get("MaximumRetryAttempts", 2)),
        maximum_event_age_seconds=_int(props.get("MaximumEventAgeInSeconds", 21600)),
        on_success=on.get("OnSuccess"),
        on_failure=on.get("OnFailure"),
    )
    p._functions[config.logical_id] = dataclasses.replace(config, async_config=async_config)
    p.register(r.logical_id, f"{config.name}:{qualifier}")


_BUCKET_ARN = re.compile(r"^arn:[^:]+:s3:::(?P<bucket>[^/]+)$")


def _delivery_stream(p: Provisioner, r: _Resource) -> None:
    """A DirectPut stream to S3: created in moto (so Describe and Delete work), delivered by
    chorus_local/delivery_streams.py (buffering, the Lambda transformation, dynamic partitioning)."""
    props = r.properties
    kind = str(props.get("DeliveryStreamType", "DirectPut"))
    if kind != "DirectPut":
        raise TemplateError(f"{r.logical_id}: only DirectPut delivery streams run locally, not {kind}")
    destination = props.get("ExtendedS3DestinationConfiguration")
    if not isinstance(destination, dict):
        raise TemplateError(f"{r.logical_id}: only ExtendedS3DestinationConfiguration is emulated locally")
    _only(
        f"{r.logical_id}.ExtendedS3DestinationConfiguration",
        destination,
        {
            "BucketARN",
            "RoleARN",
            "Prefix",
            "ErrorOutputPrefix",
            "BufferingHints",
            "CompressionFormat",
            "EncryptionConfiguration",
            "DynamicPartitioningConfiguration",
            "ProcessingConfiguration",
            "CloudWatchLoggingOptions",
        },
    )
    if str(destination.get("CompressionFormat", "UNCOMPRESSED")) != "UNCOMPRESSED":
        raise TemplateError(f"{r.logical_id}: only UNCOMPRESSED delivery is emulated locally")
    bucket = _BUCKET_ARN.match(str(destination["BucketARN"]))
    if bucket is None:
        raise TemplateError(f"{r.logical_id}: BucketARN {destination['BucketARN']!r} is not a bucket ARN")
    name = str(props.get("DeliveryStreamName") or p.generated_name(r.logical_id))
    hints = destination.get("BufferingHints") or {}
    processor, processor_bytes = None, 1024 * 1024
    processing = destination.get("ProcessingConfiguration") or {}
    if str(processing.get("Enabled", False)).lower() == "true":
        for step in processing.get("Processors") or []:
            if step.get("Type") != "Lambda":
                raise TemplateError(f"{r.logical_id}: processor {step.get('Type')} is not emulated (Lambda only)")
            parameters = {str(x["ParameterName"]): str(x["ParameterValue"]) for x in step.get("Parameters") or []}
            processor = p.function(parameters["LambdaArn"], f"{r.logical_id} processor").name
            processor_bytes = int(float(parameters.get("BufferSizeInMBs", "1")) * 1024 * 1024)
    kms = ((destination.get("EncryptionConfiguration") or {}).get("KMSEncryptionConfig") or {}).get("AWSKMSKeyARN")
    p.endpoint.client("firehose").create_delivery_stream(
        DeliveryStreamName=name,
        DeliveryStreamType="DirectPut",
        ExtendedS3DestinationConfiguration={
            "RoleARN": str(destination.get("RoleARN") or p.arn("iam", "role/firehose", region=False)),
            "BucketARN": str(destination["BucketARN"]),
            "Prefix": str(destination.get("Prefix", "")),
        },
    )
    arn = p.arn("firehose", f"deliverystream/{name}")
    p.stack.delivery_streams.append(
        DeliveryStreamConfig(
            name=name,
            arn=arn,
            bucket=bucket["bucket"],
            prefix=str(destination.get("Prefix", "")),
            error_prefix=str(destination.get("ErrorOutputPrefix", "")),
            interval_seconds=float(hints.get("IntervalInSeconds", 300)),
            size_bytes=int(float(hints.get("SizeInMBs", 5)) * 1024 * 1024),
            processor=processor,
            processor_batch_bytes=processor_bytes,
            kms_key_arn=str(kms) if kms else None,
            encrypted="DeliveryStreamEncryptionConfigurationInput" in props,
        )
    )
    p.register(r.logical_id, name, Arn=arn)


def _schedule(p: Provisioner, r: _Resource) -> None:
    """An EventBridge Scheduler schedule with a Lambda target (chorus_local/schedules.py runs it)."""
    props = r.properties
    target = props.get("Target") or {}
    _only(f"{r.logical_id}.Target", target, {"Arn", "RoleArn", "Input", "RetryPolicy", "DeadLetterConfig"})
    function = p.function(target.get("Arn"), f"{r.logical_id}.Target.Arn")
    name = str(props.get("Name") or p.generated_name(r.logical_id))
    p.stack.schedules.append(
        ScheduleConfig(
            logical_id=r.logical_id,
            name=name,
            expression=str(props["ScheduleExpression"]),
            function=function.name,
            input=str(target.get("Input") or "{}"),
            enabled=str(props.get("State", "ENABLED")) == "ENABLED",
        )
    )
    group = str(props.get("GroupName") or "default")
    p.register(r.logical_id, name, Arn=p.arn("scheduler", f"schedule/{group}/{name}"))


def _event_source_mapping(p: Provisioner, r: _Resource) -> None:
    props = r.properties
    source = str(props.get("EventSourceArn", ""))
    if source.split(":")[2:3] != ["sqs"]:
        raise TemplateError(f"{r.logical_id}: event source {source or '(none)'} is not supported locally (SQS only)")
    config = p.function(props["FunctionName"], f"{r.logical_id}.FunctionName")
    scaling = props.get("ScalingConfig") or {}
    _only(f"{r.logical_id}.ScalingConfig", scaling, {"MaximumConcurrency"})
    mapping = SqsMapping(
        function=config.name,
        queue_arn=source,
        batch_size=_int(props.get("BatchSize", 10)),
        batching_window_seconds=_int(props.get("MaximumBatchingWindowInSeconds", 0)),
        report_batch_item_failures="ReportBatchItemFailures" in (props.get("FunctionResponseTypes") or []),
        enabled=str(props.get("Enabled", True)).lower() == "true",
        maximum_concurrency=_int(scaling["MaximumConcurrency"]) if scaling else None,
    )
    p.stack.sqs_mappings.append(mapping)
    p.register(r.logical_id, hashlib.sha1(f"{p.stack.stack_name}/{r.logical_id}".encode()).hexdigest())


# The Lambda proxy integration SAM writes for a function's Api event.
_LAMBDA_URI = re.compile(r"^arn:[^:]+:apigateway:[^:]+:lambda:path/2015-03-31/functions/(?P<function>.+)/invocations$")
_ANY_METHOD = "x-amazon-apigateway-any-method"
_HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", _ANY_METHOD}


def _static_headers(parameters: Mapping[str, Any], prefix: str, context: str) -> dict[str, str]:
    """`<prefix>Name: "'value'"` mapping parameters → headers; only static values are emulated."""
    headers: dict[str, str] = {}
    for name, value in parameters.items():
        text = str(value)
        if not name.startswith(prefix) or not (len(text) >= 2 and text[0] == text[-1] == "'"):
            raise TemplateError(f"{context}: response parameter {name}={text} is not a static header")
        headers[name.removeprefix(prefix)] = text[1:-1]
    return headers


_IDENTITY_SOURCE = re.compile(r"^method\.request\.(?P<kind>header|querystring)\.(?P<name>[^.,\s]+)$")


# The security scheme of a method that requires an API key (SAM's `Auth.ApiKeyRequired`).
_API_KEY_SCHEME = {"type": "apiKey", "name": "x-api-key", "in": "header"}


def _authorizers(p: Provisioner, body: Mapping[str, Any], context: str) -> tuple[dict[str, Authorizer], set[str]]:
    """The API's security schemes: its Lambda authorizers (SAM's `Auth.Authorizers`), and the names
    of its API key schemes (a method naming one requires an API key)."""
    schemes = {
        **(body.get("securityDefinitions") or {}),
        **((body.get("components") or {}).get("securitySchemes") or {}),
    }
    found: dict[str, Authorizer] = {}
    api_keys: set[str] = set()
    for name, scheme in schemes.items():
        where = f"{context} security scheme {name}"
        spec = scheme.get("x-amazon-apigateway-authorizer")
        if dict(scheme) == _API_KEY_SCHEME:
            api_keys.add(name)
            continue
        if scheme.get("x-amazon-apigateway-authtype") != "custom" or not isinstance(spec, dict):
            raise TemplateError(f"{where}: only Lambda authorizers and API keys are emulated locally (no Cognito, IAM)")
        _only(
            where,
            spec,
            {"type", "authorizerUri", "identitySource", "authorizerResultTtlInSeconds", "identityValidationExpression"},
        )
        kind = str(spec.get("type", "")).upper()
        if kind not in ("REQUEST", "TOKEN"):
            raise TemplateError(f"{where}: authorizer type {spec.get('type')} is not emulated locally")
        match = _LAMBDA_URI.match(str(spec.get("authorizerUri", "")))
        if match is None:
            raise TemplateError(f"{where}: authorizer {spec.get('authorizerUri')} is not a Lambda function")
        sources = []
        for source in filter(None, (s.strip() for s in str(spec.get("identitySource", "")).split(","))):
            parsed = _IDENTITY_SOURCE.match(source)
            if parsed is None:
                raise TemplateError(f"{where}: identity source {source} is not emulated locally (headers, query)")
            sources.append((parsed["kind"], parsed["name"]))
        if not sources or (kind == "TOKEN" and sources[0][0] != "header"):
            raise TemplateError(f"{where}: no identity source (a header, or for REQUEST a query parameter)")
        validation = spec.get("identityValidationExpression")
        found[name] = Authorizer(
            name=name,
            function=p.function(match["function"], where).name,
            type=kind,
            identity_sources=tuple(sources),
            ttl_seconds=_int(spec.get("authorizerResultTtlInSeconds", 300)),
            validation_expression=str(validation) if validation else None,
        )
    return found, api_keys


def _route(
    p: Provisioner,
    path: str,
    verb: str,
    operation: Mapping[str, Any],
    context: str,
    authorizers: Mapping[str, Authorizer],
    api_keys: set[str],
    default_security: list[Any] | None,
) -> ApiRoute:
    method = "ANY" if verb == _ANY_METHOD else verb.upper()
    where = f"{context} {method} {path}"
    requirements = operation.get("security", default_security) or []
    security = {name for requirement in requirements for name in requirement} - {"NONE"}
    api_key_required = bool(security & api_keys)
    security -= api_keys
    unknown = security - set(authorizers)
    if unknown:
        raise TemplateError(f"{where}: security {', '.join(sorted(unknown))} is not a Lambda authorizer of the API")
    if len(security) > 1:
        raise TemplateError(f"{where}: more than one authorizer ({', '.join(sorted(security))})")
    authorizer = authorizers[security.pop()] if security else None
    integration = operation.get("x-amazon-apigateway-integration") or {}
    kind = integration.get("type")
    if kind == "aws_proxy":
        match = _LAMBDA_URI.match(str(integration.get("uri", "")))
        if match is None:
            raise TemplateError(f"{where}: integration {integration.get('uri')} is not a Lambda function")
        function = p.function(match["function"], where).name
        return ApiRoute(
            path=path, method=method, function=function, authorizer=authorizer, api_key_required=api_key_required
        )
    if kind == "mock":  # SAM's CORS preflight (OPTIONS) methods
        response = (integration.get("responses") or {}).get("default") or {}
        _only(f"{where} mock response", response, {"statusCode", "responseTemplates", "responseParameters"})
        mock = GatewayResponse(
            templates=dict(response.get("responseTemplates") or {}),
            headers=_static_headers(response.get("responseParameters") or {}, "method.response.header.", where),
            status=_int(response.get("statusCode", 200)),
        )
        return ApiRoute(path=path, method=method, function="", mock=mock)
    raise TemplateError(f"{where}: integration type {kind} is not emulated locally (aws_proxy and mock only)")


def _rest_api(p: Provisioner, r: _Resource) -> None:
    """The OpenAPI document SAM generates from Api events, Cors and GatewayResponses."""
    props = r.properties
    body = props.get("Body") or {}
    authorizers, api_keys = _authorizers(p, body, r.logical_id)
    routes: list[ApiRoute] = []
    for path, operations in (body.get("paths") or {}).items():
        for verb, operation in operations.items():
            if verb in _HTTP_METHODS:
                routes.append(
                    _route(p, str(path), verb, operation, r.logical_id, authorizers, api_keys, body.get("security"))
                )
            elif verb not in ("parameters", "summary", "description"):
                raise TemplateError(f"{r.logical_id} {path}: {verb} is not supported locally")
    origins = {
        route.mock.headers["Access-Control-Allow-Origin"]
        for route in routes
        if route.mock and route.mock.headers.get("Access-Control-Allow-Origin")
    }
    if len(origins) > 1:
        raise TemplateError(f"{r.logical_id}: CORS origins differ by path ({', '.join(sorted(origins))})")
    responses: dict[str, GatewayResponse] = {}
    for response_type, spec in (body.get("x-amazon-apigateway-gateway-responses") or {}).items():
        context = f"{r.logical_id} gateway response {response_type}"
        _only(context, spec, {"responseTemplates", "responseParameters", "statusCode"})
        responses[response_type] = GatewayResponse(
            templates=dict(spec.get("responseTemplates") or {}),
            headers=_static_headers(spec.get("responseParameters") or {}, "gatewayresponse.header.", context),
            status=_int(spec["statusCode"]) if "statusCode" in spec else None,
        )
    binary = [*(body.get("x-amazon-apigateway-binary-media-types") or []), *(props.get("BinaryMediaTypes") or [])]
    # The property (SAM's ApiKeySourceType) wins over the OpenAPI extension, as on import.
    key_source = str(props.get("ApiKeySourceType") or body.get("x-amazon-apigateway-api-key-source") or "HEADER")
    if key_source.upper() not in ("HEADER", "AUTHORIZER"):
        raise TemplateError(f"{r.logical_id}: ApiKeySourceType {key_source} is neither HEADER nor AUTHORIZER")
    api_id = hashlib.sha1(f"{p.stack.stack_name}/{r.logical_id}".encode()).hexdigest()[:10]
    p._apis[api_id] = _RestApi(
        logical_id=r.logical_id,
        routes=routes,
        binary_media_types=list(dict.fromkeys(str(t).replace("~1", "/") for t in binary)),
        cors=CorsConfig(allow_origin=origins.pop()) if origins else None,
        gateway_responses=responses,
        api_key_source=key_source.upper(),
    )
    p.register(r.logical_id, api_id, RootResourceId=hashlib.sha1(api_id.encode()).hexdigest()[:10])


def _api_deployment(p: Provisioner, r: _Resource) -> None:
    api = p.rest_api(r.properties["RestApiId"], f"{r.logical_id}.RestApiId")
    if "StageName" in r.properties:
        api.deployment_stages.append(str(r.properties["StageName"]))
    p.register(r.logical_id, hashlib.sha1(f"{p.stack.stack_name}/{r.logical_id}".encode()).hexdigest()[:6])


def _api_stage(p: Provisioner, r: _Resource) -> None:
    props = r.properties
    api = p.rest_api(props["RestApiId"], f"{r.logical_id}.RestApiId")
    api.stages.append((str(props["StageName"]), {str(k): str(v) for k, v in (props.get("Variables") or {}).items()}))
    p.register(r.logical_id, str(props["StageName"]))


def _state_machine(p: Provisioner, r: _Resource) -> None:
    props = r.properties
    name = str(props.get("StateMachineName") or p.generated_name(r.logical_id, max_length=80))
    if "DefinitionS3Location" in props:
        location = props["DefinitionS3Location"]
        definition = p.artifact(location, "Bucket", "Key", f"{r.logical_id}.DefinitionS3Location").read_text()
    elif "Definition" in props:
        definition = json.dumps(props["Definition"])
    elif "DefinitionString" in props:
        definition = str(props["DefinitionString"])
    else:
        raise TemplateError(f"{r.logical_id}: no DefinitionS3Location, Definition or DefinitionString")
    for key, value in (props.get("DefinitionSubstitutions") or {}).items():
        definition = definition.replace("${" + key + "}", str(value))
    leftover = sorted(set(re.findall(r"\$\{([A-Za-z0-9_.]+)\}", definition)))
    if leftover:
        raise TemplateError(f"{r.logical_id}: no DefinitionSubstitutions for {', '.join(leftover)}")
    json.loads(definition)  # fail here, naming the resource, rather than at the first execution
    role = props.get("RoleArn") or p.arn("iam", f"role/{p.generated_name(r.logical_id)}-role", region=False)
    arn = p.endpoint.client("stepfunctions").create_state_machine(
        name=name,
        definition=definition,
        roleArn=str(role),
        type=str(props.get("StateMachineType", "STANDARD")),
        tags=[{"key": t["Key"], "value": t["Value"]} for t in _tags(props.get("Tags"))],
    )["stateMachineArn"]
    p.register(r.logical_id, arn, Arn=arn, Name=name)


def _kms_key(p: Provisioner, r: _Resource) -> None:
    """A key in moto's KMS, with its policy (stored, not evaluated) and rotation."""
    props = r.properties
    policy = props["KeyPolicy"]
    request: dict[str, Any] = {"Policy": policy if isinstance(policy, str) else json.dumps(policy)}
    for key in ("Description", "KeyUsage", "KeySpec"):
        if key in props:
            request[key] = str(props[key])
    if "MultiRegion" in props:
        request["MultiRegion"] = _bool_text(props["MultiRegion"]) == "true"
    if props.get("Tags"):
        request["Tags"] = [{"TagKey": t["Key"], "TagValue": t["Value"]} for t in _tags(props["Tags"])]
    kms = p.endpoint.client("kms")
    metadata = kms.create_key(**request)["KeyMetadata"]
    key_id = metadata["KeyId"]
    if _bool_text(props.get("EnableKeyRotation", False)) == "true":
        period = (
            {"RotationPeriodInDays": _int(props["RotationPeriodInDays"])} if "RotationPeriodInDays" in props else {}
        )
        kms.enable_key_rotation(KeyId=key_id, **period)
    if _bool_text(props.get("Enabled", True)) == "false":
        kms.disable_key(KeyId=key_id)
    p.register(r.logical_id, key_id, Arn=metadata["Arn"], KeyId=key_id)


def _kms_alias(p: Provisioner, r: _Resource) -> None:
    name = str(r.properties["AliasName"])
    p.endpoint.client("kms").create_alias(AliasName=name, TargetKeyId=str(r.properties["TargetKeyId"]))
    p.register(r.logical_id, name)


def _events_rule(p: Provisioner, r: _Resource) -> None:
    props = r.properties
    pattern = props.get("EventPattern") or {}
    pattern = json.loads(pattern) if isinstance(pattern, str) else pattern
    if pattern.get("source") != ["aws.states"]:
        raise TemplateError(f"{r.logical_id}: EventBridge rules are not emulated locally (except aws.states ones)")
    for target in props.get("Targets") or []:
        _only(f"{r.logical_id} target", target, {"Id", "Arn", "DeadLetterConfig", "RetryPolicy", "Input", "InputPath"})
    # moto's Step Functions emits no EventBridge events; the rule is a backstop in AWS for
    # executions that end outside their own failure path, which the local interpreter reports
    # through the same SNS path.
    log.info("%s: Step Functions status-change events are not emitted locally", r.logical_id)
    name = str(props.get("Name") or p.generated_name(r.logical_id))
    p.register(r.logical_id, name, Arn=p.arn("events", f"rule/{name}"))


_SUPPORT: dict[str, _TypeSupport] = {
    "AWS::S3::Bucket": _TypeSupport(
        _s3_bucket,
        frozenset(
            {
                "BucketName",
                "BucketEncryption",
                "PublicAccessBlockConfiguration",
                "OwnershipControls",
                "VersioningConfiguration",
                "CorsConfiguration",
                "LifecycleConfiguration",
                "NotificationConfiguration",
                "Tags",
            }
        ),
        {
            "LoggingConfiguration": "no access logs locally",
            "MetricsConfigurations": "no CloudWatch locally",
            "IntelligentTieringConfigurations": "no storage classes locally",
        },
    ),
    "AWS::SQS::Queue": _TypeSupport(
        _sqs_queue,
        frozenset({"QueueName", "RedrivePolicy", "RedriveAllowPolicy", "Tags", *_SQS_ATTRIBUTES}),
        {},
    ),
    "AWS::SNS::Topic": _TypeSupport(
        _sns_topic,
        frozenset(
            {
                "TopicName",
                "DisplayName",
                "KmsMasterKeyId",
                "FifoTopic",
                "ContentBasedDeduplication",
                "SignatureVersion",
                "TracingConfig",
                "Subscription",
                "Tags",
            }
        ),
        {"DeliveryStatusLogging": "no CloudWatch locally", "ArchivePolicy": "no message archive locally"},
    ),
    "AWS::SNS::Subscription": _TypeSupport(
        _sns_subscription,
        frozenset(
            {
                "TopicArn",
                "Protocol",
                "Endpoint",
                "FilterPolicy",
                "FilterPolicyScope",
                "RawMessageDelivery",
                "RedrivePolicy",
            }
        ),
        {"Region": "one region locally"},
    ),
    "AWS::DynamoDB::Table": _TypeSupport(
        _dynamodb_table,
        frozenset(
            {
                "TableName",
                "AttributeDefinitions",
                "KeySchema",
                "BillingMode",
                "ProvisionedThroughput",
                "GlobalSecondaryIndexes",
                "LocalSecondaryIndexes",
                "StreamSpecification",
                "SSESpecification",
                "TableClass",
                "DeletionProtectionEnabled",
                "TimeToLiveSpecification",
                "PointInTimeRecoverySpecification",
                "Tags",
            }
        ),
        {"ContributorInsightsSpecification": "no CloudWatch locally"},
    ),
    "AWS::SES::EmailIdentity": _TypeSupport(
        _ses_email_identity,
        frozenset({"EmailIdentity"}),
        {
            "DkimAttributes": "no DKIM locally",
            "DkimSigningAttributes": "no DKIM locally",
            "FeedbackAttributes": "no feedback locally",
            "MailFromAttributes": "no MAIL FROM locally",
            "ConfigurationSetAttributes": "no configuration sets locally",
        },
    ),
    "AWS::SSM::Parameter": _TypeSupport(
        _ssm_parameter,
        frozenset({"Name", "Type", "Value", "Description", "AllowedPattern", "Tier", "DataType"}),
        {"Tags": "metadata", "Policies": "no parameter policies locally"},
    ),
    "AWS::Lambda::LayerVersion": _TypeSupport(
        _layer_version,
        frozenset({"Content", "LayerName"}),
        {
            "Description": "metadata",
            "CompatibleRuntimes": "metadata",
            "CompatibleArchitectures": "metadata",
            "LicenseInfo": "metadata",
        },
    ),
    "AWS::Lambda::Function": _TypeSupport(
        _lambda_function,
        frozenset(
            {
                "FunctionName",
                "Code",
                "Handler",
                "Runtime",
                "Timeout",
                "MemorySize",
                "Environment",
                "Layers",
                "DeadLetterConfig",
                "PackageType",
            }
        ),
        {
            "Role": "IAM is not enforced locally",
            "Architectures": "workers run on the host's architecture",
            "TracingConfig": "no X-Ray locally (AWS_SAM_LOCAL keeps Powertools Tracer off)",
            "Description": "metadata",
            "Tags": "metadata",
            "LoggingConfig": "logs go to the local log stream",
            "ReservedConcurrentExecutions": "concurrency is the local worker pool size",
            "KmsKeyArn": "no encryption of environment variables locally",
            "EphemeralStorage": "workers use the host's disk",
            "RuntimeManagementConfig": "workers use the stack's Python",
            "SnapStart": "no snapshots locally",
            "VpcConfig": "no VPC locally",
            "CodeSigningConfigArn": "no code signing locally",
        },
    ),
    "AWS::Lambda::EventInvokeConfig": _TypeSupport(
        _event_invoke_config,
        frozenset(
            {"FunctionName", "Qualifier", "MaximumRetryAttempts", "MaximumEventAgeInSeconds", "DestinationConfig"}
        ),
        {},
    ),
    "AWS::Lambda::EventSourceMapping": _TypeSupport(
        _event_source_mapping,
        frozenset(
            {
                "FunctionName",
                "EventSourceArn",
                "BatchSize",
                "MaximumBatchingWindowInSeconds",
                "FunctionResponseTypes",
                "Enabled",
                "ScalingConfig",
            }
        ),
        {"Tags": "metadata"},
    ),
    "AWS::ApiGateway::RestApi": _TypeSupport(
        _rest_api,
        frozenset({"Body", "Name", "BinaryMediaTypes", "ApiKeySourceType"}),
        {
            "Description": "metadata",
            "Parameters": "OpenAPI import options",
            "EndpointConfiguration": "served on 127.0.0.1",
            "MinimumCompressionSize": "no compression locally",
            "DisableExecuteApiEndpoint": "served on 127.0.0.1",
            "FailOnWarnings": "OpenAPI import option",
            "Mode": "OpenAPI import option",
            "Policy": "resource policies are not enforced locally",
            "Tags": "metadata",
        },
    ),
    "AWS::ApiGateway::Deployment": _TypeSupport(
        _api_deployment, frozenset({"RestApiId", "StageName"}), {"Description": "metadata"}
    ),
    "AWS::ApiGateway::Stage": _TypeSupport(
        _api_stage,
        frozenset({"RestApiId", "StageName", "DeploymentId", "Variables"}),
        {
            "Description": "metadata",
            "AccessLogSetting": "requests are logged to the stack's log stream",
            "MethodSettings": "no throttling locally",
            "TracingEnabled": "no X-Ray locally",
            "CacheClusterEnabled": "no cache locally",
            "CacheClusterSize": "no cache locally",
            "ClientCertificateId": "no client certificates locally",
            "DocumentationVersion": "metadata",
            "Tags": "metadata",
        },
    ),
    "AWS::StepFunctions::StateMachine": _TypeSupport(
        _state_machine,
        frozenset(
            {
                "StateMachineName",
                "StateMachineType",
                "DefinitionS3Location",
                "DefinitionString",
                "Definition",
                "DefinitionSubstitutions",
                "RoleArn",
                "Tags",
            }
        ),
        {"LoggingConfiguration": "no CloudWatch Logs locally", "TracingConfiguration": "no X-Ray locally"},
    ),
    "AWS::KMS::Key": _TypeSupport(
        _kms_key,
        frozenset(
            {
                "KeyPolicy",
                "Description",
                "EnableKeyRotation",
                "RotationPeriodInDays",
                "Enabled",
                "KeyUsage",
                "KeySpec",
                "MultiRegion",
                "Tags",
            }
        ),
        {
            "PendingWindowInDays": "a local key is never scheduled for deletion",
            "BypassPolicyLockoutSafetyCheck": "moto stores key policies without evaluating them",
        },
    ),
    "AWS::KMS::Alias": _TypeSupport(_kms_alias, frozenset({"AliasName", "TargetKeyId"}), {}),
    "AWS::KinesisFirehose::DeliveryStream": _TypeSupport(
        _delivery_stream,
        frozenset(
            {
                "DeliveryStreamName",
                "DeliveryStreamType",
                "ExtendedS3DestinationConfiguration",
                "DeliveryStreamEncryptionConfigurationInput",  # the stream reports Encrypted
            }
        ),
        {"Tags": "metadata"},
    ),
    "AWS::Scheduler::Schedule": _TypeSupport(
        _schedule,
        frozenset({"Name", "ScheduleExpression", "Target", "State", "GroupName"}),
        {
            "Description": "metadata",
            "FlexibleTimeWindow": "a local run is on time",
            "ScheduleExpressionTimezone": "rate() schedules have no time zone",
            "StartDate": "local schedules start with the stack",
            "EndDate": "local schedules stop with the stack",
            "KmsKeyArn": "KMS encrypts nothing locally",
        },
    ),
    "AWS::Events::Rule": _TypeSupport(
        _events_rule,
        frozenset({"EventPattern", "Targets", "Name", "State", "EventBusName"}),
        {"Description": "metadata", "RoleArn": "IAM is not enforced locally"},
    ),
}

# Purely AWS-side resources: nothing to run locally, but they keep a Ref for others to use.
_AWS_SIDE_ONLY: dict[str, str] = {
    "AWS::Logs::LogGroup": "logs go to the local log stream",
    "AWS::CloudWatch::Alarm": "no CloudWatch locally",
    "AWS::CloudWatch::Dashboard": "no CloudWatch locally: the dashboard graphs metrics that only AWS collects",
    "AWS::IAM::Role": "IAM is not enforced locally",
    "AWS::IAM::Policy": "IAM is not enforced locally",
    "AWS::IAM::ManagedPolicy": "IAM is not enforced locally",
    "AWS::SQS::QueuePolicy": "resource policies are not enforced locally",
    "AWS::SNS::TopicPolicy": "resource policies are not enforced locally",
    "AWS::S3::BucketPolicy": "bucket policies are not enforced locally (moto ignores them)",
    "AWS::Lambda::Permission": "resource policies are not enforced locally",
    "AWS::ApiGateway::Account": "account-level API Gateway logging role",
    "AWS::CloudFormation::WaitConditionHandle": "a CloudFormation-only dependency handle",
    "AWS::Logs::LogStream": "logs go to the local log stream",
}
AWS_SIDE_ONLY_TYPES = frozenset(_AWS_SIDE_ONLY)  # named, never created, by the local stack
