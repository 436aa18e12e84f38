"""OAuth clients, their grants (scopes, roles), the organization's roles and bearer tokens of
the sandbox (no HTTP here: see ``auth.py`` and ``api_authorization.py``).

A client holds ``scopes`` (what ``/api/v2/tokens/me`` answers as ``authorizedScope``) and
``role_ids`` (its ``roleDivisions``, all in the sandbox's one division). The roles themselves
live in a :class:`RoleBook` that follows the seed: a new seed brings the seed's roles back.

Tokens are opaque random strings; they are never logged. An expired or revoked token stays
known so the API can answer ``401 bad.credentials`` for it, as the platform does.

Revocation is told to the listeners added with :meth:`TokenStore.add_revocation_listener` (the
notification hub sends ``v2.system.token_revoked``, the streaming service ends the sessions that
authenticated with a revoked token); expiry is not: a token that runs out ends nothing live.

Every sandbox has, whatever its seed, the built-in **public** client ``chaosgenesys-desktop``
(:data:`DESKTOP_CLIENT_ID`) of its reference web desktop (``/desktop/``,
``docs/reference-desktop.md``): no secret (it can never authenticate, so no client credentials
grant), authorization code + PKCE only, redirect URI the sandbox's own ``<origin>/desktop/``
(``browser_login.py``), token lifetime :data:`DESKTOP_TOKEN_LIFETIME` (changed like any client's
with ``PATCH /sandbox/v1/clients/chaosgenesys-desktop``). It comes after the seed's clients.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from chaosgenesys.clock import REAL_CLOCK, Clock
from chaosgenesys.sandbox.clock import utcnow
from chaosgenesys.sandbox.seed import DEFAULT_SCOPES, DESKTOP_CLIENT_ID, ClientSeed, Seed

__all__ = [
    "DESKTOP_CLIENT_ID",
    "DESKTOP_TOKEN_LIFETIME",
    "OAuthClient",
    "RevocationListener",
    "Role",
    "RoleBook",
    "TokenRecord",
    "TokenStore",
]

logger = logging.getLogger("chaostoolkit")

#: Called with the tokens just revoked (never with an empty list).
RevocationListener = Callable[[list[str]], object]

_MAX_DEAD_TOKENS = 10_000
#: Seconds a token of the built-in desktop client lives (a Genesys Cloud client's default).
DESKTOP_TOKEN_LIFETIME = 86400


@dataclass
class OAuthClient:
    """An OAuth client; ``redirect_uris`` allow its browser logins (``browser_login.py``).
    A ``public`` client has no secret: it never authenticates and logs users in with
    authorization code + PKCE only (the built-in desktop client)."""

    client_id: str
    client_secret: str = field(repr=False)
    token_lifetime: int
    date_created: datetime = field(default_factory=utcnow)
    redirect_uris: tuple[str, ...] = ()
    public: bool = False
    scopes: tuple[str, ...] = DEFAULT_SCOPES
    role_ids: tuple[str, ...] = ()
    #: The division its roles are granted in ("": the sandbox's one division; "*": all).
    division: str = ""


@dataclass
class Role:
    """An organization role: ``permissions`` are ``domain:entity:action`` strings."""

    id: str
    name: str
    permissions: tuple[str, ...] = ()
    date_created: datetime = field(default_factory=utcnow)


class RoleBook:
    """The organization's roles: the current seed's, as changed at run time by the admin API.

    ``seed_of`` returns the current seed (``lambda: state.seed``); when it returns another seed
    than last time, the roles are read from it again, so replacing the seed resets them.
    """

    def __init__(self, seed_of: Callable[[], Seed]) -> None:
        self._seed_of = seed_of
        self._seed: Seed | None = None
        self._roles: dict[str, Role] = {}

    def roles(self) -> dict[str, Role]:
        """Roles by id (the live dict: change it only on the sandbox's loop)."""
        seed = self._seed_of()
        if seed is not self._seed:
            self._seed = seed
            self._roles = {
                role.id: Role(role.id, role.name, role.permissions) for role in seed.roles
            }
        return self._roles

    def get(self, role_id: str) -> Role | None:
        """The role with this id, or ``None``."""
        return self.roles().get(role_id)

    def find(self, ref: str) -> Role | None:
        """The role with this id or name, or ``None``."""
        roles = self.roles()
        return roles.get(ref) or next((r for r in roles.values() if r.name == ref), None)


@dataclass
class TokenRecord:
    """What the sandbox knows about one access token; ``user_id`` is set for user tokens
    (browser logins), ``None`` for client credentials. ``grant`` is how it was obtained, as
    ``/api/v2/tokens/me`` names it: ``CLIENT-CREDENTIALS``, ``CODE`` (authorization code, with
    or without PKCE, and its refreshes) or ``TOKEN`` (implicit)."""

    client_id: str
    issued_at: float
    expires_at: float
    revoked: bool = False
    user_id: str | None = None
    grant: str = "CLIENT-CREDENTIALS"

    def is_valid(self, now: float) -> bool:
        """Not revoked and not expired at ``now`` (epoch seconds on the store's clock)."""
        return not self.revoked and now < self.expires_at


class TokenStore:
    """OAuth clients and the tokens issued to them; lifetimes run on ``clock``
    (:mod:`chaosgenesys.clock`)."""

    def __init__(self, clients: Iterable[ClientSeed] = (), clock: Clock = REAL_CLOCK) -> None:
        self.clock = clock
        self.clients: dict[str, OAuthClient] = {}
        self._tokens: dict[str, TokenRecord] = {}
        self._revocation_listeners: list[RevocationListener] = []
        self.set_clients(clients)

    def add_revocation_listener(self, listener: RevocationListener) -> None:
        """Call ``listener`` with the tokens revoked by every later revocation (once, however
        often it is added)."""
        if listener not in self._revocation_listeners:
            self._revocation_listeners.append(listener)

    def _revoked(self, tokens: list[str]) -> None:
        if not tokens:
            return
        for listener in list(self._revocation_listeners):
            try:
                listener(tokens)
            except Exception:
                logger.exception("sandbox: a token revocation listener failed")

    def set_clients(self, clients: Iterable[ClientSeed]) -> None:
        """Replace the clients; tokens of clients that no longer exist stop working."""
        self.clients = {
            seed.client_id: OAuthClient(
                seed.client_id,
                seed.client_secret,
                seed.token_lifetime,
                redirect_uris=seed.redirect_uris,
                scopes=seed.scopes,
                role_ids=seed.roles,
                division=seed.division,
            )
            for seed in clients
        }
        # A public client logs users in: scopes apply to it, roles do not (its tokens carry
        # the user's roles).
        self.clients[DESKTOP_CLIENT_ID] = OAuthClient(
            DESKTOP_CLIENT_ID, "", DESKTOP_TOKEN_LIFETIME, public=True
        )
        now = self.clock.time()
        revoked: list[str] = []
        for token, record in self._tokens.items():
            if record.client_id not in self.clients:
                if record.is_valid(now):
                    revoked.append(token)
                record.revoked = True
        self._revoked(revoked)

    def authenticate(self, client_id: str, client_secret: str) -> OAuthClient | None:
        """The client if the credentials match, else ``None`` (constant-time comparison; a
        public client never authenticates)."""
        client = self.clients.get(client_id)
        if client is None or client.public:
            hmac.compare_digest(client_secret, client_secret)
            return None
        if not hmac.compare_digest(client.client_secret.encode(), client_secret.encode()):
            return None
        return client

    def issue(
        self, client: OAuthClient, user_id: str | None = None, grant: str = "CLIENT-CREDENTIALS"
    ) -> tuple[str, TokenRecord]:
        """A new access token for ``client`` (a user token when ``user_id`` is given, obtained
        through ``grant``: see :class:`TokenRecord`)."""
        self._prune()
        token = secrets.token_urlsafe(32)
        now = self.clock.time()
        record = TokenRecord(
            client.client_id, now, now + client.token_lifetime, user_id=user_id, grant=grant
        )
        self._tokens[token] = record
        return token, record

    def lookup(self, token: str) -> TokenRecord | None:
        """The record of a known token (valid or not), or ``None``."""
        return self._tokens.get(token)

    def validate(self, token: str) -> TokenRecord | None:
        """The record of a valid token, or ``None`` (unknown, expired or revoked)."""
        record = self._tokens.get(token)
        if record is None or not record.is_valid(self.clock.time()):
            return None
        return record

    def _matching(self, client_id: str | None) -> list[TokenRecord]:
        now = self.clock.time()
        return [
            record
            for record in self._tokens.values()
            if record.is_valid(now) and (client_id is None or record.client_id == client_id)
        ]

    def expire(self, client_id: str | None = None) -> int:
        """Expire every valid token (of one client); returns how many."""
        now = self.clock.time()
        matching = self._matching(client_id)
        for record in matching:
            record.expires_at = now
        return len(matching)

    def revoke(self, client_id: str | None = None) -> int:
        """Revoke every valid token (of one client); returns how many."""
        now = self.clock.time()
        revoked = [
            token
            for token, record in self._tokens.items()
            if record.is_valid(now) and (client_id is None or record.client_id == client_id)
        ]
        for token in revoked:
            self._tokens[token].revoked = True
        self._revoked(revoked)
        return len(revoked)

    def revoke_token(self, token: str) -> bool:
        """Revoke one token; ``True`` if it was valid."""
        record = self._tokens.get(token)
        if record is None or not record.is_valid(self.clock.time()):
            return False
        record.revoked = True
        self._revoked([token])
        return True

    def set_token_lifetime(self, client_id: str, seconds: int) -> None:
        """Lifetime of tokens issued to ``client_id`` from now on (KeyError if unknown)."""
        self.clients[client_id].token_lifetime = seconds

    def active_count(self) -> dict[str, int]:
        """Valid tokens per client id."""
        counts = dict.fromkeys(self.clients, 0)
        for record in self._matching(None):
            counts[record.client_id] = counts.get(record.client_id, 0) + 1
        return counts

    def _prune(self) -> None:
        if len(self._tokens) < _MAX_DEAD_TOKENS:
            return
        now = self.clock.time()
        dead = [token for token, record in self._tokens.items() if not record.is_valid(now)]
        for token in dead[: len(dead) // 2]:
            del self._tokens[token]
