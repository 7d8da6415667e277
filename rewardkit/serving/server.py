"""The scoring server: routes, auth, validation, dynamic batching and graceful shutdown on one asyncio loop.

    model = RewardModel.from_pretrained("rm")
    asyncio.run(RewardServer(model, ServerConfig(port=8000)).serve_forever())

Threads: the event loop parses HTTP and JSON; one tokenizer thread encodes (fast tokenizers are not safe to
call from several threads at once); one model thread runs forward passes (see batcher.py). Whatever a client
sends ends as a 4xx, and whatever the model raises ends as a 500 for the requests in that forward pass only.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from rewardkit.data.tokenize import EncodedSequence
from rewardkit.errors import RewardkitError
from rewardkit.model import RewardModel
from rewardkit.serving.batcher import BatchFailedError, DynamicBatcher, QueueFullError
from rewardkit.serving.http import MAX_LINE_BYTES, HttpError, Request, Response, encode_response, read_request
from rewardkit.serving.metrics import ServerMetrics
from rewardkit.serving.protocol import Pair, parse_get_reward, parse_score

logger = logging.getLogger("rewardkit.serving")

LINGER_SECONDS, LINGER_BYTES = 2.0, 64 * 1024 * 1024


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"  # loopback unless asked otherwise: a reward model is not a public service
    port: int = 8000  # 0 picks a free port (see RewardServer.port)
    max_batch_size: int = 32  # sequences per forward pass; 1 turns dynamic batching off
    max_wait_ms: float = 5.0  # how long a lone sequence waits for company before its forward pass
    api_key: str | None = None  # when set, every request needs "Authorization: Bearer <api_key>"
    strict: bool = False  # refuse (422) sequences longer than max_length instead of truncating them
    max_body_bytes: int = 8 * 1024 * 1024
    max_queue_size: int = 4096  # sequences waiting for the model before new requests get 429
    shutdown_timeout: float = 30.0  # seconds in-flight requests get to finish after SIGTERM
    idle_timeout: float = 60.0  # close connections idle this long; a started request must arrive within it too


Handler = Callable[[Request], Awaitable[Response]]


class RewardServer:
    def __init__(self, model: RewardModel, config: ServerConfig | None = None):
        self.model, self.config = model, config or ServerConfig()
        self.metrics = ServerMetrics()
        self.batcher = DynamicBatcher(
            model, self.metrics, self.config.max_batch_size, self.config.max_wait_ms, self.config.max_queue_size
        )
        self._tokenizer_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rewardkit-tokenizer")
        self._routes: dict[str, tuple[str, Handler]] = {
            "/score": ("POST", self._score),
            "/get_reward": ("POST", self._get_reward),
            "/health": ("GET", self._health),
            "/metrics": ("GET", self._metrics),
        }
        self._server: asyncio.Server | None = None
        self._port = self.config.port
        self._connections: dict[asyncio.Task, bool] = {}  # connection task -> busy with a request
        self._closing = False
        self._shutdown_requested: asyncio.Event | None = None
        self._stopped: asyncio.Event | None = None

    # ------------------------------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Start the batcher and listen; returns once the socket is bound."""
        self._shutdown_requested, self._stopped = asyncio.Event(), asyncio.Event()
        self._server = await asyncio.start_server(
            self._handle_connection, self.config.host, self.config.port, limit=MAX_LINE_BYTES
        )
        self._port = self._server.sockets[0].getsockname()[1]  # kept: the sockets are gone after shutdown
        self.batcher.start()  # after binding, so a taken port leaves nothing running

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        host = self.config.host if ":" not in self.config.host else f"[{self.config.host}]"
        return f"http://{host}:{self.port}"

    def request_shutdown(self) -> None:
        """Ask `serve_forever` to shut down gracefully. Call from the loop's thread (e.g. a signal handler)."""
        self._shutdown_requested.set()

    async def serve_forever(self) -> None:
        if self._server is None:
            await self.start()
        await self._shutdown_requested.wait()
        await self.shutdown()

    async def shutdown(self) -> None:
        """Stop accepting, let in-flight requests finish (up to shutdown_timeout), then stop the model thread."""
        if self._closing:
            await self._stopped.wait()
            return
        self._closing = True
        self._server.close()
        busy = [task for task, is_busy in self._connections.items() if is_busy]
        for task, is_busy in list(self._connections.items()):
            if not is_busy:
                task.cancel()  # idle keep-alive connection: nothing to finish
        logger.info("shutting down: waiting for %d in-flight request(s)", len(busy))
        if self._connections:
            _, late = await asyncio.wait(list(self._connections), timeout=self.config.shutdown_timeout)
            for task in late:
                logger.warning("request still running after %.0fs; cancelling it", self.config.shutdown_timeout)
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        await self._server.wait_closed()
        await self.batcher.stop()
        self._tokenizer_thread.shutdown(wait=True)
        self._stopped.set()
        logger.info("server stopped")

    # ------------------------------------------------------------------------------------------ connections
    async def _handle_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._connections[task] = False
        try:
            while not self._closing:
                try:
                    request = await read_request(reader, writer, self.config.max_body_bytes, self.config.idle_timeout)
                except (EOFError, ConnectionError):
                    break
                except HttpError as error:  # malformed or oversized: reply, then drop the connection
                    self._count("other", error.status, 0.0)  # counted before routing, so under "other"
                    writer.write(encode_response(Response.error(error), keep_alive=False))
                    await writer.drain()
                    await _discard_unread(reader, writer)
                    break
                self._connections[task] = True
                response = await self._dispatch(request)
                keep_alive = request.keep_alive and not self._closing
                writer.write(encode_response(response, keep_alive))
                await writer.drain()
                self._connections[task] = False
                if not keep_alive:
                    break
        except ConnectionError:
            pass  # the client went away; nothing to answer
        except asyncio.CancelledError:
            pass  # closed by shutdown(); ending quietly keeps asyncio (3.11) from logging the cancelled task
        finally:
            self._connections.pop(task, None)
            writer.close()

    async def _dispatch(self, request: Request) -> Response:
        start = time.perf_counter()
        self.metrics.in_flight.set(self.metrics.in_flight.value + 1)
        try:
            self._check_auth(request)
            if request.path not in self._routes:
                raise HttpError(404, f"no endpoint {request.path}; try {', '.join(self._routes)}")
            method, handler = self._routes[request.path]
            if request.method != method:
                raise HttpError(405, f"{request.path} takes {method}, not {request.method}", headers={"Allow": method})
            response = await handler(request)
        except HttpError as error:
            response = Response.error(error)
        except Exception as error:  # a bug, not the client's fault: log it and keep serving
            logger.exception("unhandled error on %s %s", request.method, request.path)
            response = Response.json({"error": f"internal server error ({type(error).__name__})"}, 500)
        finally:
            self.metrics.in_flight.set(self.metrics.in_flight.value - 1)
        # Unknown paths share one label so clients cannot blow up the metrics' cardinality.
        endpoint = request.path if request.path in self._routes else "other"
        self._count(endpoint, response.status, time.perf_counter() - start)
        return response

    def _count(self, endpoint: str, status: int, seconds: float) -> None:
        self.metrics.requests.inc(endpoint=endpoint, status=str(status))
        self.metrics.latency.observe(seconds, endpoint=endpoint)

    def _check_auth(self, request: Request) -> None:
        if self.config.api_key is None:
            return
        given = request.headers.get("authorization", "").encode("latin-1")  # the bytes as sent
        if not hmac.compare_digest(given, f"Bearer {self.config.api_key}".encode()):
            raise HttpError(401, "missing or wrong API key; send 'Authorization: Bearer <key>'",
                            headers={"WWW-Authenticate": "Bearer"})

    # ------------------------------------------------------------------------------------------ endpoints
    async def _score(self, request: Request) -> Response:
        rewards, truncated = await self._score_pairs(parse_score(request.json()), "prompts")
        return Response.json({"rewards": rewards, "truncated": truncated})

    async def _get_reward(self, request: Request) -> Response:
        pairs = parse_get_reward(request.json(), self.model.tokenizer.pad_token)
        rewards, truncated = await self._score_pairs(pairs, "query")
        # OpenRLHF reads "rewards" (and "scores" for dynamic filtering); extra keys are ignored by its client.
        return Response.json({"rewards": rewards, "scores": rewards, "truncated": truncated})

    async def _health(self, request: Request) -> Response:
        return Response.json({
            "status": "shutting_down" if self._closing else "ok",
            "model": str(getattr(self.model.hf_model.config, "_name_or_path", "")),
            "max_length": self.model.max_length,
            "normalized": self.model.normalization is not None,
            "max_batch_size": self.config.max_batch_size,
            "strict": self.config.strict,
        })

    async def _metrics(self, request: Request) -> Response:
        return Response.text(self.metrics.render())

    # ------------------------------------------------------------------------------------------ scoring
    async def _score_pairs(self, pairs: list[Pair], list_field: str) -> tuple[list[float], list[bool]]:
        if len(pairs) > self.config.max_queue_size:  # would never fit: a 413, not a 429 to retry forever
            raise HttpError(413, f"{len(pairs)} items in one request; this server takes at most "
                            f"{self.config.max_queue_size} (split the request)", list_field)
        loop = asyncio.get_running_loop()
        encoded = await loop.run_in_executor(self._tokenizer_thread, self._encode, pairs)
        truncated = [e.truncated for e in encoded]
        if self.config.strict and any(truncated):
            field = pairs[truncated.index(True)].field
            raise HttpError(422, f"prompt + response is longer than max_length={self.model.max_length} tokens "
                            "(the server runs with --strict, which refuses instead of truncating)", field)
        try:
            rewards = await self.batcher.score([e.input_ids for e in encoded])
        except QueueFullError as error:
            raise HttpError(429, f"server busy: {error}; retry later", headers={"Retry-After": "1"}) from None
        except BatchFailedError as error:
            raise HttpError(500, f"scoring failed: {error}") from None
        self.metrics.sequences.inc(len(encoded))
        self.metrics.truncated.inc(sum(truncated))
        return rewards, truncated

    def _encode(self, pairs: list[Pair]) -> list[EncodedSequence]:
        """Runs in the tokenizer thread. A pair the tokenizer or chat template rejects is the client's 422."""
        encoded = []
        for pair in pairs:
            try:
                encoded.append(self.model.encode(pair.prompt, pair.response))
            except Exception as error:
                raise HttpError(422, f"could not be tokenized: {error}", pair.field) from None
        return encoded


async def _discard_unread(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Read and drop what the client is still sending (e.g. a refused oversize body) before closing.

    Closing a socket with unread input makes the kernel send a reset, and a client still busy sending would see
    "connection reset" instead of our 4xx (and might retry). Bounded in bytes and time: a lingering close.
    """
    if writer.can_write_eof():
        writer.write_eof()
    try:
        async with asyncio.timeout(LINGER_SECONDS):
            for _ in range(LINGER_BYTES // 65536):
                if not await reader.read(65536):
                    break
    except (TimeoutError, ConnectionError):
        pass


async def serve(model: RewardModel, config: ServerConfig) -> None:
    """Serve until SIGTERM or SIGINT, then shut down gracefully (what `rewardkit serve` runs)."""
    import signal

    server = RewardServer(model, config)
    try:
        await server.start()
    except OSError as error:  # port in use, address not on this machine, privileged port
        raise RewardkitError(f"could not listen on {config.host}:{config.port}: {error.strerror or error}") from None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, server.request_shutdown)
    logger.info("serving on %s (max batch %d, max wait %g ms%s%s)", server.url, config.max_batch_size,
                config.max_wait_ms, ", API key required" if config.api_key else "", ", strict" if config.strict else "")
    await server.serve_forever()
