"""The labelling workflow on the database: accounts, projects, the queue, submissions. The web app, the command
line and the simulations all go through `LabelStore`; every method is one transaction.

Handing out work (`next_assignment`) and taking it back (`submit`) are each one transaction whose writes are
conditional UPDATEs: `items.assigned < items.target` for a slot, `assignments.status = 'active'` for a
submission. Whoever loses a race sees rowcount 0 and moves on, so two annotators can never both take an item's
last slot and a ranking can never be stored twice; the unique constraints (item, annotator) and (assignment) are
the database's own guarantee on top.
"""

from __future__ import annotations

import hashlib
import json
import random
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import and_, exists, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from rewardkit.data.errors import DataError
from rewardkit.data.formats import places_from_ranking
from rewardkit.data.io import read_records
from rewardkit.data.records import Text
from rewardkit.data.validate import check_responses, check_text, require, wrong_type
from rewardkit.errors import RewardkitError
from rewardkit.label.db import run_transaction
from rewardkit.label.models import Annotator, Assignment, AssignmentStatus, Item, Judgement, Project, Setting, utcnow

# Fields of an imported record that are labels, not content: dropped, so an export never carries two kinds.
LABEL_FIELDS = ("ranking", "rankings", "scores", "annotators")
SKIP_REASONS = ("cannot judge: outside my knowledge", "prompt unclear or broken", "responses too similar to rank",
                "other")
MAX_NAME = 64
MAX_QUEUE_LOOKS = 50


class NotFoundError(RewardkitError):
    """No such project, item or assignment, or not one this annotator may see (both look the same to them)."""


class ConflictError(RewardkitError):
    """The assignment was already judged, skipped or expired: nothing was stored."""


@dataclass(frozen=True)
class ItemRecord:
    prompt: Text
    responses: list[Text]
    external_id: str
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AnnotatorInfo:
    id: int
    name: str
    is_admin: bool
    credential: str = ""  # a digest of the password hash: sessions made before a password change stop working


@dataclass(frozen=True)
class ProjectSettings:
    name: str
    guidelines: str = ""
    annotations_per_item: int = 1
    overlap_fraction: float = 0.2
    overlap_annotations: int = 2
    render_markdown: bool = False
    lease_minutes: float = 60.0

    def validate(self) -> None:
        if not self.name.strip() or len(self.name) > 128:
            raise RewardkitError(f"project name {self.name!r} must be 1-128 characters")
        if self.annotations_per_item < 1:
            raise RewardkitError(f"--annotators-per-item must be at least 1, got {self.annotations_per_item}")
        if not 0.0 <= self.overlap_fraction <= 1.0:
            raise RewardkitError(f"--overlap must be a fraction in [0, 1], got {self.overlap_fraction}")
        if self.overlap_annotations < 2:
            raise RewardkitError(f"--overlap-annotators must be at least 2, got {self.overlap_annotations}")
        if self.lease_minutes <= 0:
            raise RewardkitError(f"--lease-minutes must be positive, got {self.lease_minutes}")


@dataclass(frozen=True)
class Decision:
    """An annotator's answer: a ranking (response indices best first, ties as nested lists) or a skip reason."""

    ranking: list[Any] | None = None
    skip_reason: str | None = None
    unsafe: bool = False
    comment: str = ""


@dataclass(frozen=True)
class AssignmentView:
    """What the ranking page shows: the item's responses in this assignment's (shuffled) display order."""

    id: int
    item_id: int
    project: str
    guidelines: str
    render_markdown: bool
    prompt: Text
    responses: list[tuple[int, Text]]  # (response index, response) in display order
    status: str
    assigned_at: datetime

    @property
    def k(self) -> int:
        return len(self.responses)


@dataclass(frozen=True)
class JudgementRow:
    item_id: int
    annotator: str
    ranking: list[Any] | None
    skip_reason: str | None
    unsafe: bool
    seconds: float
    created_at: datetime


@dataclass(frozen=True)
class ItemRow:
    id: int
    external_id: str
    prompt: Text
    responses: list[Text]
    meta: dict[str, Any]
    target: int
    completed: int
    priority: float


# ----------------------------------------------------------------------------------------------- reading items
def content_id(prompt: Text, responses: Sequence[Text]) -> str:
    """A stable id for a record without one, so that importing the same file twice adds nothing."""
    digest = hashlib.sha256(json.dumps([prompt, list(responses)], sort_keys=True).encode()).hexdigest()
    return f"sha256:{digest[:24]}"


def parse_item(record: Mapping[str, Any], where: str) -> ItemRecord:
    """{"prompt", "responses": [...]} (the ranking format without labels), optional "id"; other fields are kept."""
    prompt = check_text(require(record, "prompt", where), "prompt", where)
    raw = require(record, "responses", where)
    if not isinstance(raw, list) or len(raw) < 2:
        if isinstance(raw, list):
            raise DataError(where, f"expected at least 2 responses to rank, got {len(raw)}", field="responses",
                            reason="too few responses")
        raise wrong_type(raw, "a list of at least 2 responses", "responses", where)
    fields = [f"responses[{i}]" for i in range(len(raw))]
    responses = check_responses([check_text(r, f, where) for r, f in zip(raw, fields, strict=True)], fields, where)
    raw_id = record.get("id")
    if raw_id is not None and (isinstance(raw_id, bool) or not isinstance(raw_id, str | int) or str(raw_id) == ""):
        raise wrong_type(raw_id, "a non-empty string or integer", "id", where)
    external_id = str(raw_id) if raw_id is not None else content_id(prompt, responses)
    meta = {k: v for k, v in record.items() if k not in ("prompt", "responses", "id", *LABEL_FIELDS)}
    return ItemRecord(prompt, responses, external_id, meta)


def read_items(path: str | Path) -> list[ItemRecord]:
    """Every record of a JSONL / JSON / CSV / Parquet file as an item; the first bad one stops with its line."""
    items = []
    for raw in read_records(path):
        if isinstance(raw, DataError):
            raise raw
        items.append(parse_item(raw.data, raw.location))
    if not items:
        raise DataError(str(path), "holds no records", reason="empty source")
    return items


def places_to_ranking(places: Sequence[int]) -> list[Any]:
    """Place of each response (1 = best; equal places tie) -> ranking best first, ties as nested lists."""
    order: dict[int, list[int]] = {}
    for index, place in sorted(enumerate(places), key=lambda pair: (pair[1], pair[0])):
        order.setdefault(place, []).append(index)
    return [group[0] if len(group) == 1 else group for group in order.values()]


def check_ranking(ranking: Any, k: int) -> list[Any]:
    """A ranking of K responses: a permutation of 0..K-1 best first, ties as nested lists (all tied is allowed:
    "equally good" is a judgement too)."""
    try:
        places_from_ranking(ranking, k, "ranking")
    except DataError as error:
        raise RewardkitError(str(error)) from None
    return [sorted(entry) if isinstance(entry, list) else entry for entry in ranking]


# ----------------------------------------------------------------------------------------------- the store
class LabelStore:
    """Every read and write of the labelling app; each public method runs in its own transaction."""

    def __init__(self, sessions: sessionmaker[Session]):
        self.sessions = sessions

    def _run(self, work):
        return run_transaction(self.sessions, work)

    # ---------------------------------------------------------------------------------------- settings
    def secret(self, key: str = "session_secret") -> str:
        """A random secret made once per installation and kept in the database (signs session cookies)."""

        def work(session: Session) -> str:
            setting = session.get(Setting, key)
            if setting is None:
                setting = Setting(key=key, value=secrets.token_urlsafe(48))
                session.add(setting)
            return setting.value

        return self._run(work)

    # ---------------------------------------------------------------------------------------- annotators
    def add_annotator(self, name: str, admin: bool = False, password: str | None = None,
                      invite_hours: float = 72.0) -> str | None:
        """Create an account. Without a password, returns a one-time invite token (valid `invite_hours`) with
        which the person sets their own; only its digest is stored."""
        from rewardkit.label.security import hash_password

        name = name.strip()
        if not name or len(name) > MAX_NAME or not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise RewardkitError(f"annotator name {name!r}: use 1-{MAX_NAME} letters, digits, '-', '_' or '.'")
        token = None if password else secrets.token_urlsafe(32)

        def work(session: Session) -> None:
            if session.scalar(select(Annotator.id).where(Annotator.name == name)) is not None:
                raise RewardkitError(f"annotator {name!r} already exists")
            session.add(Annotator(
                name=name, is_admin=admin, password_hash=hash_password(password) if password else None,
                invite_digest=_digest(token) if token else None,
                invite_expires_at=utcnow() + timedelta(hours=invite_hours) if token else None,
            ))

        self._run(work)
        return token

    def new_invite(self, name: str, invite_hours: float = 72.0) -> str:
        """A fresh invite token for an existing account (a forgotten password); the old password stops working."""
        token = secrets.token_urlsafe(32)

        def work(session: Session) -> None:
            annotator = session.scalar(select(Annotator).where(Annotator.name == name))
            if annotator is None:
                raise NotFoundError(f"no annotator named {name!r}")
            annotator.password_hash = None
            annotator.invite_digest = _digest(token)
            annotator.invite_expires_at = utcnow() + timedelta(hours=invite_hours)

        self._run(work)
        return token

    def invitee(self, token: str) -> AnnotatorInfo | None:
        """The account an unexpired invite token belongs to."""

        def work(session: Session) -> AnnotatorInfo | None:
            annotator = session.scalar(select(Annotator).where(Annotator.invite_digest == _digest(token)))
            if annotator is None or annotator.invite_expires_at is None or annotator.invite_expires_at < utcnow():
                return None
            return _info(annotator)

        return self._run(work)

    def accept_invite(self, token: str, password: str) -> AnnotatorInfo:
        """Set the password of the invite's account and use the invite up."""
        from rewardkit.label.security import check_new_password, hash_password

        check_new_password(password)
        hashed = hash_password(password)

        def work(session: Session) -> AnnotatorInfo:
            annotator = session.scalar(select(Annotator).where(Annotator.invite_digest == _digest(token)))
            if annotator is None or annotator.invite_expires_at is None or annotator.invite_expires_at < utcnow():
                raise NotFoundError("this invite link is not valid (used or expired); ask an admin for a new one")
            annotator.password_hash, annotator.invite_digest, annotator.invite_expires_at = hashed, None, None
            return _info(annotator)

        return self._run(work)

    def authenticate(self, name: str, password: str) -> AnnotatorInfo | None:
        from rewardkit.label.security import verify_password

        def work(session: Session):
            return session.scalar(select(Annotator).where(Annotator.name == name))

        annotator = self._run(work)
        stored = annotator.password_hash if annotator is not None else None
        if not verify_password(stored, password):  # runs a hash even for unknown names: no timing oracle
            return None
        return _info(annotator)

    def annotator(self, annotator_id: int) -> AnnotatorInfo | None:
        def work(session: Session):
            annotator = session.get(Annotator, annotator_id)
            return _info(annotator) if annotator is not None else None

        return self._run(work)

    def annotators(self) -> list[dict[str, Any]]:
        def work(session: Session) -> list[dict[str, Any]]:
            rows = session.scalars(select(Annotator).order_by(Annotator.name)).all()
            return [{"name": a.name, "is_admin": a.is_admin, "has_password": a.password_hash is not None,
                     "invite_pending": a.invite_digest is not None} for a in rows]

        return self._run(work)

    # ---------------------------------------------------------------------------------------- projects
    def create_project(self, settings: ProjectSettings) -> None:
        settings.validate()

        def work(session: Session) -> None:
            if session.scalar(select(Project.id).where(Project.name == settings.name)) is not None:
                raise RewardkitError(f"project {settings.name!r} already exists")
            session.add(Project(**vars(settings)))

        self._run(work)

    def update_guidelines(self, name: str, guidelines: str) -> None:
        def work(session: Session) -> None:
            _project(session, name).guidelines = guidelines

        self._run(work)

    def projects(self) -> list[dict[str, Any]]:
        def work(session: Session) -> list[dict[str, Any]]:
            counts = (select(Item.project_id, func.count(Item.id).label("num_items"),
                             func.coalesce(func.sum(Item.completed), 0).label("rankings"),
                             func.coalesce(func.sum(Item.target), 0).label("wanted"))
                      .group_by(Item.project_id).subquery())
            rows = session.execute(
                select(Project, counts.c.num_items, counts.c.rankings, counts.c.wanted)
                .outerjoin(counts, counts.c.project_id == Project.id).order_by(Project.name)
            ).all()
            return [{"name": p.name, "items": items or 0, "rankings": rankings or 0, "wanted": wanted or 0,
                     "guidelines": p.guidelines, "annotations_per_item": p.annotations_per_item,
                     "overlap_fraction": p.overlap_fraction, "render_markdown": p.render_markdown}
                    for p, items, rankings, wanted in rows]

        return self._run(work)

    def import_items(self, project: str, records: Iterable[ItemRecord], seed: int = 0) -> dict[str, int]:
        """Add items to a project; records whose id is already there are counted as duplicates and left alone.
        An `overlap_fraction` of the new items (chosen by `seed`) wants `overlap_annotations` judgements."""
        records = list(records)

        def work(session: Session) -> dict[str, int]:
            p = _project(session, project)
            existing = set(session.scalars(select(Item.external_id).where(Item.project_id == p.id)))
            fresh, seen = [], set()
            for record in records:
                if record.external_id not in existing and record.external_id not in seen:
                    fresh.append(record)
                    seen.add(record.external_id)
            overlapped = set(random.Random(seed).sample(range(len(fresh)), round(p.overlap_fraction * len(fresh))))
            start = session.scalar(select(func.coalesce(func.max(Item.position), -1)).where(Item.project_id == p.id))
            for offset, record in enumerate(fresh):
                target = p.annotations_per_item
                if offset in overlapped:
                    target = max(target, p.overlap_annotations)
                session.add(Item(project_id=p.id, external_id=record.external_id, position=start + 1 + offset,
                                 prompt=record.prompt, responses=record.responses, k=len(record.responses),
                                 meta=record.meta, target=target, assigned=0, completed=0, priority=0.0))
            return {"added": len(fresh), "duplicates": len(records) - len(fresh), "overlap": len(overlapped)}

        return self._run(work)

    def set_priorities(self, project: str, priorities: Mapping[int, float]) -> None:
        """Queue order for active selection: higher priority first (items keep their import order otherwise)."""

        def work(session: Session) -> None:
            p = _project(session, project)
            for item_id, priority in priorities.items():
                session.execute(update(Item).where(Item.id == item_id, Item.project_id == p.id)
                                .values(priority=float(priority)))

        self._run(work)

    # ---------------------------------------------------------------------------------------- the queue
    def next_assignment(self, project: str, annotator_id: int) -> AssignmentView | None:
        """The annotator's open assignment in this project, or a new one on the first item (highest priority,
        then import order) that still wants judgements and that they have never been given; None when done."""

        def work(session: Session) -> AssignmentView | None:
            p = _project(session, project)
            now = utcnow()
            open_one = session.scalar(
                select(Assignment).join(Item).where(Item.project_id == p.id, Assignment.annotator_id == annotator_id,
                                                    Assignment.status == AssignmentStatus.ACTIVE)
                .order_by(Assignment.id).limit(1))
            if open_one is not None:
                return _view(open_one, p)
            _reclaim_expired(session, p, now)
            given = exists().where(Assignment.item_id == Item.id, Assignment.annotator_id == annotator_id)
            # Under PostgreSQL's READ COMMITTED other annotators may fill every candidate between our SELECT and
            # our UPDATEs; each new SELECT sees their commits, so look again until we win a slot or none is left.
            for _ in range(MAX_QUEUE_LOOKS):
                candidates = session.scalars(
                    select(Item.id).where(Item.project_id == p.id, Item.assigned < Item.target, ~given)
                    .order_by(Item.priority.desc(), Item.position).limit(16)).all()
                if not candidates:
                    return None
                for item_id in candidates:
                    taken = session.execute(update(Item).where(Item.id == item_id, Item.assigned < Item.target)
                                            .values(assigned=Item.assigned + 1))
                    if taken.rowcount == 1:
                        return _view(_assign(session, item_id, annotator_id, now), p)
            raise RewardkitError("the queue is too contended to hand out an item; try again")

        try:
            return self._run(work)
        except IntegrityError:
            # The same annotator asked twice at once (two tabs) and both picked the same item: the unique
            # (item, annotator) constraint stopped the second; ask again and get the first one's assignment.
            return self._run(work)

    def assignment(self, assignment_id: int, annotator_id: int) -> AssignmentView:
        """One of the annotator's own assignments; anyone else's looks exactly like one that does not exist."""

        def work(session: Session) -> AssignmentView:
            assignment = session.get(Assignment, assignment_id)
            if assignment is None or assignment.annotator_id != annotator_id:
                raise NotFoundError(f"no assignment {assignment_id}")
            return _view(assignment, assignment.item.project)

        return self._run(work)

    def submit(self, assignment_id: int, annotator_id: int, decision: Decision) -> int:
        """Store a ranking or a skip for an open assignment, in one transaction; returns the judgement's id.

        A second submission of the same assignment (a double click, a retry after a lost response) raises
        ConflictError and stores nothing. A skip gives the item's slot back to the queue (the annotator will not
        be given it again); a ranking counts towards the item's target."""
        if (decision.ranking is None) == (decision.skip_reason is None):
            raise RewardkitError("send either a ranking or a skip reason")

        def work(session: Session) -> int:
            assignment = session.get(Assignment, assignment_id)
            if assignment is None or assignment.annotator_id != annotator_id:
                raise NotFoundError(f"no assignment {assignment_id}")
            ranking = check_ranking(decision.ranking, assignment.item.k) if decision.ranking is not None else None
            status = AssignmentStatus.SUBMITTED if ranking is not None else AssignmentStatus.SKIPPED
            now = utcnow()
            closed = session.execute(
                update(Assignment).where(Assignment.id == assignment_id, Assignment.status == AssignmentStatus.ACTIVE)
                .values(status=status, finished_at=now))
            if closed.rowcount != 1:
                session.refresh(assignment)
                raise ConflictError(f"assignment {assignment_id} is already {assignment.status.value}; "
                                    "nothing was stored")
            counter = {"completed": Item.completed + 1} if ranking is not None else {"assigned": Item.assigned - 1}
            session.execute(update(Item).where(Item.id == assignment.item_id).values(**counter))
            judgement = Judgement(
                assignment_id=assignment_id, item_id=assignment.item_id, annotator_id=annotator_id, ranking=ranking,
                skip_reason=decision.skip_reason[:500] if decision.skip_reason else None, unsafe=decision.unsafe,
                comment=decision.comment[:5000], seconds=(now - assignment.assigned_at).total_seconds(),
                created_at=now)
            session.add(judgement)
            session.flush()
            return judgement.id

        return self._run(work)

    def progress(self, project: str, annotator_id: int) -> dict[str, int]:
        """How many items this annotator judged in the project, and how many more the queue could give them."""

        def work(session: Session) -> dict[str, int]:
            p = _project(session, project)
            done = session.scalar(select(func.count(Judgement.id)).join(Item).where(
                Item.project_id == p.id, Judgement.annotator_id == annotator_id, Judgement.ranking.is_not(None)))
            given = exists().where(Assignment.item_id == Item.id, Assignment.annotator_id == annotator_id)
            left = session.scalar(select(func.count(Item.id)).where(
                Item.project_id == p.id, Item.assigned < Item.target, ~given))
            return {"done": done or 0, "available": left or 0}

        return self._run(work)

    # ---------------------------------------------------------------------------------------- reading
    def items(self, project: str) -> list[ItemRow]:
        def work(session: Session) -> list[ItemRow]:
            p = _project(session, project)
            rows = session.scalars(select(Item).where(Item.project_id == p.id).order_by(Item.position)).all()
            return [ItemRow(i.id, i.external_id, i.prompt, i.responses, i.meta, i.target, i.completed, i.priority)
                    for i in rows]

        return self._run(work)

    def judgements(self, project: str) -> list[JudgementRow]:
        return list(self.judgements_by_id(project).values())

    def judgements_by_id(self, project: str) -> dict[int, JudgementRow]:
        """Every judgement of the project (rankings and skips) by id, oldest first."""

        def work(session: Session) -> dict[int, JudgementRow]:
            p = _project(session, project)
            rows = session.execute(
                select(Judgement, Annotator.name).join(Annotator, Judgement.annotator_id == Annotator.id)
                .join(Item, and_(Judgement.item_id == Item.id, Item.project_id == p.id)).order_by(Judgement.id)
            ).all()
            return {j.id: JudgementRow(j.item_id, name, j.ranking, j.skip_reason, j.unsafe, j.seconds, j.created_at)
                    for j, name in rows}

        return self._run(work)


# ----------------------------------------------------------------------------------------------- helpers
def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _info(annotator: Annotator) -> AnnotatorInfo:
    return AnnotatorInfo(annotator.id, annotator.name, annotator.is_admin, _digest(annotator.password_hash or "")[:16])


def _project(session: Session, name: str) -> Project:
    project = session.scalar(select(Project).where(Project.name == name))
    if project is None:
        raise NotFoundError(f"no project named {name!r} (create it with `rewardkit label import --project {name} "
                            "--data items.jsonl`)")
    return project


def _view(assignment: Assignment, project: Project) -> AssignmentView:
    item = assignment.item
    return AssignmentView(
        id=assignment.id, item_id=item.id, project=project.name, guidelines=project.guidelines,
        render_markdown=project.render_markdown, prompt=item.prompt,
        responses=[(index, item.responses[index]) for index in assignment.display_order],
        status=assignment.status.value, assigned_at=assignment.assigned_at,
    )


def _assign(session: Session, item_id: int, annotator_id: int, now: datetime) -> Assignment:
    item = session.get(Item, item_id)
    order = list(range(item.k))
    random.SystemRandom().shuffle(order)  # no position bias: each annotator sees their own order
    assignment = Assignment(item_id=item_id, annotator_id=annotator_id, display_order=order,
                            status=AssignmentStatus.ACTIVE, assigned_at=now)
    session.add(assignment)
    session.flush()
    return assignment


def _reclaim_expired(session: Session, project: Project, now: datetime) -> None:
    """Assignments left open past the project's lease go back to the queue (their late submission is refused)."""
    cutoff = now - timedelta(minutes=project.lease_minutes)
    stale = session.scalars(select(Assignment.id).join(Item).where(
        Item.project_id == project.id, Assignment.status == AssignmentStatus.ACTIVE,
        Assignment.assigned_at < cutoff)).all()
    for assignment_id in stale:
        expired = session.execute(
            update(Assignment).where(Assignment.id == assignment_id, Assignment.status == AssignmentStatus.ACTIVE)
            .values(status=AssignmentStatus.EXPIRED, finished_at=now).returning(Assignment.item_id)).first()
        if expired is not None:
            session.execute(update(Item).where(Item.id == expired.item_id).values(assigned=Item.assigned - 1))
