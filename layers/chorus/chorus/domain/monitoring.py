"""What the API says about a service's drift monitoring: what it captures and its latest report.

Reports are service-wide statistics (counts, histograms, drift measures), never a payload, so any
tenant's admin may read them; the captured records themselves are read only by the monitor."""

from __future__ import annotations

from typing import Any

from chorus.adapters import monitoring
from chorus.core.errors import ServiceNotFound, UnknownService
from chorus.model.registry import get_registry


def describe(service_name: str) -> dict[str, Any]:
    try:
        service = get_registry().get(service_name)
    except UnknownService as exc:
        raise ServiceNotFound(f"no service named {service_name!r}") from exc
    declared = service.capture
    return {
        "service": service.name,
        "capture": declared.model_dump(by_alias=True) if declared else None,
        "report": monitoring.latest_report(service.name) if declared else None,
    }
