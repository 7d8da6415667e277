"""The labelling database: SQLAlchemy 2 models; the schema itself is created and changed by Alembic (migrations/).

    Project ──< Item ──< Assignment >── Annotator
                           │
                           └── Judgement (at most one per assignment: a ranking, or a skip with its reason)

An item holds a prompt and its K responses and wants `target` judgements. `assigned` counts its open and finished
assignments, so that handing out an item is one conditional UPDATE (`assigned < target`) that two annotators
racing for the last slot cannot both win; (item, annotator) is unique, so nobody is given the same item twice.
Times are naive UTC datetimes, the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Stable constraint names, so that migrations can refer to them on every database.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Annotator(Base):
    """A person who labels; an admin also sees the dashboard and exports. Passwords are stored as Argon2 hashes,
    invite tokens as SHA-256 digests: the database never holds a secret that logs a person in."""

    __tablename__ = "annotators"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(256))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    invite_digest: Mapped[str | None] = mapped_column(String(64), unique=True)
    invite_expires_at: Mapped[datetime | None] = mapped_column(DateTime)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Project(Base):
    """Items to rank and how many judgements each gets: `annotations_per_item`, raised to `overlap_annotations`
    (>= 2) for an `overlap_fraction` of the items, so that agreement between annotators can be measured."""

    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    guidelines: Mapped[str] = mapped_column(Text, default="")
    annotations_per_item: Mapped[int] = mapped_column(Integer, default=1)
    overlap_fraction: Mapped[float] = mapped_column(Float, default=0.2)
    overlap_annotations: Mapped[int] = mapped_column(Integer, default=2)
    render_markdown: Mapped[bool] = mapped_column(Boolean, default=False)
    lease_minutes: Mapped[float] = mapped_column(Float, default=60.0)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    items: Mapped[list[Item]] = relationship(back_populates="project")


class Item(Base):
    """One prompt with K responses (text or chat messages, stored as JSON)."""

    __tablename__ = "items"
    __table_args__ = (
        UniqueConstraint("project_id", "external_id"),
        Index("ix_items_queue", "project_id", "priority", "position"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(String(256))  # the source record's "id", or its line number
    position: Mapped[int] = mapped_column(Integer)  # order of import: the queue's order among equal priorities
    prompt: Mapped[Any] = mapped_column(JSON)
    responses: Mapped[list[Any]] = mapped_column(JSON)
    k: Mapped[int] = mapped_column(Integer)
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # the source record's other fields
    target: Mapped[int] = mapped_column(Integer)  # judgements wanted
    assigned: Mapped[int] = mapped_column(Integer, default=0)  # open + finished assignments holding a slot
    completed: Mapped[int] = mapped_column(Integer, default=0)  # rankings received
    priority: Mapped[float] = mapped_column(Float, default=0.0)  # higher first (active selection)

    project: Mapped[Project] = relationship(back_populates="items")


class AssignmentStatus(enum.StrEnum):
    ACTIVE = "active"  # handed out, waiting for a judgement
    SUBMITTED = "submitted"  # ranked
    SKIPPED = "skipped"  # skipped with a reason: the slot went back to the queue
    EXPIRED = "expired"  # not judged within the project's lease: the slot went back to the queue


class Assignment(Base):
    __tablename__ = "assignments"
    __table_args__ = (
        UniqueConstraint("item_id", "annotator_id"),
        Index("ix_assignments_annotator_status", "annotator_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    annotator_id: Mapped[int] = mapped_column(ForeignKey("annotators.id", ondelete="CASCADE"))
    status: Mapped[AssignmentStatus] = mapped_column(
        Enum(AssignmentStatus, name="assignment_status", values_callable=lambda e: [m.value for m in e]),
        default=AssignmentStatus.ACTIVE,
    )
    display_order: Mapped[list[int]] = mapped_column(JSON)  # response indices in the order shown
    assigned_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)

    item: Mapped[Item] = relationship()
    annotator: Mapped[Annotator] = relationship()


class Judgement(Base):
    """What an annotator said about an item: a ranking (response indices best first, ties as nested lists), or a
    skip with its reason; either may flag the item as unsafe. One per assignment, enforced by the database."""

    __tablename__ = "judgements"
    __table_args__ = (Index("ix_judgements_item", "item_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignments.id", ondelete="CASCADE"), unique=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    annotator_id: Mapped[int] = mapped_column(ForeignKey("annotators.id", ondelete="CASCADE"))
    ranking: Mapped[list[Any] | None] = mapped_column(JSON)
    skip_reason: Mapped[str | None] = mapped_column(String(500))
    unsafe: Mapped[bool] = mapped_column(Boolean, default=False)
    comment: Mapped[str] = mapped_column(Text, default="")
    seconds: Mapped[float] = mapped_column(Float)  # from assignment to judgement
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    annotator: Mapped[Annotator] = relationship()


class Setting(Base):
    """Key-value settings of the installation (the session-signing secret)."""

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
