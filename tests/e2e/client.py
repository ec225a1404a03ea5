"""What a client application does, over HTTP only: submit, upload, poll, download."""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from typing import Any

import requests

TERMINAL = {"succeeded", "failed", "canceled", "expired"}


def digit_png(index: int = 1300, size: int = 48) -> tuple[bytes, int]:
    """A held-out digit from scikit-learn's bundled set, drawn as a PNG of any size (and its label)."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels = (digits.images[index] * (255 / 16)).astype("uint8")
    image = Image.fromarray(pixels, mode="L").resize((size, size), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue(), int(digits.target[index])


def digit_pixels(index: int = 1300) -> tuple[list[float], int]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    return [float(v) for v in digits.data[index]], int(digits.target[index])


def bearer(token: str | None) -> dict[str, str]:
    """The Authorization header a token is sent in (none without a token)."""
    return {"Authorization": f"Bearer {token}"} if token else {}


@dataclass
class ChorusClient:
    """Every request to the API carries `Authorization: Bearer <token>` (the upload and the output
    download go to presigned S3 URLs and carry none)."""

    api_url: str
    token: str | None = None
    session: requests.Session | None = None

    def __post_init__(self) -> None:
        self.session = self.session or requests.Session()
        self.session.headers.update(bearer(self.token))

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """Any API call, unchecked: `path` from the API root, e.g. `/predictions?limit=5`."""
        assert self.session is not None
        kwargs.setdefault("timeout", 30)
        return self.session.request(method, f"{self.api_url}{path}", **kwargs)

    def submit(self, body: dict[str, Any], headers: dict[str, str] | None = None) -> requests.Response:
        return self.session.post(f"{self.api_url}/predictions", json=body, headers=headers or {}, timeout=60)

    def create(self, body: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, Any]:
        response = self.submit(body, headers)
        assert response.status_code in (200, 202), response.text
        return response.json()

    def upload(self, prediction: dict[str, Any], data: bytes) -> requests.Response:
        upload = prediction["upload"]
        response = requests.post(
            upload["url"], data=upload["fields"], files={"file": ("input", data, upload["contentType"])}, timeout=60
        )
        assert response.status_code in (200, 201, 204), response.text
        return response

    def get(self, prediction_id: str) -> dict[str, Any]:
        response = self.session.get(f"{self.api_url}/predictions/{prediction_id}", timeout=30)
        assert response.status_code == 200, response.text
        return response.json()

    def cancel(self, prediction_id: str) -> requests.Response:
        return self.session.post(f"{self.api_url}/predictions/{prediction_id}/cancel", timeout=30)

    def wait(self, prediction_id: str, timeout: float = 90, until: set[str] | None = None) -> dict[str, Any]:
        until = until or TERMINAL
        deadline = time.monotonic() + timeout
        while True:
            prediction = self.get(prediction_id)
            if prediction["status"] in until:
                return prediction
            if time.monotonic() > deadline:
                raise AssertionError(f"prediction still {prediction['status']} after {timeout}s: {prediction}")
            time.sleep(0.2)

    def download(self, prediction: dict[str, Any]) -> Any:
        response = requests.get(prediction["output"]["url"], timeout=30)
        assert response.status_code == 200, response.text
        return response.json()
