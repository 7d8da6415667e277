"""Run the labelling app under uvicorn: a socket bound before start (so port 0 reports the port it got), a cap on
concurrent connections, keep-alive and graceful-shutdown time-outs; SIGINT / SIGTERM finish requests in flight."""

from __future__ import annotations

import ipaddress
import socket
import threading
import time


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        from rewardkit.errors import RewardkitError

        raise RewardkitError(f"cannot listen on {host}:{port}: {error.strerror}") from error
    sock.listen(2048)
    return sock


def run_app(app, host: str, port: int, max_connections: int = 256, banner: str | None = None) -> None:
    """Serve `app` until SIGINT / SIGTERM; `banner` (with {address}) is printed once the socket is bound."""
    import uvicorn

    sock = bind(host, port)
    address = "{}:{}".format(*sock.getsockname()[:2]) if sock.family == socket.AF_INET else \
        "[{}]:{}".format(*sock.getsockname()[:2])
    config = uvicorn.Config(app, log_level="warning", access_log=False, limit_concurrency=max_connections,
                            timeout_keep_alive=5, timeout_graceful_shutdown=10, proxy_headers=False)
    if banner:
        print(banner.format(address=address), flush=True)
    uvicorn.Server(config).run(sockets=[sock])


class ServerThread:
    """`app` under uvicorn in a background thread on a free loopback port (tests, simulations, benchmarks);
    `stop()` shuts it down gracefully. `url` is where it listens."""

    def __init__(self, app, max_connections: int = 256, start_timeout: float = 30.0):
        import uvicorn

        sock = bind("127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        config = uvicorn.Config(app, log_level="warning", access_log=False, limit_concurrency=max_connections,
                                timeout_graceful_shutdown=5)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + start_timeout
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)

    def __enter__(self) -> ServerThread:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
