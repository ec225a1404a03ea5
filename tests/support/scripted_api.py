"""A real HTTP server on 127.0.0.1 standing in for the Chorus API (and its presigned S3 URLs): each
request is answered by the first scripted reply whose method and path match, in the order they were
added (a reply may be used `times` times, None: for ever), and recorded with the moment it came."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes
    at: float  # time.monotonic()

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    method: str
    path: str  # exact, without the query
    status: int = 200
    body: Any = None  # JSON, or bytes sent as they are
    headers: dict[str, str] = field(default_factory=dict)
    times: int | None = 1


class ScriptedApi:
    def __init__(self) -> None:
        self.requests: list[Request] = []
        self._replies: list[Reply] = []
        self._lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                url = urlsplit(self.path)
                request = Request(
                    self.command,
                    url.path,
                    parse_qs(url.query),
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                    time.monotonic(),
                )
                reply = api._take(request)
                payload = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
                self.send_response(reply.status)
                headers = {"Content-Type": "application/json", **reply.headers}
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _serve

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def reply(self, method: str, path: str, status: int = 200, body: Any = None, **options: Any) -> None:
        with self._lock:
            self._replies.append(Reply(method, path, status, body, **options))

    def error(self, method: str, path: str, status: int, code: str, message: str = "scripted", **options: Any) -> None:
        self.reply(method, path, status, {"error": {"code": code, "message": message}}, **options)

    def to(self, method: str, path: str) -> list[Request]:
        return [r for r in self.requests if r.method == method and r.path == path]

    def _take(self, request: Request) -> Reply:
        with self._lock:
            self.requests.append(request)
            for reply in self._replies:
                if reply.method == request.method and reply.path == request.path:
                    if reply.times is not None:
                        reply.times -= 1
                        if reply.times == 0:
                            self._replies.remove(reply)
                    return reply
        return Reply(request.method, request.path, 404, {"error": {"code": "not_found", "message": "not scripted"}})

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
