"""Time helpers for the sandbox: UTC now and the platform's ISO 8601 format (ms, ``Z``)."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["iso", "utcnow"]


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """``2024-05-01T10:00:00.000Z``: what Genesys Cloud puts in every timestamp."""
    moment = moment.astimezone(UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}Z"
