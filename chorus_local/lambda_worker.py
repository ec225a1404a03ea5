"""One Lambda execution environment: imports a handler once, then serves invocations.

Started by `chorus_local.lambda_runtime` as
    python -P -u lambda_worker.py <request-fd> <response-fd>
with the function's own environment and PYTHONPATH (its CodeUri plus its layers), like the
Lambda Python runtime does with /var/task and /opt/python. `-P` keeps this file's directory
(chorus_local/) off sys.path, so a handler cannot import the local stack by accident; for the
same reason this module uses the standard library only.

Requests and responses travel as JSON lines over two dedicated pipes, never over stdout/stderr:
those belong to the handler's logs, which the runtime prefixes with the function name.

Request:  {"requestId", "payload" (JSON text), "deadlineMs" (epoch ms), "invokedFunctionArn",
           "clientContext"?}
Response: {"type": "ready", "initDurationMs"} once, then per request
          {"type": "result", "requestId", "payload" (JSON text), "functionError"?}
"""

from __future__ import annotations

import decimal
import importlib
import json
import os
import resource
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any, TextIO


class LambdaContext:
    """The subset of the Lambda Python runtime's context object that handlers use."""

    def __init__(self, request_id: str, invoked_function_arn: str, deadline_ms: int) -> None:
        self.function_name = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.invoked_function_arn = invoked_function_arn
        self.aws_request_id = request_id
        self.identity = None
        self.client_context = None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))

    def log(self, message: str) -> None:
        sys.stdout.write(message)


def _error_payload(error: BaseException, error_type: str | None = None) -> dict[str, Any]:
    """The payload shape the AWS Python runtime returns for an unhandled exception."""
    frames = traceback.extract_tb(error.__traceback__)
    return {
        "errorMessage": str(error),
        "errorType": error_type or type(error).__name__,
        "requestId": "",
        "stackTrace": traceback.format_list(frames),
    }


def _log_error(payload: dict[str, Any]) -> None:
    # The runtime logs unhandled errors as "[ERROR] Type: message" followed by the trace.
    print(f"[ERROR] {payload['errorType']}: {payload['errorMessage']}", file=sys.stdout)
    if payload.get("stackTrace"):
        print("Traceback (most recent call last):", file=sys.stdout)
        print("".join(payload["stackTrace"]).rstrip("\n"), file=sys.stdout)


def _to_json(value: Any) -> str:
    # Like the AWS runtime's marshaller: Decimal (what DynamoDB returns) serialises as a number.
    def default(obj: Any) -> Any:
        if isinstance(obj, decimal.Decimal):
            return float(obj)
        raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")

    return json.dumps(value, default=default)


def _load_handler(spec: str) -> Callable[[Any, LambdaContext], Any]:
    module_path, _, function_name = spec.rpartition(".")
    module_name = module_path.replace("/", ".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise _InitError(f"Unable to import module '{module_name}': {error}", "Runtime.ImportModuleError") from error
    handler = getattr(module, function_name, None)
    if handler is None:
        raise _InitError(
            f"Handler '{function_name}' missing on module '{module_name}'",
            "Runtime.HandlerNotFound",
        )
    return handler  # type: ignore[no-any-return]


class _InitError(Exception):
    def __init__(self, message: str, error_type: str) -> None:
        super().__init__(message)
        self.error_type = error_type


def _peak_memory_mb() -> int:
    # VmHWM, not getrusage(): Linux carries ru_maxrss across exec, so a worker started by the
    # big stack process would report the stack's peak instead of its own.
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def _send(channel: TextIO, message: dict[str, Any]) -> None:
    channel.write(json.dumps(message) + "\n")
    channel.flush()


def main(argv: list[str]) -> int:
    request_fd, response_fd = int(argv[1]), int(argv[2])
    requests = os.fdopen(request_fd, "r", encoding="utf-8")
    responses = os.fdopen(response_fd, "w", encoding="utf-8")
    sys.stdin = open(os.devnull)  # noqa: SIM115 - a handler reading stdin must not see our protocol

    started = time.monotonic()
    handler: Callable[[Any, LambdaContext], Any] | None = None
    init_error: dict[str, Any] | None = None
    try:
        handler = _load_handler(os.environ["_HANDLER"])
    except _InitError as error:
        init_error = _error_payload(error, error.error_type)
        init_error["stackTrace"] = []
        _log_error(init_error)
    except Exception as error:  # an exception raised by module-level code is an init failure
        init_error = _error_payload(error)
        _log_error(init_error)
    init_ms = (time.monotonic() - started) * 1000
    _send(responses, {"type": "ready", "initDurationMs": round(init_ms, 2)})

    first = True
    version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
    memory = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
    for line in requests:
        request = json.loads(line)
        request_id = request["requestId"]
        print(f"START RequestId: {request_id} Version: {version}", flush=True)
        began = time.monotonic()
        function_error: str | None = None
        if handler is None:
            assert init_error is not None
            body, function_error = _to_json(init_error), "Unhandled"
        else:
            context = LambdaContext(request_id, request["invokedFunctionArn"], int(request["deadlineMs"]))
            try:
                event = json.loads(request["payload"])
                result = handler(event, context)
            except Exception as error:
                payload = _error_payload(error)
                payload["requestId"] = request_id
                _log_error(payload)
                body, function_error = _to_json(payload), "Unhandled"
            else:
                try:
                    body = _to_json(result)
                except (TypeError, ValueError) as error:
                    payload = {
                        "errorMessage": f"Unable to marshal response: {error}",
                        "errorType": "Runtime.MarshalError",
                        "requestId": request_id,
                        "stackTrace": [],
                    }
                    _log_error(payload)
                    body, function_error = _to_json(payload), "Unhandled"
        duration = (time.monotonic() - began) * 1000
        max_rss_mb = _peak_memory_mb()
        report = (
            f"REPORT RequestId: {request_id}\tDuration: {duration:.2f} ms\t"
            f"Billed Duration: {int(duration) + 1} ms\tMemory Size: {memory} MB\t"
            f"Max Memory Used: {max_rss_mb} MB"
        )
        if first:
            report += f"\tInit Duration: {init_ms:.2f} ms"
            first = False
        sys.stderr.flush()
        print(f"END RequestId: {request_id}", flush=True)
        print(report, flush=True)
        message: dict[str, Any] = {"type": "result", "requestId": request_id, "payload": body}
        if function_error:
            message["functionError"] = function_error
        _send(responses, message)
        if handler is None:
            # Lambda discards an environment whose init failed; the runtime starts a fresh one
            # (which re-runs init) for the next invocation.
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
