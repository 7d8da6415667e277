"""Agreement statistics (Krippendorff's alpha against the published example and the `krippendorff` package) and
the export: every annotator's ranking kept, read back as soft labels, and trained on by `rewardkit train`."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import krippendorff
import numpy as np
import pytest

from rewardkit.cli import main
from rewardkit.data import load_preferences
from rewardkit.label.stats import krippendorff_alpha, pair_labels, project_stats
from rewardkit.label.store import Decision, ItemRow, JudgementRow
from tests.label.conftest import PASSWORD, add_project

# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", the worked example: 4 observers, 12 units,
# published alpha = 0.743 (nominal), 0.815 (ordinal), 0.849 (interval).
PUBLISHED = np.array([
    [1, 2, 3, 3, 2, 1, 4, 1, 2, np.nan, np.nan, np.nan],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, np.nan, 3],
    [np.nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, np.nan],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, np.nan],
])


@pytest.mark.parametrize(("metric", "published"), [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849)])
def test_krippendorff_alpha_matches_the_published_example(metric, published):
    assert krippendorff_alpha(PUBLISHED, metric) == pytest.approx(published, abs=5e-4)
    assert krippendorff_alpha(PUBLISHED, metric) == pytest.approx(
        krippendorff.alpha(reliability_data=PUBLISHED, level_of_measurement=metric), abs=1e-12)


def test_krippendorff_alpha_matches_the_package_on_random_pairwise_labels():
    rng = np.random.default_rng(0)
    for _ in range(5):
        data = rng.integers(0, 3, size=(6, 80)) / 2.0  # 1 / 0.5 / 0 labels of 6 coders on 80 pairs
        data[rng.random(data.shape) < 0.4] = np.nan
        for metric in ("nominal", "ordinal", "interval"):
            expected = krippendorff.alpha(reliability_data=data, level_of_measurement=metric)
            assert krippendorff_alpha(data, metric) == pytest.approx(expected, abs=1e-10)
    assert np.isnan(krippendorff_alpha(np.ones((3, 4))))  # one value only: alpha is undefined


def _judgement(item, annotator, ranking, seconds=10.0, minute=0):
    created = datetime(2026, 1, 1) + timedelta(minutes=minute)
    return JudgementRow(item, annotator, ranking, None, False, seconds, created)


def test_project_stats_on_a_hand_checked_case():
    items = [ItemRow(i, str(i), "p", ["a", "b", "c"], {}, 3, 3, 0.0) for i in range(2)]
    judgements = [
        _judgement(0, "ana", [0, 1, 2], 5, 0), _judgement(0, "bo", [0, 1, 2], 15, 1), _judgement(0, "cy", [2, 1, 0]),
        _judgement(1, "ana", [0, [1, 2]], 7, 2), _judgement(1, "bo", [1, 0, 2], 9, 3),
        JudgementRow(1, "cy", None, "prompt unclear or broken", True, 3.0, datetime(2026, 1, 1)),
    ]
    rewards = {0: [3.0, 2.0, 1.0], 1: [0.0, 1.0, 2.0]}
    stats = project_stats(items, judgements, rewards)
    # pairs (0,1), (0,2), (1,2): ana [1,1,1] / [1,1,.5]; bo [1,1,1] / [0,1,1]; cy [0,0,0]
    pairwise = dict(zip(stats["pairwise"]["names"], stats["pairwise"]["agreement"], strict=True))
    assert pairwise["ana"] == [None, pytest.approx(4 / 6), 0.0] and pairwise["bo"][2] == 0.0
    assert stats["mean_pairwise_agreement"] == pytest.approx(4 / 12)
    ana = next(a for a in stats["annotators"] if a["name"] == "ana")
    # item 0: others (bo, cy) split on every pair -> no majority; item 1: bo alone is the majority [0, 1, 1]
    # against ana's [1, 1, 0.5]: 0 + 1 + 1/2 (her tie counts half)
    assert ana["vs_others_majority"] == pytest.approx(1 / 2) and ana["pairs_vs_majority"] == 3
    # RM labels: item 0 [1,1,1] (agrees with ana's 3), item 1 [0,0,0] (ana decided 2 pairs: both wrong)
    assert ana["rm_agreement"] == pytest.approx(3 / 5)
    assert ana["median_seconds"] == 6.0 and ana["per_hour"] == pytest.approx(30.0)
    cy = next(a for a in stats["annotators"] if a["name"] == "cy")
    assert cy["skips"] == 1 and cy["unsafe_flags"] == 1 and cy["rankings"] == 1
    data = np.full((3, 6), np.nan)
    data[0] = [1, 1, 1, 1, 1, 0.5]
    data[1] = [1, 1, 1, 0, 1, 1]
    data[2, :3] = [0, 0, 0]
    both_ways = np.concatenate([data, 1.0 - data], axis=1)  # a pair's orientation must not matter
    assert stats["krippendorff_alpha"] == pytest.approx(
        krippendorff.alpha(reliability_data=both_ways, level_of_measurement="interval"))
    assert stats["alpha_units"] == 6 and stats["overlap_items"] == 2


def test_alpha_does_not_depend_on_the_order_of_the_responses():
    """Two annotators who agree on 4 of 5 pairs, response 0 always the best: flipping the stored order of the
    responses flips every label, and alpha must stay the same (about 2 * 0.8 - 1 with symmetric chance)."""
    items = [ItemRow(i, str(i), "p", ["a", "b"], {}, 2, 2, 0.0) for i in range(5)]
    rankings = [[0, 1]] * 5
    other = [[0, 1]] * 4 + [[1, 0]]
    flipped = [r[::-1] for r in rankings]
    flipped_other = [r[::-1] for r in other]

    def alpha(first, second):
        rows = [_judgement(i, "ana", r) for i, r in enumerate(first)] + \
               [_judgement(i, "bo", r) for i, r in enumerate(second)]
        return project_stats(items, rows)["krippendorff_alpha"]

    assert alpha(rankings, other) == pytest.approx(alpha(flipped, flipped_other))
    assert 0.5 < alpha(rankings, other) < 0.7


def test_pair_labels_read_ties():
    assert pair_labels([2, [0, 3], 1], 4).tolist() == [1.0, 0.0, 0.5, 0.0, 0.0, 1.0]


@pytest.fixture(params=["sqlite"])
def db_url(request, tmp_path):
    yield f"sqlite:///{tmp_path / 'labels.db'}"


def test_export_keeps_every_ranking_and_trains_unchanged(store, db_url, tiny_sft, tmp_path, capsys):
    add_project(store, n=12, k=4, annotations_per_item=2, overlap_fraction=0.5, overlap_annotations=3)
    annotators = []
    for name in ("ana", "bo", "cy"):
        store.add_annotator(name, password=PASSWORD)
        annotators.append(store.authenticate(name, PASSWORD))
    rng = np.random.default_rng(0)
    for annotator in annotators:
        while (view := store.next_assignment("demo", annotator.id)) is not None:
            # mostly response 0 first (the right answer), sometimes a swap or a tie
            ranking = [0, 1, 2, 3] if rng.random() < 0.6 else [1, 0, [2, 3]]
            store.submit(view.id, annotator.id, Decision(ranking=ranking, unsafe=view.item_id == 1))
    output = tmp_path / "export.jsonl"
    assert main(["label", "export", "--db", db_url, "--project", "demo", "--output", str(output)]) == 0
    assert "exported 12 records (30 rankings)" in capsys.readouterr().out
    records = [json.loads(line) for line in output.read_text().splitlines()]
    assert [len(r["rankings"]) for r in records].count(3) == 6 and all(len(r["annotators"]) >= 2 for r in records)
    assert records[0]["id"] == "q0" and records[0]["unsafe_flags"] == len(records[0]["rankings"])

    data = load_preferences(output)  # the ranking format reads every annotator's ranking as a soft label
    assert data.report.groups == 12 and data.report.comparisons == 72
    probs = {round(c.prob, 3) for g in data for c in g.comparisons}
    assert probs - {1.0} and min(probs) >= 0.5  # disagreement became soft labels
    assert all(len(c.annotator_labels) == len(r["rankings"]) for g, r in zip(data, records, strict=True)
               for c in g.comparisons)

    assert main(["train", "--model", str(tiny_sft), "--data", str(output), "--output", str(tmp_path / "rm"),
                 "--max-steps", "4", "--batch-size", "4", "--eval-fraction", "0.25", "--no-progress"]) == 0
    summary = json.loads((tmp_path / "rm" / "train_summary.json").read_text())
    assert summary["steps"] == 4 and summary["eval_comparisons"] > 0

    safe = tmp_path / "safe.jsonl"
    assert main(["label", "export", "--db", db_url, "--project", "demo", "--output", str(safe),
                 "--exclude-unsafe", "--one-per-annotator"]) == 0
    lines = [json.loads(line) for line in safe.read_text().splitlines()]
    kept = 30 - len(records[0]["rankings"])
    assert len(lines) == kept and all("ranking" in r and "annotator" in r for r in lines)
    assert load_preferences(safe).report.groups == kept


def test_rankings_read_as_soft_labels_and_errors_name_the_annotator(tmp_path):
    from rewardkit.data.errors import DataError

    path = tmp_path / "r.jsonl"
    path.write_text('{"prompt": "p", "responses": ["a", "b", "c"], "rankings": [[0, 1, 2], [1, 0, 2], [[0, 1], 2]]}\n')
    (group,) = load_preferences(path).groups
    first = group.comparisons[0]  # (0, 1): above, below, tie -> a coin flip, labels kept from 0's side
    assert (first.better, first.worse, first.prob, first.annotator_labels) == (0, 1, 0.5, (1.0, 0.0, 0.5))
    assert [c.prob for c in group.comparisons[1:]] == [1.0, 1.0]
    path.write_text('{"prompt": "p", "responses": ["a", "b"], "rankings": [[0, 1], [0, 0]]}\n')
    with pytest.raises(DataError, match=r"line 1, field 'rankings\[1\]': index 0 appears twice"):
        load_preferences(path)
    path.write_text('{"prompt": "p", "responses": ["a", "b"], "rankings": [[0, 1]], "ranking": [0, 1]}\n')
    with pytest.raises(DataError, match="exactly one of 'ranking'"):
        load_preferences(path)
