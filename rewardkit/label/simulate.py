"""Programs that label through the app's HTTP API, exactly as a browser session would: log in with the login
form (CSRF token included), fetch the next assignment, post a ranking with the session's CSRF token.

    client = LabelClient("http://127.0.0.1:8080")
    client.login("ana", "password")
    while (task := client.next("chat")) is not None:
        client.submit(task["assignment"], ranking=my_ranking(task["prompt"], task["responses"]))

`run_annotators` runs several such clients at once (one thread each) for a bounded time or number of items:
the load test and the active-selection simulation both use it. Standard library only (urllib + a cookie jar).
"""

from __future__ import annotations

import http.cookiejar
import json
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

_CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')
# (prompt, [(response index, response), ...] in display order) -> ranking of response indices, best first
RankFunction = Callable[[Any, list[tuple[int, Any]]], list[Any]]


class LabelApiError(RuntimeError):
    def __init__(self, status: int, message: str):
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


class LabelClient:
    """One logged-in session of the labelling app (not thread-safe: one per thread)."""

    def __init__(self, base_url: str, timeout: float = 30.0):
        self.base_url, self.timeout = base_url.rstrip("/"), timeout
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        self.csrf: str | None = None

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        request = urllib.request.Request(self.base_url + path, data=body, method=method, headers=headers or {})
        try:
            with self.opener.open(request, timeout=self.timeout) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def login(self, name: str, password: str) -> None:
        status, page = self.request("GET", "/login")
        token = _CSRF_INPUT.search(page.decode())
        if status != 200 or token is None:
            raise LabelApiError(status, "the login page has no CSRF token")
        form = urllib.parse.urlencode({"csrf_token": token.group(1), "name": name, "password": password}).encode()
        status, _ = self.request("POST", "/login", form, {"Content-Type": "application/x-www-form-urlencoded"})
        if status != 200:  # the redirect after a good login is followed to a page
            raise LabelApiError(status, f"login as {name!r} failed")
        status, body = self.request("GET", "/api/session")
        if status != 200:
            raise LabelApiError(status, body.decode(errors="replace"))
        self.csrf = json.loads(body)["csrf_token"]

    def next(self, project: str) -> dict[str, Any] | None:
        """The next assignment ({"assignment", "prompt", "responses": [{"index", "text"}], ...}); None when done."""
        status, body = self.request("GET", f"/api/projects/{urllib.parse.quote(project, safe='')}/next")
        if status == 204:
            return None
        if status != 200:
            raise LabelApiError(status, body.decode(errors="replace"))
        return json.loads(body)

    def submit(self, assignment: int, ranking: list[Any] | None = None, skip_reason: str | None = None,
               unsafe: bool = False) -> int:
        """Post a judgement; returns its id. Raises LabelApiError (409 when the assignment was already judged)."""
        payload: dict[str, Any] = {"unsafe": unsafe}
        if ranking is not None:
            payload["ranking"] = ranking
        if skip_reason is not None:
            payload["skip_reason"] = skip_reason
        status, body = self.request("POST", f"/api/assignments/{assignment}", json.dumps(payload).encode(),
                                    {"Content-Type": "application/json", "X-CSRF-Token": self.csrf or ""})
        if status != 201:
            raise LabelApiError(status, body.decode(errors="replace"))
        return json.loads(body)["judgement"]


@dataclass
class AnnotatorLog:
    """What one simulated annotator did, as the client saw it."""

    name: str
    submitted: list[tuple[int, int]] = field(default_factory=list)  # (assignment, judgement) acknowledged
    items: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)  # seconds per next + submit round trip
    stopped: str = ""  # why the loop ended: "time", "max_items", "queue empty" or "error"


def run_annotators(base_url: str, project: str, annotators: Sequence[tuple[str, str, RankFunction]],
                   seconds: float | None = None, max_items: int | None = None) -> list[AnnotatorLog]:
    """Run one client per (name, password, rank function) at once until each runs out of items, `seconds` pass
    (counted from when all have logged in), or it has judged `max_items`; bounded in time and count."""
    if seconds is None and max_items is None:
        raise ValueError("bound the run: give seconds or max_items")
    logs = [AnnotatorLog(name) for name, _, _ in annotators]
    clock = {"deadline": float("inf")}

    def set_deadline() -> None:  # the clock starts once everyone has logged in
        if seconds is not None:
            clock["deadline"] = time.monotonic() + seconds

    start = threading.Barrier(len(annotators), action=set_deadline)

    def work(log: AnnotatorLog, password: str, rank: RankFunction) -> None:
        client = LabelClient(base_url)
        try:
            client.login(log.name, password)
        except (LabelApiError, OSError) as error:
            log.errors.append(f"login: {error}")
            start.abort()
            return
        try:
            start.wait()
        except threading.BrokenBarrierError:
            log.errors.append("another annotator could not log in; stopped")
            return
        while True:
            if time.monotonic() >= clock["deadline"]:
                log.stopped = "time"
                break
            if max_items is not None and len(log.submitted) >= max_items:
                log.stopped = "max_items"
                break
            began = time.perf_counter()
            try:
                task = client.next(project)
                if task is None:
                    log.stopped = "queue empty"
                    break
                ranking = rank(task["prompt"], [(r["index"], r["text"]) for r in task["responses"]])
                judgement = client.submit(task["assignment"], ranking=ranking)
            except (LabelApiError, OSError) as error:
                log.errors.append(str(error))
                log.stopped = "error"
                break
            log.submitted.append((task["assignment"], judgement))
            log.items.append(task["item"])
            log.latencies.append(time.perf_counter() - began)

    threads = [threading.Thread(target=work, args=(log, password, rank), daemon=True)
               for log, (_, password, rank) in zip(logs, annotators, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return logs


def audit_submissions(store, project: str, logs: Sequence[AnnotatorLog]) -> dict[str, int]:
    """Compare what the clients were told was stored with what the database holds: lost (acknowledged, not
    stored), unacknowledged (stored, never acknowledged), duplicated (an item judged twice by one annotator, or
    a judgement id acknowledged twice) and overfilled items (more rankings than wanted)."""
    from collections import Counter

    acknowledged = Counter(judgement for log in logs for _, judgement in log.submitted)
    stored = store.judgements_by_id(project)
    pairs = Counter((row.item_id, row.annotator) for row in stored.values())
    return {
        "acknowledged": sum(acknowledged.values()),
        "stored": len(stored),
        "lost": sum(1 for judgement in acknowledged if judgement not in stored),
        "unacknowledged": sum(1 for judgement in stored if judgement not in acknowledged),
        "duplicated": sum(n - 1 for n in acknowledged.values() if n > 1) + sum(n - 1 for n in pairs.values() if n > 1),
        "overfilled_items": sum(item.completed > item.target for item in store.items(project)),
        "client_errors": sum(len(log.errors) for log in logs),
    }
