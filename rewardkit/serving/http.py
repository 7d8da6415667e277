"""Just enough HTTP/1.1 on asyncio streams for a JSON API: requests with Content-Length, keep-alive, JSON replies.

Why not a framework: the service has four endpoints and one JSON shape, and the standard library keeps
`pip install rewardkit` free of a web stack. Anything this parser does not understand gets a 4xx and the
connection is closed, so a client can never wedge or crash the server.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

MAX_HEADERS = 100
MAX_LINE_BYTES = 16 * 1024


class HttpError(Exception):
    """A reply with a 4xx/5xx status and a JSON body {"error": message, "field": field}."""

    def __init__(self, status: int, message: str, field: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.field = status, message, field
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        payload: dict[str, Any] = {"error": self.message}
        if self.field is not None:
            payload["field"] = self.field
        return payload


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: bytes = b""
    keep_alive: bool = True

    def json(self) -> Any:
        """The body parsed as a JSON object; malformed input is a 400 naming the body."""
        try:
            data = json.loads(self.body.decode("utf-8"))
        except UnicodeDecodeError as error:
            raise HttpError(400, f"body is not valid UTF-8 ({error.reason})", field="body") from None
        except (json.JSONDecodeError, RecursionError) as error:  # RecursionError: absurdly deep nesting
            raise HttpError(400, f"body is not valid JSON: {error}", field="body") from None
        if not isinstance(data, dict):
            raise HttpError(400, f"body must be a JSON object, got {type(data).__name__}", field="body")
        return data


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        # allow_nan=False: NaN is not JSON; a model emitting it is a server error, not a silently broken reply.
        return cls(status, json.dumps(payload, allow_nan=False).encode(), headers=headers or {})

    @classmethod
    def text(cls, text: str, content_type: str = "text/plain; version=0.0.4; charset=utf-8") -> Response:
        return cls(200, text.encode(), content_type)

    @classmethod
    def error(cls, error: HttpError) -> Response:
        return cls.json(error.body(), error.status, error.headers)


async def _readline(reader: asyncio.StreamReader) -> bytes:
    try:
        return await reader.readuntil(b"\n")
    except asyncio.LimitOverrunError:
        raise HttpError(431, "request line or header too long") from None
    except asyncio.IncompleteReadError as error:
        if error.partial:
            raise HttpError(400, "connection closed in the middle of the request headers") from None
        raise EOFError from None  # clean close between requests


async def read_request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, max_body_bytes: int, timeout: float
) -> Request:
    """Read one request: wait up to `timeout` for it to start, and up to `timeout` more to receive it.

    Raises EOFError when the client closed (or idled) before sending anything, and HttpError for anything
    malformed or slow; after an HttpError the stream position is unknown, so the caller replies and closes.
    """
    try:
        line = await asyncio.wait_for(_readline(reader), timeout)
        while line in (b"\r\n", b"\n"):  # tolerate stray blank lines between keep-alive requests (RFC 9112 2.2)
            line = await asyncio.wait_for(_readline(reader), timeout)
    except TimeoutError:
        raise EOFError from None  # an idle keep-alive connection
    try:
        async with asyncio.timeout(timeout):
            return await _read_rest(line, reader, writer, max_body_bytes)
    except TimeoutError:
        raise HttpError(408, f"request not received within {timeout:g}s") from None


async def _read_rest(
    line: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, max_body_bytes: int
) -> Request:
    parts = line.decode("latin-1").strip().split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise HttpError(400, "malformed request line")
    method, target, version = parts

    headers: dict[str, str] = {}
    while True:
        line = await _readline(reader)
        if line in (b"\r\n", b"\n"):
            break
        if len(headers) >= MAX_HEADERS:
            raise HttpError(431, f"more than {MAX_HEADERS} headers")
        name, sep, value = line.decode("latin-1").partition(":")
        if not sep or not name.strip():
            raise HttpError(400, "malformed header line")
        headers[name.strip().lower()] = value.strip()

    connection = headers.get("connection", "").lower()
    keep_alive = connection != "close" if version == "HTTP/1.1" else connection == "keep-alive"
    request = Request(method.upper(), target.split("?", 1)[0], headers, keep_alive=keep_alive)

    if "transfer-encoding" in headers:
        raise HttpError(411, "chunked bodies are not supported; send Content-Length", field="body")
    length_header = headers.get("content-length", "0")
    if not length_header.isdigit():
        raise HttpError(400, f"invalid Content-Length {length_header!r}")
    length = int(length_header)
    if length > max_body_bytes:
        # Refuse before reading: the point of the limit is not to buffer the body.
        raise HttpError(413, f"body of {length} bytes exceeds the limit of {max_body_bytes} bytes", field="body")
    if length:
        if headers.get("expect", "").lower() == "100-continue":  # curl waits for this before large bodies
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        try:
            request.body = await reader.readexactly(length)
        except asyncio.IncompleteReadError:
            raise HttpError(400, f"body shorter than Content-Length ({length} bytes)", field="body") from None
    return request


def encode_response(response: Response, keep_alive: bool) -> bytes:
    reason = HTTPStatus(response.status).phrase
    headers = {
        "Content-Type": response.content_type,
        "Content-Length": str(len(response.body)),
        "Connection": "keep-alive" if keep_alive else "close",
        **response.headers,
    }
    head = f"HTTP/1.1 {response.status} {reason}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return head.encode("latin-1") + b"\r\n" + response.body
