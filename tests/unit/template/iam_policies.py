"""IAM statements of template.yaml as grants: who may do which action on what.

SAM policy templates (`SQSSendMessagePolicy: {QueueName: ...}`) are expanded with samtranslator's
own definitions, so a template is held to the same rules as a statement written out. A statement's
resources become *targets*: the logical ids (resources or parameters) they name, `PayloadsBucket`
for ARNs built from the bucket's name, `ChorusKey` for the stack's key (created or given), `*`, or
for ARNs that name nothing of the stack the `service:resource-type` of the ARN
(`states:stateMachine`, `sagemaker:endpoint`, ...).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import cache
from pathlib import Path
from typing import Any

import samtranslator

# Actions IAM authorizes only with Resource "*" (docs/decisions.md). SendTaskHeartbeat is not
# here: no function heartbeats a task, so none may.
WILDCARD_EXCEPTIONS = frozenset(
    {
        # Step Functions task callbacks: the task token, not an ARN, names the task.
        "states:SendTaskSuccess",
        "states:SendTaskFailure",
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
PRINCIPAL_TYPES = ("AWS::Serverless::Function", "AWS::Serverless::StateMachine")
POLICY_TYPES = ("AWS::IAM::ManagedPolicy", "AWS::IAM::Policy", "AWS::IAM::Role")
PSEUDO = re.compile(r"^AWS::")
PSEUDO_IN_SUB = re.compile(r"\$\{AWS::[A-Za-z]+\}")
SUB_VARIABLE = re.compile(r"\$\{([^}!]+)\}")
ARN = re.compile(r"^arn:[^:]*:([^:]+):[^:]*:[^:]*:([A-Za-z-]+)")
# The stack's KMS key wherever it is named: the key the stack creates, or the KmsKeyArn given.
STACK_KEY = {"Fn::If": ["CreateKmsKey", {"Fn::GetAtt": ["ChorusKey", "Arn"]}, {"Ref": "KmsKeyArn"}]}
STACK_KEY_TARGET = "ChorusKey"


@cache
def sam_policy_templates() -> dict[str, Any]:
    path = Path(samtranslator.__file__).parent / "policy_templates_data" / "policy_templates.json"
    return dict(json.loads(path.read_text())["Templates"])


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def is_read(action: str) -> bool:
    return action.split(":", 1)[1].startswith(READ_VERBS)


def matches(pattern: str, action: str) -> bool:
    """IAM action patterns: case-insensitive, `*` and `?` wildcards."""
    return fnmatchcase(action.lower(), pattern.lower())


@dataclass(frozen=True)
class Grant:
    owner: str  # logical id of the function, state machine or policy that holds the statement
    statement: dict[str, Any]
    sam_template: str | None = None  # the SAM policy template it was expanded from
    sam_parameters: Any = None

    @property
    def allows(self) -> bool:
        return self.statement.get("Effect") == "Allow"

    @property
    def actions(self) -> list[str]:
        return [str(a) for a in as_list(self.statement.get("Action", []))]

    @property
    def resources(self) -> list[Any]:
        return as_list(self.statement.get("Resource", []))


def _substitute(value: Any, parameters: dict[str, Any]) -> Any:
    if isinstance(value, dict):
        if set(value) == {"Ref"} and value["Ref"] in parameters:
            return parameters[value["Ref"]]
        return {k: _substitute(v, parameters) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, parameters) for v in value]
    return value


def expand_sam_template(name: str, parameters: Any) -> list[dict[str, Any]]:
    template = sam_policy_templates()[name]
    given = parameters if isinstance(parameters, dict) else {}
    assert set(given) == set(template.get("Parameters", {})), f"{name}: parameters {sorted(given)}"
    return list(_substitute(template["Definition"]["Statement"], given))


def grants(template: dict[str, Any]) -> Iterator[Grant]:
    """Every identity statement: SAM `Policies` (templates expanded, inline documents) of functions
    and state machines, and IAM roles and policies."""
    for owner, resource in template["Resources"].items():
        properties = resource.get("Properties", {})
        if resource["Type"] in PRINCIPAL_TYPES:
            for policy in as_list(properties.get("Policies", [])):
                assert isinstance(policy, dict), f"{owner}: policy {policy!r} is neither a template nor a document"
                if "Statement" in policy:
                    yield from (Grant(owner, s) for s in policy["Statement"])
                    continue
                ((name, parameters),) = policy.items()
                for statement in expand_sam_template(name, parameters):
                    yield Grant(owner, statement, name, parameters)
        elif resource["Type"] in POLICY_TYPES:
            if "PolicyDocument" in properties:
                yield from (Grant(owner, s) for s in properties["PolicyDocument"]["Statement"])
            for policy in properties.get("Policies", []):
                yield from (Grant(owner, s) for s in policy["PolicyDocument"]["Statement"])


def is_stack_key(value: Any) -> bool:
    """Whether a value names the stack's key (`!GetAtt ChorusKey.Arn` may also be the dotted form)."""
    if not (isinstance(value, dict) and set(value) == {"Fn::If"} and len(value["Fn::If"]) == 3):
        return False
    condition, created, given = value["Fn::If"]
    if isinstance(created, dict) and isinstance(created.get("Fn::GetAtt"), str):
        created = {"Fn::GetAtt": created["Fn::GetAtt"].split(".", 1)}
    return bool([condition, created, given] == STACK_KEY["Fn::If"])


def resource_policy_statements(template: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Statements of resource policies (queue, bucket and topic policies, key policies)."""
    for owner, resource in template["Resources"].items():
        if resource["Type"] in POLICY_TYPES:
            continue
        properties = resource.get("Properties", {})
        document = properties.get("PolicyDocument", properties.get("KeyPolicy"))
        if isinstance(document, dict):
            yield from ((owner, s) for s in document["Statement"])


def sub_strings(value: Any) -> Iterator[str]:
    """The template strings of every Fn::Sub (and plain string) inside a value."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, inner in value.items():
            if key == "Fn::Sub":
                yield from sub_strings(as_list(inner)[0])
                for variables in as_list(inner)[1:]:
                    yield from sub_strings(variables)
            else:
                yield from sub_strings(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from sub_strings(inner)


def referenced(value: Any, names: set[str]) -> set[str]:
    """Logical ids among `names` that a value refers to (Ref, GetAtt, ${X} and ${X.Attr} in Sub)."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "Ref":
                found.add(str(inner))
            elif key == "Fn::GetAtt":
                found.add(str(inner[0] if isinstance(inner, list) else str(inner).split(".", 1)[0]))
            elif key == "Fn::Sub":
                text, *rest = as_list(inner)
                local = rest[0] if rest else {}
                for variable in SUB_VARIABLE.findall(text):
                    if variable in local:
                        found |= referenced(local[variable], names)
                    else:
                        found.add(variable.split(".", 1)[0])
            else:
                found |= referenced(inner, names)
    elif isinstance(value, list):
        for inner in value:
            found |= referenced(inner, names)
    return {name for name in found if name in names and not PSEUDO.match(name)}


def _resolved_text(value: Any) -> str:
    """A Sub template with its local variables written in (`${queueName}` -> `${DeadlineQueue.QueueName}`)."""
    if isinstance(value, dict) and set(value) == {"Fn::Sub"}:
        text, *rest = as_list(value["Fn::Sub"])
        for variable, inner in (rest[0] if rest else {}).items():
            text = text.replace("${" + variable + "}", _resolved_text(inner))
        return str(text)
    if isinstance(value, dict) and set(value) == {"Fn::GetAtt"}:
        target = value["Fn::GetAtt"]
        return "${" + (".".join(target) if isinstance(target, list) else str(target)) + "}"
    if isinstance(value, dict) and set(value) == {"Ref"}:
        return "${" + str(value["Ref"]) + "}"
    return str(value)


def arn_text(value: Any) -> str:
    return _resolved_text(value)


def bucket_name(template: dict[str, Any]) -> str:
    return str(template["Resources"]["PayloadsBucket"]["Properties"]["BucketName"]["Fn::Sub"])


def targets(template: dict[str, Any], resource: Any) -> frozenset[str]:
    """What a statement's Resource entry designates (see the module docstring)."""
    if resource == "*":
        return frozenset({"*"})
    if is_stack_key(resource):
        return frozenset({STACK_KEY_TARGET})
    names = set(template["Resources"]) | set(template.get("Parameters", {})) - {"Stage"}
    found = referenced(resource, names)
    text = arn_text(resource)
    if f":s3:::{bucket_name(template)}" in text:
        found.add("PayloadsBucket")
    if found:
        return frozenset(found)
    match = ARN.match(PSEUDO_IN_SUB.sub("AWS", text))
    assert match, f"cannot tell what {resource!r} designates"
    return frozenset({f"{match.group(1)}:{match.group(2)}"})
