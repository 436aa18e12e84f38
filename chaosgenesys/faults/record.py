"""A fault's record: what the registry stores in ``<id>.json`` and hands to its reverter, its id,
and the records the registry cannot read. Data only: the registry (``registry.py``) stores,
locks and reverts them.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from chaoslib.exceptions import ActivityFailed

from chaosgenesys import processes
from chaosgenesys.shown import show

__all__ = [
    "REVERTER_PATTERN",
    "CorruptRecord",
    "FaultRecord",
    "UnreadableRecord",
    "check_id",
    "is_fault_id",
    "new_id",
]

#: A reverter is named ``module.path:function``.
REVERTER_PATTERN = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$")
_FAULT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_KIND_SLUG = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True)
class FaultRecord:
    """One recorded fault, as stored in ``<id>.json`` and handed to its reverter."""

    id: str
    kind: str
    description: str
    reverter: str
    spec: dict[str, Any] = field(hash=False)
    owner_pid: int
    owner_start: int | None
    created_at: float
    deadline: float | None
    #: ``(pid, start)`` of every process above the owner when it recorded, parent first.
    ancestors: tuple[tuple[int, int | None], ...] = ()
    #: Failed reverts so far, the last one's error, and whether the record is given up (its
    #: state, not its identity: two reads of one fault compare equal across failures).
    failures: int = field(default=0, compare=False)
    last_error: str | None = field(default=None, compare=False)
    given_up: bool = field(default=False, compare=False)

    def to_dict(self, copy: bool = True) -> dict[str, Any]:
        """The record as JSON-serialisable data (a copy: changing it changes nothing). With
        ``copy=False`` the spec is this record's own, for a caller that only reads it (the
        record file's writer)."""
        return {
            "id": self.id,
            "kind": self.kind,
            "description": self.description,
            "reverter": self.reverter,
            "spec": json.loads(json.dumps(self.spec)) if copy else self.spec,
            "owner_pid": self.owner_pid,
            "owner_start": self.owner_start,
            "created_at": self.created_at,
            "deadline": self.deadline,
            "ancestors": [list(pair) for pair in self.ancestors],
            "failures": self.failures,
            "last_error": self.last_error,
            "given_up": self.given_up,
        }

    @classmethod
    def from_dict(cls, data: Any) -> FaultRecord:
        """A record from :meth:`to_dict` data; ``ValueError`` saying what is wrong otherwise."""
        if not isinstance(data, dict):
            raise ValueError(f"expected a JSON object, got {type(data).__name__}")
        expected: dict[str, tuple[type, ...]] = {
            "id": (str,),
            "kind": (str,),
            "description": (str,),
            "reverter": (str,),
            "spec": (dict,),
            "owner_pid": (int,),
            "owner_start": (int, type(None)),
            "created_at": (int, float),
            "deadline": (int, float, type(None)),
        }
        for key, types in expected.items():
            if key not in data:
                raise ValueError(f"missing key {key!r}")
            value = data[key]
            if isinstance(value, bool) or not isinstance(value, types):
                raise ValueError(f"{key} has the wrong type: {show(value)}")
        if not REVERTER_PATTERN.match(data["reverter"]):
            raise ValueError(f"reverter is not 'module:function': {show(data['reverter'])}")
        # Optional keys (records written before they existed have none).
        ancestors = data.get("ancestors", [])
        if not isinstance(ancestors, list) or not all(
            isinstance(pair, list)
            and len(pair) == 2
            and _is_int(pair[0])
            and (pair[1] is None or _is_int(pair[1]))
            for pair in ancestors
        ):
            raise ValueError(f"ancestors is not a list of [pid, start]: {show(ancestors)}")
        failures = data.get("failures", 0)
        last_error = data.get("last_error")
        given_up = data.get("given_up", False)
        if not _is_int(failures) or failures < 0:
            raise ValueError(f"failures has the wrong type: {show(failures)}")
        if last_error is not None and not isinstance(last_error, str):
            raise ValueError(f"last_error has the wrong type: {show(last_error)}")
        if not isinstance(given_up, bool):
            raise ValueError(f"given_up has the wrong type: {show(given_up)}")
        deadline = data["deadline"]
        return cls(
            id=data["id"],
            kind=data["kind"],
            description=data["description"],
            reverter=data["reverter"],
            spec=data["spec"],
            owner_pid=data["owner_pid"],
            owner_start=data["owner_start"],
            created_at=float(data["created_at"]),
            deadline=None if deadline is None else float(deadline),
            ancestors=tuple((int(pid), start) for pid, start in ancestors),
            failures=int(failures),
            last_error=last_error,
            given_up=given_up,
        )

    def remaining(self, now: float | None = None) -> float | None:
        """Seconds until the deadline (negative once passed), ``None`` without a deadline."""
        if self.deadline is None:
            return None
        return self.deadline - (time.time() if now is None else now)

    def owner_alive(self) -> bool:
        """Whether the process that recorded the fault still runs (same pid, same start time)."""
        return processes.alive(self.owner_pid, self.owner_start, self.created_at)

    def belongs_to(self, owner: tuple[int, int | None]) -> bool:
        """Whether the fault is of the run of process ``owner`` (``(pid, start)``): recorded
        by that process or by one of its descendants."""
        return any(
            _same_process(pair, owner)
            for pair in ((self.owner_pid, self.owner_start), *self.ancestors)
        )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _same_process(one: tuple[int, int | None], other: tuple[int, int | None]) -> bool:
    """Same pid, and same start time when both are known."""
    if one[0] != other[0]:
        return False
    return one[1] is None or other[1] is None or one[1] == other[1]


class UnreadableRecord(ActivityFailed):  # type: ignore[misc]
    """A fault's record file is there but cannot be read (corrupt, or an I/O error)."""


@dataclass(frozen=True)
class CorruptRecord:
    """A file in the registry directory that is not a readable fault record."""

    id: str
    path: str
    error: str

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "path": self.path, "error": self.error}


def check_id(fault_id: Any) -> str:
    """``fault_id`` if it is spelled as a fault id; ActivityFailed naming it otherwise."""
    if not isinstance(fault_id, str) or not _FAULT_ID.match(fault_id):
        raise ActivityFailed(f"fault_id must be the id of a recorded fault, got {show(fault_id)}")
    return fault_id


def is_fault_id(value: Any) -> bool:
    """Whether ``value`` is spelled as a fault id (whether it is recorded is another matter)."""
    return isinstance(value, str) and _FAULT_ID.match(value) is not None


def new_id(kind: str) -> str:
    """A new fault id: the kind as a slug and 12 random hex digits (``netem-1a2b3c4d5e6f``)."""
    slug = _KIND_SLUG.sub("-", kind.lower()).strip("-")[:24] or "fault"
    return f"{slug}-{uuid.uuid4().hex[:12]}"
