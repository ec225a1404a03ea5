"""Local SageMaker runtime: InvokeEndpoint and InvokeEndpointAsync on the real wire protocol.

Endpoints are model packages in the SageMaker inference-toolkit layout
(`<modelDir>/code/inference.py` with model_fn, input_fn, predict_fn, output_fn), declared in
`chorus_local/endpoints.json`. An unmodified boto3 `sagemaker-runtime` client pointed at this
runtime works as against AWS, including SageMaker's async semantics: the input is read from S3,
the output or failure reason is written to S3, and the notification is published to SNS in
SageMaker's own message format, with a per-endpoint concurrency limit and queue.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any, Literal, TypeVar, cast
from urllib.parse import unquote, urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ENDPOINTS_FILE = Path(__file__).resolve().parent / "endpoints.json"
ACCOUNT_ID = "123456789012"  # moto's default account, as in every local ARN
VARIANT = "AllTraffic"
MAX_SYNC_PAYLOAD_BYTES = 6 * 1024 * 1024
SYNC_TIMEOUT_SECONDS = 60
INVOCATION_TIMEOUT_SECONDS = (1, 900, 3600)  # (min, default, max), as in AWS
REQUEST_TTL_SECONDS = (60, 21600, 21600)
DEFAULT_ACCEPT = "application/json"

_ROUTE = re.compile(r"/endpoints/(?P<name>[^/]+)/(?P<action>invocations|async-invocations)")
_TOOLKIT_FUNCTIONS = ("model_fn", "input_fn", "predict_fn", "output_fn")

EndpointMode = Literal["sync", "async"]
T = TypeVar("T")


@dataclass(frozen=True)
class EndpointConfig:
    name: str
    model_dir: Path
    mode: EndpointMode
    max_concurrency: int = 1
    # False: an async endpoint without NotificationConfig (AWS allows it) — its results are
    # written to S3 but nobody is told, which is how a test makes an endpoint "never answer".
    notify: bool = True


def load_endpoint_configs(path: Path, base_dir: Path = REPO_ROOT) -> list[EndpointConfig]:
    """Read `{"endpoints": [{"name", "modelDir", "mode", "maxConcurrency", "notify"?}]}`; relative model
    directories are resolved against `base_dir` (the repository root)."""
    document = json.loads(path.read_text())
    configs = []
    for entry in document.get("endpoints", []):
        mode = entry.get("mode")
        concurrency = entry.get("maxConcurrency", 1)
        if mode not in ("sync", "async"):
            raise ValueError(f"{path}: endpoint {entry.get('name')!r}: mode must be sync or async")
        if not isinstance(concurrency, int) or concurrency < 1:
            raise ValueError(f"{path}: endpoint {entry.get('name')!r}: maxConcurrency must be a positive integer")
        configs.append(
            EndpointConfig(
                name=str(entry["name"]),
                model_dir=base_dir / entry["modelDir"],
                mode=mode,
                max_concurrency=concurrency,
                notify=bool(entry.get("notify", True)),
            )
        )
    return configs


class InvocationFailure(Exception):
    """An invocation did not produce an output; the message is the failure reason."""


class ModelFailure(InvocationFailure):
    """The model's own code raised."""


class InvocationTimeout(InvocationFailure):
    pass


class InputUnavailable(InvocationFailure):
    pass


class RequestExpired(InvocationFailure):
    pass


class _RequestError(Exception):
    """A request rejected before it reaches the model, answered as a SageMaker API error."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def _validation_error(message: str) -> _RequestError:
    return _RequestError(400, "ValidationError", message)


class ModelPackage:
    """One model's toolkit functions, with the model loaded once by model_fn."""

    def __init__(self, endpoint_name: str, model_dir: Path) -> None:
        self._module = _import_inference(endpoint_name, model_dir)
        self._model = self._module.model_fn(str(model_dir))

    def invoke(self, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
        """Run input_fn, predict_fn and output_fn; returns the body and its content type."""
        try:
            data = self._module.input_fn(body, content_type)
            prediction = self._module.predict_fn(data, self._model)
            result = self._module.output_fn(prediction, accept)
        # The model is user code: whatever it raises is the model's error, which SageMaker
        # reports to the caller rather than crashing the endpoint.
        except Exception as error:
            logger.debug("model code raised", exc_info=True)
            raise ModelFailure(f"{type(error).__name__}: {error}") from error
        # As in the inference toolkit, output_fn may name its content type; otherwise the
        # answer is in the type the caller accepted.
        if isinstance(result, tuple):
            output, output_type = result
        else:
            output, output_type = result, accept
        return (output.encode() if isinstance(output, str) else bytes(output)), output_type


def _import_inference(endpoint_name: str, model_dir: Path) -> ModuleType:
    path = model_dir / "code" / "inference.py"
    if not path.is_file():
        raise FileNotFoundError(f"endpoint {endpoint_name}: {path} not found (SageMaker inference-toolkit layout)")
    # One module name per endpoint, so two models' inference.py files never shadow each other.
    module_name = "chorus_model_" + re.sub(r"\W", "_", endpoint_name)
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"endpoint {endpoint_name}: cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses and pickle look their module up here
    spec.loader.exec_module(module)
    missing = [name for name in _TOOLKIT_FUNCTIONS if not callable(getattr(module, name, None))]
    if missing:
        raise ImportError(f"endpoint {endpoint_name}: {path} does not define {', '.join(missing)}")
    return module


def _call_with_timeout(call: Callable[[], T], timeout: float) -> T:
    """Run `call` in a daemon thread and wait at most `timeout` seconds.

    Python cannot stop a thread: a model that overruns keeps running in the background, but
    its caller is answered and its concurrency slot is freed, as SageMaker frees the request.
    """
    future: Future[T] = Future()

    def run() -> None:
        try:
            future.set_result(call())
        except Exception as error:  # handed to the waiting caller, not swallowed
            future.set_exception(error)

    threading.Thread(target=run, daemon=True, name="sagemaker-model-call").start()
    try:
        return future.result(timeout=timeout)
    except FutureTimeout:
        raise InvocationTimeout(
            f"Invocation timed out after {timeout:g} seconds while waiting for a response from the model"
        ) from None


class Endpoint:
    """A loaded model with its concurrency limit and, for async endpoints, its queue."""

    def __init__(self, config: EndpointConfig) -> None:
        self.config = config
        self._package = ModelPackage(config.name, config.model_dir)
        self._slots = threading.BoundedSemaphore(config.max_concurrency)
        # The executor's work queue is the endpoint's request queue.
        self._workers = ThreadPoolExecutor(
            max_workers=config.max_concurrency, thread_name_prefix=f"sagemaker-{config.name}"
        )

    def run(self, body: bytes, content_type: str, accept: str, timeout: float) -> tuple[bytes, str]:
        with self._slots:
            return _call_with_timeout(lambda: self._package.invoke(body, content_type, accept), timeout)

    def enqueue(self, job: Callable[[], None]) -> None:
        self._workers.submit(job).add_done_callback(self._report_crash)

    def close(self) -> None:
        self._workers.shutdown(wait=True, cancel_futures=True)

    def _report_crash(self, future: Future[None]) -> None:
        if not future.cancelled() and future.exception() is not None:
            logger.error(
                "async worker of endpoint %s crashed",
                self.config.name,
                exc_info=future.exception(),
            )


@dataclass(frozen=True)
class AsyncRequest:
    endpoint: Endpoint
    inference_id: str
    input_location: str
    content_type: str
    accept: str
    invocation_timeout: int
    ttl: int
    received_at: datetime
    output_location: str
    failure_location: str


class SageMakerRuntime:
    """Serves the SageMaker runtime API for the configured endpoints."""

    def __init__(
        self,
        endpoints_file: Path | None = DEFAULT_ENDPOINTS_FILE,
        *,
        output_bucket: str,
        success_topic_arn: str | None = None,
        error_topic_arn: str | None = None,
        aws_endpoint_url: str | None = None,
        region: str = "us-east-1",
        extra_endpoints: Sequence[EndpointConfig] = (),
    ) -> None:
        configs = [*(load_endpoint_configs(endpoints_file) if endpoints_file else []), *extra_endpoints]
        names = [config.name for config in configs]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"endpoint names must be unique: {', '.join(duplicates)}")
        self._bucket = output_bucket
        self._success_topic_arn = success_topic_arn
        self._error_topic_arn = error_topic_arn
        self._region = region
        session = boto3.session.Session(region_name=region)
        # Path-style addressing: a local endpoint URL has no per-bucket host names.
        # user_agent_extra marks this emulation's own traffic in the local stack's call log.
        self._s3 = session.client(
            "s3",
            endpoint_url=aws_endpoint_url,
            config=Config(s3={"addressing_style": "path"}, user_agent_extra="chorus-local"),
        )
        self._sns = session.client("sns", endpoint_url=aws_endpoint_url, config=Config(user_agent_extra="chorus-local"))
        self._endpoints = {config.name: Endpoint(config) for config in configs}
        self._server: ThreadingHTTPServer | None = None
        self._server_thread: threading.Thread | None = None

    @property
    def endpoint_names(self) -> list[str]:
        return list(self._endpoints)

    def handle(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        """Answer one HTTP request: (status, headers, body)."""
        lowered = {name.lower(): value for name, value in headers.items()}
        route = _ROUTE.fullmatch(urlsplit(path).path)
        try:
            if method != "POST" or route is None:
                raise _RequestError(
                    404, "UnknownOperationException", f"No SageMaker runtime operation at {method} {path}"
                )
            endpoint = self._endpoint(unquote(route["name"]))
            if route["action"] == "invocations":
                return self._invoke(endpoint, lowered, body)
            return self._invoke_async(endpoint, lowered)
        except _RequestError as error:
            return _error_response(error.status, error.code, str(error))

    def serve(self, port: int = 0) -> str:
        """Serve on 127.0.0.1 in a background thread (port 0: a free port); returns the URL."""
        if self._server is not None:
            raise RuntimeError("the runtime is already serving")
        server = _RuntimeHTTPServer(("127.0.0.1", port), self)
        self._server = server
        self._server_thread = threading.Thread(target=server.serve_forever, daemon=True, name="sagemaker-runtime-http")
        self._server_thread.start()
        return f"http://127.0.0.1:{server.server_address[1]}"

    def close(self) -> None:
        """Stop serving, drop queued async requests and wait for running ones."""
        if self._server is not None and self._server_thread is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server_thread.join()
            self._server = None
        for endpoint in self._endpoints.values():
            endpoint.close()

    def __enter__(self) -> SageMakerRuntime:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _endpoint(self, name: str) -> Endpoint:
        endpoint = self._endpoints.get(name)
        if endpoint is None:
            raise _validation_error(f"Endpoint {name} of account {ACCOUNT_ID} not found.")
        return endpoint

    def _invoke(self, endpoint: Endpoint, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        name = endpoint.config.name
        if endpoint.config.mode != "sync":
            raise _validation_error(f"Endpoint {name} is an asynchronous endpoint: call InvokeEndpointAsync.")
        if len(body) > MAX_SYNC_PAYLOAD_BYTES:
            raise _validation_error(
                f"Request payload of {len(body)} bytes exceeds the InvokeEndpoint limit of "
                f"{MAX_SYNC_PAYLOAD_BYTES} bytes (6 MB)."
            )
        inference_id = headers.get("x-amzn-sagemaker-inference-id") or str(uuid.uuid4())
        started = time.monotonic()
        try:
            output, output_type = endpoint.run(
                body,
                headers.get("content-type", "application/octet-stream"),
                _accept(headers.get("accept")),
                SYNC_TIMEOUT_SECONDS,
            )
        except InvocationFailure as failure:
            _log_invocation(name, inference_id, started, str(failure))
            return _error_response(
                424,
                "ModelError",
                f'Received server error (500) from primary with message "{failure}".',
                OriginalStatusCode=500,
                OriginalMessage=str(failure),
            )
        _log_invocation(name, inference_id, started, None)
        return (
            200,
            {
                "Content-Type": output_type,
                "x-Amzn-Invoked-Production-Variant": VARIANT,
                "x-amzn-RequestId": str(uuid.uuid4()),
            },
            output,
        )

    def _invoke_async(self, endpoint: Endpoint, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        if endpoint.config.mode != "async":
            raise _validation_error(
                f"Endpoint {endpoint.config.name} is not configured for asynchronous inference: call InvokeEndpoint."
            )
        input_location = headers.get("x-amzn-sagemaker-inputlocation", "")
        if not input_location.startswith("s3://"):
            raise _validation_error("InputLocation must be an S3 URI (s3://bucket/key).")
        inference_id = headers.get("x-amzn-sagemaker-inference-id") or str(uuid.uuid4())
        request = AsyncRequest(
            endpoint=endpoint,
            inference_id=inference_id,
            input_location=input_location,
            content_type=headers.get("x-amzn-sagemaker-content-type", "application/octet-stream"),
            accept=_accept(headers.get("x-amzn-sagemaker-accept")),
            invocation_timeout=_bounded_seconds(
                headers.get("x-amzn-sagemaker-invocationtimeoutseconds"),
                "InvocationTimeoutSeconds",
                INVOCATION_TIMEOUT_SECONDS,
            ),
            ttl=_bounded_seconds(
                headers.get("x-amzn-sagemaker-requestttlseconds"),
                "RequestTTLSeconds",
                REQUEST_TTL_SECONDS,
            ),
            received_at=datetime.now(UTC),
            output_location=f"s3://{self._bucket}/async-outputs/{inference_id}.out",
            failure_location=f"s3://{self._bucket}/async-failures/{inference_id}.err",
        )
        endpoint.enqueue(lambda: self._process(request))
        return (
            202,
            {
                "Content-Type": "application/json",
                "X-Amzn-SageMaker-OutputLocation": request.output_location,
                "X-Amzn-SageMaker-FailureLocation": request.failure_location,
                "x-amzn-RequestId": str(uuid.uuid4()),
            },
            json.dumps({"InferenceId": inference_id}).encode(),
        )

    def _process(self, request: AsyncRequest) -> None:
        """One queued async invocation, run by one of the endpoint's workers."""
        started = time.monotonic()
        try:
            waited = (datetime.now(UTC) - request.received_at).total_seconds()
            if waited > request.ttl:
                raise RequestExpired(
                    f"Request expired after waiting {waited:.0f} seconds in the queue (RequestTTLSeconds {request.ttl})"
                )
            body = self._read_input(request.input_location)
            output, output_type = request.endpoint.run(
                body, request.content_type, request.accept, request.invocation_timeout
            )
        except InvocationFailure as failure:
            _log_invocation(request.endpoint.config.name, request.inference_id, started, str(failure))
            self._report_failure(request, str(failure))
            return
        _log_invocation(request.endpoint.config.name, request.inference_id, started, None)
        self._report_success(request, output, output_type)

    def _read_input(self, location: str) -> bytes:
        bucket, key = _split_s3_uri(location)
        try:
            body: bytes = self._s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except (ClientError, BotoCoreError) as error:
            raise InputUnavailable(f"Failed to download the input from {location}: {error}") from error
        return body

    def _report_success(self, request: AsyncRequest, output: bytes, output_type: str) -> None:
        bucket, key = _split_s3_uri(request.output_location)
        self._s3.put_object(Bucket=bucket, Key=key, Body=output, ContentType=output_type)
        message = self._notification(request, "Completed")
        message["responseParameters"] = {
            "contentType": output_type,
            "outputLocation": request.output_location,
        }
        self._publish(request, self._success_topic_arn, message)

    def _report_failure(self, request: AsyncRequest, reason: str) -> None:
        bucket, key = _split_s3_uri(request.failure_location)
        self._s3.put_object(Bucket=bucket, Key=key, Body=reason.encode(), ContentType="text/plain")
        message = self._notification(request, "Failed")
        message["failureReason"] = reason
        message["responseParameters"] = {"failureLocation": request.failure_location}
        self._publish(request, self._error_topic_arn, message)

    def _notification(self, request: AsyncRequest, status: str) -> dict[str, Any]:
        """SageMaker's async notification, without its outcome-specific fields."""
        return {
            "awsRegion": self._region,
            "eventTime": _timestamp(datetime.now(UTC)),
            "receivedTime": _timestamp(request.received_at),
            "invocationStatus": status,
            "inferenceId": request.inference_id,
            "eventVersion": "1.0",
            "eventSource": "aws:sagemaker",
            "eventName": "InferenceResult",
            "requestParameters": {
                "endpointName": request.endpoint.config.name,
                "inputLocation": request.input_location,
                "contentType": request.content_type,
            },
        }

    def _publish(self, request: AsyncRequest, topic_arn: str | None, message: dict[str, Any]) -> None:
        # Like an endpoint without a NotificationConfig, no topic means no notification.
        if topic_arn is not None and request.endpoint.config.notify:
            self._sns.publish(TopicArn=topic_arn, Message=json.dumps(message))


class _RuntimeHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], runtime: SageMakerRuntime) -> None:
        super().__init__(address, _RequestHandler)
        self.runtime = runtime


class _RequestHandler(BaseHTTPRequestHandler):
    # HTTP/1.1 keeps boto3's pooled connections alive; every answer carries Content-Length.
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self._dispatch()

    def do_GET(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        runtime = cast(_RuntimeHTTPServer, self.server).runtime
        status, headers, payload = runtime.handle(self.command, self.path, dict(self.headers.items()), body)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        # Invocations are logged by the runtime; the access log is only for debugging.
        logger.debug(format, *args)


def _error_response(status: int, code: str, message: str, **fields: Any) -> tuple[int, dict[str, str], bytes]:
    """The rest-json error shape botocore parses into `client.exceptions.<code>`."""
    body = {"code": code, "message": message, **fields}
    headers = {
        "Content-Type": "application/json",
        "x-amzn-ErrorType": code,
        "x-amzn-RequestId": str(uuid.uuid4()),
    }
    return status, headers, json.dumps(body).encode()


def _accept(header: str | None) -> str:
    # Without an Accept (or with */*) the container answers its default type, as the
    # inference toolkit does.
    if not header or header == "*/*":
        return DEFAULT_ACCEPT
    return header


def _bounded_seconds(raw: str | None, parameter: str, bounds: tuple[int, int, int]) -> int:
    low, default, high = bounds
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise _validation_error(f"{parameter} must be an integer between {low} and {high}.")
    return int(raw)


def _split_s3_uri(uri: str) -> tuple[str, str]:
    parts = urlsplit(uri)
    return parts.netloc, parts.path.lstrip("/")


def _timestamp(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _log_invocation(endpoint: str, inference_id: str, started: float, failure: str | None) -> None:
    milliseconds = (time.monotonic() - started) * 1000
    if failure is None:
        logger.info("invocation endpoint=%s inferenceId=%s ms=%.0f ok", endpoint, inference_id, milliseconds)
    else:
        logger.warning(
            "invocation endpoint=%s inferenceId=%s ms=%.0f error=%s",
            endpoint,
            inference_id,
            milliseconds,
            failure,
        )
