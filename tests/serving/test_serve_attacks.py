"""The server tried as an attacker would: one test per case of issue 13, raw sockets to 127.0.0.1, every wait bounded.

What the hand-written HTTP layer got wrong (smuggling through conflicting Content-Length, lenient header syntax,
no chunked bodies, the body read before the API key was checked, no connection cap or write timeout) is now
uvicorn's and `rewardkit.serving.asgi`'s job; these tests hold them to it.
"""

from __future__ import annotations

import json
import logging
import socket
import struct
import threading
import time

import httpx
import pytest

from rewardkit.serving import BackgroundServer, ServerConfig
from tests.serving.helpers import (
    PROMPTS,
    RESPONSES,
    InstrumentedRewardModel,
    call,
    expected,
    json_body,
    metric,
    raw_exchange,
    raw_socket,
    read_until_closed,
    status_lines,
)

KEY = "s3cret-key"
SCORE_BODY = json.dumps({"prompts": PROMPTS[:1], "responses": RESPONSES[:1]}).encode()


@pytest.fixture(scope="module")
def strict_timeouts(model):
    """Short timeouts, so that slow-client cases end within seconds."""
    config = ServerConfig(port=0, request_timeout=1.0, keep_alive_timeout=1.5, write_timeout=1.0,
                          max_header_bytes=8 * 1024, max_body_bytes=256 * 1024)
    with BackgroundServer(model, config) as running:
        yield running


@pytest.fixture(scope="module")
def secured(model):
    with BackgroundServer(model, ServerConfig(port=0, api_key=KEY)) as running:
        yield running


def _post(body: bytes, *headers: str) -> bytes:
    head = "".join(f"{h}\r\n" for h in ("POST /score HTTP/1.1", "Host: rm", *headers))
    return head.encode() + b"\r\n" + body


# ---------------------------------------------------------------------------------------------- request framing
def test_conflicting_content_lengths_are_refused_and_nothing_is_smuggled(server):
    smuggled = b"GET /health HTTP/1.1\r\nHost: rm\r\n\r\n"
    lengths = ("Content-Length: 2", f"Content-Length: {2 + len(smuggled)}")
    reply = raw_exchange(server.url, _post(b"{}" + smuggled, *lengths))
    assert status_lines(reply) == [b"HTTP/1.1 400 Bad Request"]  # one answer: the second request was not run
    assert "content-length" in json_body(reply)["error"].lower()


def test_space_before_the_colon_is_refused(server):
    reply = raw_exchange(server.url, _post(SCORE_BODY, f"Content-Length : {len(SCORE_BODY)}"))
    assert status_lines(reply) == [b"HTTP/1.1 400 Bad Request"] and "error" in json_body(reply)


@pytest.mark.parametrize("length", ["\u00b2", "\u0661\u0660", "+2", "-1", "2, 2", "9" * 30], ids=repr)
def test_content_length_that_is_not_plain_ascii_digits_is_refused(server, length):
    reply = raw_exchange(server.url, _post(b"{}", f"Content-Length: {length}"))
    assert status_lines(reply) == [b"HTTP/1.1 400 Bad Request"] and b"connection: close" in reply.lower()
    assert call(server.url, "GET", "/health")[0] == 200  # and the server is fine


def test_transfer_encoding_with_content_length_is_refused(server):
    reply = raw_exchange(server.url, _post(b"0\r\n\r\n", "Content-Length: 5", "Transfer-Encoding: chunked"))
    assert status_lines(reply) == [b"HTTP/1.1 400 Bad Request"]


@pytest.mark.parametrize("data", [b"GARBAGE\r\n\r\n", b"GET /health HTTP/1.banana\r\nHost: rm\r\n\r\n",
                                  b"GET /health HTTP/1.1\r\nX-A: a\r\n b\r\n\r\n"], ids=["garbage", "version", "fold"])
def test_malformed_requests_get_a_json_400_and_a_closed_connection(server, data):
    reply = raw_exchange(server.url, data)
    assert status_lines(reply) == [b"HTTP/1.1 400 Bad Request"] and b"connection: close" in reply.lower()
    assert json_body(reply)["error"].startswith("malformed HTTP request")


def test_chunked_request_bodies_are_accepted(server, model):
    half = len(SCORE_BODY) // 2
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (SCORE_BODY[:half], SCORE_BODY[half:]))
    reply = raw_exchange(server.url, _post(chunked + b"0\r\n\r\n", "Transfer-Encoding: chunked", "Connection: close"))
    assert status_lines(reply) == [b"HTTP/1.1 200 OK"]
    assert json_body(reply)["rewards"] == pytest.approx(expected(model, PROMPTS[:1], RESPONSES[:1]), abs=1e-5)
    # A client streaming its body (httpx sends a generator chunked), as requests/httpx users do for large uploads.
    response = httpx.post(server.url + "/score", content=iter([SCORE_BODY[:half], SCORE_BODY[half:]]), timeout=60)
    assert response.status_code == 200 and response.request.headers["transfer-encoding"] == "chunked"
    assert response.json()["rewards"] == pytest.approx(expected(model, PROMPTS[:1], RESPONSES[:1]), abs=1e-5)


def test_a_chunked_body_over_the_limit_gets_413_while_it_is_read(strict_timeouts):
    chunk = b"x" * 65536
    data = _post(b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(5)) + b"0\r\n\r\n",
                 "Transfer-Encoding: chunked")  # 320 KiB against a 256 KiB limit
    reply = raw_exchange(strict_timeouts.url, data)
    assert status_lines(reply)[0] == b"HTTP/1.1 413 Request Entity Too Large" and json_body(reply)["field"] == "body"


def test_oversized_headers_get_431(strict_timeouts):
    reply = raw_exchange(strict_timeouts.url, b"GET /health HTTP/1.1\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n")
    assert status_lines(reply) == [b"HTTP/1.1 431 Request Header Fields Too Large"]


def test_a_body_cut_short_gets_400_when_the_client_stops_sending(server):
    reply = raw_exchange(server.url, _post(b'{"prompts"', "Content-Length: 100"))
    assert status_lines(reply) == [b"HTTP/1.1 400 Bad Request"] and "stopped sending" in json_body(reply)["error"]


# ---------------------------------------------------------------------------------------------- authentication
def test_the_api_key_is_checked_before_any_body_byte_is_read(secured):
    with raw_socket(secured.url, timeout=30) as sock:  # 8 MiB announced, none sent
        sock.sendall(b"POST /score HTTP/1.1\r\nHost: rm\r\nContent-Length: 8388608\r\nExpect: 100-continue\r\n\r\n")
        reply = sock.recv(65536)
    assert reply.startswith(b"HTTP/1.1 401 ") and b"100 Continue" not in reply
    assert b"www-authenticate: Bearer" in reply
    # With the key, the server asks for the body (100 Continue) and then scores it.
    with raw_socket(secured.url, timeout=60) as sock:
        sock.sendall(_post(b"", f"Content-Length: {len(SCORE_BODY)}", "Expect: 100-continue",
                           f"Authorization: Bearer {KEY}", "Connection: close"))
        assert sock.recv(65536) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(SCORE_BODY)
        assert status_lines(read_until_closed(sock)) == [b"HTTP/1.1 200 OK"]


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "Bearer"])
def test_the_bearer_scheme_is_case_insensitive(secured, model, scheme):
    status, _, body = call(secured.url, "POST", "/score", {"prompts": PROMPTS, "responses": RESPONSES},
                           {"Authorization": f"{scheme} {KEY}"})
    assert status == 200 and body["rewards"] == pytest.approx(expected(model, PROMPTS, RESPONSES), abs=1e-5)


def test_a_declared_body_over_the_limit_gets_413_before_it_is_read(strict_timeouts):
    with raw_socket(strict_timeouts.url, timeout=30) as sock:
        sock.sendall(b"POST /score HTTP/1.1\r\nHost: rm\r\nContent-Length: 1000000000\r\nExpect: 100-continue\r\n\r\n")
        reply = sock.recv(65536)
    assert reply.startswith(b"HTTP/1.1 413 ") and b"100 Continue" not in reply


# ---------------------------------------------------------------------------------------------- JSON
def test_a_5000_digit_number_is_a_400(server):
    body = b'{"prompts": [' + b"9" * 5000 + b'], "responses": ["a"]}'
    status, _, payload = call(server.url, "POST", "/score", body)
    assert status == 400 and payload["field"] == "body" and "digits" in payload["error"]
    assert call(server.url, "GET", "/health")[0] == 200


# ---------------------------------------------------------------------------------------------- HTTP semantics
def test_head_is_get_without_the_body_and_replies_carry_a_date(server):
    got = raw_exchange(server.url, b"GET /health HTTP/1.1\r\nHost: rm\r\nConnection: close\r\n\r\n")
    head = raw_exchange(server.url, b"HEAD /health HTTP/1.1\r\nHost: rm\r\nConnection: close\r\n\r\n")
    assert status_lines(head) == [b"HTTP/1.1 200 OK"] and head.endswith(b"\r\n\r\n")  # no body
    length = [line for line in head.lower().split(b"\r\n") if line.startswith(b"content-length:")]
    assert length and int(length[0].split(b":")[1]) == len(got.split(b"\r\n\r\n", 1)[1])
    assert b"\r\ndate: " in got.lower() and b"\r\ndate: " in head.lower()


# ---------------------------------------------------------------------------------------------- slow and idle clients
def test_a_slow_sender_gets_408_and_does_not_hold_up_others(strict_timeouts, model):
    with raw_socket(strict_timeouts.url, timeout=30) as headers_only, \
            raw_socket(strict_timeouts.url, timeout=30) as trickle:
        headers_only.sendall(b"POST /score HTTP/1.1\r\nHost: rm\r\n")  # and never the end of the headers
        trickle.sendall(b"POST /score HTTP/1.1\r\nHost: rm\r\nContent-Length: 1000\r\n\r\n")
        # Meanwhile an ordinary client is served at once.
        status, _, body = call(strict_timeouts.url, "POST", "/score", {"prompts": PROMPTS, "responses": RESPONSES})
        assert status == 200 and body["rewards"] == pytest.approx(expected(model, PROMPTS, RESPONSES), abs=1e-5)
        for _ in range(40):  # a byte every 0.1 s: each arrives in time, the whole request never does
            try:
                trickle.sendall(b" ")
            except OSError:
                break
            time.sleep(0.1)
        for sock in (headers_only, trickle):
            reply = read_until_closed(sock)
            assert status_lines(reply) == [b"HTTP/1.1 408 Request Timeout"], reply[:200]
            assert "not received within 1s" in json_body(reply)["error"]


def test_an_idle_connection_is_closed_even_if_it_never_sends_a_byte(strict_timeouts):
    with raw_socket(strict_timeouts.url, timeout=30) as sock:
        start = time.monotonic()
        assert read_until_closed(sock) == b""  # closed by the server, silently (no request, nothing to answer)
        assert time.monotonic() - start < 25


def test_a_client_that_never_reads_its_replies_is_disconnected(strict_timeouts):
    sock = raw_socket(strict_timeouts.url, timeout=30)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    pipelined = b"GET /metrics HTTP/1.1\r\nHost: rm\r\n\r\n" * 4000  # ~4 KB replies each, never read

    def send() -> None:
        try:
            sock.sendall(pipelined)
        except OSError:
            pass  # the server dropped us mid-send: what this test expects

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    try:
        for _ in range(300):  # bounded: 30 s
            time.sleep(0.1)
            open_now = metric(call(strict_timeouts.url, "GET", "/metrics")[2], "rewardkit_connections_open")
            if open_now <= 1:  # only the connection asking
                break
        else:
            raise AssertionError("the server kept a connection whose client never reads")
    finally:
        sock.close()
        sender.join(30)


def test_connections_beyond_the_cap_get_503_at_once(model):
    with BackgroundServer(model, ServerConfig(port=0, max_connections=3)) as server:
        held = [raw_socket(server.url, timeout=30) for _ in range(3)]
        try:
            for sock in held:  # a keep-alive request on each: all three are open and counted
                sock.sendall(b"GET /health HTTP/1.1\r\nHost: rm\r\n\r\n")
                assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
            with raw_socket(server.url, timeout=30) as extra:
                reply = read_until_closed(extra)  # answered without sending a byte
            assert status_lines(reply) == [b"HTTP/1.1 503 Service Unavailable"] and b"retry-after: 1" in reply
            assert "limit of 3 open connections" in json_body(reply)["error"]
        finally:
            for sock in held:
                sock.close()
        for _ in range(200):  # once they are gone, new clients are served again (bounded: 20 s)
            try:
                if call(server.url, "GET", "/health")[0] == 200:
                    break
            except (ConnectionError, OSError):
                pass
            time.sleep(0.1)
        else:
            raise AssertionError("the server did not serve again after connections closed")
        text = call(server.url, "GET", "/metrics")[2]
    assert metric(text, "rewardkit_requests_total", endpoint="other", status="503") >= 1


# ---------------------------------------------------------------------------------------------- quiet logs
def test_clients_that_leave_early_leave_no_traceback(model, caplog):
    held = InstrumentedRewardModel(model)
    held.gate = threading.Event()
    with caplog.at_level(logging.WARNING), BackgroundServer(held, ServerConfig(port=0, max_wait_ms=0)) as server:
        with raw_socket(server.url, timeout=30) as sock:  # leaves in the middle of its body
            sock.sendall(_post(SCORE_BODY[:10], f"Content-Length: {len(SCORE_BODY)}"))
        with raw_socket(server.url, timeout=30) as sock:  # leaves while its sequence is in the model
            sock.sendall(_post(SCORE_BODY, f"Content-Length: {len(SCORE_BODY)}"))
            assert held.entered.wait(timeout=60)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with a reset
        held.gate.set()
        assert call(server.url, "GET", "/health")[0] == 200
        text = call(server.url, "GET", "/metrics")[2]
    assert [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info] == []
    # The first never sent its whole body (499); the second's reply was computed and had nobody to go to.
    assert metric(text, "rewardkit_requests_total", endpoint="/score", status="499") == 1


# ---------------------------------------------------------------------------------------------- metrics
def test_counters_are_exact_past_a_million(model):
    with BackgroundServer(model, ServerConfig(port=0)) as server:
        server.reward_server.metrics.requests.labels("/health", "200").inc(1_234_567)
        call(server.url, "GET", "/health")
        text = call(server.url, "GET", "/metrics")[2]
    assert metric(text, "rewardkit_requests_total", endpoint="/health", status="200") == 1_234_568
