"""`rewardkit label ...` end to end: set-up commands, one-line errors, generation from a tiny Llama, and the
server as a process: killed with SIGKILL it loses nothing already submitted; SIGTERM stops it cleanly."""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import subprocess
import sys

import pytest

from rewardkit.cli import main
from rewardkit.label.db import open_database
from rewardkit.label.simulate import LabelClient
from rewardkit.label.store import LabelStore
from tests.label.conftest import PASSWORD

ITEMS = [{"id": f"i{n}", "prompt": f"prompt {n}", "responses": [f"a{n}", f"b{n}", f"c{n}"]} for n in range(8)]


def _set_up(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'labels.db'}"
    (tmp_path / "pw").write_text(PASSWORD + "\n")
    (tmp_path / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ITEMS))
    (tmp_path / "guide.md").write_text("Rank by **helpfulness**.")
    assert main(["label", "init", "--db", url, "--admin", "boss", "--password-file", str(tmp_path / "pw")]) == 0
    assert main(["label", "add-annotator", "ana", "--db", url, "--password-file", str(tmp_path / "pw")]) == 0
    assert main(["label", "import", "--db", url, "--project", "demo", "--data", str(tmp_path / "items.jsonl"),
                 "--guidelines", str(tmp_path / "guide.md"), "--overlap", "0.25"]) == 0
    if capsys is None:
        return url, tmp_path
    out = capsys.readouterr().out
    assert "schema revision 0001" in out and "imported 8 items into 'demo' (2 wanting several rankings)" in out
    return url, tmp_path


@pytest.fixture
def labels(tmp_path, capsys):
    """An initialised SQLite database with an admin, an annotator and a project of 8 items; (url, folder)."""
    return _set_up(tmp_path, capsys)


@pytest.fixture(scope="module")
def unchanged_labels(tmp_path_factory):
    """The same, shared by tests that must leave it as it is."""
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        url, folder = _set_up(tmp_path_factory.mktemp("labels"), None)
    return url, folder


def test_setup_commands_and_stats(labels, capsys):
    url, folder = labels
    assert main(["label", "add-annotator", "bo", "--db", url, "--base-url", "http://10.0.0.5:9000"]) == 0
    assert re.search(r"invite link for 'bo' .*: http://10\.0\.0\.5:9000/invite/\S{40,}", capsys.readouterr().out)
    assert main(["label", "init", "--db", url]) == 0  # again: nothing to upgrade
    assert main(["label", "import", "--db", url, "--project", "demo", "--data", str(folder / "items.jsonl")]) == 0
    assert "8 already there, left alone" in capsys.readouterr().out
    store = LabelStore(open_database(url))
    assert store.projects()[0]["guidelines"] == "Rank by **helpfulness**."
    ana = store.authenticate("ana", PASSWORD)
    for _ in range(3):
        view = store.next_assignment("demo", ana.id)
        from rewardkit.label.store import Decision

        store.submit(view.id, ana.id, Decision(ranking=[2, 1, 0]))
    assert main(["label", "stats", "--db", url, "--project", "demo", "--output", str(folder / "s.json")]) == 0
    assert "demo: 3 rankings of 10 wanted" in capsys.readouterr().out
    assert json.loads((folder / "s.json").read_text())["annotators"][0]["rankings"] == 3


@pytest.mark.parametrize(("args", "expected"), [
    (["export", "--db", "mysql://x/y", "--project", "p", "--output", "o.jsonl"], "only SQLite"),
    (["export", "--db", "sqlite:///no/such/dir/l.db", "--project", "p", "--output", "o"], "does not exist"),
    (["export", "--db", "{db}", "--project", "nope", "--output", "{dir}/o.jsonl"], "no project named 'nope'"),
    (["export", "--db", "{db}", "--project", "demo", "--output", "{dir}/no/o.jsonl"], "does not exist"),
    (["import", "--db", "{db}", "--project", "demo", "--data", "{dir}/bad.jsonl"], "bad.jsonl line 2, field"),
    (["import", "--db", "{db}", "--project", "x", "--data", "{dir}/items.jsonl", "--overlap", "2"], "--overlap"),
    (["add-annotator", "ana", "--db", "{db}"], "already exists"),
    (["add-annotator", "a b", "--db", "{db}"], "use 1-64 letters"),
    (["add-annotator", "cy", "--db", "{db}", "--password-file", "{dir}/short"], "at least 8 characters"),
    (["generate", "--db", "{db}", "--project", "g", "--policy", "{dir}", "--prompts", "{dir}/items.jsonl"],
     "could not load a causal LM"),
    (["generate", "--db", "{db}", "--project", "g", "--policy", "{dir}", "--prompts", "p.txt", "--k", "1"],
     "--k must be at least 2"),
])
def test_user_mistakes_are_one_line_errors(unchanged_labels, capsys, args, expected):
    url, folder = unchanged_labels
    (folder / "bad.jsonl").write_text(json.dumps(ITEMS[0]) + "\n" + '{"prompt": "p", "responses": ["x"]}\n')
    (folder / "short").write_text("abc\n")
    args = [a.replace("{db}", url).replace("{dir}", str(folder)) for a in args]
    assert main(["label", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rewardkit: error:") and expected in err and len(err.strip().splitlines()) == 1, err


def test_generate_samples_k_distinct_responses_from_a_causal_lm(labels, tiny_sft, capsys):
    url, folder = labels
    (folder / "prompts.txt").write_text("Human: How do I bake bread? Assistant:\nHuman: Tell me a joke. Assistant:\n")
    common = ["--db", url, "--policy", str(tiny_sft), "--prompts", str(folder / "prompts.txt"), "--k", "3",
              "--max-new-tokens", "6", "--seed", "3", "--no-progress"]
    assert main(["label", "generate", "--project", "gen", "--output", str(folder / "gen.jsonl"), *common]) == 0
    assert "imported 2 items into 'gen'" in capsys.readouterr().out
    assert main(["label", "generate", "--project", "gen2", *common]) == 0
    store = LabelStore(open_database(url))
    items, again = store.items("gen"), store.items("gen2")
    assert [len(i.responses) for i in items] == [3, 3]
    assert all(len({r.strip() for r in i.responses}) == 3 and all(r.strip() for r in i.responses) for i in items)
    assert [i.responses for i in items] == [i.responses for i in again]  # the seed reaches the sampler
    written = [json.loads(line) for line in (folder / "gen.jsonl").read_text().splitlines()]
    assert [w["responses"] for w in written] == [i.responses for i in items] and written[0]["policy"]


def _start_server(url: str) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen([sys.executable, "-m", "rewardkit", "label", "serve", "--db", url, "--port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = process.stdout.readline()  # the banner, printed once the socket is bound
    match = re.search(r"http://(127\.0\.0\.1:\d+)", line)
    if match is None:
        process.kill()
        raise AssertionError(f"no banner: {line!r} {process.stderr.read()}")
    return process, f"http://{match.group(1)}"


def test_a_killed_server_loses_nothing_and_sigterm_stops_cleanly(labels):
    url, _ = labels
    process, base = _start_server(url)
    try:
        client = LabelClient(base)
        client.login("ana", PASSWORD)
        acknowledged = []
        for _ in range(5):
            task = client.next("demo")
            acknowledged.append((task["item"], client.submit(task["assignment"], ranking=[0, [1, 2]])))
        open_task = client.next("demo")  # handed out, not yet judged
    finally:
        process.send_signal(signal.SIGKILL)  # no shutdown at all
        process.wait(timeout=30)
    path = url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    store = LabelStore(open_database(url))
    stored = [(j.item_id, j.ranking) for j in store.judgements("demo")]
    assert stored == [(item, [0, [1, 2]]) for item, _ in acknowledged]

    process, base = _start_server(url)
    try:
        client = LabelClient(base)
        client.login("ana", PASSWORD)
        task = client.next("demo")
        assert task["assignment"] == open_task["assignment"]  # the open one survived the crash too
        client.submit(task["assignment"], ranking=[2, 1, 0])
    finally:
        process.send_signal(signal.SIGTERM)
        # uvicorn finishes requests in flight, then exits by the signal it caught (re-raised: status -15)
        assert process.wait(timeout=30) in (0, -signal.SIGTERM)
    assert "Traceback" not in process.stderr.read()
    assert len(store.judgements("demo")) == 6
