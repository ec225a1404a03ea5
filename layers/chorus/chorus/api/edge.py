"""What may arrive at the API, checked once before any route sees it (the resolver calls `screen`).

A body, on every route, is UTF-8 text (API Gateway may hand it over base64-encoded) sent as
`application/json` (or with no Content-Type), and it is strict JSON: no `NaN` or `Infinity`, no
number a 64-bit float cannot hold, no lone surrogate in any string or key, at most
`MAX_BODY_DEPTH` levels deep. Anything else is refused with a 4xx in the API's error shape
instead of failing inside the framework (a 5xx). An `Idempotency-Key` header is 1 to 255
characters without control characters; a path with control characters names nothing (404).
The request models (models.py) apply the rules of each body field on top, with `json_problem`
for the free-form JSON ones.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from chorus.core.errors import ChorusError, InvalidRequest
from chorus.model.content import JSON, normalize

MAX_BODY_DEPTH = 64
MAX_IDEMPOTENCY_KEY_LENGTH = 255
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class UnsupportedMediaType(ChorusError):
    """The request body is not sent as JSON."""

    code = "unsupported_media_type"
    status = 415


class NoSuchRoute(ChorusError):
    """A path no route can name (Powertools' route patterns end with `$`, which matches before a
    trailing newline: `/predictions/abc%0A` would otherwise read prediction `abc`)."""

    code = "not_found"
    status = 404


def screen(event: Mapping[str, Any]) -> dict[str, Any]:
    """The API Gateway proxy event with its body checked and decoded to text (`isBase64Encoded`
    false) and a JSON Content-Type spelled `application/json`; raises the refusal otherwise."""
    if CONTROL.search(str(event.get("path") or "")):
        raise NoSuchRoute("no such route")
    for key in header_values(event, "idempotency-key"):
        check_idempotency_key(key)
    text = body_text(event)
    content_type = header(event, "content-type")
    if text:
        require_json_media_type(content_type)
        parse(text)
    screened = {**event, "body": text, "isBase64Encoded": False}
    if content_type is not None and normalize(content_type) == JSON:
        # Powertools compares the header case-sensitively; `Application/JSON` is JSON too.
        screened.update(_replace_header(event, "Content-Type", JSON))
    return screened


def body_text(event: Mapping[str, Any]) -> str | None:
    body = event.get("body")
    if body is None or body == "":
        return None
    if not isinstance(body, str):
        raise InvalidRequest("the request body is not text")
    if event.get("isBase64Encoded"):
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidRequest("the request body is marked base64-encoded but is not valid base64") from None
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidRequest(f"the request body is not UTF-8 text (invalid byte at offset {exc.start})") from None
    if not _is_unicode(body):
        raise InvalidRequest("the request body is not UTF-8 text")
    return body


def header_values(event: Mapping[str, Any], name: str) -> list[str]:
    """Every value of a header (`name` in lower case) in `headers` and `multiValueHeaders`,
    whatever the case of its name."""
    values = [v for k, v in (event.get("headers") or {}).items() if k.lower() == name]
    for key, multi in (event.get("multiValueHeaders") or {}).items():
        if key.lower() == name:
            values.extend(multi if isinstance(multi, list) else [multi])
    return [str(value) for value in values if value is not None]


def header(event: Mapping[str, Any], name: str) -> str | None:
    """A header's first non-blank value, or None."""
    return next((value for value in header_values(event, name) if value.strip()), None)


def check_idempotency_key(key: str) -> None:
    if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY_LENGTH:
        raise InvalidRequest(f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_LENGTH} characters")
    if CONTROL.search(key) or not _is_unicode(key):
        raise InvalidRequest("Idempotency-Key must not contain control characters or lone surrogates")


def require_json_media_type(content_type: str | None) -> None:
    if content_type is not None and normalize(content_type) != JSON:
        raise UnsupportedMediaType(
            f"the request body must be JSON: send Content-Type: application/json, not {content_type[:100]!r}"
        )


def parse(text: str) -> Any:
    """Strict JSON: what `json.loads` accepts beyond the JSON grammar, or cannot represent, is refused."""
    try:
        value = json.loads(text, parse_constant=_not_json, parse_float=_finite_float, parse_int=_integer)
    except json.JSONDecodeError as exc:
        raise InvalidRequest(
            f"the request body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise InvalidRequest(f"the request body is nested more than {MAX_BODY_DEPTH} levels deep") from None
    problem = json_problem(value, max_depth=MAX_BODY_DEPTH)
    if problem is not None:
        raise InvalidRequest(problem)
    return value


NumberRule = Callable[[int | float], str | None]
KeyRule = Callable[[str], str | None]


def json_problem(
    value: Any, *, max_depth: int, root: str = "", number: NumberRule | None = None, key: KeyRule | None = None
) -> str | None:
    """The first thing in a JSON value that must be refused, as a message naming its place (paths
    start at `root`: "" for the whole body, "metadata" for that field); None when there is none.
    Refused: nesting deeper than `max_depth` containers (the value itself counts as one), a lone
    surrogate in a string or key, NaN or ±Infinity, any number `number` finds a problem in and any
    object key `key` finds one in."""
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        item, place, level = stack.pop()
        if isinstance(item, dict | list):
            if level + 1 > max_depth:
                return f"{_name(root, '')} is nested more than {max_depth} levels deep"
            entries = item.items() if isinstance(item, dict) else enumerate(item)
            for name, child in entries:
                if isinstance(name, str) and not _is_unicode(name):
                    return f"{_name(root, place)}: a key holds a lone surrogate, which is not Unicode text"
                if key is not None and isinstance(name, str) and (problem := key(name)) is not None:
                    return f"{_name(root, place)}: {problem}"
                stack.append((child, _child(place, name), level + 1))
        elif isinstance(item, str):
            if not _is_unicode(item):
                return f"{_name(root, place)}: holds a lone surrogate, which is not Unicode text"
        elif isinstance(item, float) and not math.isfinite(item):
            return f"{_name(root, place)}: NaN and Infinity are not JSON numbers"
        elif number is not None and isinstance(item, int | float) and not isinstance(item, bool):
            problem = number(item)
            if problem is not None:
                return f"{_name(root, place)}: {problem}"
    return None


def _not_json(constant: str) -> Any:
    raise InvalidRequest(f"the request body holds {constant}, which is not JSON (send null or a string instead)")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise InvalidRequest(f"the request body holds the number {_clip(text)}, too large for a 64-bit float")
    return value


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:  # more digits than Python converts (sys.get_int_max_str_digits)
        raise InvalidRequest(f"the request body holds an integer of {len(text)} digits, too many to read") from None


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _child(place: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{place}[{key}]"
    shown = key if _is_unicode(key) and key.isprintable() and len(key) <= 64 else repr(key[:64])
    return f"{place}.{shown}" if place else shown


def _name(root: str, place: str) -> str:
    path = root + place if place.startswith("[") else ".".join(part for part in (root, place) if part)
    return path or "the request body"


def _clip(text: str) -> str:
    return text if len(text) <= 24 else f"{text[:20]}…"


def _replace_header(event: Mapping[str, Any], name: str, value: str) -> dict[str, Any]:
    lowered = name.lower()
    headers = {k: v for k, v in (event.get("headers") or {}).items() if k.lower() != lowered}
    multi = {k: v for k, v in (event.get("multiValueHeaders") or {}).items() if k.lower() != lowered}
    return {"headers": {**headers, name: value}, "multiValueHeaders": {**multi, name: [value]}}
