"""A prediction's input sent through its presigned S3 POST, streamed: every field of the form, then
the file, as multipart/form-data with a known Content-Length (S3 takes no chunked POST), read from
disk as it is sent so a 1 GB input never sits in memory."""

from __future__ import annotations

import io
import mimetypes
import os
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from chorus_client.errors import ChorusClientError


class PayloadProblem(ChorusClientError):
    """The file cannot be sent: empty, or larger than the service accepts."""


@dataclass(frozen=True)
class Payload:
    """A file to upload, readable from its start again for every try."""

    name: str
    size: int
    content_type: str | None  # guessed from the name; None: let the service choose
    path: Path | None = None
    data: bytes | None = None
    stream: IO[bytes] | None = None  # a caller's seekable file, sent from where it stood
    start: int = 0

    @classmethod
    def of(cls, value: Any) -> Payload:
        """A path (str or PathLike), bytes, or a binary file object (a pipe is read at once)."""
        if isinstance(value, str | os.PathLike):
            path = Path(value)
            size = path.stat().st_size  # FileNotFoundError here, before any prediction is created
            return cls(path.name, size, mimetypes.guess_type(path.name)[0], path=path)
        if isinstance(value, bytes | bytearray):
            return cls("input", len(value), None, data=bytes(value))
        name = Path(str(getattr(value, "name", "") or "input")).name
        guessed = mimetypes.guess_type(name)[0]
        if getattr(value, "seekable", lambda: False)():
            start = value.tell()
            size = value.seek(0, os.SEEK_END) - start
            value.seek(start)
            return cls(name, size, guessed, stream=value, start=start)
        data = value.read()
        return cls(name, len(data), guessed, data=data)

    def check(self, max_bytes: int | None = None) -> Payload:
        if self.size == 0:
            raise PayloadProblem(f"{self.name} is empty")
        if max_bytes is not None and self.size > max_bytes:
            raise PayloadProblem(f"{self.name} is {self.size} bytes; the service accepts at most {max_bytes}")
        return self

    @contextmanager
    def opened(self) -> Iterator[IO[bytes]]:
        if self.path is not None:
            with self.path.open("rb") as file:
                yield file
        elif self.stream is not None:
            self.stream.seek(self.start)
            yield self.stream
        else:
            yield io.BytesIO(self.data or b"")


class FormBody:
    """multipart/form-data: the fields in order, then the file part, read as it is sent. It has a
    length and `read`, and no `tell`, so requests sends it with Content-Length and no chunking."""

    def __init__(self, fields: Mapping[str, str], filename: str, content_type: str, file: IO[bytes], size: int):
        boundary = uuid.uuid4().hex
        safe_name = filename.replace('"', "%22").replace("\r", "").replace("\n", "")
        head = "".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
            for name, value in fields.items()
        )
        head += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{safe_name}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n"
        )
        tail = f"\r\n--{boundary}--\r\n".encode()
        self._parts: list[IO[bytes]] = [io.BytesIO(head.encode()), file, io.BytesIO(tail)]
        self._length = len(head.encode()) + size + len(tail)
        self.content_type = f"multipart/form-data; boundary={boundary}"

    def __len__(self) -> int:
        return self._length

    def read(self, size: int = -1) -> bytes:
        chunks: list[bytes] = []
        wanted = size if size is not None and size >= 0 else None
        while self._parts and (wanted is None or wanted > 0):
            chunk = self._parts[0].read(-1 if wanted is None else wanted)
            if not chunk:
                self._parts.pop(0)
                continue
            chunks.append(chunk)
            if wanted is not None:
                wanted -= len(chunk)
        return b"".join(chunks)
