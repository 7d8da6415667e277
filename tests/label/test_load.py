"""A short load test: 20 simulated annotators submitting at once through the HTTP API, on SQLite and PostgreSQL;
nothing lost, nothing stored twice, no item over its target. (The minute-long run: benchmarks/label_load.py.)"""

from __future__ import annotations

import random

from rewardkit.label.simulate import audit_submissions, run_annotators
from tests.label.conftest import PASSWORD, add_project

ANNOTATORS = 20


def test_twenty_annotators_at_once_lose_and_duplicate_nothing(store, serve):
    add_project(store, n=400, k=4, annotations_per_item=2, overlap_fraction=0.25, overlap_annotations=3)
    names = [f"sim{i:02d}" for i in range(ANNOTATORS)]
    for name in names:
        store.add_annotator(name, password=PASSWORD)
    url = serve(store)

    def rank(prompt, responses):
        order = [index for index, _ in responses]
        random.shuffle(order)
        return order

    logs = run_annotators(url, "demo", [(name, PASSWORD, rank) for name in names], seconds=4.0)
    audit = audit_submissions(store, "demo", logs)
    assert audit["client_errors"] == 0, [log.errors for log in logs if log.errors]
    assert audit["acknowledged"] >= ANNOTATORS  # every annotator got work done
    assert audit["lost"] == audit["unacknowledged"] == audit["duplicated"] == audit["overfilled_items"] == 0
    assert audit["stored"] == audit["acknowledged"]
    for log in logs:
        assert len(log.items) == len(set(log.items))  # nobody was given the same item twice
        assert log.stopped == "time", (log.name, log.stopped)  # nobody was told "nothing left" while items were
