"""The headless-browser kit (tests/support/browser.py) against a tiny form served on 127.0.0.1."""

from __future__ import annotations

import html
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import pytest

from tests.support.browser import Browser, artifact_path, browser_session

FORM_PAGE = b"""<!doctype html>
<html><head><title>Kit</title></head><body>
<h1>Approve model version</h1>
<form method="post" action="/submit">
  <textarea name="comment" id="comment"></textarea>
  <p hidden>not shown</p>
  <button type="submit" id="approve">Approve</button>
</form>
</body></html>"""


class FormServer:
    """Serves FORM_PAGE at / and records what is POSTed to /submit."""

    def __init__(self) -> None:
        self.posted: list[dict[str, list[str]]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._answer(FORM_PAGE)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                form = parse_qs(body)
                server.posted.append(form)
                comment = html.escape(form.get("comment", [""])[0])
                self._answer(f"<html><body><p id='result'>Received: {comment}</p></body></html>".encode())

            def _answer(self, page: bytes) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, *args: object) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="form-server", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/"

    def __enter__(self) -> FormServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def form_server() -> Iterator[FormServer]:
    with FormServer() as server:
        yield server


@pytest.fixture
def browser() -> Iterator[Browser]:
    yield from browser_session()


def test_browser_fills_a_textarea_submits_the_form_and_saves_a_screenshot(
    form_server: FormServer, browser: Browser
) -> None:
    # Given the form page open in the browser
    browser.open(form_server.url)
    assert "not shown" not in browser.text()

    # When a comment is typed and the submit button clicked
    browser.fill("textarea#comment", "Looks good\nship it")
    browser.click("button#approve")

    # Then the server received the comment and the browser shows its answer
    shown = browser.wait_for_text("Received:", "#result")
    assert form_server.posted == [{"comment": ["Looks good\r\nship it"]}]
    assert shown == "Received: Looks good ship it"
    # And a screenshot of the answer is a PNG
    path = browser.screenshot(artifact_path("browser-kit-self-test.png"))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
