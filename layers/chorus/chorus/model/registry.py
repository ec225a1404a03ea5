"""The service registry: which models and ensembles Chorus serves, as configuration.

The packaged `services.json` declares the demo services; an operator points REGISTRY_FILE at
their own file (for example in a layer of their own) to serve their endpoints without code changes.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    ValidationError,
    model_validator,
)

from chorus.core import settings
from chorus.core.errors import RegistryInvalid, ServiceDisabled, UnknownService
from chorus.model import expressions
from chorus.model.content import normalize
from chorus.model.expressions import INPUT, ITEM, ExpressionError
from chorus.model.references import expression_sources, references, whole_payload_root

PACKAGED_REGISTRY = Path(__file__).with_name("services.json")
ServiceName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]
StepName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
EMAIL = r"^[^@\s<>,;]{1,64}@[A-Za-z0-9.-]{1,253}$"
ContentType = Annotated[str, Field(pattern=r"^[\w.+-]+/[\w.+-]+$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class EndpointDeclaration(_Strict):
    name: Annotated[str, Field(min_length=1, max_length=63)]
    mode: Literal["async", "sync"]


class RetryDeclaration(_Strict):
    """Attempts of a model step whose failure its service declares retryable, with backoff."""

    max_attempts: Annotated[int, Field(alias="maxAttempts", ge=2, le=5)]
    interval_seconds: Annotated[int, Field(alias="intervalSeconds", ge=1, le=300)] = 2
    backoff_rate: Annotated[float, Field(alias="backoffRate", ge=1, le=10)] = 2.0


class RuleCase(_Strict):
    when: Annotated[str, Field(min_length=1, max_length=4096)]
    output: JsonValue


class RuleDeclaration(_Strict):
    """Ordered cases, first match wins; `default` when none matches."""

    cases: Annotated[list[RuleCase], Field(max_length=50)] = []
    default: JsonValue


class CaptureDeclaration(_Strict):
    """Data capture for drift monitoring: which share of the service's finished predictions is
    recorded (their input and/or output), off unless declared (docs/monitoring.md)."""

    sampling_percent: Annotated[float, Field(alias="samplingPercent", ge=0, le=100)]
    inputs: bool = True
    outputs: bool = True

    @model_validator(mode="after")
    def _captures_something(self) -> CaptureDeclaration:
        if not (self.inputs or self.outputs):
            raise ValueError("capture needs inputs or outputs (or leave capture out)")
        return self


DEFAULT_MAX_ITEMS = 100
DEFAULT_ITEM_CONCURRENCY = 10


class StepDeclaration(_Strict):
    name: StepName
    service: ServiceName | None = None  # None: a rule step (no model)
    input: JsonValue = "{{ input }}"
    timeout_seconds: Annotated[int | None, Field(alias="timeoutSeconds", ge=1, le=86400)] = None
    when: Annotated[str | None, Field(min_length=1, max_length=4096)] = None
    optional: bool = False
    for_each: Annotated[str | None, Field(alias="forEach", min_length=1, max_length=4096)] = None
    max_items: Annotated[int | None, Field(alias="maxItems", ge=1, le=1000)] = None
    max_concurrency: Annotated[int | None, Field(alias="maxConcurrency", ge=1, le=40)] = None
    retry: RetryDeclaration | None = None
    rule: RuleDeclaration | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> StepDeclaration:
        if (self.service is None) == (self.rule is None):
            raise ValueError(f"step {self.name!r} needs exactly one of `service` (a model or ensemble) and `rule`")
        if self.rule is not None:
            extra = [
                name
                for name, given in (
                    ("input", self.input != "{{ input }}"),
                    ("forEach", self.for_each is not None),
                    ("retry", self.retry is not None),
                    ("timeoutSeconds", self.timeout_seconds is not None),
                )
                if given
            ]
            if extra:
                raise ValueError(f"rule step {self.name!r} cannot have {', '.join(extra)}")
        if self.for_each is None and (self.max_items is not None or self.max_concurrency is not None):
            raise ValueError(f"step {self.name!r}: maxItems and maxConcurrency need forEach")
        return self

    @property
    def is_rule(self) -> bool:
        return self.rule is not None

    @property
    def fans_out(self) -> bool:
        return self.for_each is not None

    @property
    def item_limit(self) -> int:
        return self.max_items or DEFAULT_MAX_ITEMS

    @property
    def item_concurrency(self) -> int:
        return self.max_concurrency or DEFAULT_ITEM_CONCURRENCY

    @property
    def conditional(self) -> bool:
        """It may produce no output: skipped by `when`, or optional and failed."""
        return self.when is not None or self.optional

    def expressions(self) -> list[tuple[str, str]]:
        """(where, expression) of every expression the step evaluates, its input mapping's included."""
        found = [("when", self.when)] if self.when else []
        if self.for_each:
            found.append(("forEach", self.for_each))
        found += [("input", e) for e in references(self.input)] if self.rule is None else []
        if self.rule is not None:
            for number, case in enumerate(self.rule.cases, start=1):
                found.append((f"rule case {number} when", case.when))
                found += [(f"rule case {number} output", e) for e in references(case.output)]
            found += [("rule default", e) for e in references(self.rule.default)]
        return [(where, text) for where, text in found if text]

    def dependencies(self) -> set[str]:
        """The steps this one reads (never `input` or `item`)."""
        names = {root for _, text in self.expressions() for root in expression_sources(text)}
        return names - {INPUT, ITEM, "$"}


class ServiceDefinition(_Strict):
    name: ServiceName
    kind: Literal["model", "ensemble"]
    description: str = ""
    enabled: bool = True
    content_types: Annotated[list[ContentType], Field(alias="contentTypes", min_length=1)]
    max_input_bytes: Annotated[int, Field(alias="maxInputBytes", ge=1, le=1024**3)]
    timeout_seconds: Annotated[int, Field(alias="timeoutSeconds", ge=1, le=86400)] = 900
    endpoint: EndpointDeclaration | None = None
    # Substrings of a model's failure reason that mean "try again" (a step with `retry` retries them).
    retryable_errors: Annotated[list[Annotated[str, Field(min_length=1)]], Field(alias="retryableErrors")] = []
    steps: list[StepDeclaration] = []
    output: JsonValue = None
    capture: CaptureDeclaration | None = None
    # Who is e-mailed to approve or reject a new version of a model service (docs/versions.md).
    approvers: Annotated[list[Annotated[str, Field(pattern=EMAIL)]], Field(max_length=20)] = []

    @model_validator(mode="after")
    def _shape_matches_kind(self) -> ServiceDefinition:
        if self.kind == "model" and (self.endpoint is None or self.steps):
            raise ValueError(f"model service {self.name!r} needs an endpoint and no steps")
        if self.kind == "ensemble":
            if self.approvers:
                raise ValueError(f"ensemble {self.name!r} has no versions: name approvers on its model services")
            if self.endpoint is not None:
                raise ValueError(f"ensemble {self.name!r} must not name an endpoint")
            if not self.steps:
                raise ValueError(f"ensemble {self.name!r} has no steps")
            if self.output is None:
                raise ValueError(f"ensemble {self.name!r} has no output mapping")
        return self

    def accepts(self, content_type: str) -> bool:
        return normalize(content_type) in self.content_types

    def retryable(self, reason: str) -> bool:
        """A failure with this reason is worth another attempt (the service says so)."""
        return any(pattern in reason for pattern in self.retryable_errors)

    def step(self, name: str) -> StepDeclaration:
        for step in self.steps:
            if step.name == name:
                return step
        raise UnknownService(f"ensemble {self.name!r} has no step {name!r}")


class Registry(_Strict):
    services: list[ServiceDefinition]

    @model_validator(mode="after")
    def _names_unique(self) -> Registry:
        names = [s.name for s in self.services]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"services declared twice: {', '.join(duplicates)}")
        return self

    def get(self, name: str) -> ServiceDefinition:
        for service in self.services:
            if service.name == name:
                return service
        known = ", ".join(s.name for s in self.services)
        raise UnknownService(f"unknown service {name!r}; known services: {known}")

    def require_enabled(self, name: str) -> ServiceDefinition:
        service = self.get(name)
        if not service.enabled:
            raise ServiceDisabled(f"service {name!r} is disabled")
        return service

    def ensembles(self) -> list[ServiceDefinition]:
        return [s for s in self.services if s.kind == "ensemble"]

    def validate_ensembles(self) -> None:
        """Reject unknown services, bad references and cycles, naming the culprit."""
        for ensemble in self.ensembles():
            _validate_ensemble(self, ensemble)
        for ensemble in self.ensembles():
            _reject_service_cycle(self, ensemble.name, [])


def _validate_ensemble(registry: Registry, ensemble: ServiceDefinition) -> None:
    seen: list[str] = []
    fanned_out: set[str] = set()
    for step in ensemble.steps:
        where = f"ensemble {ensemble.name!r} step {step.name!r}"
        if step.name in seen:
            raise RegistryInvalid(f"{where}: step name used twice")
        if step.name in (INPUT, ITEM):
            raise RegistryInvalid(f"{where}: `{step.name}` is reserved")
        if step.service is not None:
            try:
                service = registry.get(step.service)
            except UnknownService as exc:
                raise RegistryInvalid(f"{where}: {exc.message}") from exc
            if step.retry is not None and not service.retryable_errors:
                raise RegistryInvalid(
                    f"{where}: retry needs retryableErrors on service {service.name!r} (which failures to retry)"
                )
        for part, text in step.expressions():
            readable = {INPUT, *seen} | ({ITEM} if step.fans_out and part == "input" else set())
            _check_expression(text, f"{where} {part}", readable, own=step.name, fanned_out=fanned_out)
        if step.fans_out and not expressions.can_yield_list(step.for_each or ""):
            raise RegistryInvalid(f"{where}: forEach {step.for_each!r} is not a list expression")
        for mapping in _mappings(step):
            _check_mapping_keys(mapping, where)
            _check_passthrough(mapping, where, fanned_out)
        seen.append(step.name)
        if step.fans_out:
            fanned_out.add(step.name)
    where = f"ensemble {ensemble.name!r} output"
    for text in references(ensemble.output):
        _check_expression(text, where, {INPUT, *seen}, own=None, fanned_out=fanned_out)
    _check_mapping_keys(ensemble.output, where)
    _check_passthrough(ensemble.output, where, fanned_out)


def _mappings(step: StepDeclaration) -> list[Any]:
    if step.rule is None:
        return [step.input]
    return [*(case.output for case in step.rule.cases), step.rule.default]


def _check_mapping_keys(mapping: Any, where: str) -> None:
    """Keys ending in `.$` would be read by Step Functions as paths, not passed on verbatim."""
    if isinstance(mapping, dict):
        for key, value in mapping.items():
            if key.endswith(".$"):
                raise RegistryInvalid(f"{where}: mapping key {key!r} must not end in '.$'")
            _check_mapping_keys(value, where)
    elif isinstance(mapping, list):
        for value in mapping:
            _check_mapping_keys(value, where)


def _check_passthrough(mapping: Any, where: str, fanned_out: set[str]) -> None:
    """A fanned-out step has a list of outputs, not one payload to hand on."""
    for text in references(mapping):
        root = whole_payload_root(text)
        if root in fanned_out:
            raise RegistryInvalid(
                f"{where}: {{{{ {text} }}}} hands on the payload of step {root!r}, but {root!r} fans out "
                "(its output is a list of item outputs): shape it with a rule step"
            )


def _check_expression(text: str, where: str, readable: set[str], own: str | None, fanned_out: set[str]) -> None:
    try:
        roots = expression_sources(text)
    except ExpressionError as exc:
        raise RegistryInvalid(f"{where}: {exc}") from exc
    if "$" in roots:
        raise RegistryInvalid(f"{where}: {text!r} reads the whole scope ($ or $$); name its sources")
    for root in sorted(roots - readable):
        if root == own:
            raise RegistryInvalid(f"{where}: refers to itself ({text!r})")
        if root == ITEM:
            raise RegistryInvalid(f"{where}: {text!r} reads `item`, which only a forEach step's input has")
        raise RegistryInvalid(f"{where}: {text!r} refers to {root!r}, which is not a preceding step")
    offenders = expressions.fanned_out_field_reads(text, fanned_out) if whole_payload_root(text) is None else []
    if offenders:
        step = offenders[0]
        raise RegistryInvalid(
            f"{where}: {text!r} reads a field of one item of {step!r}, which fans out (its output is a list): "
            f"say which item ({step}.output[0].<field>) "
            f"or map them all ($map({step}.output, function($o) {{ $o.<field> }}))"
        )


def _reject_service_cycle(registry: Registry, name: str, path: list[str]) -> None:
    if name in path:
        cycle = " -> ".join([*path[path.index(name) :], name])
        raise RegistryInvalid(f"ensembles form a cycle: {cycle}")
    service = registry.get(name)
    for step in service.steps:
        if step.service is not None:
            _reject_service_cycle(registry, step.service, [*path, name])


def parse_registry(document: Any) -> Registry:
    try:
        registry = Registry.model_validate(document)
    except ValidationError as exc:
        raise RegistryInvalid(f"service registry is invalid: {exc}") from exc
    registry.validate_ensembles()
    from chorus.model import plan  # plan builds on the registry's models

    for ensemble in registry.ensembles():
        plan.check_limits(ensemble, registry)
    return registry


@lru_cache(maxsize=4)
def _load(path: str) -> Registry:
    return parse_registry(json.loads(Path(path).read_text()))


def get_registry() -> Registry:
    configured = settings.load(settings.RegistrySettings).registry_file
    return _load(configured or str(PACKAGED_REGISTRY))
