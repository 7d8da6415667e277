"""Server settings as plain dataclasses (no imports beyond the standard library, so `rewardkit serve --help` is
instant). Each field's `help` is what the command line shows; `rewardkit serve` derives its options from them."""

from __future__ import annotations

from dataclasses import dataclass, field

from rewardkit.errors import RewardkitError


def _option(default, help: str):
    return field(default=default, metadata={"help": help})


@dataclass
class HttpSettings:
    """How a server listens and what it tolerates from clients; every limit has a safe default."""

    host: str = _option("127.0.0.1", "address to bind (127.0.0.1: this machine only)")
    port: int = _option(8000, "port to listen on; 0 picks a free one")
    workers: int = _option(1, "processes serving on the port, each with its own copy of the model")
    max_connections: int = _option(512, "open connections per worker; one more gets 503 at once")
    request_timeout: float = _option(30.0, "seconds a request's headers and body may take to arrive (then 408)")
    keep_alive_timeout: float = _option(15.0, "seconds an idle connection stays open")
    write_timeout: float = _option(30.0, "seconds a client may leave its responses unread before it is dropped")
    max_header_bytes: int = _option(64 * 1024, "request line + headers larger than this get 431")
    max_body_bytes: int = _option(8 * 1024 * 1024, "request bodies larger than this get 413")
    shutdown_timeout: float = _option(30.0, "seconds in-flight requests get to finish after SIGTERM/SIGINT")

    def check(self) -> None:
        """Raise RewardkitError naming the first setting out of range (the CLI shows it as one line)."""
        if not 0 <= self.port <= 65535:
            raise RewardkitError(f"--port must be between 0 and 65535 (0 picks a free port), got {self.port}")
        for name in ("workers", "max_connections", "max_header_bytes", "max_body_bytes"):
            if getattr(self, name) < 1:
                raise RewardkitError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        for name in ("request_timeout", "keep_alive_timeout", "write_timeout", "shutdown_timeout"):
            if not getattr(self, name) > 0:
                raise RewardkitError(f"--{name.replace('_', '-')} must be positive, got {getattr(self, name)}")


@dataclass
class ServerConfig(HttpSettings):
    """HttpSettings plus how rewards are computed and who may ask for them."""

    max_batch_size: int = _option(32, "sequences per forward pass across concurrent requests; 1 turns batching off")
    max_wait_ms: float = _option(5.0, "how long a sequence waits for others to fill its batch")
    max_queue_size: int = _option(4096, "sequences waiting for the model before new requests get 429")
    strict: bool = _option(False, "refuse (422) sequences longer than the model's max_length instead of truncating")
    api_key: str | None = None  # every request needs "Authorization: Bearer <api_key>" (--api-key-file)

    def check(self) -> None:
        super().check()
        for name in ("max_batch_size", "max_queue_size"):
            if getattr(self, name) < 1:
                raise RewardkitError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.max_wait_ms < 0:
            raise RewardkitError(f"--max-wait-ms must be >= 0, got {self.max_wait_ms}")
