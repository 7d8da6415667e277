"""Active selection: the disagreement score, the queue it orders (library and `label prioritize`), the RM column
of the dashboard, and the world simulation of benchmarks/label_active.py run end to end at a tiny size."""

from __future__ import annotations

import importlib
import json

import numpy as np
import pytest
import torch

from rewardkit.cli import main
from rewardkit.ensemble import RewardEnsemble
from rewardkit.label.active import disagreement_priorities, pair_disagreement
from rewardkit.label.db import open_database
from rewardkit.label.store import LabelStore
from rewardkit.model import RewardModel
from tests.conftest import single_thread_fixture
from tests.label.conftest import PASSWORD

single_thread = single_thread_fixture()
ITEMS = [{"id": f"i{n}", "prompt": f"Human: question {n}?\n\nAssistant:",
          "responses": [f" answer {n}", f" maybe {n} or {n + 1}", " no idea", f" it is {n * 7}"]} for n in range(6)]


def test_pair_disagreement():
    same = np.array([[1.0, 0.0, -1.0], [1.0, 0.0, -1.0]])
    assert pair_disagreement(same) == 0.0
    opposite = np.array([[2.0, 0.0], [0.0, 2.0]])
    p = 1 / (1 + np.exp(-2.0))
    assert pair_disagreement(opposite) == pytest.approx(p - 0.5)  # std of {p, 1 - p}
    assert pair_disagreement(np.array([[3.0, 0.0, 0.0], [0.0, 0.0, 0.0]])) > pair_disagreement(same)


@pytest.fixture(scope="module")
def ensemble_dir(tiny_sft, tmp_path_factory):
    """Two reward models from the tiny SFT model whose heads differ (seeds), saved as an ensemble."""
    members = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        members.append(RewardModel.from_sft(tiny_sft).eval())
    path = tmp_path_factory.mktemp("ensemble")
    RewardEnsemble(members).save_pretrained(path)
    return path


def test_the_queue_follows_the_ensembles_disagreement(tmp_path, ensemble_dir, capsys):
    url = f"sqlite:///{tmp_path / 'labels.db'}"
    (tmp_path / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ITEMS))
    assert main(["label", "init", "--db", url]) == 0
    assert main(["label", "import", "--db", url, "--project", "p", "--data", str(tmp_path / "items.jsonl"),
                 "--overlap", "0"]) == 0
    assert main(["label", "prioritize", "--db", url, "--project", "p", "--ensemble", str(ensemble_dir)]) == 0
    assert "ordered 6 open items of 'p' by ensemble disagreement" in capsys.readouterr().out
    store = LabelStore(open_database(url))
    items = store.items("p")
    ensemble = RewardEnsemble.from_pretrained(ensemble_dir)
    expected = {}
    for item in items:
        members = ensemble.score([item.prompt] * 4, item.responses, return_details=True).member_rewards.numpy()
        expected[item.id] = pair_disagreement(members)
    assert {item.id: item.priority for item in items} == pytest.approx(expected)
    assert len(set(expected.values())) == 6
    store.add_annotator("ana", password=PASSWORD)
    ana = store.authenticate("ana", PASSWORD)
    first = store.next_assignment("p", ana.id)
    assert first.item_id == max(expected, key=expected.get)  # the most disputed item comes first
    # judged items keep their place; only open ones are re-scored
    assert set(disagreement_priorities(store, "p", ensemble)) == {i.id for i in items}


def test_the_dashboard_shows_a_loaded_rms_agreement(tmp_path, ensemble_dir):
    from rewardkit.label.cli import reward_function
    from rewardkit.label.stats import project_stats, reward_labels
    from rewardkit.label.store import Decision, ProjectSettings, parse_item

    url = f"sqlite:///{tmp_path / 'labels.db'}"
    main(["label", "init", "--db", url])
    store = LabelStore(open_database(url))
    store.create_project(ProjectSettings("p", overlap_fraction=0.0))
    store.import_items("p", [parse_item(r, "x") for r in ITEMS[:3]])
    store.add_annotator("ana", password=PASSWORD)
    ana = store.authenticate("ana", PASSWORD)
    while (view := store.next_assignment("p", ana.id)) is not None:
        store.submit(view.id, ana.id, Decision(ranking=[0, 1, 2, 3]))
    score = reward_function(str(ensemble_dir / "member-0"))  # a single reward model
    rewards = score(store.items("p"))
    stats = project_stats(store.items("p"), store.judgements("p"), rewards)
    agree = np.concatenate([reward_labels(r) for r in rewards.values()])  # ana's labels are all 1.0
    assert stats["annotators"][0]["rm_agreement"] == pytest.approx(agree.mean())
    assert stats["rm_agreement"] == pytest.approx(agree.mean()) and stats["rm_loaded"]


def test_the_world_simulation_runs_end_to_end(tmp_path):
    """benchmarks/label_active.py at a tiny size: simulated world labellers rank through the HTTP API, the export
    trains ensembles, and the two queue orders share round 0 (same items, same label noise)."""
    active = importlib.import_module("benchmarks.label_active")
    config = active.ActiveConfig(seeds=[0], pool=12, k=3, eval_prompts=12, batch=4, rounds=2, annotators=2,
                                 members=2, sft_steps=15, sft_demonstrations=300)
    results = active.run(config, tmp_path)
    random_curve, active_curve = results["runs"]["0"]["random"], results["runs"]["0"]["active"]
    assert [p["items"] for p in random_curve] == [p["items"] for p in active_curve] == [4, 8]
    assert [p["comparisons"] for p in random_curve] == [12, 24]
    assert random_curve[0]["gold_accuracy"] == active_curve[0]["gold_accuracy"]  # common random numbers
    assert all(0.0 <= p["gold_accuracy"] <= 1.0 for p in random_curve + active_curve)
    assert results["summary"]["per_round"][0]["active_minus_random"] == 0.0
    assert "machine" in results and results["machine"]["load_average"]
