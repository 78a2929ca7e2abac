"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql
${imports if imports else ""}
import bulkcall.db.triggers
import bulkcall.db.types

revision: str = ${repr(up_revision)}
down_revision: str | None = ${repr(down_revision)}
branch_labels: str | Sequence[str] | None = ${repr(branch_labels)}
depends_on: str | Sequence[str] | None = ${repr(depends_on)}


def upgrade() -> None:
    ${upgrades if upgrades else "pass"}
% if up_revision == "0001":
    # What the models cannot declare: the triggers that keep campaign_task_counts exact.
    bulkcall.db.triggers.create(op.get_bind())
% endif


def downgrade() -> None:
    ${downgrades if downgrades else "pass"}
% if up_revision == "0001":
    bulkcall.db.triggers.drop(op.get_bind())
% endif
