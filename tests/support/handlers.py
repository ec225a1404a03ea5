"""Load a function's handler module the way Lambda does: by path, under its own name."""

from __future__ import annotations

import importlib.util
import uuid
from dataclasses import dataclass, field
from types import ModuleType

from tests.support.aws_resources import REPO


def load_handler(function: str) -> ModuleType:
    path = REPO / "functions" / function / "app.py"
    spec = importlib.util.spec_from_file_location(f"functions_{function}_app", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class FakeLambdaContext:
    function_name: str = "chorus-test"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:chorus-test"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def get_remaining_time_in_millis(self) -> int:
        return 30_000
