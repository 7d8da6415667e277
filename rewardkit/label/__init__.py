"""`rewardkit label`: collect K-wise rankings from people, on SQLite or PostgreSQL.

    rewardkit label init --db sqlite:///labels.db --admin ana          # schema (Alembic) + an admin invite
    rewardkit label import --project chat --data items.jsonl --overlap 0.2
    rewardkit label serve                                               # http://127.0.0.1:8080
    rewardkit label export --project chat --output rankings.jsonl       # train on it: rewardkit train --data ...

The pieces: `models` (SQLAlchemy tables), `db` (engines, migrations, transactions), `store` (the workflow: queue,
submissions, accounts), `app` (Starlette pages and JSON API), `stats` / `plots` (the dashboard), `export`,
`generate` (items from a policy), `active` (queue order by ensemble disagreement), `simulate` (programs that
label through the HTTP API). Import them directly; this package imports nothing heavy.
"""
