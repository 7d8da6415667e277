"""A client for `rewardkit serve`: sync and async scoring with retries and failover, and a TRL-style reward function.

    client = RewardClient(["http://rm-a:8000", "http://rm-b:8000"])   # one URL or several
    rewards = client.score(["What is 2+2?"], ["4"])
    trainer = GRPOTrainer(..., reward_funcs=[make_reward_fn(client)])

HTTP through httpx (pooled keep-alive connections). Requests go to the servers in turn; connection errors, timeouts,
429 and 5xx are retried on the next server (one that just failed is tried last for `cooldown` seconds), with
exponential backoff once every server has been tried. A request is scored whole by one server, so its rewards come
back complete and in order, whichever server answered. Other 4xx are the caller's mistake and raise at once.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx

from rewardkit.data.records import Text
from rewardkit.errors import RewardkitError


class RewardServerError(RewardkitError):
    """The server refused the request (status set), or could not be reached after all retries (status None)."""

    def __init__(self, message: str, status: int | None = None, field: str | None = None):
        super().__init__(message)
        self.status, self.field = status, field


class _Retry(Exception):
    def __init__(self, error: Exception, delay: float | None = None, server_down: bool = True):
        self.error, self.delay, self.server_down = error, delay, server_down


def _normalize_url(base_url: str) -> str:
    url = urlsplit(base_url if "://" in base_url else f"http://{base_url}")
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ValueError(f"base_url must look like http://HOST:PORT, got {base_url!r}")
    return f"{url.scheme}://{url.netloc}{url.path.rstrip('/')}"


class RewardClient:
    def __init__(
        self,
        base_url: str | Sequence[str],
        api_key: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        cooldown: float = 5.0,
        max_connections: int = 100,
    ):
        urls = [base_url] if isinstance(base_url, str) else list(base_url)
        if not urls:
            raise ValueError("give at least one server URL")
        self.base_urls = [_normalize_url(url) for url in urls]
        self.base_url = self.base_urls[0]
        self.api_key, self.timeout, self.max_retries = api_key, timeout, max_retries
        self.backoff, self.max_backoff, self.cooldown = backoff, max_backoff, cooldown
        self._limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self._turn = itertools.count()
        self._down_until = dict.fromkeys(self.base_urls, 0.0)
        self._lock = threading.Lock()
        self._sync_client: httpx.Client | None = None
        self._async_clients: dict[asyncio.AbstractEventLoop, httpx.AsyncClient] = {}

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
        """The first server's /health (`request("GET", "/health")` asks whichever server is next)."""
        return self._interpret(self.base_url, *self._send(self.base_url, "GET", "/health", b"", self._headers()))

    def request(self, method: str, path: str, payload: Any = None) -> Any:
        """Send one JSON request with retries and failover; returns the decoded JSON reply."""
        body, headers = self._encode(payload), self._headers()
        servers = self._servers_for_request()
        for attempt in range(self.max_retries + 1):
            url = servers[attempt % len(servers)]
            try:
                return self._interpret(url, *self._send(url, method, path, body, headers))
            except _Retry as retry:
                last = self._note_failure(url, retry)
            if attempt < self.max_retries and (attempt + 1) % len(servers) == 0:  # every server failed once more
                time.sleep(self._delay(attempt // len(servers), last.delay))
        raise self._give_up(last.error)

    async def arequest(self, method: str, path: str, payload: Any = None) -> Any:
        body, headers = self._encode(payload), self._headers()
        servers = self._servers_for_request()
        for attempt in range(self.max_retries + 1):
            url = servers[attempt % len(servers)]
            try:
                return self._interpret(url, *await self._asend(url, method, path, body, headers))
            except _Retry as retry:
                last = self._note_failure(url, retry)
            if attempt < self.max_retries and (attempt + 1) % len(servers) == 0:
                await asyncio.sleep(self._delay(attempt // len(servers), last.delay))
        raise self._give_up(last.error)

    def close(self) -> None:
        """Close the pooled connections (also done when the client is garbage-collected)."""
        if self._sync_client is not None:
            self._sync_client.close()
            self._sync_client = None

    async def aclose(self) -> None:
        client = self._async_clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()

    def __enter__(self) -> RewardClient:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    async def __aenter__(self) -> RewardClient:
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.aclose()

    # ------------------------------------------------------------------------------------------ failover
    def _servers_for_request(self) -> list[str]:
        """All servers, starting with the next in turn; those that failed within `cooldown` go last."""
        start = next(self._turn) % len(self.base_urls)
        rotated = self.base_urls[start:] + self.base_urls[:start]
        now = time.monotonic()
        return sorted(rotated, key=lambda url: self._down_until[url] > now)  # stable: keeps the turn order

    def _note_failure(self, url: str, retry: _Retry) -> _Retry:
        if retry.server_down:
            self._down_until[url] = time.monotonic() + self.cooldown
        return retry

    # ------------------------------------------------------------------------------------------ transport
    def _encode(self, payload: Any) -> bytes:
        return b"" if payload is None else json.dumps(payload).encode()

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers

    def _client(self) -> httpx.Client:
        with self._lock:
            if self._sync_client is None:
                self._sync_client = httpx.Client(timeout=self.timeout, limits=self._limits)
            return self._sync_client

    def _async_client(self) -> httpx.AsyncClient:
        """One pooled client per event loop (connections belong to the loop that opened them)."""
        loop = asyncio.get_running_loop()
        for stale in [other for other in self._async_clients if other.is_closed()]:
            del self._async_clients[stale]
        if loop not in self._async_clients:
            self._async_clients[loop] = httpx.AsyncClient(timeout=self.timeout, limits=self._limits)
        return self._async_clients[loop]

    def _send(self, url: str, method: str, path: str, body: bytes, headers: dict) -> tuple[int, httpx.Headers, bytes]:
        try:
            response = self._client().request(method, url + path, content=body or None, headers=headers)
        except httpx.TransportError as error:  # refused, reset, timed out, garbled
            raise _Retry(error) from None
        return response.status_code, response.headers, response.content

    async def _asend(self, url: str, method: str, path: str, body: bytes,
                     headers: dict) -> tuple[int, httpx.Headers, bytes]:
        try:
            response = await self._async_client().request(method, url + path, content=body or None, headers=headers)
        except httpx.TransportError as error:
            raise _Retry(error) from None
        return response.status_code, response.headers, response.content

    def _interpret(self, url: str, status: int, headers: httpx.Headers, body: bytes) -> Any:
        try:
            payload = json.loads(body) if body else None
        except ValueError:
            payload = None
        if status < 400 and payload is not None:
            return payload
        message = payload.get("error") if isinstance(payload, dict) else None
        error = RewardServerError(
            f"{url} answered {status}: {message or body[:200].decode(errors='replace')}",
            status,
            payload.get("field") if isinstance(payload, dict) else None,
        )
        if status == 429 or status >= 500:  # overloaded or a failed batch: worth another try, maybe elsewhere
            retry_after = headers.get("retry-after", "")
            hint = float(retry_after) if retry_after.replace(".", "", 1).isdigit() else None
            raise _Retry(error, hint, server_down=status != 429)
        raise error

    def _delay(self, round_: int, hint: float | None) -> float:
        # Exponential backoff with jitter so many clients retrying together do not arrive together.
        delay = self.backoff * 2**round_ * random.uniform(0.5, 1.0)
        return min(self.max_backoff, max(delay, hint or 0.0))

    def _give_up(self, error: Exception) -> RewardServerError:
        if isinstance(error, RewardServerError):
            return error
        servers = ", ".join(self.base_urls)
        wrapped = RewardServerError(
            f"could not reach {servers} after {self.max_retries + 1} attempts: {type(error).__name__}: {error}"
        )
        wrapped.__cause__ = error
        return wrapped


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
