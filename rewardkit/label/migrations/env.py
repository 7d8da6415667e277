"""Alembic environment for the labelling database: `rewardkit label init` runs it with an open connection."""

from alembic import context
from sqlalchemy import create_engine

from rewardkit.label.models import Base


def run(connection) -> None:
    # render_as_batch: SQLite cannot ALTER most things in place; batch mode copies the table instead.
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    run(connection)
else:  # the plain `alembic` command line, e.g. `alembic revision --autogenerate` while developing
    with create_engine(context.config.get_main_option("sqlalchemy.url")).begin() as new_connection:
        run(new_connection)
