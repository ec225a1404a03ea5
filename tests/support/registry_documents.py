"""Small registry declarations for compiler and validation tests."""

from __future__ import annotations

from typing import Any


def model(name: str, timeout: int = 60) -> dict[str, Any]:
    return {
        "name": name,
        "kind": "model",
        "endpoint": {"name": name, "mode": "sync"},
        "contentTypes": ["application/json"],
        "maxInputBytes": 1024,
        "timeoutSeconds": timeout,
    }


def ensemble(name: str, steps: list[dict[str, Any]], output: Any = "{{ a }}") -> dict[str, Any]:
    return {
        "name": name,
        "kind": "ensemble",
        "contentTypes": ["application/json"],
        "maxInputBytes": 1024,
        "steps": steps,
        "output": output,
    }
