"""The local Lambda service: execution environments, synchronous and asynchronous invocation.

Each function gets a small pool of worker processes (`chorus_local/lambda_worker.py`), each an
execution environment that sees only that function's environment and code, like Lambda. A
pool's size is the function's concurrency: extra invocations wait for a free worker. A worker
that overruns the function's Timeout is killed and replaced, and the invocation fails with
Lambda's "Task timed out" error.

Asynchronous invocations (InvocationType=Event, SNS deliveries) are queued and retried per the
function's EventInvokeConfig; when retries run out the AWS-shaped failure record goes to the
OnFailure destination (or the function's DeadLetterQueue), as Lambda does.
"""

from __future__ import annotations

import contextlib
import heapq
import json
import logging
import os
import queue
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, TextIO

from chorus_local.gateway import LOCAL_ACCOUNT_ID, AwsEndpoint

log = logging.getLogger("chorus_local.lambda")

WORKER_SCRIPT = Path(__file__).with_name("lambda_worker.py")
# Not counted against the function timeout: Lambda's init phase has its own (10 s) budget, but
# a laptop starting every function at once on two cores needs more.
INIT_TIMEOUT_SECONDS = 60.0
# Slack for the pipe round trip, so a handler finishing right at its deadline is not cut off.
IPC_GRACE_SECONDS = 0.1
DEFAULT_RETRY_DELAYS: tuple[float, ...] = (1.0, 2.0)


@dataclass(frozen=True)
class Destination:
    """An async-invocation destination: an SQS queue, SNS topic or Lambda function ARN."""

    arn: str

    @property
    def service(self) -> str:
        return self.arn.split(":")[2]


@dataclass(frozen=True)
class AsyncInvokeConfig:
    maximum_retry_attempts: int = 2
    maximum_event_age_seconds: int = 21600
    on_success: Destination | None = None
    on_failure: Destination | None = None
    dead_letter_queue: Destination | None = None  # the function's DeadLetterQueue, if any


@dataclass(frozen=True)
class FunctionConfig:
    """Everything the runtime needs to run one function, resolved from the template."""

    logical_id: str
    name: str
    handler: str
    code_dir: Path
    timeout_seconds: int = 3
    memory_mb: int = 128
    environment: dict[str, str] = field(default_factory=dict)
    layer_dirs: tuple[Path, ...] = ()
    runtime: str = "python3.11"
    async_config: AsyncInvokeConfig = field(default_factory=AsyncInvokeConfig)
    log_label: str = ""

    def arn(self, region: str) -> str:
        return f"arn:aws:lambda:{region}:{LOCAL_ACCOUNT_ID}:function:{self.name}"

    @property
    def label(self) -> str:
        return self.log_label or self.name


@dataclass(frozen=True)
class InvocationResult:
    request_id: str
    payload: bytes
    function_error: str | None = None  # "Unhandled" like Lambda's X-Amz-Function-Error

    def json(self) -> Any:
        return json.loads(self.payload) if self.payload else None


class LogSink:
    """One log stream for every function, each line prefixed with the function's label."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stdout
        self._lock = threading.Lock()

    def write(self, label: str, line: str) -> None:
        with self._lock:
            self._stream.write(f"[{label}] {line.rstrip()}\n")
            self._stream.flush()


def _timestamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _error(request_id: str, error_type: str, message: str) -> bytes:
    return json.dumps({"errorType": error_type, "errorMessage": f"RequestId: {request_id} Error: {message}"}).encode()


class Worker:
    """One execution environment: a child process serving invocations over two pipes."""

    def __init__(self, config: FunctionConfig, environment: dict[str, str], sink: LogSink):
        self.config = config
        request_read, request_write = os.pipe()
        response_read, response_write = os.pipe()
        self._process = subprocess.Popen(
            [sys.executable, "-P", "-u", str(WORKER_SCRIPT), str(request_read), str(response_write)],
            env=environment,
            cwd=str(config.code_dir),  # Lambda's working directory is the task root
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            pass_fds=(request_read, response_write),
            start_new_session=True,  # Ctrl-C reaches the stack, which then stops workers itself
        )
        os.close(request_read)
        os.close(response_write)
        self._requests: IO[str] = os.fdopen(request_write, "w", encoding="utf-8")
        self._responses: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._ready = False
        threading.Thread(target=self._pump_logs, args=(sink,), name=f"logs-{config.name}", daemon=True).start()
        threading.Thread(
            target=self._pump_responses, args=(response_read,), name=f"rx-{config.name}", daemon=True
        ).start()

    @property
    def alive(self) -> bool:
        return self._process.poll() is None

    @property
    def pid(self) -> int:
        return self._process.pid

    def _pump_logs(self, sink: LogSink) -> None:
        assert self._process.stdout is not None
        for raw in self._process.stdout:
            sink.write(self.config.label, raw.decode("utf-8", errors="replace"))

    def _pump_responses(self, fd: int) -> None:
        with os.fdopen(fd, "r", encoding="utf-8") as responses:
            for line in responses:
                self._responses.put(json.loads(line))
        self._responses.put(None)  # the worker exited

    def invoke(self, payload: bytes, request_id: str, region: str) -> InvocationResult:
        if not self._ready:
            try:
                ready = self._responses.get(timeout=INIT_TIMEOUT_SECONDS)
            except queue.Empty:
                ready = None
            if ready is None:
                self.kill()
                return InvocationResult(
                    request_id,
                    _error(request_id, "Runtime.InitError", "Runtime failed to start"),
                    "Unhandled",
                )
            self._ready = True
        timeout = self.config.timeout_seconds
        deadline = time.time() + timeout
        request = {
            "requestId": request_id,
            "payload": payload.decode("utf-8"),
            "deadlineMs": int(deadline * 1000),
            "invokedFunctionArn": self.config.arn(region),
        }
        try:
            self._requests.write(json.dumps(request) + "\n")
            self._requests.flush()
        except (BrokenPipeError, ValueError):
            self.kill()
            return InvocationResult(
                request_id,
                _error(request_id, "Runtime.ExitError", "Runtime exited before the invocation"),
                "Unhandled",
            )
        try:
            message = self._responses.get(timeout=timeout + IPC_GRACE_SECONDS)
        except queue.Empty:
            self.kill()
            return InvocationResult(
                request_id,
                _error(request_id, "Sandbox.Timedout", f"Task timed out after {timeout:.2f} seconds"),
                "Unhandled",
            )
        if message is None:
            code = self._process.wait()
            return InvocationResult(
                request_id,
                _error(
                    request_id,
                    "Runtime.ExitError",
                    f"Runtime exited with error: exit status {code}",
                ),
                "Unhandled",
            )
        return InvocationResult(request_id, message["payload"].encode("utf-8"), message.get("functionError"))

    def kill(self) -> None:
        if self.alive:
            self._process.kill()
        self._process.wait()

    def stop(self, grace_seconds: float = 2.0) -> None:
        """Close the request pipe (the worker's loop ends), then kill if it lingers."""
        with contextlib.suppress(OSError):
            self._requests.close()
        try:
            self._process.wait(timeout=grace_seconds)
        except subprocess.TimeoutExpired:
            self.kill()


class FunctionPool:
    """Up to `size` workers for one function; invocations beyond that wait for a free worker."""

    def __init__(self, config: FunctionConfig, environment: dict[str, str], sink: LogSink, size: int) -> None:
        self.config = config
        self._environment = environment
        self._sink = sink
        self._slots = threading.Semaphore(size)
        self._size = size
        self._idle: deque[Worker] = deque()
        self._workers: set[Worker] = set()
        self._busy: set[Worker] = set()
        self._lock = threading.Lock()
        self._closed = False

    def describe(self) -> list[dict[str, Any]]:
        """Each live worker's process id and whether it is handling an invocation right now."""
        with self._lock:
            return [{"pid": w.pid, "busy": w in self._busy} for w in self._workers if w.alive]

    def warm(self) -> None:
        """Start one environment now, so the first invocation skips most of the cold start."""
        with self._lock:
            if not self._idle and len(self._workers) < self._size and not self._closed:
                self._idle.append(self._spawn())

    def _spawn(self) -> Worker:
        worker = Worker(self.config, self._environment, self._sink)
        self._workers.add(worker)
        return worker

    def invoke(self, payload: bytes, request_id: str, region: str) -> InvocationResult:
        with self._slots:
            with self._lock:
                if self._closed:
                    raise RuntimeError("the Lambda runtime is stopped")
                while self._idle and not self._idle[0].alive:
                    self._workers.discard(self._idle.popleft())
                worker = self._idle.popleft() if self._idle else self._spawn()
            self._busy.add(worker)
            try:
                result = worker.invoke(payload, request_id, region)
            finally:
                self._busy.discard(worker)
            with self._lock:
                if worker.alive and not self._closed:
                    self._idle.append(worker)
                else:
                    # Timed out or crashed: the next invocation starts a fresh environment.
                    self._workers.discard(worker)
            return result

    def close(self) -> None:
        with self._lock:
            self._closed = True
            workers = list(self._workers)
            self._workers.clear()
            self._idle.clear()
        for worker in workers:
            worker.stop()


@dataclass(order=True)
class _Pending:
    due: float
    sequence: int
    function: str = field(compare=False)
    payload: bytes = field(compare=False)
    request_id: str = field(compare=False)
    received: float = field(compare=False)
    attempts: int = field(compare=False, default=0)


class AsyncInvoker:
    """Lambda's internal event queue: retries with backoff, then destinations."""

    def __init__(self, runtime: LambdaRuntime, retry_delays: Sequence[float]) -> None:
        self._runtime = runtime
        self._delays = tuple(retry_delays) or DEFAULT_RETRY_DELAYS
        self._heap: list[_Pending] = []
        self._condition = threading.Condition()
        self._sequence = 0
        self._executors: dict[str, ThreadPoolExecutor] = {}
        self._stopped = False
        self._thread = threading.Thread(target=self._schedule, name="lambda-async", daemon=True)
        self._thread.start()

    def submit(self, function: str, payload: bytes, request_id: str) -> None:
        now = time.time()
        self._push(_Pending(now, 0, function, payload, request_id, received=now))

    def _push(self, item: _Pending) -> None:
        with self._condition:
            self._sequence += 1
            item.sequence = self._sequence
            heapq.heappush(self._heap, item)
            self._condition.notify()

    def _schedule(self) -> None:
        while True:
            with self._condition:
                while not self._stopped and (not self._heap or self._heap[0].due > time.time()):
                    timeout = self._heap[0].due - time.time() if self._heap else None
                    self._condition.wait(timeout)
                if self._stopped:
                    return
                item = heapq.heappop(self._heap)
            # One executor per function, as wide as its pool, so a slow function cannot hold up
            # the events of another.
            executor = self._executors.get(item.function)
            if executor is None:
                executor = ThreadPoolExecutor(
                    max_workers=self._runtime.pool_size, thread_name_prefix=f"async-{item.function}"
                )
                self._executors[item.function] = executor
            executor.submit(self._attempt, item)

    def _attempt(self, item: _Pending) -> None:
        config = self._runtime.config(item.function)
        settings = config.async_config
        if time.time() - item.received > settings.maximum_event_age_seconds:
            self._runtime.deliver_failure(
                config, item.payload, item.request_id, None, item.attempts, "EventAgeExceeded"
            )
            return
        try:
            result = self._runtime.invoke(item.function, item.payload, request_id=item.request_id)
        except RuntimeError:  # stopped while queued
            return
        item.attempts += 1
        if result.function_error is None:
            self._runtime.deliver_success(config, item.payload, item.request_id, result, item.attempts)
            return
        if item.attempts <= settings.maximum_retry_attempts:
            delay = self._delays[min(item.attempts - 1, len(self._delays) - 1)]
            log.info(
                "%s: async invocation %s failed (attempt %d), retrying in %.1fs",
                config.name,
                item.request_id,
                item.attempts,
                delay,
            )
            item.due = time.time() + delay
            self._push(item)
            return
        self._runtime.deliver_failure(config, item.payload, item.request_id, result, item.attempts, "RetriesExhausted")

    def close(self) -> None:
        with self._condition:
            self._stopped = True
            self._condition.notify_all()
        self._thread.join(timeout=5)
        for executor in self._executors.values():
            executor.shutdown(wait=True, cancel_futures=True)


class LambdaRuntime:
    """The functions of one stack, addressable by name, ARN or logical id."""

    def __init__(
        self,
        endpoint: AwsEndpoint,
        sink: LogSink | None = None,
        pool_size: int = 2,
        retry_delays: Sequence[float] = DEFAULT_RETRY_DELAYS,
    ) -> None:
        self.endpoint = endpoint
        self.region = endpoint.region
        self.pool_size = pool_size
        self._sink = sink or LogSink()
        self._pools: dict[str, FunctionPool] = {}
        self._aliases: dict[str, str] = {}
        self._async = AsyncInvoker(self, retry_delays)

    def register(self, config: FunctionConfig) -> None:
        environment = self._environment_for(config)
        self._pools[config.name] = FunctionPool(config, environment, self._sink, self.pool_size)
        for alias in (config.name, config.logical_id, config.arn(self.region)):
            self._aliases[alias] = config.name

    def _environment_for(self, config: FunctionConfig) -> dict[str, str]:
        """Only what Lambda would give the function: its own variables plus the runtime's."""
        python_path = [str(config.code_dir), *(str(layer) for layer in config.layer_dirs)]
        return {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "LANG": "en_US.UTF-8",
            "TZ": ":UTC",
            **config.environment,
            # Reserved variables: Lambda sets these itself and rejects them in the template.
            **self.endpoint.environment(),
            "PYTHONPATH": os.pathsep.join(python_path),
            "LAMBDA_TASK_ROOT": str(config.code_dir),
            "_HANDLER": config.handler,
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{config.runtime}",
            "AWS_LAMBDA_FUNCTION_NAME": config.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(config.memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{config.name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": f"local/[$LATEST]{uuid.uuid4().hex}",
            # What `sam local` sets; Powertools Tracer reads it to stay off (no X-Ray daemon).
            "AWS_SAM_LOCAL": "true",
        }

    def find(self, name_or_arn: str) -> FunctionConfig | None:
        key = name_or_arn
        if key.startswith("arn:"):
            # arn:aws:lambda:region:account:function:name[:qualifier]
            parts = key.split(":")
            key = parts[6] if len(parts) > 6 else key
        elif ":" in key:
            key = key.split(":")[0]  # name:qualifier
        name = self._aliases.get(key)
        return self._pools[name].config if name else None

    def config(self, name: str) -> FunctionConfig:
        found = self.find(name)
        if found is None:
            raise KeyError(f"no local function {name!r}")
        return found

    @property
    def functions(self) -> list[FunctionConfig]:
        return [pool.config for pool in self._pools.values()]

    def warm(self) -> None:
        for pool in self._pools.values():
            pool.warm()

    def workers(self) -> dict[str, list[dict[str, Any]]]:
        return {name: pool.describe() for name, pool in self._pools.items()}

    def invoke(self, name: str, payload: bytes, request_id: str | None = None) -> InvocationResult:
        config = self.config(name)
        return self._pools[config.name].invoke(payload, request_id or str(uuid.uuid4()), self.region)

    def invoke_async(self, name: str, payload: bytes) -> str:
        config = self.config(name)
        request_id = str(uuid.uuid4())
        self._async.submit(config.name, payload, request_id)
        return request_id

    # -- destinations ----------------------------------------------------------------------

    def _record(
        self,
        config: FunctionConfig,
        payload: bytes,
        request_id: str,
        result: InvocationResult | None,
        attempts: int,
        condition: str,
    ) -> dict[str, Any]:
        """Lambda's destination record (the documented async invocation record shape)."""
        response_context: dict[str, Any] = {"statusCode": 200, "executedVersion": "$LATEST"}
        if result is not None and result.function_error:
            response_context["functionError"] = result.function_error
        record: dict[str, Any] = {
            "version": "1.0",
            "timestamp": _timestamp(),
            "requestContext": {
                "requestId": request_id,
                "functionArn": f"{config.arn(self.region)}:$LATEST",
                "condition": condition,
                "approximateInvokeCount": attempts,
            },
            "requestPayload": json.loads(payload),
            "responseContext": response_context,
        }
        if result is not None:
            record["responsePayload"] = result.json()
        return record

    def deliver_success(
        self,
        config: FunctionConfig,
        payload: bytes,
        request_id: str,
        result: InvocationResult,
        attempts: int,
    ) -> None:
        target = config.async_config.on_success
        if target is not None:
            record = self._record(config, payload, request_id, result, attempts, "Success")
            self._send(target, json.dumps(record))

    def deliver_failure(
        self,
        config: FunctionConfig,
        payload: bytes,
        request_id: str,
        result: InvocationResult | None,
        attempts: int,
        condition: str,
    ) -> None:
        settings = config.async_config
        if settings.on_failure is not None:
            record = self._record(config, payload, request_id, result, attempts, condition)
            log.warning(
                "%s: async invocation %s failed (%s); record sent to %s",
                config.name,
                request_id,
                condition,
                settings.on_failure.arn,
            )
            self._send(settings.on_failure, json.dumps(record))
        elif settings.dead_letter_queue is not None:
            # A function DLQ receives the original event, with the error as message attributes.
            error = (result.json() or {}) if result else {}
            attributes = {
                "RequestID": request_id,
                "ErrorCode": "200",
                "ErrorMessage": str(error.get("errorMessage", condition))[:1024],
            }
            self._send(settings.dead_letter_queue, payload.decode(), attributes)
        else:
            log.warning(
                "%s: async invocation %s failed (%s) and has no destination; dropped",
                config.name,
                request_id,
                condition,
            )

    def _send(self, target: Destination, body: str, attributes: dict[str, str] | None = None) -> None:
        try:
            if target.service == "sqs":
                sqs = self.endpoint.client("sqs")
                queue_name, account = target.arn.split(":")[5], target.arn.split(":")[4]
                url = sqs.get_queue_url(QueueName=queue_name, QueueOwnerAWSAccountId=account)
                sqs.send_message(
                    QueueUrl=url["QueueUrl"],
                    MessageBody=body,
                    MessageAttributes={
                        k: {"DataType": "String", "StringValue": v} for k, v in (attributes or {}).items()
                    },
                )
            elif target.service == "sns":
                self.endpoint.client("sns").publish(
                    TopicArn=target.arn,
                    Message=body,
                    MessageAttributes={
                        k: {"DataType": "String", "StringValue": v} for k, v in (attributes or {}).items()
                    },
                )
            elif target.service == "lambda":
                self.invoke_async(target.arn, body.encode())
            else:
                raise ValueError(f"unsupported destination {target.arn}")
        except Exception:
            # Lambda drops a record it cannot deliver too; say so loudly.
            log.exception("could not deliver an async invocation record to %s", target.arn)

    def close(self) -> None:
        self._async.close()
        pools = list(self._pools.values())
        threads = [threading.Thread(target=pool.close) for pool in pools]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
