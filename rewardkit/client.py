"""A client for `rewardkit serve`: sync and async scoring with retries, and a TRL-style reward function.

    client = RewardClient("http://127.0.0.1:8000")
    rewards = client.score(["What is 2+2?"], ["4"])
    trainer = GRPOTrainer(..., reward_funcs=[make_reward_fn(client)])

Standard library only (http.client / asyncio streams), so training jobs need nothing extra. Connection errors,
timeouts, 429 and 5xx are retried with exponential backoff; other 4xx are the caller's mistake and raise at once.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import random
import ssl
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

from rewardkit.data.records import Text
from rewardkit.errors import RewardkitError


class RewardServerError(RewardkitError):
    """The server refused the request (status set), or could not be reached after all retries (status None)."""

    def __init__(self, message: str, status: int | None = None, field: str | None = None):
        super().__init__(message)
        self.status, self.field = status, field


class _Retry(Exception):
    def __init__(self, error: Exception, delay: float | None = None):
        self.error, self.delay = error, delay


class RewardClient:
    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
    ):
        url = urlsplit(base_url if "://" in base_url else f"http://{base_url}")
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"base_url must look like http://HOST:PORT, got {base_url!r}")
        self.base_url = f"{url.scheme}://{url.netloc}{url.path.rstrip('/')}"
        self._https, self._host = url.scheme == "https", url.hostname
        self._port = url.port or (443 if self._https else 80)
        self._prefix = url.path.rstrip("/")
        self.api_key, self.timeout, self.max_retries = api_key, timeout, max_retries
        self.backoff, self.max_backoff = backoff, max_backoff

    # ------------------------------------------------------------------------------------------ public API
    def score(self, prompts: Sequence[Text], responses: Sequence[Text]) -> list[float]:
        """Rewards for (prompt, response) pairs; each item is text or a list of chat messages."""
        if not prompts and not responses:
            return []
        reply = self.request("POST", "/score", {"prompts": list(prompts), "responses": list(responses)})
        return _rewards(reply, len(prompts))

    async def ascore(self, prompts: Sequence[Text], responses: Sequence[Text]) -> list[float]:
        if not prompts and not responses:
            return []
        reply = await self.arequest("POST", "/score", {"prompts": list(prompts), "responses": list(responses)})
        return _rewards(reply, len(prompts))

    def health(self) -> dict[str, Any]:
        return self.request("GET", "/health")

    def request(self, method: str, path: str, payload: Any = None) -> Any:
        """Send one JSON request with retries; returns the decoded JSON reply."""
        body, headers = self._encode(payload)
        for attempt in range(self.max_retries + 1):
            try:
                return self._interpret(*self._send(method, path, body, headers))
            except _Retry as retry:
                last = retry
            if attempt < self.max_retries:
                time.sleep(self._delay(attempt, last.delay))
        raise self._give_up(last.error)

    async def arequest(self, method: str, path: str, payload: Any = None) -> Any:
        body, headers = self._encode(payload)
        for attempt in range(self.max_retries + 1):
            try:
                return self._interpret(*await self._asend(method, path, body, headers))
            except _Retry as retry:
                last = retry
            if attempt < self.max_retries:
                await asyncio.sleep(self._delay(attempt, last.delay))
        raise self._give_up(last.error)

    # ------------------------------------------------------------------------------------------ transport
    def _encode(self, payload: Any) -> tuple[bytes, dict[str, str]]:
        body = b"" if payload is None else json.dumps(payload).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json", "Host": self._host}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return body, headers

    def _send(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict, bytes]:
        cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        connection = cls(self._host, self._port, timeout=self.timeout)
        try:
            connection.request(method, self._prefix + path, body=body or None, headers=headers)
            response = connection.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        except (OSError, http.client.HTTPException) as error:  # refused, reset, timed out, garbled
            raise _Retry(error) from None
        finally:
            connection.close()

    async def _asend(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict, bytes]:
        writer = None
        try:
            async with asyncio.timeout(self.timeout):
                reader, writer = await asyncio.open_connection(
                    self._host, self._port, ssl=ssl.create_default_context() if self._https else None
                )
                head = f"{method} {self._prefix + path} HTTP/1.1\r\n" + "".join(
                    f"{k}: {v}\r\n" for k, v in {**headers, "Content-Length": len(body), "Connection": "close"}.items()
                )
                writer.write(head.encode("latin-1") + b"\r\n" + body)
                await writer.drain()
                return await _read_response(reader)
        except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as error:
            raise _Retry(error) from None
        finally:
            if writer is not None:
                writer.close()

    def _interpret(self, status: int, headers: dict[str, str], body: bytes) -> Any:
        try:
            payload = json.loads(body) if body else None
        except ValueError:
            payload = None
        if status < 400 and payload is not None:
            return payload
        message = payload.get("error") if isinstance(payload, dict) else None
        error = RewardServerError(
            f"{self.base_url} answered {status}: {message or body[:200].decode(errors='replace')}",
            status,
            payload.get("field") if isinstance(payload, dict) else None,
        )
        if status == 429 or status >= 500:  # overloaded or a failed batch: worth another try
            retry_after = headers.get("retry-after", "")
            raise _Retry(error, float(retry_after) if retry_after.replace(".", "", 1).isdigit() else None)
        raise error

    def _delay(self, attempt: int, hint: float | None) -> float:
        # Exponential backoff with jitter so many clients retrying together do not arrive together.
        delay = self.backoff * 2**attempt * random.uniform(0.5, 1.0)
        return min(self.max_backoff, max(delay, hint or 0.0))

    def _give_up(self, error: Exception) -> RewardServerError:
        if isinstance(error, RewardServerError):
            return error
        wrapped = RewardServerError(
            f"could not reach {self.base_url} after {self.max_retries + 1} attempts: {type(error).__name__}: {error}"
        )
        wrapped.__cause__ = error
        return wrapped


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of an HTTP/1.1 reply to a 'Connection: close' request."""
    status_line = (await reader.readuntil(b"\n")).decode("latin-1").split(" ", 2)
    if len(status_line) < 2 or not status_line[1].isdigit():
        raise ValueError(f"malformed status line {' '.join(status_line)!r}")
    status = int(status_line[1])
    headers = {}
    while (line := await reader.readuntil(b"\n")) not in (b"\r\n", b"\n"):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if status == 100:  # a server answering Expect: 100-continue; the real reply follows
        return await _read_response(reader)
    length = headers.get("content-length")
    body = await reader.readexactly(int(length)) if length is not None else await reader.read()
    return status, headers, body


def _rewards(reply: Any, expected: int) -> list[float]:
    rewards = reply.get("rewards") if isinstance(reply, dict) else None
    if not isinstance(rewards, list) or len(rewards) != expected:
        raise RewardServerError(f"expected {expected} rewards in the reply, got {str(reply)[:200]}")
    return [float(r) for r in rewards]


def make_reward_fn(client: RewardClient, name: str = "reward_model") -> Callable[..., list[float]]:
    """A reward function with TRL's signature, `(prompts, completions, **kwargs) -> list[float]` (GRPOTrainer's
    `reward_funcs`). Prompts and completions may be text or chat messages; TRL names the metric after `name`."""

    def reward_fn(prompts: Sequence[Text], completions: Sequence[Text], **kwargs: Any) -> list[float]:
        return client.score(prompts, completions)

    reward_fn.__name__ = reward_fn.__qualname__ = name
    return reward_fn
