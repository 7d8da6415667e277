"""Run the labelling app under uvicorn: a socket bound before start (so port 0 reports the port it got), a cap on
concurrent connections, keep-alive and graceful-shutdown time-outs; SIGINT / SIGTERM finish requests in flight."""

from __future__ import annotations

import ipaddress
import socket


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
