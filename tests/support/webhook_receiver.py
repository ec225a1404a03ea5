"""A real HTTP receiver on 127.0.0.1 that records webhooks and answers with scripted statuses."""

from __future__ import annotations

import socket
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class WebhookReceiver:
    statuses: deque[int] = field(default_factory=deque)
    received: list[Received] = field(default_factory=list)
    redirect_to: str | None = None
    retry_after: str | None = None  # sent with 429 and 503 answers

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                receiver.received.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                status = receiver.statuses.popleft() if receiver.statuses else 204
                self.send_response(status)
                if 300 <= status < 400 and receiver.redirect_to:
                    self.send_header("Location", receiver.redirect_to)
                if status in {429, 503} and receiver.retry_after is not None:
                    self.send_header("Retry-After", receiver.retry_after)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hooks/chorus"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class SlowReceiver:
    """A loopback receiver that accepts connections and then never answers (`drip=None`, a black
    hole) or answers one byte every `drip` seconds, forever (a receiver on a bad day)."""

    def __init__(self, drip: float | None = None) -> None:
        self._drip = drip
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._closed = threading.Event()
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}/hooks/slow"

    def _serve(self) -> None:
        while not self._closed.is_set():
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._hold, args=(connection,), daemon=True).start()

    def _hold(self, connection: socket.socket) -> None:
        answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
        try:
            for byte in answer:
                if self._closed.wait(self._drip if self._drip is not None else 3600):
                    return
                connection.sendall(bytes([byte]))
        except OSError:
            return
        finally:
            connection.close()

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
