"""Call statistics kept as the calls end, so analytics and dispatch health read a few thousand rows, not every
attempt of a campaign.

Every table is keyed by UTC quarter-hour (``bucket`` = seconds since the epoch // 900). Every real time zone's
offset is a multiple of 15 minutes, so a campaign-local day or hour is a whole number of buckets in any zone:
the campaign's timezone is applied when reading, and changing it (while paused) re-reads the same figures
exactly. The rows are written in the transaction that ends the attempts (``dispatch/outcomes.finish_attempts``,
the one place an attempt ends), by upserts that add to the counters. On PostgreSQL each transaction adds to the
rows of one ``shard`` (picked at random per transaction): concurrent workers ending calls of one campaign in
the same quarter-hour would otherwise all wait for the same rows until each commits. Readers sum over shards.
"""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import BigInteger, Float, Integer, Numeric, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from bulkcall.db.models.base import Base


class CampaignCallStat(Base):
    """Ended attempts per quarter-hour, caller number, attempt number and outcome."""

    __tablename__ = "campaign_call_stats"

    campaign_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    bucket: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    phone_number_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    attempt_number: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    outcome: Mapped[str] = mapped_column(String(16), primary_key=True)
    # Spreads concurrent writers over rows (PostgreSQL; always 0 on SQLite's single writer). Readers sum.
    shard: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False, server_default="0")
    attempts: Mapped[int] = mapped_column(Integer)
    # ``duration_seconds`` of the answered attempts among them (talk time); 0 for other outcomes.
    talk_seconds: Mapped[float] = mapped_column(Float)
    cost: Mapped[Decimal] = mapped_column(Numeric(16, 4))


class CampaignReachStat(Base):
    """Distinct contacts over any range of whole buckets, from additive counts.

    Each ended attempt adds one to ``(bucket, 'contact', prev_bucket)``, where ``prev_bucket`` is the bucket
    of the task's previous ended attempt (0: none); an answered one also to ``(bucket, 'reached', prev)``
    with the task's previous *answered* attempt. The tasks with an attempt in ``[lo, hi)`` are then exactly
    the attempts there whose previous one is before ``lo`` (each task's first attempt in the range).
    """

    __tablename__ = "campaign_reach_stats"

    campaign_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    bucket: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    prev_bucket: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    # Spreads concurrent writers over rows (PostgreSQL; always 0 on SQLite's single writer). Readers sum.
    shard: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False, server_default="0")
    tasks: Mapped[int] = mapped_column(Integer)


class CampaignTalkStat(Base):
    """Answered attempts per quarter-hour and talk-time bin (``domain.insight.talk_bin``), for the median."""

    __tablename__ = "campaign_talk_stats"

    campaign_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    bucket: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    bin: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    # Spreads concurrent writers over rows (PostgreSQL; always 0 on SQLite's single writer). Readers sum.
    shard: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False, server_default="0")
    calls: Mapped[int] = mapped_column(Integer)


class CampaignTaskCount(Base):
    """Tasks per campaign and status, kept exact by database triggers on ``call_tasks`` (``db/triggers.py``).

    PostgreSQL spreads each campaign's counts over ``shard`` rows (by transaction) so concurrent writers seldom
    wait on one row; a count is the sum over the shards. Rows may hold 0.
    """

    __tablename__ = "campaign_task_counts"

    campaign_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    status: Mapped[str] = mapped_column(String(16), primary_key=True)
    shard: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    tasks: Mapped[int] = mapped_column(Integer)
