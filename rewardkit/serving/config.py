"""Server settings as plain dataclasses (no imports beyond the standard library, so `rewardkit serve --help` is
instant). Each field's option metadata (help, valid range) is what the command line shows and checks: `rewardkit
serve` derives its options from them, and `check()` says the same of a config built in Python."""

from __future__ import annotations

from dataclasses import dataclass

from rewardkit.fields import option, validate_fields


@dataclass
class HttpSettings:
    """How a server listens and what it tolerates from clients; every limit has a safe default."""

    host: str = option("127.0.0.1", "address to bind (127.0.0.1: this machine only)")
    port: int = option(8000, "port to listen on; 0 picks a free one", at_least=0, at_most=65535)
    workers: int = option(1, "processes serving on the port, each with its own copy of the model", at_least=1)
    max_connections: int = option(512, "open connections per worker; one more gets 503 at once", at_least=1)
    request_timeout: float = option(30.0, "seconds a request's headers and body may take to arrive (then 408)",
                                    above=0)
    keep_alive_timeout: float = option(15.0, "seconds an idle connection stays open", above=0)
    write_timeout: float = option(30.0, "seconds a client may leave its responses unread before it is dropped",
                                  above=0)
    max_header_bytes: int = option(64 * 1024, "request line + headers larger than this get 431", at_least=1)
    max_body_bytes: int = option(8 * 1024 * 1024, "request bodies larger than this get 413", at_least=1)
    shutdown_timeout: float = option(30.0, "seconds in-flight requests get to finish after SIGTERM/SIGINT", above=0)

    def check(self) -> None:
        """Raise RewardkitError naming the first setting of the wrong type or out of range by its flag, as the
        command line does: `--port must be in [0, 65535] (got -1)`."""
        validate_fields(self)


@dataclass
class ServerConfig(HttpSettings):
    """HttpSettings plus how rewards are computed and who may ask for them."""

    max_batch_size: int = option(32, "sequences per forward pass across concurrent requests; 1 turns batching off",
                                 at_least=1)
    max_wait_ms: float = option(5.0, "how long a sequence waits for others to fill its batch", at_least=0)
    max_queue_size: int = option(4096, "sequences waiting for the model before new requests get 429", at_least=1)
    strict: bool = option(False, "refuse (422) sequences longer than the model's max_length instead of truncating")
    api_key: str | None = None  # every request needs "Authorization: Bearer <api_key>" (--api-key-file)
