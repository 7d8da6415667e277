"""The scoring service as an ASGI app (Starlette): auth, validation, dynamic batching and metrics.

    model = RewardModel.from_pretrained("rm")
    asyncio.run(serve(model, ServerConfig(port=8000)))       # or BackgroundServer(model, config) in a thread

HTTP itself (parsing, keep-alive, timeouts, the connection cap, graceful shutdown) is uvicorn's, hardened in
`asgi.py`. `RewardServer` is the ASGI callable: it refuses a request without the API key or with a declared body
over the limit before the route runs, so no body byte is read for it; then Starlette routes. Threads: the event
loop parses HTTP and JSON; one tokenizer thread encodes (fast tokenizers are not safe to call from several threads
at once); one model thread runs forward passes (batcher.py). Whatever a client sends ends as a 4xx, and whatever the
model raises ends as a 500 for the requests in that forward pass only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import torch
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from rewardkit.data.tokenize import EncodedSequence
from rewardkit.model import RewardModel
from rewardkit.model.step_scores import aggregate_steps
from rewardkit.serving.asgi import AsgiServer, ServerHooks, bearer_token_matches, serve_until_signalled
from rewardkit.serving.batcher import BatchFailedError, DynamicBatcher, QueueFullError
from rewardkit.serving.config import ServerConfig
from rewardkit.serving.metrics import CONTENT_TYPE, ServerMetrics
from rewardkit.serving.protocol import (
    Pair,
    RequestError,
    Solution,
    SpecialTokens,
    parse_get_reward,
    parse_json,
    parse_score,
    parse_score_steps,
)

logger = logging.getLogger("rewardkit.serving")

ENDPOINTS = {"/score": "POST", "/get_reward": "POST", "/health": "GET", "/metrics": "GET"}


def _error_reply(error: RequestError) -> JSONResponse:
    return JSONResponse(error.body(), error.status, headers=error.headers)


async def _request_error(request: Request, error: RequestError) -> JSONResponse:
    return _error_reply(error)


async def _client_gone(request: Request, error: ClientDisconnect) -> Response:
    return Response(status_code=499)  # nobody is left to read it; 499 is what the metrics count


class RewardServer:
    def __init__(self, model: RewardModel, config: ServerConfig | None = None):
        self.model, self.config = model, config or ServerConfig()
        self.metrics = ServerMetrics()
        self.batcher = DynamicBatcher(
            model, self.metrics, self.config.max_batch_size, self.config.max_wait_ms, self.config.max_queue_size
        )
        self.special_tokens = SpecialTokens.of(model.tokenizer)
        self.closing = False
        self._tokenizer_thread: ThreadPoolExecutor | None = None
        self.app = Starlette(
            routes=[Route(path, getattr(self, "_" + path.strip("/")), methods=[method])
                    for path, method in ENDPOINTS.items()],
            exception_handlers={RequestError: _request_error, HTTPException: self._http_error,
                                ClientDisconnect: _client_gone},
            lifespan=self._lifespan,
        )

    @property
    def hooks(self) -> ServerHooks:
        def rejected(status: int) -> None:  # malformed, slow or over the connection cap: before any route
            self.metrics.count("other", status)

        def shutting_down() -> None:
            self.closing = True

        return ServerHooks(on_reject=rejected, on_connections=self.metrics.connections.set, on_shutdown=shutting_down)

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette):
        self._tokenizer_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rewardkit-tokenizer")
        self.batcher.start()
        try:
            yield
        finally:
            await self.batcher.stop()
            self._tokenizer_thread.shutdown(wait=True)
            logger.info("server stopped")

    # ------------------------------------------------------------------------------------------ the gate
    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        """The ASGI app: refuse early (no key, declared body too large) without reading the body; count."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        endpoint = scope["path"] if scope["path"] in ENDPOINTS else "other"  # bounded label set
        status = 500
        start = time.perf_counter()

        async def send_and_note(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        self.metrics.in_flight.inc()
        try:
            refusal = self._refusal(scope)
            if refusal is not None:
                await _error_reply(refusal)(scope, receive, send_and_note)
            else:
                await self.app(scope, receive, send_and_note)
        finally:
            self.metrics.in_flight.dec()
            self.metrics.count(endpoint, status, time.perf_counter() - start)

    def _refusal(self, scope: dict) -> RequestError | None:
        headers = dict(scope["headers"])
        if self.config.api_key is not None and not bearer_token_matches(headers.get(b"authorization"),
                                                                        self.config.api_key):
            return RequestError(401, "missing or wrong API key; send 'Authorization: Bearer <key>'",
                                headers={"WWW-Authenticate": "Bearer"})
        length = headers.get(b"content-length")
        if length is not None and int(length) > self.config.max_body_bytes:  # llhttp checked it is a number
            return RequestError(413, f"body of {int(length)} bytes exceeds the limit of {self.config.max_body_bytes} "
                                "bytes", "body")
        return None

    async def _http_error(self, request: Request, error: HTTPException) -> JSONResponse:
        path = request.url.path
        if error.status_code == 404:
            message = f"no endpoint {path}; try {', '.join(ENDPOINTS)}"
        elif error.status_code == 405:
            message = f"{path} takes {ENDPOINTS[path]}, not {request.method}"
        else:
            message = error.detail
        return JSONResponse({"error": message}, error.status_code, headers=error.headers)

    async def _read_json(self, request: Request) -> dict:
        """The body (also chunked) up to max_body_bytes, parsed; the limit holds while reading, not after."""
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.config.max_body_bytes:
                raise RequestError(413, f"body exceeds the limit of {self.config.max_body_bytes} bytes", "body")
            chunks.append(chunk)
        return parse_json(b"".join(chunks))

    # ------------------------------------------------------------------------------------------ endpoints
    async def _score(self, request: Request) -> JSONResponse:
        body = await self._read_json(request)
        if "steps" in body:
            return await self._score_steps(body)
        pairs = parse_score(body)
        rewards, truncated = await self._score_pairs(pairs, "prompts")
        return JSONResponse({"rewards": rewards, "truncated": truncated})

    async def _score_steps(self, body: dict) -> JSONResponse:
        """A process RM's reward per step, and each solution's score aggregated from them (protocol.py)."""
        if not self.model.is_process:
            raise RequestError(422, "this server's model is an outcome reward model: one reward per response, not "
                               "per step; send 'responses' (per-step rewards need a process reward model, trained "
                               "with `rewardkit train` on step-labelled data)", "steps")
        solutions, aggregation = parse_score_steps(body)
        loop = asyncio.get_running_loop()
        encoded = await loop.run_in_executor(self._tokenizer_thread, self._encode_steps, solutions)
        step_rewards = await self._run_batches(encoded, [s.field for s in solutions], "steps", steps=True)
        scores = [aggregate_steps(torch.tensor(rewards), aggregation) for rewards in step_rewards]
        return JSONResponse({
            "step_rewards": step_rewards,
            "rewards": [score if math.isfinite(score) else None for score in scores],  # None: every step was cut
            "aggregation": aggregation,
            "steps_scored": [len(rewards) for rewards in step_rewards],
            "truncated": [e.truncated for e in encoded],
        })

    async def _get_reward(self, request: Request) -> JSONResponse:
        body = await self._read_json(request)
        loop = asyncio.get_running_loop()  # matching queries to prompts is linear but not free: off the loop
        pairs = await loop.run_in_executor(self._tokenizer_thread, parse_get_reward, body, self.special_tokens)
        rewards, truncated = await self._score_pairs(pairs, "query")
        # OpenRLHF reads "rewards" (and "scores" for dynamic filtering); extra keys are ignored by its client.
        return JSONResponse({"rewards": rewards, "scores": rewards, "truncated": truncated})

    async def _health(self, request: Request) -> JSONResponse:
        return JSONResponse({
            "status": "shutting_down" if self.closing else "ok",
            "pid": os.getpid(),  # which worker answered (rewardkit serve --workers N)
            "model": str(getattr(self.model.hf_model.config, "_name_or_path", "")),
            "max_length": self.model.max_length,
            "normalized": self.model.normalization is not None,
            "process": self.model.is_process,  # rates steps: POST /score takes "steps", not "responses"
            "max_batch_size": self.config.max_batch_size,
            "strict": self.config.strict,
        })

    async def _metrics(self, request: Request) -> Response:
        return Response(self.metrics.render(), media_type=CONTENT_TYPE)

    # ------------------------------------------------------------------------------------------ scoring
    async def _score_pairs(self, pairs: list[Pair], list_field: str) -> tuple[list[float], list[bool]]:
        if self.model.is_process:
            raise RequestError(422, "this server's model is a process reward model: it rates steps; send each "
                               "solution as 'steps' (a list of step texts) to POST /score", list_field)
        self._check_count(len(pairs), list_field)
        loop = asyncio.get_running_loop()
        encoded = await loop.run_in_executor(self._tokenizer_thread, self._encode, pairs)
        rewards = await self._run_batches(encoded, [pair.field for pair in pairs], list_field)
        return rewards, [e.truncated for e in encoded]

    def _check_count(self, count: int, list_field: str) -> None:
        if count > self.config.max_queue_size:  # would never fit: a 413, not a 429 to retry forever
            raise RequestError(413, f"{count} items in one request; this server takes at most "
                               f"{self.config.max_queue_size} (split the request)", list_field)

    async def _run_batches(self, encoded: list[EncodedSequence], fields: list[str], list_field: str,
                           steps: bool = False) -> list:
        """The rewards of encoded items through the batcher (per step with `steps`), as 4xx/5xx replies when the
        request cannot be scored."""
        self._check_count(len(encoded), list_field)
        truncated = [e.truncated for e in encoded]
        if self.config.strict and any(truncated):
            what = "prompt + steps" if steps else "prompt + response"
            raise RequestError(422, f"{what} is longer than max_length={self.model.max_length} tokens "
                               "(the server runs with --strict, which refuses instead of truncating)",
                               fields[truncated.index(True)])
        positions = [e.reward_positions for e in encoded] if steps else None
        try:
            rewards = await self.batcher.score([e.input_ids for e in encoded], positions)
        except QueueFullError as error:
            raise RequestError(429, f"server busy: {error}; retry later", headers={"Retry-After": "1"}) from None
        except BatchFailedError as error:
            raise RequestError(500, f"scoring failed: {error}") from None
        values = [r for item in rewards for r in item] if steps else rewards
        if not all(math.isfinite(r) for r in values):
            raise RequestError(500, "the model produced a non-finite reward (NaN or infinity)")
        self.metrics.sequences.inc(len(encoded))
        self.metrics.truncated.inc(sum(truncated))
        return rewards

    def _encode_steps(self, solutions: list[Solution]) -> list[EncodedSequence]:
        """Runs in the tokenizer thread: (problem, steps) with a reward position at each step's separator."""
        encoded = []
        for solution in solutions:
            try:
                encoded.extend(self.model.encode_steps([solution.prompt], [solution.steps]))
            except Exception as error:
                raise RequestError(422, f"could not be tokenized: {error}", solution.field) from None
        return encoded

    def _encode(self, pairs: list[Pair]) -> list[EncodedSequence]:
        """Runs in the tokenizer thread. A pair the tokenizer or chat template rejects is the client's 422."""
        encoded = []
        for pair in pairs:
            try:
                encoded.append(self.model.encode(pair.prompt, pair.response))
            except Exception as error:
                raise RequestError(422, f"could not be tokenized: {error}", pair.field) from None
        return encoded


def describe(config: ServerConfig) -> str:
    """The settings worth a line in the log when the server starts."""
    parts = [f"max batch {config.max_batch_size}", f"max wait {config.max_wait_ms:g} ms"]
    if config.workers > 1:
        parts.append(f"{config.workers} workers")
    if config.api_key:
        parts.append("API key required")
    if config.strict:
        parts.append("strict")
    return ", ".join(parts)


async def serve(model: RewardModel, config: ServerConfig) -> None:
    """Serve until SIGTERM or SIGINT, then shut down gracefully (one process; `rewardkit serve` can run more)."""
    reward_server = RewardServer(model, config)
    server = AsgiServer(reward_server, config, hooks=reward_server.hooks)
    await serve_until_signalled(server, lambda: logger.info("serving on %s (%s)", server.url, describe(config)))
