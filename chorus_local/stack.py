"""The local stack: the whole of Chorus on one machine, built from template.yaml.

Start-up order (each step needs the previous one):
1. moto + the AWS gateway on 127.0.0.1:<aws_port> (MOTO_PORT set, Step Functions execution on);
2. provisioning from template.yaml (parameters: template defaults < local defaults < overrides),
   plus tenant `local`, signing webhooks with the stack's webhook secret, with an all-scopes API token
   (CHORUS_API_TOKEN or a new one; chorus_local/tenancy.py) when the template has the tenancy tables;
3. the SageMaker runtime, after the demo models are trained (cached after the first run);
4. the Lambda runtime (worker pools, warmed in the background);
5. event sources: SQS pollers and SNS subscriptions; Firehose delivery streams (delivery_streams.py)
   and EventBridge Scheduler schedules (schedules.py); the demo services' drift baselines;
6. the REST API on 127.0.0.1:<api_port>, applying the usage plans stored in moto (usage_plans.py).
`stop()` undoes it in reverse. moto's state lives in module globals, so one process runs one
LocalStack at a time; `start()` resets moto so each stack begins empty.
"""

from __future__ import annotations

import base64
import logging
import os
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from chorus_local.api_gateway import RestApi
from chorus_local.cloudformation import AWS_SIDE_ONLY_TYPES, ProvisionedStack, Provisioner, TemplateError
from chorus_local.delivery_streams import DeliveryStreams
from chorus_local.event_sources import SnsDeliveries, SqsPoller
from chorus_local.gateway import AwsEndpoint, AwsGateway, WsgiServer, gateway_server
from chorus_local.lambda_runtime import DEFAULT_RETRY_DELAYS, LambdaRuntime, LogSink
from chorus_local.schedules import Schedules
from chorus_local.tenancy import API_TOKEN_ENV, AUDIT_TABLE, TENANTS_TABLE, TOKENS_TABLE, create_local_token
from chorus_local.usage_plans import UsagePlans

if TYPE_CHECKING:
    from chorus_local.sagemaker import EndpointConfig, SageMakerRuntime

log = logging.getLogger("chorus_local.stack")

REGION = "us-east-1"
# Local configuration, not code branches: applied only to parameters the template declares,
# and any explicit override wins. Loopback webhooks let a developer receive callbacks locally.
LOCAL_PARAMETER_DEFAULTS = {
    "Stage": "local",
    "WebhookAllowedNetworks": "127.0.0.0/8",
    # Retries a developer can watch happen: the same 8 attempts as in AWS, over seconds, not hours.
    "WebhookRetrySchedule": "0,1,2,3,5,8,13,21",
    "WebhookAttemptSeconds": "2",
    # Captured predictions reach S3 within a second or two, not a minute: the monitor can be run at once.
    "CaptureBufferSeconds": "1",
}
WEBHOOK_SECRET_ENV = "CHORUS_WEBHOOK_SECRET"
# Logical ids from docs/contracts.md that the SageMaker runtime writes and publishes to.
PAYLOADS_BUCKET, SUCCESS_TOPIC, ERROR_TOPIC = "PayloadsBucket", "SuccessTopic", "ErrorTopic"


def new_webhook_secret() -> str:
    """A Standard Webhooks symmetric secret: whsec_ + base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def enable_moto_features(aws_port: int) -> None:
    """Process-wide moto settings the stack depends on."""
    from moto.moto_api._internal.models import moto_api_backend

    # moto's Step Functions interpreter sends lambda:invoke (and sns/sqs/dynamodb) tasks to
    # http://localhost:{MOTO_PORT}: that must be this gateway, so they reach the local runtime.
    # (localhost resolves to 127.0.0.1 here; the gateway listens on 127.0.0.1 only.)
    os.environ["MOTO_PORT"] = str(aws_port)
    moto_api_backend.reset()
    # In-process equivalent of POST /moto-api/config: run real ASL instead of canned results.
    moto_api_backend.set_config({"stepfunctions": {"execute_state_machine": True}})


class LocalStack:
    def __init__(
        self,
        repo_root: Path,
        api_port: int = 3000,
        aws_port: int = 4566,
        parameter_overrides: Mapping[str, str] | None = None,
        endpoints_file: Path | None = None,
        extra_endpoints: Sequence[EndpointConfig] = (),
        *,
        template: str = "template.yaml",
        stack_name: str = "chorus-local",
        workers_per_function: int = 2,
        async_retry_delays: Sequence[float] = DEFAULT_RETRY_DELAYS,
        webhook_secret: str | None = None,
        api_token: str | None = None,
        log_stream: TextIO | None = None,
        warm_workers: bool = True,
        sagemaker: bool = True,
    ) -> None:
        self.repo_root = repo_root.resolve()
        self.template_path = self.repo_root / template
        self.stack_name = stack_name
        self._api_port = api_port
        self._aws_port = aws_port
        self._overrides = dict(parameter_overrides or {})
        self._endpoints_file = endpoints_file
        self._extra_endpoints = tuple(extra_endpoints)
        self._workers = workers_per_function
        self._retry_delays = tuple(async_retry_delays)
        self.webhook_secret = webhook_secret or os.environ.get(WEBHOOK_SECRET_ENV) or new_webhook_secret()
        # The local tenant's token: given, from CHORUS_API_TOKEN, or new (set once provisioned).
        self._requested_token = api_token if api_token is not None else os.environ.get(API_TOKEN_ENV, "")
        self.api_token: str | None = None
        self._sink = LogSink(log_stream)
        self._warm = warm_workers
        self._with_sagemaker = sagemaker

        self.endpoint: AwsEndpoint | None = None
        self.runtime: LambdaRuntime | None = None
        self.provisioned: ProvisionedStack | None = None
        self.sagemaker: SageMakerRuntime | None = None
        self._gateway_server: WsgiServer | None = None
        self._api_server: WsgiServer | None = None
        self._rest_api: RestApi | None = None
        self._pollers: list[SqsPoller] = []
        self._streams: DeliveryStreams | None = None
        self._schedules: Schedules | None = None
        self.startup_seconds: float | None = None
        self._saved_environ: dict[str, str | None] = {}

    # -- addresses ---------------------------------------------------------------------------

    @property
    def aws_endpoint_url(self) -> str:
        assert self._gateway_server is not None, "start() first"
        return f"http://127.0.0.1:{self._gateway_server.port}"

    @property
    def api_url(self) -> str:
        assert self._api_server is not None, "start() first"
        return f"http://127.0.0.1:{self._api_server.port}"

    def physical_resources(self) -> dict[str, str]:
        """Logical id → physical name (its Ref: a table's name, a queue's URL, a topic's ARN...)
        of every resource the stack created (not the AWS-side-only ones it only names)."""
        assert self.provisioned is not None, "start() first"
        return {
            logical_id: str(self.provisioned.refs[logical_id])
            for logical_id, resource_type in sorted(self.provisioned.resources.items())
            if resource_type not in AWS_SIDE_ONLY_TYPES and logical_id in self.provisioned.refs
        }

    def parameters(self) -> dict[str, str]:
        """Template defaults < local defaults (for declared parameters) < overrides."""
        from chorus_local.cloudformation import load_template

        declared = load_template(self.template_path).get("Parameters") or {}
        local = {k: v for k, v in LOCAL_PARAMETER_DEFAULTS.items() if k in declared}
        if "ApprovalLinkBaseUrl" in declared and self._api_server is not None:
            # Approval e-mails link to the local API (its port is bound before provisioning for this).
            local["ApprovalLinkBaseUrl"] = self.api_url
        return {**local, **self._overrides}

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> LocalStack:
        started = time.monotonic()
        try:
            self._start_aws()
            self._bind_api()
            self._provision()
            self._create_api_token()
            self._start_sagemaker()
            self._start_functions()
            self._start_event_sources()
            self._start_api()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started
        log.info("local stack ready in %.1f s", self.startup_seconds)
        return self

    def _start_aws(self) -> None:
        # The stack itself (SageMaker runtime, pollers) signs requests to the gateway; make sure
        # it never needs a developer's real credentials or profile to do so.
        self._saved_environ = {
            k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "MOTO_PORT")
        }
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

        # Bind first (port 0 picks a free port), then point moto's self-calls at it.
        endpoint = AwsEndpoint(url="", region=REGION)  # URL known once bound
        self.runtime = LambdaRuntime(endpoint, self._sink, pool_size=self._workers, retry_delays=self._retry_delays)
        self._sns = SnsDeliveries(self.runtime, endpoint, "")
        moto_app = DomainDispatcherApplication(create_backend_app)
        self._gateway = AwsGateway(moto_app, self.runtime, self._sns)
        self._gateway_server = gateway_server(self._gateway, self._aws_port)
        port = self._gateway_server.port
        enable_moto_features(port)
        endpoint.url = f"http://127.0.0.1:{port}"
        self._sns.delivery_base_url = endpoint.url
        self.endpoint = endpoint
        self._gateway_server.start()
        log.info("AWS gateway (moto %s) on %s", _moto_version(), self.aws_endpoint_url)

    def _provision(self) -> None:
        assert self.endpoint is not None
        provisioner = Provisioner(
            self.template_path,
            self.endpoint,
            parameter_overrides=self.parameters(),
            stack_name=self.stack_name,
        )
        self.provisioned = provisioner.provision()
        parameters = self.provisioned.parameters
        log.info(
            "provisioned %d resources from %s (%s)",
            len(self.provisioned.resources),
            self.template_path.name,
            ", ".join(f"{k}={v}" for k, v in sorted(parameters.items())),
        )

    def _create_api_token(self) -> None:
        assert self.provisioned is not None and self.endpoint is not None
        refs = self.provisioned.refs
        if TENANTS_TABLE not in refs or TOKENS_TABLE not in refs or AUDIT_TABLE not in refs:
            log.info("the template has no %s, %s and %s: no API token", TENANTS_TABLE, TOKENS_TABLE, AUDIT_TABLE)
            return
        api = self.provisioned.api
        if api is None:
            log.info("the template has no REST API: no API token")
            return
        self.api_token = create_local_token(
            self.repo_root,
            self.endpoint.url,
            self.endpoint.region,
            str(refs[TENANTS_TABLE]),
            str(refs[TOKENS_TABLE]),
            str(refs[AUDIT_TABLE]),
            self.webhook_secret,
            self._requested_token,
            api_stage=(api.api_id, api.stage),
        )
        log.info("tenant local has an API token with every scope (id %s)", self.api_token.split("_")[1])

    def _start_sagemaker(self) -> None:
        if not self._with_sagemaker:
            return
        assert self.provisioned is not None and self.endpoint is not None
        from chorus_local.models.train import ensure_trained
        from chorus_local.sagemaker import DEFAULT_ENDPOINTS_FILE, SageMakerRuntime

        accuracy = ensure_trained()
        log.info(
            "demo models ready (held-out accuracy %s)", ", ".join(f"{k} {v:.3f}" for k, v in sorted(accuracy.items()))
        )
        refs = self.provisioned.refs
        missing = [r for r in (PAYLOADS_BUCKET, SUCCESS_TOPIC, ERROR_TOPIC) if r not in refs]
        if missing:
            raise TemplateError(f"the SageMaker runtime needs {', '.join(missing)} (docs/contracts.md)")
        self.sagemaker = SageMakerRuntime(
            self._endpoints_file or DEFAULT_ENDPOINTS_FILE,
            output_bucket=str(refs[PAYLOADS_BUCKET]),
            success_topic_arn=str(refs[SUCCESS_TOPIC]),
            error_topic_arn=str(refs[ERROR_TOPIC]),
            aws_endpoint_url=self.endpoint.url,
            region=REGION,
            extra_endpoints=self._extra_endpoints,
        )
        self._gateway.attach_sagemaker(self.sagemaker.handle)
        log.info("SageMaker runtime endpoints: %s", ", ".join(self.sagemaker.endpoint_names))

    def _start_functions(self) -> None:
        assert self.provisioned is not None and self.runtime is not None
        for function in self.provisioned.functions:
            self.runtime.register(function)
        if self._warm:
            self.runtime.warm()

    def _start_event_sources(self) -> None:
        assert self.provisioned is not None and self.runtime is not None
        assert self.endpoint is not None
        for mapping in self.provisioned.sqs_mappings:
            if not mapping.enabled:
                log.info("SQS mapping %s → %s is disabled", mapping.queue_name, mapping.function)
                continue
            poller = SqsPoller(mapping, self.runtime, self.endpoint)
            poller.start()
            self._pollers.append(poller)
        for subscription in self.provisioned.sns_subscriptions:
            self._sns.subscribe(subscription)
        if self.provisioned.delivery_streams:
            self._streams = DeliveryStreams(
                self.provisioned.delivery_streams, self.runtime, self.endpoint, stream_exists=_moto_stream_exists
            )
            self._streams.start()
            self._gateway.attach_firehose(self._streams)
            log.info("Firehose delivery streams: %s", ", ".join(self._streams.names))
        if self.provisioned.schedules:
            self._schedules = Schedules(self.provisioned.schedules, self.runtime)
            self._schedules.start()
            self._gateway.attach_schedules(self._schedules)
        self._seed_baselines()

    def _seed_baselines(self) -> None:
        """The demo services' drift baselines from the models' training data (chorus_local/monitoring.py)."""
        assert self.provisioned is not None and self.runtime is not None and self.endpoint is not None
        from chorus_local.monitoring import MONITOR_FUNCTION, seed_demo_baselines

        refs = self.provisioned.refs
        if not self._with_sagemaker or MONITOR_FUNCTION not in refs or PAYLOADS_BUCKET not in refs:
            return
        registry = self._registry_services()
        seed_demo_baselines(
            self.runtime, self.endpoint.client("s3"), str(refs[PAYLOADS_BUCKET]), str(refs[MONITOR_FUNCTION]), registry
        )

    def _registry_services(self) -> list[str]:
        """The services of the registry the functions read that declare capture."""
        import json as _json

        from chorus_local.monitoring import PACKAGED_REGISTRY

        assert self.provisioned is not None
        configured = str(self.provisioned.parameters.get("RegistryFile") or "")
        document = _json.loads(Path(configured or PACKAGED_REGISTRY).read_text())
        return [s["name"] for s in document.get("services", []) if s.get("capture")]

    def _bind_api(self) -> None:
        """Take the API's port before provisioning, so the template's parameters can name its URL;
        requests are answered once the REST API is built (_start_api)."""
        self._api_server = WsgiServer(self._serve_api, self._api_port, "rest-api")

    def _serve_api(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if self._rest_api is None:
            start_response("503 Service Unavailable", [("Content-Type", "application/json")])
            return [b'{"error": {"code": "starting", "message": "the local stack is starting"}}']
        return self._rest_api(environ, start_response)

    def _start_api(self) -> None:
        assert self.provisioned is not None and self.runtime is not None and self._api_server is not None
        if self.provisioned.api is None:
            log.info("the template declares no Api events; no REST API")
            self._api_server.stop()
            self._api_server = None
            return
        assert self.endpoint is not None
        api = self.provisioned.api
        usage_plans = UsagePlans(self.endpoint.client("apigateway"), api.api_id, api.stage)
        self._rest_api = RestApi(api, self.runtime, usage_plans)
        self._api_server.start()

    def stop(self) -> None:
        """Stop everything that started, in reverse order; safe to call more than once."""
        started = time.monotonic()
        if self._api_server is not None:
            self._api_server.stop()
            self._api_server = None
        if self._rest_api is not None:
            self._rest_api.close()
        if self._schedules is not None:
            self._schedules.stop()
            self._schedules = None
        for poller in self._pollers:
            poller.stop()
        self._pollers.clear()
        if self._streams is not None:
            self._streams.stop()  # flushes what is buffered while the runtime still runs
            self._streams = None
        if self.sagemaker is not None:
            self.sagemaker.close()
            self.sagemaker = None
        if self.runtime is not None:
            self.runtime.close()
            self.runtime = None
        if self._gateway_server is not None:
            self._gateway_server.stop()
            self._gateway_server = None
            log.info("local stack stopped in %.1f s", time.monotonic() - started)
        # Leave the process environment as we found it (matters when a test runs the stack).
        for key, value in self._saved_environ.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_environ = {}

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *_: Any) -> None:
        self.stop()


def _moto_stream_exists(name: str) -> bool:
    """Whether moto still has the delivery stream (DeleteDeliveryStream makes puts fail, as in AWS)."""
    from moto.firehose.models import firehose_backends

    return any(name in backend.delivery_streams for backend in _backends(firehose_backends))


def _backends(backends: Any) -> list[Any]:
    return [backend for account in backends.values() for backend in account.values()]


def _moto_version() -> str:
    import moto

    return str(moto.__version__)
