"""Alembic, driven from code: ``bulkcall db upgrade`` and the CI migration check use this."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from bulkcall.db.engine import ensure_sqlite_directory, sync_url

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ``%`` is Alembic's interpolation character; escape it for passwords that contain one.
    url = sync_url(database_url).render_as_string(hide_password=False).replace("%", "%%")
    config.set_main_option("sqlalchemy.url", url)
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    ensure_sqlite_directory(database_url)
    command.upgrade(alembic_config(database_url), revision)


def check(database_url: str) -> None:
    """Raise if the models and the migrations disagree (``alembic check``)."""
    command.check(alembic_config(database_url))
