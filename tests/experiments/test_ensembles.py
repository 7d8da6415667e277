"""`rewardkit experiment ensembles` on tiny sizes: pretrain and fine-tune ensembles beside one RM, clean and flipped
labels, every scorer re-ranking the same samples."""

from __future__ import annotations

import json

import pytest

from rewardkit.experiments.ensembles import LABEL_SETS, SINGLE, EnsemblesConfig, flip_pairs, run_ensembles
from rewardkit.experiments.ensembles_cli import write_report
from rewardkit.progress import Console
from rewardkit.rl.statistics import NOT_RESOLVED
from tests.conftest import one_thread
from tests.demo.conftest import TINY

CONFIG = EnsemblesConfig(seeds=(0, 1), setup=TINY, members=2)


@pytest.fixture(scope="module")
def ensembles(tmp_path_factory):
    output = tmp_path_factory.mktemp("ensembles")
    with one_thread():
        results = run_ensembles(CONFIG, output, Console(enabled=False))
    return output, results


def test_flip_pairs_flips_the_share_asked_for():
    records = [{"prompt": f"p{i}", "responses": ["a", "b", "c", "d", "e"], "ranking": [0, 1, 2, 3, 4]}
               for i in range(200)]
    pairs = flip_pairs(records, 0.25, seed=0)
    assert len(pairs) == 200 * 10
    order = {"a": 0, "b": 1, "c": 2, "d": 3, "e": 4}
    flipped = sum(order[p["chosen"]] > order[p["rejected"]] for p in pairs) / len(pairs)
    assert 0.22 < flipped < 0.28
    assert flip_pairs(records, 0.0, seed=0)[0] == {"prompt": "p0", "chosen": "a", "rejected": "b"}


def test_every_scorer_of_both_label_sets(ensembles):
    output, results = ensembles
    scorers = {SINGLE} | {f"{kind} ensemble {how}" for kind in ("fine-tune", "pretrain") for how in
                          ("mean", "min", "uwo")}
    for label_set in LABEL_SETS:
        entry = results[label_set]
        assert set(entry["best_of_n"]) == scorers
        assert set(entry["minus_single_at_n_max"]) == set(entry["verdicts"]) == scorers - {SINGLE}
        for name, difference in entry["minus_single_at_n_max"].items():
            assert len(difference["per_seed"]) == 2
            if difference["low"] <= 0 <= difference["high"]:
                assert entry["verdicts"][name] == NOT_RESOLVED
        assert all(s["points"][0]["gold"]["value"] == 0.0 for s in entry["best_of_n"].values())  # n = 1: SFT
    seed_dir = output / "seed-0"
    assert (seed_dir / "backbone-seed-1" / "config.json").exists()  # the pretrain ensemble's second backbone
    assert len(list((seed_dir / "rm-runs").iterdir())) == 2 * (1 + 2 * CONFIG.members)


def test_report_and_plot(ensembles, tmp_path):
    output, results = ensembles
    files = write_report(results, json.loads((output / "timings.json").read_text()), tmp_path)
    text = files["markdown"].read_text()
    assert all(label_set in text for label_set in LABEL_SETS) and "pretrain ensemble min" in text
    assert (tmp_path / "plots" / "ensembles.png").read_bytes()[:4] == b"\x89PNG"


def test_help_lists_every_experiment_and_bad_members_get_one_line(tmp_path):
    import subprocess
    import sys

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "rewardkit", "experiment", *args], capture_output=True,
                              text=True, timeout=120)

    listing = cli("--help")
    assert listing.returncode == 0
    assert all(name in listing.stdout for name in ("prm", "frontier", "scaling", "ensembles"))
    assert "25% label flips" in listing.stdout
    bad = cli("ensembles", "--members", "1", "--output", str(tmp_path / "out"))
    assert bad.returncode == 2
    assert bad.stderr.strip() == "rewardkit: error: --members must be at least 2, got 1"
