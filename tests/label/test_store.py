"""The queue and submissions on SQLite and PostgreSQL: targets, overlap, no repeats, skips, conflicts, leases,
priorities, concurrency; and the migrations themselves."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from rewardkit.errors import RewardkitError
from rewardkit.label.db import current_revision, head_revision, make_engine, open_database, upgrade
from rewardkit.label.models import Assignment, Base, Item, Judgement
from rewardkit.label.store import ConflictError, Decision, NotFoundError, ProjectSettings, read_items
from tests.label.conftest import PASSWORD, add_project


def _annotators(store, *names):
    for name in names:
        store.add_annotator(name, password=PASSWORD)
    return [store.authenticate(name, PASSWORD) for name in names]


def _drain(store, project, annotator, ranking=(0, 1, 2, 3)):
    """Rank everything the queue gives this annotator; returns the item ids in the order given."""
    seen = []
    while (view := store.next_assignment(project, annotator.id)) is not None:
        seen.append(view.item_id)
        store.submit(view.id, annotator.id, Decision(ranking=list(ranking)[:view.k]))
    return seen


def test_migrations_build_the_models_schema_and_refuse_an_old_one(db_url):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    engine = make_engine(db_url)
    with pytest.raises(RewardkitError, match="rewardkit label init"):
        open_database(db_url)
    assert current_revision(engine) is None
    assert upgrade(engine) == head_revision(engine) == current_revision(engine)
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    assert upgrade(engine) == head_revision(engine)  # idempotent
    open_database(db_url)
    engine.dispose()


def test_targets_overlap_and_never_the_same_item_twice(store):
    add_project(store, n=20, annotations_per_item=1, overlap_fraction=0.25, overlap_annotations=3)
    targets = Counter(item.target for item in store.items("demo"))
    assert targets == {1: 15, 3: 5}  # 25% of the items want 3 rankings
    ana, bo, cy, di = _annotators(store, "ana", "bo", "cy", "di")
    firsts = [_drain(store, "demo", a) for a in (ana, bo, cy, di)]
    for items in firsts:
        assert len(items) == len(set(items))  # never the same item twice
    assert len(firsts[0]) == 20  # the first annotator can take every item
    assert len(firsts[1]) == len(firsts[2]) == 5 and firsts[3] == []  # then only the overlap items have room
    counts = Counter(j.item_id for j in store.judgements("demo"))
    assert {item.id: item.target for item in store.items("demo")} == dict(counts)


def test_import_is_idempotent_and_keeps_extra_fields(store, tmp_path):
    path = tmp_path / "items.jsonl"
    path.write_text('{"prompt": "p", "responses": ["a", "b"], "gold": [1, 0], "ranking": [0, 1]}\n'
                    '{"id": 7, "prompt": [{"role": "user", "content": "hi"}], "responses": ["x", "y", "z"]}\n')
    items = read_items(path)
    store.create_project(ProjectSettings("demo"))
    assert store.import_items("demo", items)["added"] == 2
    assert store.import_items("demo", items) == {"added": 0, "duplicates": 2, "overlap": 0}
    first, second = store.items("demo")
    assert first.meta == {"gold": [1, 0]} and first.external_id.startswith("sha256:")  # labels are not kept
    assert second.external_id == "7" and second.prompt == [{"role": "user", "content": "hi"}]


def test_bad_items_name_the_line_and_field(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"prompt": "p", "responses": ["a", "b"]}\n{"prompt": "p", "responses": ["a", "a"]}\n')
    with pytest.raises(RewardkitError, match=r"bad.jsonl line 2, field 'responses\[1\]': same text"):
        read_items(path)


def test_skip_gives_the_slot_back_and_unsafe_is_kept(store):
    add_project(store, n=1, overlap_fraction=0.0)
    ana, bo = _annotators(store, "ana", "bo")
    view = store.next_assignment("demo", ana.id)
    store.submit(view.id, ana.id, Decision(skip_reason="prompt unclear or broken", unsafe=True))
    assert store.next_assignment("demo", ana.id) is None  # never given again to the one who skipped
    other = store.next_assignment("demo", bo.id)
    assert other is not None and other.item_id == view.item_id
    store.submit(other.id, bo.id, Decision(ranking=[[0, 1], 2, 3]))
    skipped, ranked = store.judgements("demo")
    assert skipped.skip_reason == "prompt unclear or broken" and skipped.unsafe and skipped.ranking is None
    assert ranked.ranking == [[0, 1], 2, 3]
    assert store.items("demo")[0].completed == 1


def test_a_submission_is_stored_once_and_only_by_its_annotator(store):
    add_project(store, n=2)
    ana, bo = _annotators(store, "ana", "bo")
    view = store.next_assignment("demo", ana.id)
    assert store.next_assignment("demo", ana.id).id == view.id  # the open assignment comes back
    with pytest.raises(NotFoundError):
        store.assignment(view.id, bo.id)  # someone else's looks like none
    with pytest.raises(NotFoundError):
        store.submit(view.id, bo.id, Decision(ranking=[0, 1, 2, 3]))
    with pytest.raises(RewardkitError, match="index 4 is out of range"):
        store.submit(view.id, ana.id, Decision(ranking=[0, 1, 2, 4]))
    store.submit(view.id, ana.id, Decision(ranking=[3, 2, 1, 0]))
    with pytest.raises(ConflictError, match="already submitted"):
        store.submit(view.id, ana.id, Decision(ranking=[0, 1, 2, 3]))
    assert [j.ranking for j in store.judgements("demo")] == [[3, 2, 1, 0]]


def test_an_expired_lease_goes_back_to_the_queue(store):
    add_project(store, n=1, overlap_fraction=0.0, lease_minutes=30)
    ana, bo = _annotators(store, "ana", "bo")
    view = store.next_assignment("demo", ana.id)
    assert store.next_assignment("demo", bo.id) is None  # the only slot is taken
    with store.sessions.begin() as session:  # ana walked away 31 minutes ago
        session.execute(update(Assignment).values(assigned_at=view.assigned_at - timedelta(minutes=31)))
    other = store.next_assignment("demo", bo.id)
    assert other is not None and other.item_id == view.item_id
    with pytest.raises(ConflictError, match="already expired"):
        store.submit(view.id, ana.id, Decision(ranking=[0, 1, 2, 3]))


def test_priorities_order_the_queue(store):
    add_project(store, n=5, overlap_fraction=0.0)
    (ana,) = _annotators(store, "ana")
    ids = [item.id for item in store.items("demo")]
    store.set_priorities("demo", {ids[3]: 2.0, ids[1]: 1.0})
    assert _drain(store, "demo", ana) == [ids[3], ids[1], ids[0], ids[2], ids[4]]


def test_display_order_is_a_permutation_and_rankings_use_response_indices(store):
    add_project(store, n=1, k=6)
    (ana,) = _annotators(store, "ana")
    view = store.next_assignment("demo", ana.id)
    indices = [index for index, _ in view.responses]
    assert sorted(indices) == list(range(6))
    item = store.items("demo")[0]
    assert [text for _, text in view.responses] == [item.responses[i] for i in indices]


def test_concurrent_annotators_never_overfill_or_duplicate(store):
    """8 threads (2 per annotator, like two browser tabs) race for 30 items wanting 2 rankings each."""
    add_project(store, n=30, annotations_per_item=2, overlap_fraction=0.0)
    annotators = _annotators(store, "a1", "a2", "a3", "a4")
    conflicts, errors = [], []

    def worker(annotator):
        try:
            while (view := store.next_assignment("demo", annotator.id)) is not None:
                try:
                    store.submit(view.id, annotator.id, Decision(ranking=[0, 1, 2, 3]))
                except ConflictError:
                    conflicts.append(view.id)  # the other tab submitted it first
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(repr(error))

    threads = [threading.Thread(target=worker, args=(a,)) for a in annotators for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    with store.sessions.begin() as session:
        items = session.scalars(select(Item)).all()
        assert all(item.completed == item.assigned == item.target == 2 for item in items)
        pairs = session.execute(select(Judgement.item_id, Judgement.annotator_id)).all()
        assert len(pairs) == 60 and len(set(pairs)) == 60  # nobody judged an item twice
        assert session.scalar(select(Judgement.id).where(Judgement.ranking.is_(None))) is None
