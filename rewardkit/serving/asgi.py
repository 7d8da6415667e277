"""Serve a Starlette (ASGI) app with uvicorn, hardened for the open network: what `rewardkit serve` runs on, and
what any other rewardkit web app reuses.

    server = AsgiServer(app, HttpSettings(port=8000))
    asyncio.run(serve_until_signalled(server))            # or: BackgroundAsgiServer(app, settings) in a thread

uvicorn and its httptools parser (llhttp) do the HTTP: framing, chunked bodies, `Expect: 100-continue` (sent only
when the app first reads the body), HEAD, `Date`, keep-alive, and refusing malformed or ambiguous requests
(duplicate or non-numeric Content-Length, Content-Length with Transfer-Encoding, bad versions). This module adds what
uvicorn leaves out, in `GuardedProtocol`:

- a deadline for receiving each whole request, headers and body (uvicorn has none): slow senders get 408;
- a cap on open connections: the next one gets 503 at once instead of taking a file descriptor for minutes;
- a write timeout: a client that stops reading its responses is disconnected;
- a cap on request-line + header bytes (431) and an idle timeout from the moment a connection opens;
- errors as one JSON object, `{"error": ...}`, sent with a lingering close so the client reads it.

`run_server` starts one process, or `workers` processes sharing one listening socket (each builds its own app, so
each loads its own model); SIGTERM or SIGINT stops accepting, lets in-flight requests finish, then exits 0.
Binds to loopback unless told otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import json
import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httptools
import uvicorn
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from rewardkit.errors import RewardkitError
from rewardkit.serving.config import HttpSettings

logger = logging.getLogger("rewardkit.serving")

ASGIApp = Callable[[dict, Callable, Callable], Awaitable[None]]
LINGER_SECONDS = 2.0  # after an error reply: how long to drain what the client still sends before closing


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket, or a RewardkitError saying why not (port in use, address not on this machine)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, _, _, _, address = infos[0]
        sock = socket.socket(family, socket.SOCK_STREAM)
    except (OSError, OverflowError) as error:
        raise RewardkitError(f"cannot listen on {host}:{port}: {getattr(error, 'strerror', None) or error}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as error:
        sock.close()
        hint = " (another server is using it: pick another --port, or 0 for a free one)" if (
            error.errno == 98) else ""
        raise RewardkitError(f"cannot listen on {host}:{port}: {error.strerror or error}{hint}") from None
    sock.set_inheritable(True)
    return sock


def url_of(host: str, port: int) -> str:
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


def json_error(status: int, message: str, headers: dict[str, str] | None = None) -> bytes:
    """A complete HTTP/1.1 error reply that closes the connection, written straight to a transport."""
    body = json.dumps({"error": message}).encode()
    head = [STATUS_LINE[status], b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body), b"connection: close\r\n"]
    head += [f"{name}: {value}\r\n".encode("latin-1") for name, value in (headers or {}).items()]
    return b"".join(head) + b"\r\n" + body


# ---------------------------------------------------------------------------------------------- the protocol
@dataclass
class ServerHooks:
    """What the HTTP layer tells the app about (for its metrics); both run on the event loop, so keep them cheap."""

    on_reject: Callable[[int], None] | None = None  # the status of each error reply this layer sends itself
    on_connections: Callable[[int], None] | None = None  # the number of open connections, after each change
    on_shutdown: Callable[[], None] | None = None  # a graceful shutdown has begun (any thread)


@dataclass
class _Guard:
    settings: HttpSettings
    hooks: ServerHooks


class _HeadersTooLarge(Exception):
    pass


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol plus the limits in the module docstring. Timers, all on the event loop:
    idle (a connection with no request under way), request (from a request's first byte to its last) and write
    (while the transport's buffer is full because the client does not read)."""

    def __init__(self, config: uvicorn.Config, server_state, app_state, _loop=None):
        super().__init__(config, server_state, app_state, _loop)
        self.guard: _Guard = config.guard
        self.settings = self.guard.settings
        self._request_timer: asyncio.TimerHandle | None = None
        self._write_timer: asyncio.TimerHandle | None = None
        self._header_bytes = 0
        self._headers_complete = False
        self._closing_with_error = False

    # ---------------------------------------------------------------------------------------- connection
    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        if self.guard.hooks.on_connections is not None:
            self.guard.hooks.on_connections(len(self.connections))
        if len(self.connections) > self.settings.max_connections:
            self._reject(503, f"the server is at its limit of {self.settings.max_connections} open connections; "
                         "retry later", {"retry-after": "1"})
            return
        self._arm_idle()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel("_request_timer")
        self._cancel("_write_timer")
        super().connection_lost(exc)
        if self.guard.hooks.on_connections is not None:
            self.guard.hooks.on_connections(len(self.connections))

    def data_received(self, data: bytes) -> None:
        if self._closing_with_error:
            return  # draining what the client still sends after an error reply
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as error:
            if isinstance(error.__context__, _HeadersTooLarge):
                self._reject(431, f"request line and headers exceed {self.settings.max_header_bytes} bytes")
            else:
                raise
        except httptools.HttpParserError as error:
            self._reject(400, f"malformed HTTP request ({error})")
        except httptools.HttpParserUpgrade:
            pass  # no protocol upgrades here: the request was dispatched as plain HTTP/1.1
        if self._request_timer is None and not self.pipeline and (self.cycle is None or self.cycle.response_complete):
            self._arm_idle()  # stray bytes between requests do not keep a connection open forever

    # ---------------------------------------------------------------------------------------- parser callbacks
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._unset_keepalive_if_required()
        self._header_bytes, self._headers_complete = 0, False
        self._request_timer = self.loop.call_later(self.settings.request_timeout, self._request_timed_out)

    def on_url(self, url: bytes) -> None:
        self._count_header_bytes(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_header_bytes(len(name) + len(value))
        super().on_header(name, value)

    def _count_header_bytes(self, n: int) -> None:
        self._header_bytes += n
        if self._header_bytes > self.settings.max_header_bytes:
            raise _HeadersTooLarge

    def on_headers_complete(self) -> None:
        self._headers_complete = True
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._cancel("_request_timer")

    # ---------------------------------------------------------------------------------------- timers
    def _cancel(self, timer: str) -> None:
        if getattr(self, timer) is not None:
            getattr(self, timer).cancel()
            setattr(self, timer, None)

    def _arm_idle(self) -> None:
        if self.timeout_keep_alive_task is None and not self.transport.is_closing():
            self.timeout_keep_alive_task = self.loop.call_later(
                self.settings.keep_alive_timeout, self.timeout_keep_alive_handler)

    def _request_timed_out(self) -> None:
        self._request_timer = None
        if not self.transport.is_closing():
            self._abandon_request(408, f"request not received within {self.settings.request_timeout:g}s")

    def eof_received(self) -> bool | None:
        """The client has finished sending (a half-close). Returning True keeps our half open for a reply."""
        if self._closing_with_error:
            return None
        if self._request_timer is not None:  # in the middle of a request that can no longer arrive
            self._abandon_request(400, "the client stopped sending before the whole request arrived")
            return True
        if self.pipeline or (self.cycle is not None and not self.cycle.response_complete):
            if self.cycle is not None:
                self.cycle.keep_alive = False  # answer what was asked, then close
            for cycle, _ in self.pipeline:
                cycle.keep_alive = False
            return True
        return None  # between requests: asyncio closes the connection

    def _abandon_request(self, status: int, message: str) -> None:
        """A request that will never arrive whole: tell the client why, unless the app has already answered."""
        cycle = self.cycle if self._headers_complete else None
        if cycle is not None and cycle.response_started:
            self.transport.close()  # the app already answered (e.g. 401 before the body): just stop reading
            return
        if cycle is not None:  # the app waits for the rest of the body: it gets http.disconnect, not a hang
            cycle.disconnected = True
            cycle.message_event.set()
        self._reject(status, message)

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._write_timer is None:
            self._write_timer = self.loop.call_later(self.settings.write_timeout, self._write_timed_out)

    def resume_writing(self) -> None:
        super().resume_writing()
        self._cancel("_write_timer")

    def _write_timed_out(self) -> None:
        self._write_timer = None
        logger.debug("client %s read nothing for %gs; disconnecting it", self.client, self.settings.write_timeout)
        self.transport.abort()  # the buffer is full and the client does not read: nothing more can be said to it

    # ---------------------------------------------------------------------------------------- error replies
    def _reject(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        """Reply with a JSON error and close. A lingering close: half-close, then drain (bounded in time) what the
        client is still sending, so its kernel does not reset the connection before it has read the reply."""
        self._closing_with_error = True
        self._unset_keepalive_if_required()
        self._cancel("_request_timer")
        if self.guard.hooks.on_reject is not None:
            self.guard.hooks.on_reject(status)
        date = [b"%s: %s\r\n" % (name, value) for name, value in self.server_state.default_headers]
        reply = json_error(status, message, headers)
        first_line_end = reply.index(b"\r\n") + 2
        self.transport.write(reply[:first_line_end] + b"".join(date) + reply[first_line_end:])
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self.loop.call_later(LINGER_SECONDS, self.transport.close)
        else:
            self.transport.close()


# ---------------------------------------------------------------------------------------------- one server
class _UvicornServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self):
        # uvicorn would re-raise the signal after a graceful stop (exit status 143); rewardkit installs its own
        # handlers (serve_until_signalled) and exits 0 after a graceful stop.
        yield


class AsgiServer:
    """One uvicorn server for `app` on a socket bound at construction (so a taken port fails here, clearly)."""

    def __init__(self, app: ASGIApp, settings: HttpSettings, sock: socket.socket | None = None,
                 hooks: ServerHooks | None = None):
        settings.check()
        self.settings = settings
        self.sock = sock if sock is not None else bind_socket(settings.host, settings.port)
        self.port: int = self.sock.getsockname()[1]
        config = uvicorn.Config(
            app,
            http=GuardedProtocol,
            lifespan="on",
            log_config=None,
            access_log=False,
            server_header=False,
            timeout_keep_alive=int(max(1, settings.keep_alive_timeout)),
            timeout_graceful_shutdown=int(max(1, settings.shutdown_timeout)),
        )
        self.hooks = hooks or ServerHooks()
        config.guard = _Guard(settings, self.hooks)
        self._server = _UvicornServer(config)
        # uvicorn reports startup failures and parse errors at WARNING/INFO; the reply itself tells the client.
        logging.getLogger("uvicorn.error").setLevel(logging.ERROR)

    @property
    def url(self) -> str:
        return url_of(self.settings.host, self.port)

    @property
    def started(self) -> bool:
        return self._server.started

    @property
    def open_connections(self) -> int:
        return len(self._server.server_state.connections)

    async def serve(self) -> None:
        """Serve until `request_shutdown`, then stop gracefully (uvicorn: close the listener, close idle
        connections, wait up to shutdown_timeout for in-flight requests, run the app's shutdown)."""
        try:
            await self._server.serve(sockets=[self.sock])
        finally:
            self.sock.close()

    def request_shutdown(self) -> None:
        """Begin a graceful shutdown; safe from any thread or a signal handler (uvicorn polls the flag)."""
        if self.hooks.on_shutdown is not None:
            self.hooks.on_shutdown()
        self._server.should_exit = True


async def serve_until_signalled(server: AsgiServer, on_started: Callable[[], None] | None = None) -> None:
    """Serve until SIGTERM or SIGINT (Ctrl-C), then shut down gracefully."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, server.request_shutdown)
    if on_started is not None:
        async def announce() -> None:
            while not server.started and not server._server.should_exit:
                await asyncio.sleep(0.01)
            if server.started:
                on_started()
        started = loop.create_task(announce())
    await server.serve()
    if on_started is not None:
        await started


def event_loop_runner() -> asyncio.Runner:
    """uvloop's event loop when installed (what uvicorn picks too), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.Runner()
    return asyncio.Runner(loop_factory=uvloop.new_event_loop)


class BackgroundAsgiServer:
    """An AsgiServer on its own event loop in a daemon thread: for notebooks, tests and benchmarks.

        with BackgroundAsgiServer(app, HttpSettings(port=0)) as server:
            httpx.get(server.url + "/health")

    Leaving the block shuts the server down gracefully, exactly as SIGTERM does for a served process.
    """

    def __init__(self, app: ASGIApp, settings: HttpSettings | None = None, hooks: ServerHooks | None = None):
        self.server = AsgiServer(app, settings or HttpSettings(), hooks=hooks)
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> BackgroundAsgiServer:
        """Start serving; returns once the app has started (or raises what prevented it)."""
        self._thread = threading.Thread(target=self._run, name="rewardkit-asgi", daemon=True)
        self._thread.start()
        while not self.server.started:
            if not self._thread.is_alive():
                raise RewardkitError(f"the server on {self.url} stopped while starting: {self._error!r}")
            self._thread.join(0.01)
        return self

    def _run(self) -> None:
        try:
            asyncio.run(self.server.serve())
        except BaseException as error:  # reported by start(); uvicorn exits via SystemExit on startup failure
            self._error = error

    def request_shutdown(self) -> None:
        """Begin a graceful shutdown without waiting for it (what a signal does); see `wait`."""
        self.server.request_shutdown()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the server thread to end; True when it has."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def stop(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self.request_shutdown()
            self.wait()

    def __enter__(self) -> BackgroundAsgiServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


# ---------------------------------------------------------------------------------------------- processes
@dataclass
class AppFactory:
    """What each worker process runs to build its app: `build(*args, **kwargs)` returning (app, hooks). Must be
    picklable (a module-level function and plain arguments), because workers are spawned."""

    build: Callable[..., tuple[ASGIApp, ServerHooks | None]]
    args: tuple = ()
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __call__(self):
        return self.build(*self.args, **self.kwargs)


def run_server(factory: AppFactory, settings: HttpSettings, announce: Callable[[str], None]) -> None:
    """Serve the factory's app on `settings.host:port` with `settings.workers` processes until SIGTERM/SIGINT.
    `announce(url)` is called once every worker is ready to serve."""
    settings.check()
    sock = bind_socket(settings.host, settings.port)  # bound before any model loads: a taken port fails at once
    url = url_of(settings.host, sock.getsockname()[1])
    if settings.workers == 1:
        _serve_in_this_process(factory, settings, sock, lambda: announce(url))
    else:
        _Supervisor(factory, settings, sock).run(lambda: announce(url))


def _serve_in_this_process(factory: AppFactory, settings: HttpSettings, sock: socket.socket,
                           on_started: Callable[[], None]) -> None:
    app, hooks = factory()
    server = AsgiServer(app, settings, sock, hooks)
    with event_loop_runner() as runner:
        runner.run(serve_until_signalled(server, on_started))


def _worker_main(factory: AppFactory, settings: HttpSettings, sock: socket.socket, ready, log_level: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the supervisor sends SIGTERM
    logging.basicConfig(level=log_level, format="rewardkit: %(message)s")
    try:
        _serve_in_this_process(factory, settings, sock, lambda: ready.put(os.getpid()))
    except RewardkitError as error:
        print(f"rewardkit: error: {error}", flush=True, file=sys.stderr)
        raise SystemExit(2) from None


class _Supervisor:
    """Start `workers` processes on one shared socket; forward SIGTERM/SIGINT to them and wait for their graceful
    stop; restart a worker that dies while the others serve."""

    def __init__(self, factory: AppFactory, settings: HttpSettings, sock: socket.socket):
        self.factory, self.settings, self.sock = factory, settings, sock
        self.context = multiprocessing.get_context("spawn")
        self.ready = self.context.Queue()
        self.stopping = threading.Event()
        self.processes: list = []

    def _spawn(self):
        process = self.context.Process(
            target=_worker_main, name="rewardkit-worker", daemon=False,
            args=(self.factory, self.settings, self.sock, self.ready, logging.getLogger().level),
        )
        process.start()
        return process

    def run(self, on_started: Callable[[], None]) -> None:
        import tempfile

        previous = {sig: signal.signal(sig, lambda *_: self.stopping.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
        metrics_dir = tempfile.TemporaryDirectory(prefix="rewardkit-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir.name  # workers share counters (prometheus_client)
        try:
            self.processes = [self._spawn() for _ in range(self.settings.workers)]
            self._wait_until_ready(on_started)
            while not self.stopping.wait(0.2):
                for i, process in enumerate(self.processes):
                    if not process.is_alive() and not self.stopping.is_set():
                        logger.error("worker %d (pid %s) exited with status %s; starting another", i, process.pid,
                                     process.exitcode)
                        _mark_dead(process.pid)
                        self.processes[i] = self._spawn()
        finally:
            self._stop_all()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
            metrics_dir.cleanup()
            self.sock.close()

    def _wait_until_ready(self, on_started: Callable[[], None]) -> None:
        import queue

        waiting = len(self.processes)
        while waiting and not self.stopping.is_set():
            with contextlib.suppress(queue.Empty):
                self.ready.get(timeout=0.2)
                waiting -= 1
                continue
            failed = [p for p in self.processes if not p.is_alive()]
            if failed:
                raise RewardkitError(f"a worker exited with status {failed[0].exitcode} while starting (its error "
                                     "is above); stopping the others")
        if not self.stopping.is_set():
            on_started()

    def _stop_all(self) -> None:
        for process in self.processes:
            if process.is_alive():
                os.kill(process.pid, signal.SIGTERM)
        for process in self.processes:
            process.join(self.settings.shutdown_timeout + 10)
            if process.is_alive():
                logger.warning("worker pid %s did not stop in time; killing it", process.pid)
                process.kill()
                process.join()


def _mark_dead(pid: int | None) -> None:
    if pid is not None and "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


# ---------------------------------------------------------------------------------------------- app helpers
def bearer_token_matches(authorization: bytes | None, key: str) -> bool:
    """Whether an `Authorization` header carries `Bearer <key>`: the scheme case-insensitively (RFC 9110 11.1),
    the key in constant time."""
    scheme, _, token = (authorization or b"").strip().partition(b" ")
    return scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), key.encode())
