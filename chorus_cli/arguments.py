"""Argument types shared by `chorus admin`'s commands: a bad value is a usage error (exit 2)."""

from __future__ import annotations

import argparse
from typing import Any


def bounded(kind: type[int] | type[float], low: float, high: float, what: str) -> Any:
    """A parser of `kind` numbers from `low` to `high`, refusing others as `what` says."""

    def parse(value: str) -> int | float:
        try:
            number = kind(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{value!r} is not {what}") from None
        if not low <= number <= high:
            raise argparse.ArgumentTypeError(f"{value!r} is not {what}")
        return number

    return parse
