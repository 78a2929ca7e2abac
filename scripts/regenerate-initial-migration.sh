#!/usr/bin/env bash
# Until the first release, the schema is one initial migration regenerated from the models.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
rm -f src/bulkcall/db/migrations/versions/0001_initial_schema.py
uv run python -c "
from alembic import command
from bulkcall.db.migrate import alembic_config
command.revision(alembic_config('sqlite:///$tmp/gen.db'), message='initial schema', autogenerate=True, rev_id='0001')
"
uv run ruff format -q src/bulkcall/db/migrations/versions/
uv run ruff check -q --fix src/bulkcall/db/migrations/versions/ || true
rm -rf "$tmp"
