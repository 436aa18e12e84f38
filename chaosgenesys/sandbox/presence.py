"""The system presence definitions of the sandbox organization and their many spellings.

REST (users, presences) spells ``On Queue``, the newer definitions API ``OnQueue``, analytics and
the activity notification topic ``ON_QUEUE``. :func:`find_presence` accepts any of them (case,
spaces, underscores and hyphens ignored) and definition ids.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from chaosgenesys.presence_names import normalise_presence

__all__ = [
    "AVAILABLE",
    "OFFLINE",
    "ON_QUEUE",
    "SYSTEM_PRESENCES",
    "PresenceDefinition",
    "find_presence",
]

_NAMESPACE = uuid.UUID("5f1d7c2e-6a0b-4c55-9e0e-2b1f3c4d5e6f")


@dataclass(frozen=True)
class PresenceDefinition:
    """One system presence definition."""

    id: str
    #: REST spelling, e.g. ``On Queue``.
    name: str

    @property
    def key(self) -> str:
        """Normalised spelling, e.g. ``onqueue``."""
        return normalise_presence(self.name)

    @property
    def definitions_name(self) -> str:
        """Spelling of the ``/api/v2/presence/definitions`` API, e.g. ``OnQueue``."""
        return self.name.replace(" ", "")

    @property
    def analytics_name(self) -> str:
        """Spelling of analytics and the activity topic, e.g. ``ON_QUEUE``."""
        return self.name.upper().replace(" ", "_")


def _stable_id(name: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"presence:{name}"))


#: In the platform's order. Ids seen in real organizations where known; stable uuid5 otherwise.
SYSTEM_PRESENCES: tuple[PresenceDefinition, ...] = (
    PresenceDefinition("6a3af858-942f-489d-9700-5f9bcdcdae9b", "Available"),
    PresenceDefinition("5e5c5c66-ea97-4e7f-ac41-6424784829f2", "Away"),
    PresenceDefinition("31fe3bac-dea6-44b7-bed7-47f91660a1a0", "Busy"),
    PresenceDefinition("ccf3c10a-aa2c-4845-8e8d-f59fa48c58e5", "Offline"),
    PresenceDefinition(_stable_id("Idle"), "Idle"),
    PresenceDefinition("e08eaf1b-ee47-4fa9-a231-1200e284798f", "On Queue"),
    PresenceDefinition("3fd96123-badb-4f69-bc03-1b1ccc6d8014", "Meal"),
    PresenceDefinition(_stable_id("Training"), "Training"),
    PresenceDefinition(_stable_id("Meeting"), "Meeting"),
    PresenceDefinition("227b37e2-f1d0-4dd0-8f50-badd7cf6d158", "Break"),
)

_BY_KEY = {definition.key: definition for definition in SYSTEM_PRESENCES}
_BY_ID = {definition.id: definition for definition in SYSTEM_PRESENCES}

AVAILABLE = _BY_KEY["available"]
OFFLINE = _BY_KEY["offline"]
ON_QUEUE = _BY_KEY["onqueue"]


def find_presence(name_or_id: str) -> PresenceDefinition | None:
    """The definition for a system presence name in any spelling, or a definition id."""
    return _BY_ID.get(name_or_id.strip().lower()) or _BY_KEY.get(normalise_presence(name_or_id))
