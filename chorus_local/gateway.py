"""The AWS gateway: one local endpoint for every AWS API the functions call.

moto's server app handles S3, DynamoDB, SQS, SNS, SES, SSM, KMS and Step Functions. This WSGI
middleware sits in front of it and takes over what moto cannot run without Docker:
- `POST /2015-03-31/functions/{name}/invocations` (Lambda Invoke) → the local Lambda runtime;
  Step Functions' lambda:invoke tasks arrive here too, because moto's interpreter calls
  `http://localhost:{MOTO_PORT}` (moto/stepfunctions/parser/asl/utils/boto_client.py).
- `/endpoints/...` (SageMaker runtime InvokeEndpoint / InvokeEndpointAsync) → the local SageMaker
  runtime.
- `POST /_local/sns/{function}` → HTTP deliveries of SNS subscriptions that stand in for the
  `lambda` protocol (moto would hand those to its Docker-based Lambda backend).
- `/_local/calls` (counted calls), `/_local/faults` (injected AWS errors) and `/_local/workers`
  (the Lambda worker processes): what benchmarks and the fault-injection suite look at and steer.
- `/_local/emails`: the e-mails SES accepted (SendEmail, SendRawEmail, SES v2 SendEmail), oldest
  first, each also logged with its text so a developer sees the links it carries; `DELETE` clears
  them. They are read from the requests moto answered 200, because moto keeps only the HTML body
  of an e-mail that has both (moto/ses/responses.py).
Everything else goes to moto unchanged.
"""

from __future__ import annotations

import base64
import email
import email.policy
import io
import json
import logging
import re
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import getaddresses
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote

import boto3
from botocore.config import Config
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

if TYPE_CHECKING:
    from chorus_local.delivery_streams import DeliveryStreams
    from chorus_local.event_sources import SnsDeliveries
    from chorus_local.lambda_runtime import LambdaRuntime
    from chorus_local.schedules import Schedules

log = logging.getLogger("chorus_local.gateway")

LOCAL_ACCOUNT_ID = "123456789012"
TEST_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
_INVOKE_PATH = re.compile(r"^/2015-03-31/functions/(?P<name>[^/]+)/invocations/?$")
_SNS_PATH = re.compile(r"^/_local/sns/(?P<function>[^/]+)/?$")
_SESV2_SEND_PATH = "/v2/email/outbound-emails"
# Lambda's documented payload limits: 6 MB for synchronous, 256 KB for asynchronous invocations.
SYNC_PAYLOAD_LIMIT = 6 * 1024 * 1024
ASYNC_PAYLOAD_LIMIT = 256 * 1024

SageMakerHandler = Callable[[str, str, Mapping[str, str], bytes], tuple[int, Mapping[str, str], bytes]]


@dataclass
class AwsEndpoint:
    """The gateway's URL plus a thread-safe cache of boto3 clients pointed at it."""

    url: str
    region: str = "us-east-1"
    _clients: dict[str, Any] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def client(self, service: str) -> Any:
        # boto3 clients are thread-safe once built, but building them is not.
        with self._lock:
            if service not in self._clients:
                self._clients[service] = boto3.session.Session().client(
                    service,  # type: ignore[call-overload]
                    endpoint_url=self.url,
                    region_name=self.region,
                    # Marks the local stack's own calls (pollers, SNS deliveries) in the call log.
                    config=Config(retries={"mode": "standard", "max_attempts": 3}, user_agent_extra="chorus-local"),
                    **TEST_CREDENTIALS,
                )
            return self._clients[service]

    def environment(self) -> dict[str, str]:
        """What a process needs to reach this endpoint through the standard variables."""
        return {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_ACCESS_KEY_ID": TEST_CREDENTIALS["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": TEST_CREDENTIALS["aws_secret_access_key"],
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
        }


class CallLog:
    """Counts the AWS API calls that pass the gateway, by who made them, service and operation.

    `GET /_local/calls` reads it and `DELETE /_local/calls` resets it, so a benchmark can count
    what one prediction costs. Callers: `functions` (Lambda workers: botocore sends
    `exec-env/AWS_Lambda_…`), `stepfunctions` (moto's interpreter signs with the key `ak`),
    `local` (the local stack emulating AWS-internal work: SQS polling, SNS delivery, the SageMaker
    runtime's own S3 and SNS traffic), `clients` (everyone else).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str, str], int] = {}

    def record(self, environ: dict[str, Any]) -> None:
        key = (_caller(environ), *_service_operation(environ))
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + 1

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            items = sorted(self._counts.items())
        return [{"caller": c, "service": s, "operation": o, "count": n} for (c, s, o), n in items]

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()


@dataclass
class FaultRule:
    """Answer matching calls from the functions with an AWS error instead of passing them on."""

    service: str
    operation: str
    error: str  # e.g. ProvisionedThroughputExceededException
    status: int = 400
    every: int = 1  # fail every n-th matching call (1: all of them)
    limit: int = 1_000_000  # at most this many failures
    # If set, fail only the first n tries of each call (botocore numbers them in `amz-sdk-request`):
    # throttling its retries then absorb, deterministically, however calls interleave.
    first_attempts: int | None = None
    seen: int = 0
    failed: int = 0


class Faults:
    """Injected AWS errors, answered on the wire: botocore parses and retries them exactly as it
    would a real throttle or outage, so the code under test is not touched.

    `POST /_local/faults` with `{"rules": [{"service", "operation", "error", "status"?, "every"?,
    "limit"?, "first_attempts"?}]}` adds rules, `DELETE /_local/faults` clears them, `GET` shows how often each fired.
    Only calls from Lambda workers (caller `functions`) are affected."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []

    def add(self, rules: list[dict[str, Any]]) -> None:
        with self._lock:
            self._rules.extend(FaultRule(**rule) for rule in rules)

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(vars(rule)) for rule in self._rules]

    def match(self, caller: str, service: str, operation: str, attempt: int) -> FaultRule | None:
        if caller != "functions":
            return None
        with self._lock:
            for rule in self._rules:
                if rule.first_attempts is not None and attempt > rule.first_attempts:
                    continue
                if rule.service == service and rule.operation == operation and rule.failed < rule.limit:
                    rule.seen += 1
                    if rule.seen % rule.every == 0:
                        rule.failed += 1
                        return rule
        return None


class Mailbox:
    """The e-mails SES accepted, oldest first: `GET /_local/emails` reads them, `DELETE` clears them.

    Each is `{"id", "from", "to": [every recipient], "subject", "text", "html", "sentAt"}`; `text`
    or `html` is null when the e-mail has no such part."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._emails: list[dict[str, Any]] = []

    def record(self, sent: dict[str, Any]) -> None:
        with self._lock:
            self._emails.append(sent)
        # The links an e-mail carries (approvals, say) are in its text: show it to the developer.
        body = sent["text"] if sent["text"] is not None else sent["html"]
        log.info("e-mail to %s: %s\n%s", ", ".join(sent["to"]), sent["subject"], body or "")

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(sent) for sent in self._emails]

    def clear(self) -> None:
        with self._lock:
            self._emails.clear()


def _sent_email(path: str, request_body: bytes, answer: bytes) -> dict[str, Any]:
    """The e-mail an SES send request carried, with the MessageId moto answered."""
    if path.rstrip("/") == _SESV2_SEND_PATH:
        params = json.loads(request_body or b"{}")
        destination = params.get("Destination", {})
        recipients = [
            *destination.get("ToAddresses", []),
            *destination.get("CcAddresses", []),
            *destination.get("BccAddresses", []),
        ]
        message_id = str(json.loads(answer).get("MessageId", ""))
        content = params.get("Content", {})
        if "Raw" in content:
            raw = base64.b64decode(content["Raw"]["Data"])
            return _raw_email(message_id, params.get("FromEmailAddress"), recipients, raw)
        simple = content.get("Simple", {})
        body = simple.get("Body", {})
        return _email(
            message_id,
            str(params.get("FromEmailAddress", "")),
            recipients,
            str(simple.get("Subject", {}).get("Data", "")),
            body.get("Text", {}).get("Data"),
            body.get("Html", {}).get("Data"),
        )
    form = dict(parse_qsl(request_body.decode("utf-8", "replace"), keep_blank_values=True))
    match = re.search(r"<MessageId>([^<]*)</MessageId>", answer.decode("utf-8", "replace"))
    message_id = match.group(1) if match else ""
    if form.get("Action") == "SendRawEmail":
        raw = base64.b64decode(form.get("RawMessage.Data", ""))
        return _raw_email(message_id, form.get("Source"), _members(form, "Destinations"), raw)
    recipients = [
        address
        for kind in ("ToAddresses", "CcAddresses", "BccAddresses")
        for address in _members(form, f"Destination.{kind}")
    ]
    return _email(
        message_id,
        form.get("Source", ""),
        recipients,
        form.get("Message.Subject.Data", ""),
        form.get("Message.Body.Text.Data"),
        form.get("Message.Body.Html.Data"),
    )


def _members(form: Mapping[str, str], name: str) -> list[str]:
    """A query-protocol list: `name.member.1`, `name.member.2`..., in order."""
    prefix = f"{name}.member."
    numbered = [(int(key.removeprefix(prefix)), value) for key, value in form.items() if key.startswith(prefix)]
    return [value for _, value in sorted(numbered)]


def _raw_email(message_id: str, source: str | None, destinations: list[str], raw: bytes) -> dict[str, Any]:
    """Parse a raw MIME e-mail: its text and HTML bodies, and every recipient named by the
    Destinations parameter or the To/Cc/Bcc headers (SES sends to both)."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    headers = [str(value) for name in ("to", "cc", "bcc") for value in message.get_all(name, [])]
    recipients = list(dict.fromkeys([*destinations, *(address for _, address in getaddresses(headers) if address)]))
    text, html = (message.get_body(preferencelist=(kind,)) for kind in ("plain", "html"))
    return _email(
        message_id,
        source or str(message.get("from", "")),
        recipients,
        str(message.get("subject", "")),
        text.get_content() if isinstance(text, EmailMessage) else None,
        html.get_content() if isinstance(html, EmailMessage) else None,
    )


def _email(
    message_id: str, source: str, to: list[str], subject: str, text: str | None, html: str | None
) -> dict[str, Any]:
    sent_at = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {
        "id": message_id,
        "from": source,
        "to": to,
        "subject": subject,
        "text": text,
        "html": html,
        "sentAt": sent_at,
    }


def _attempt(environ: Mapping[str, Any]) -> int:
    """Which try of a call this is, from botocore's `amz-sdk-request: attempt=N; max=M`."""
    match = re.search(r"attempt=(\d+)", str(environ.get("HTTP_AMZ_SDK_REQUEST", "")))
    return int(match.group(1)) if match else 1


def _fault_response(environ: Mapping[str, Any], rule: FaultRule) -> Response:
    message = f"injected by the local stack: {rule.error}"
    if environ.get("HTTP_X_AMZ_TARGET"):  # the JSON protocols (DynamoDB, SQS, Step Functions)
        body = json.dumps({"__type": rule.error, "message": message})
        return Response(body, status=rule.status, content_type="application/x-amz-json-1.0")
    body = (
        f"<ErrorResponse><Error><Type>Sender</Type><Code>{rule.error}</Code><Message>{message}</Message></Error>"
        f"<RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>"
    )
    return Response(body, status=rule.status, content_type="text/xml")


def _credential(environ: Mapping[str, Any]) -> list[str]:
    auth = str(environ.get("HTTP_AUTHORIZATION", ""))
    credential = auth.partition("Credential=")[2] or unquote(
        dict(parse_qsl(str(environ.get("QUERY_STRING", "")))).get("X-Amz-Credential", "")
    )
    return credential.split(",")[0].split("/")


def _caller(environ: Mapping[str, Any]) -> str:
    agent = str(environ.get("HTTP_USER_AGENT", ""))
    if "exec-env/AWS_Lambda" in agent:
        return "functions"
    if "chorus-local" in agent:
        return "local"
    if _credential(environ)[0] == "ak":
        return "stepfunctions"
    return "clients"


def _buffered_body(environ: dict[str, Any]) -> bytes:
    """Read the request body and put it back for moto."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(body)
    return bytes(body)


def _service_operation(environ: dict[str, Any]) -> tuple[str, str]:
    path = str(environ.get("PATH_INFO", ""))
    method = str(environ.get("REQUEST_METHOD", "GET"))
    if _INVOKE_PATH.match(path):
        return "lambda", "Invoke"
    if method == "POST" and path.rstrip("/") == _SESV2_SEND_PATH:
        return "ses", "SendEmail"  # SES v2 (rest-json), signed as "ses" like v1
    scope = _credential(environ)
    service = scope[3] if len(scope) >= 4 else "s3"
    target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
    if target:
        return service, target.rpartition(".")[2]
    if path.startswith("/endpoints/"):
        return "sagemaker", "InvokeEndpointAsync" if path.endswith("async-invocations") else "InvokeEndpoint"
    if str(environ.get("CONTENT_TYPE", "")).startswith("application/x-www-form-urlencoded"):
        # Query-protocol services (SNS, SES): the operation is the form's Action.
        body = _buffered_body(environ)
        action = dict(parse_qsl(body.decode("utf-8", "replace"))).get("Action")
        if action:
            return service, action
    if service == "s3":
        has_key = path.strip("/").count("/") >= 1
        return service, f"{method} {'object' if has_key else 'bucket'}"
    return service, method


_FIREHOSE_PUT = "Firehose_20150804.PutRecord"  # and PutRecordBatch
_SES_SENDS = {("ses", "SendEmail"), ("ses", "SendRawEmail")}


def _lambda_error(status: int, error_type: str, message: str) -> Response:
    # botocore's rest-json parser reads the error code from x-amzn-ErrorType.
    body = json.dumps({"Type": "User", "message": message})
    response = Response(body, status=status, content_type="application/json")
    response.headers["x-amzn-ErrorType"] = error_type
    response.headers["x-amzn-RequestId"] = str(uuid.uuid4())
    return response


class AwsGateway:
    """WSGI middleware: local Lambda/SageMaker/SNS-delivery routes in front of moto."""

    def __init__(
        self,
        moto_app: Callable[..., Iterable[bytes]],
        runtime: LambdaRuntime,
        sns_deliveries: SnsDeliveries,
    ) -> None:
        self._moto_app = moto_app
        self._runtime = runtime
        self._sns = sns_deliveries
        self._sagemaker: SageMakerHandler | None = None
        self._firehose: DeliveryStreams | None = None
        self._schedules: Schedules | None = None
        self.calls = CallLog()
        self.faults = Faults()
        self.emails = Mailbox()

    def attach_sagemaker(self, handler: SageMakerHandler) -> None:
        """Route SageMaker runtime calls once the runtime exists (it starts after provisioning)."""
        self._sagemaker = handler

    def attach_firehose(self, streams: DeliveryStreams) -> None:
        """Route Firehose's PutRecord and PutRecordBatch to the local delivery streams."""
        self._firehose = streams

    def attach_schedules(self, schedules: Schedules) -> None:
        """Serve `/_local/schedules` (list, and run one now)."""
        self._schedules = schedules

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        response: Response | None = None
        if path == "/_local/calls":
            if method == "DELETE":
                self.calls.reset()
            response = Response(json.dumps({"calls": self.calls.snapshot()}), content_type="application/json")
            return response(environ, start_response)
        if path == "/_local/faults":
            if method == "DELETE":
                self.faults.clear()
            elif method == "POST":
                self.faults.add(list(json.loads(Request(environ).get_data() or b"{}").get("rules", [])))
            response = Response(json.dumps({"rules": self.faults.snapshot()}), content_type="application/json")
            return response(environ, start_response)
        if path == "/_local/emails":
            if method == "DELETE":
                self.emails.clear()
            response = Response(json.dumps({"emails": self.emails.snapshot()}), content_type="application/json")
            return response(environ, start_response)
        if path.startswith("/_local/schedules"):
            return self._schedules_route(path, method)(environ, start_response)
        if path == "/_local/workers":
            response = Response(json.dumps({"workers": self._runtime.workers()}), content_type="application/json")
            return response(environ, start_response)
        if not _SNS_PATH.match(path) and not path.startswith("/moto-api"):
            self.calls.record(environ)
            service, operation = _service_operation(environ)
            rule = self.faults.match(_caller(environ), service, operation, _attempt(environ))
            if rule is not None:
                return _fault_response(environ, rule)(environ, start_response)
            if (service, operation) in _SES_SENDS:
                return self._ses_send(environ)(environ, start_response)
        if method == "POST" and (match := _INVOKE_PATH.match(path)):
            response = self._invoke(Request(environ), unquote(match["name"]))
        elif method == "POST" and (match := _SNS_PATH.match(path)):
            response = self._sns_delivery(Request(environ), match["function"])
        elif path.startswith("/endpoints/") and self._is_sagemaker(environ):
            response = self._sagemaker_call(Request(environ))
        elif self._firehose is not None and str(environ.get("HTTP_X_AMZ_TARGET", "")).startswith(_FIREHOSE_PUT):
            response = self._firehose_call(Request(environ))
        if response is None:
            return self._moto_app(environ, start_response)
        return response(environ, start_response)

    def _schedules_route(self, path: str, method: str) -> Response:
        if self._schedules is None:
            return Response(json.dumps({"schedules": []}), content_type="application/json")
        name = unquote(path.removeprefix("/_local/schedules").strip("/"))
        if not name:
            return Response(json.dumps({"schedules": self._schedules.describe()}), content_type="application/json")
        schedule = self._schedules.find(name)
        if schedule is None or method != "POST":
            status, answer = (404, {"error": f"no schedule {name!r}"}) if schedule is None else (405, {})
            return Response(json.dumps(answer), status=status, content_type="application/json")
        request_id = self._schedules.fire(schedule)
        return Response(json.dumps({"fired": schedule.name, "requestId": request_id}), content_type="application/json")

    def _ses_send(self, environ: dict[str, Any]) -> Response:
        """Pass an SES send to moto and keep the e-mail if moto accepted it."""
        body = _buffered_body(environ)
        response = Response.from_app(self._moto_app, environ, buffered=True)
        if response.status_code == 200:
            self.emails.record(_sent_email(str(environ.get("PATH_INFO", "")), body, response.get_data()))
        return response

    def _firehose_call(self, request: Request) -> Response:
        assert self._firehose is not None
        operation = str(request.headers.get("X-Amz-Target", "")).rpartition(".")[2]
        status, answer = self._firehose.handle(operation, request.get_data())
        response = Response(json.dumps(answer), status=status, content_type="application/x-amz-json-1.1")
        response.headers["x-amzn-RequestId"] = str(uuid.uuid4())
        return response

    # -- Lambda Invoke ---------------------------------------------------------------------

    def _invoke(self, request: Request, name: str) -> Response:
        # FunctionName may be a name, name:qualifier, or a (qualified) ARN; only $LATEST exists.
        qualifier = request.args.get("Qualifier")
        parts = name.split(":")
        if name.startswith("arn:") and len(parts) == 8:
            qualifier = qualifier or parts[7]
        elif not name.startswith("arn:") and len(parts) == 2:
            qualifier = qualifier or parts[1]
        function = self._runtime.find(name)
        if function is None or qualifier not in (None, "$LATEST"):
            arn = (
                name
                if name.startswith("arn:")
                else f"arn:aws:lambda:{self._runtime.region}:{LOCAL_ACCOUNT_ID}:function:{parts[0]}"
            )
            suffix = f":{qualifier}" if qualifier and not arn.endswith(f":{qualifier}") else ""
            return _lambda_error(404, "ResourceNotFoundException", f"Function not found: {arn}{suffix}")
        invocation_type = request.headers.get("X-Amz-Invocation-Type", "RequestResponse")
        payload = request.get_data() or b"{}"
        if invocation_type == "DryRun":
            response = Response(status=204)
            response.headers["x-amzn-RequestId"] = str(uuid.uuid4())
            return response
        try:
            json.loads(payload)
        except ValueError:
            return _lambda_error(400, "InvalidRequestContentException", "Could not parse request body into json")
        if invocation_type == "Event":
            if len(payload) > ASYNC_PAYLOAD_LIMIT:
                return _lambda_error(
                    413,
                    "RequestEntityTooLargeException",
                    f"Request must be smaller than {ASYNC_PAYLOAD_LIMIT} bytes for the InvokeAsync operation",
                )
            request_id = self._runtime.invoke_async(function.name, payload)
            response = Response(status=202)
            response.headers["x-amzn-RequestId"] = request_id
            return response
        if invocation_type != "RequestResponse":
            return _lambda_error(400, "InvalidParameterValueException", f"Invalid InvocationType {invocation_type}")
        if len(payload) > SYNC_PAYLOAD_LIMIT:
            return _lambda_error(
                413,
                "RequestEntityTooLargeException",
                f"Request must be smaller than {SYNC_PAYLOAD_LIMIT} bytes for the Invoke operation",
            )
        result = self._runtime.invoke(function.name, payload)
        response = Response(result.payload, status=200, content_type="application/json")
        response.headers["x-amzn-RequestId"] = result.request_id
        response.headers["X-Amz-Executed-Version"] = "$LATEST"
        if result.function_error:
            response.headers["X-Amz-Function-Error"] = result.function_error
        return response

    # -- SNS HTTP deliveries ---------------------------------------------------------------

    def _sns_delivery(self, request: Request, function: str) -> Response:
        # moto POSTs synchronously inside Publish, so answer at once and invoke asynchronously,
        # which is also how SNS invokes Lambda.
        try:
            message = json.loads(request.get_data(as_text=True))
        except ValueError:
            return Response("not an SNS delivery", status=400)
        if self._runtime.find(function) is None:
            log.warning("SNS delivery for unknown function %s dropped", function)
            return Response("no such function", status=404)
        self._sns.deliver(function, message)
        return Response("", status=200)

    # -- SageMaker runtime -----------------------------------------------------------------

    @staticmethod
    def _is_sagemaker(environ: Mapping[str, Any]) -> bool:
        """SageMaker runtime requests are SigV4-signed for the "sagemaker" service.

        Checking the credential scope (header or presigned query) keeps any other service's
        `/endpoints/...` path (an S3 bucket named "endpoints", say) with moto. Unsigned requests
        (curl) go to the SageMaker runtime.
        """
        auth = str(environ.get("HTTP_AUTHORIZATION", ""))
        credential = auth.partition("Credential=")[2] or unquote(
            dict(parse_qsl(str(environ.get("QUERY_STRING", "")))).get("X-Amz-Credential", "")
        )
        if not credential:
            return True
        scope = credential.split(",")[0].split("/")
        return len(scope) >= 4 and scope[3] == "sagemaker"

    def _sagemaker_call(self, request: Request) -> Response:
        if self._sagemaker is None:
            return Response(
                json.dumps({"message": "SageMaker runtime is not started"}),
                status=503,
                content_type="application/json",
            )
        path = request.path
        if request.query_string:
            path += "?" + request.query_string.decode("latin-1")
        status, headers, body = self._sagemaker(request.method, path, dict(request.headers.items()), request.get_data())
        return Response(body, status=status, headers=list(headers.items()))


class WsgiServer:
    """A threaded werkzeug server on 127.0.0.1, run in a background thread."""

    def __init__(
        self,
        app: Callable[..., Any],
        port: int,
        name: str,
        host: str = "127.0.0.1",
        request_handler: type[WSGIRequestHandler] | None = None,
    ) -> None:
        base = request_handler or WSGIRequestHandler

        class QuietHandler(base):  # type: ignore[valid-type,misc]
            # werkzeug logs every request; the API logs its own, and moto's would be noise.
            def log_request(self, *args: Any, **kwargs: Any) -> None:
                pass

        self._server: BaseWSGIServer = make_server(host, port, app, threaded=True, request_handler=QuietHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, name=name, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_port)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():  # shutdown() waits for serve_forever, which a bound-only server never ran
            self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def gateway_server(app: Callable[..., Any], port: int) -> WsgiServer:
    # moto's request handler keeps headers with underscores (S3 metadata), which werkzeug's
    # default handler drops.
    from moto.moto_server.werkzeug_app import MotoRequestHandler

    return WsgiServer(app, port, "aws-gateway", request_handler=MotoRequestHandler)
