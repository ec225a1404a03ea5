"""The service registry: which models and ensembles Chorus serves, as configuration.

The packaged `services.json` declares the demo services; an operator points REGISTRY_FILE at
their own file (for example in a layer of their own) to serve their endpoints without code changes.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

import jmespath
from jmespath.exceptions import JMESPathError
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
from chorus.model.content import normalize
from chorus.model.references import (
    INPUT,
    InvalidReference,
    expression_root,
    expression_sources,
    references,
)

PACKAGED_REGISTRY = Path(__file__).with_name("services.json")
ServiceName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]
StepName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
ContentType = Annotated[str, Field(pattern=r"^[\w.+-]+/[\w.+-]+$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class EndpointDeclaration(_Strict):
    name: Annotated[str, Field(min_length=1, max_length=63)]
    mode: Literal["async", "sync"]


class StepDeclaration(_Strict):
    name: StepName
    service: ServiceName
    input: JsonValue = "{{ input }}"
    timeout_seconds: Annotated[int | None, Field(alias="timeoutSeconds", ge=1, le=86400)] = None


class ServiceDefinition(_Strict):
    name: ServiceName
    kind: Literal["model", "ensemble"]
    description: str = ""
    enabled: bool = True
    content_types: Annotated[list[ContentType], Field(alias="contentTypes", min_length=1)]
    max_input_bytes: Annotated[int, Field(alias="maxInputBytes", ge=1, le=1024**3)]
    timeout_seconds: Annotated[int, Field(alias="timeoutSeconds", ge=1, le=86400)] = 900
    endpoint: EndpointDeclaration | None = None
    steps: list[StepDeclaration] = []
    output: JsonValue = None

    @model_validator(mode="after")
    def _shape_matches_kind(self) -> ServiceDefinition:
        if self.kind == "model" and (self.endpoint is None or self.steps):
            raise ValueError(f"model service {self.name!r} needs an endpoint and no steps")
        if self.kind == "ensemble":
            if self.endpoint is not None:
                raise ValueError(f"ensemble {self.name!r} must not name an endpoint")
            if not self.steps:
                raise ValueError(f"ensemble {self.name!r} has no steps")
            if self.output is None:
                raise ValueError(f"ensemble {self.name!r} has no output mapping")
        return self

    def accepts(self, content_type: str) -> bool:
        return normalize(content_type) in self.content_types


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
    for step in ensemble.steps:
        where = f"ensemble {ensemble.name!r} step {step.name!r}"
        if step.name in seen:
            raise RegistryInvalid(f"{where}: step name used twice")
        if step.name == INPUT:
            raise RegistryInvalid(f"{where}: `input` is reserved for the request input")
        try:
            registry.get(step.service)
        except UnknownService as exc:
            raise RegistryInvalid(f"{where}: {exc.message}") from exc
        _check_references(step.input, where, preceding=seen, own=step.name)
        _check_mapping_keys(step.input, where)
        seen.append(step.name)
    _check_references(ensemble.output, f"ensemble {ensemble.name!r} output", preceding=seen, own=None)
    _check_mapping_keys(ensemble.output, f"ensemble {ensemble.name!r} output")


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


def _check_references(mapping: Any, where: str, preceding: list[str], own: str | None) -> None:
    for expression in references(mapping):
        try:
            jmespath.compile(expression)
        except JMESPathError as exc:
            raise RegistryInvalid(f"{where}: {expression!r} is not valid JMESPath ({exc})") from exc
        try:
            root = expression_root(expression)
        except InvalidReference as exc:
            raise RegistryInvalid(f"{where}: {exc}") from exc
        sources = expression_sources(expression) | {root}
        if len(sources) > 1:
            raise RegistryInvalid(
                f"{where}: {expression!r} reads {', '.join(sorted(sources))}; "
                "a reference reads one source (use one reference per source)"
            )
        if root == INPUT or root in preceding:
            continue
        if root == own:
            raise RegistryInvalid(f"{where}: refers to itself ({expression!r})")
        raise RegistryInvalid(f"{where}: {expression!r} refers to {root!r}, which is not a preceding step")


def _reject_service_cycle(registry: Registry, name: str, path: list[str]) -> None:
    if name in path:
        cycle = " -> ".join([*path[path.index(name) :], name])
        raise RegistryInvalid(f"ensembles form a cycle: {cycle}")
    service = registry.get(name)
    for step in service.steps:
        _reject_service_cycle(registry, step.service, [*path, name])


def parse_registry(document: Any) -> Registry:
    try:
        registry = Registry.model_validate(document)
    except ValidationError as exc:
        raise RegistryInvalid(f"service registry is invalid: {exc}") from exc
    registry.validate_ensembles()
    return registry


@lru_cache(maxsize=4)
def _load(path: str) -> Registry:
    return parse_registry(json.loads(Path(path).read_text()))


def get_registry() -> Registry:
    configured = settings.load(settings.RegistrySettings).registry_file
    return _load(configured or str(PACKAGED_REGISTRY))
