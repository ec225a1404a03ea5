"""The running local stack for end-to-end tests: `python -m chorus_local` as a subprocess.

Fixtures:
- `stack` (session): the default stack (template defaults + local defaults).
- `start_stack` (module): a factory for differently configured stacks,
  `start_stack(parameter_overrides={"RegistryFile": ...}, extra_endpoints=<endpoints file | list>)`;
  every stack it starts stops when the module's tests are done.
Each yields a `RunningStack` with `api_url`, `aws_endpoint_url`, `webhook_secret`, `api_token` (the
local tenant's token, which every API request sends as `Authorization: Bearer …`; None while a stack
writes none), `ready_file` (what `python -m chorus_cli admin … --local <ready_file>` reads),
`resources` (logical id → physical name), `api(token=…)` (a ChorusClient), `client(service)` (boto3
against the stack) and `logs()` (its output so far).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from tests.e2e.client import ChorusClient, bearer

REPO_ROOT = Path(__file__).resolve().parents[2]
READY_DEADLINE_SECONDS = 120.0
STOP_GRACE_SECONDS = 20.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RunningStack:
    """One `python -m chorus_local` process and what a test needs to talk to it."""

    def __init__(
        self,
        parameter_overrides: Mapping[str, str] | None = None,
        extra_endpoints: Path | Sequence[Mapping[str, Any]] | None = None,
        environment: Mapping[str, str] | None = None,
        template: Path | None = None,
    ) -> None:
        self._workdir = Path(tempfile.mkdtemp(prefix="chorus-stack-"))
        ready_file = self.ready_file = self._workdir / "ready.json"
        command = [
            sys.executable,
            "-m",
            "chorus_local",
            "--api-port",
            str(free_port()),
            "--aws-port",
            str(free_port()),
            "--ready-file",
            str(ready_file),
            "--exit-with-parent",
        ]
        if template is not None:
            command += ["--template", str(template)]
        if parameter_overrides:
            command += ["--parameter-overrides", *(f"{k}={v}" for k, v in parameter_overrides.items())]
        if extra_endpoints is not None:
            if not isinstance(extra_endpoints, Path | str):
                path = self._workdir / "extra-endpoints.json"
                path.write_text(json.dumps({"endpoints": list(extra_endpoints)}))
                extra_endpoints = path
            command += ["--extra-endpoints", str(extra_endpoints)]
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **(environment or {})}
        # The stack must reach AWS through nothing but its own gateway.
        for variable in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
            env.pop(variable, None)
        self._lines: list[str] = []
        self._lines_lock = threading.Lock()
        self._process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        try:
            info = self._wait_ready(ready_file)
        except BaseException:
            self.stop()
            raise
        self.api_url: str = info["api_url"]
        self.aws_endpoint_url: str = info["aws_endpoint_url"]
        self.webhook_secret: str = info["webhook_secret"]
        self.api_token: str | None = info.get("api_token") or None
        self.resources: dict[str, str] = dict(info.get("resources") or {})

    @property
    def auth_headers(self) -> dict[str, str]:
        """`Authorization: Bearer <the local tenant's token>` (empty without one)."""
        return bearer(self.api_token)

    def api(self, token: str | None = None) -> ChorusClient:
        """A client of the REST API sending `token` (default: the local tenant's)."""
        return ChorusClient(self.api_url, token or self.api_token)

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            with self._lines_lock:
                self._lines.append(line)
            if os.environ.get("CHORUS_STACK_ECHO"):
                sys.stderr.write(line)

    def _wait_ready(self, ready_file: Path) -> dict[str, Any]:
        deadline = time.monotonic() + READY_DEADLINE_SECONDS
        while time.monotonic() < deadline:
            if ready_file.exists():
                return dict(json.loads(ready_file.read_text()))
            if self._process.poll() is not None:
                raise RuntimeError(f"the local stack exited with {self._process.returncode}:\n{self.logs()[-6000:]}")
            time.sleep(0.2)
        raise TimeoutError(f"the local stack was not ready in {READY_DEADLINE_SECONDS:.0f} s:\n{self.logs()[-6000:]}")

    def logs(self) -> str:
        """Everything the stack and its functions printed so far."""
        with self._lines_lock:
            return "".join(self._lines)

    def client(self, service: str) -> Any:
        return boto3.session.Session().client(
            service,  # type: ignore[call-overload]
            endpoint_url=self.aws_endpoint_url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(retries={"mode": "standard", "max_attempts": 3}),
        )

    def stop(self) -> None:
        """SIGTERM (a clean stop of workers, pollers and servers), then SIGKILL if it hangs."""
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._reader.join(timeout=5)


StartStack = Callable[..., RunningStack]


@pytest.fixture(scope="session")
def stack() -> Iterator[RunningStack]:
    running = RunningStack()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def start_stack() -> Iterator[StartStack]:
    started: list[RunningStack] = []

    def start(
        parameter_overrides: Mapping[str, str] | None = None,
        extra_endpoints: Path | Sequence[Mapping[str, Any]] | None = None,
        environment: Mapping[str, str] | None = None,
        template: Path | None = None,
    ) -> RunningStack:
        running = RunningStack(parameter_overrides, extra_endpoints, environment, template)
        started.append(running)
        return running

    try:
        yield start
    finally:
        for running in started:
            running.stop()
