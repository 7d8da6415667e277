"""Graceful shutdown: stop accepting, finish what is in flight, then exit."""

from __future__ import annotations

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import pytest

from rewardkit.serving import BackgroundServer, ServerConfig
from tests.serving.helpers import PROMPTS, RESPONSES, InstrumentedRewardModel, call, expected


def _refuses_connections(url: str) -> bool:
    parts = urlsplit(url)
    try:
        socket.create_connection((parts.hostname, parts.port), timeout=5).close()
    except ConnectionRefusedError:
        return True
    except OSError:  # reset or timed out while the listener closes (seen under load): ask again
        return False
    return False


def test_shutdown_finishes_an_in_flight_request_and_refuses_new_ones(model):
    held = InstrumentedRewardModel(model)
    held.gate = threading.Event()
    server = BackgroundServer(held, ServerConfig(port=0, max_wait_ms=0)).start()
    idle = socket.create_connection((urlsplit(server.url).hostname, urlsplit(server.url).port))  # keep-alive, idle
    with ThreadPoolExecutor(max_workers=1) as pool:
        in_flight = pool.submit(call, server.url, "POST", "/score", {"prompts": PROMPTS, "responses": RESPONSES})
        assert held.entered.wait(timeout=120)

        server.request_shutdown()  # what SIGTERM does
        for _ in range(2000):  # bounded: the listening socket closes first
            if _refuses_connections(server.url):
                break
            time.sleep(0.01)
        else:
            raise AssertionError("server kept accepting connections after shutdown began")
        assert idle.recv(1) == b""  # the idle keep-alive connection was closed, not waited for
        assert not server.wait(timeout=0)  # still running: a request is in flight

        held.gate.set()
        status, headers, body = in_flight.result()
    assert status == 200 and headers["connection"] == "close"
    assert body["rewards"] == pytest.approx(expected(model, PROMPTS, RESPONSES), abs=1e-5)
    assert server.wait(timeout=120)
    idle.close()
