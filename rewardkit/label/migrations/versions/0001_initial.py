"""Initial schema: annotators, projects, items, assignments, judgements, settings.

Revision ID: 0001
Revises:
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _cascade(column: str, table: str, referred: str) -> sa.ForeignKeyConstraint:
    name = op.f(f"fk_{table}_{column}_{referred}")
    return sa.ForeignKeyConstraint([column], [f"{referred}.id"], name=name, ondelete="CASCADE")


def upgrade() -> None:
    op.create_table(
        "annotators",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("password_hash", sa.String(length=256), nullable=True),
        sa.Column("is_admin", sa.Boolean(), nullable=False),
        sa.Column("invite_digest", sa.String(length=64), nullable=True),
        sa.Column("invite_expires_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_annotators")),
        sa.UniqueConstraint("invite_digest", name=op.f("uq_annotators_invite_digest")),
        sa.UniqueConstraint("name", name=op.f("uq_annotators_name")),
    )
    op.create_table(
        "projects",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("guidelines", sa.Text(), nullable=False),
        sa.Column("annotations_per_item", sa.Integer(), nullable=False),
        sa.Column("overlap_fraction", sa.Float(), nullable=False),
        sa.Column("overlap_annotations", sa.Integer(), nullable=False),
        sa.Column("render_markdown", sa.Boolean(), nullable=False),
        sa.Column("lease_minutes", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_projects")),
        sa.UniqueConstraint("name", name=op.f("uq_projects_name")),
    )
    op.create_table(
        "settings",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_settings")),
    )
    op.create_table(
        "items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("external_id", sa.String(length=256), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("prompt", sa.JSON(), nullable=False),
        sa.Column("responses", sa.JSON(), nullable=False),
        sa.Column("k", sa.Integer(), nullable=False),
        sa.Column("meta", sa.JSON(), nullable=False),
        sa.Column("target", sa.Integer(), nullable=False),
        sa.Column("assigned", sa.Integer(), nullable=False),
        sa.Column("completed", sa.Integer(), nullable=False),
        sa.Column("priority", sa.Float(), nullable=False),
        _cascade("project_id", "items", "projects"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_items")),
        sa.UniqueConstraint("project_id", "external_id", name=op.f("uq_items_project_id")),
    )
    op.create_index("ix_items_queue", "items", ["project_id", "priority", "position"])
    op.create_table(
        "assignments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("annotator_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.Enum("active", "submitted", "skipped", "expired", name="assignment_status"),
                  nullable=False),
        sa.Column("display_order", sa.JSON(), nullable=False),
        sa.Column("assigned_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        _cascade("annotator_id", "assignments", "annotators"),
        _cascade("item_id", "assignments", "items"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assignments")),
        sa.UniqueConstraint("item_id", "annotator_id", name=op.f("uq_assignments_item_id")),
    )
    op.create_index("ix_assignments_annotator_status", "assignments", ["annotator_id", "status"])
    op.create_table(
        "judgements",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("assignment_id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("annotator_id", sa.Integer(), nullable=False),
        sa.Column("ranking", sa.JSON(), nullable=True),
        sa.Column("skip_reason", sa.String(length=500), nullable=True),
        sa.Column("unsafe", sa.Boolean(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        _cascade("annotator_id", "judgements", "annotators"),
        _cascade("assignment_id", "judgements", "assignments"),
        _cascade("item_id", "judgements", "items"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_judgements")),
        sa.UniqueConstraint("assignment_id", name=op.f("uq_judgements_assignment_id")),
    )
    op.create_index("ix_judgements_item", "judgements", ["item_id"])


def downgrade() -> None:
    for index, table in (("ix_judgements_item", "judgements"), ("ix_assignments_annotator_status", "assignments"),
                         ("ix_items_queue", "items")):
        op.drop_index(index, table_name=table)
    for table in ("judgements", "assignments", "items", "settings", "projects", "annotators"):
        op.drop_table(table)
    sa.Enum(name="assignment_status").drop(op.get_bind(), checkfirst=True)
