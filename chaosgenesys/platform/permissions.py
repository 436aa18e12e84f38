"""What each Genesys Cloud endpoint the package calls needs: OAuth scopes and role permissions.

Data and pure functions only (no I/O, no heavy imports), for the preflight control and the
sandbox. ``docs/permissions.md`` is the same table for people, with the sources and the remedies.

Facts and where they come from (``[V]``: official Genesys source; ``[C]``: community copy):

- **Permissions** per endpoint, and whether *any* or *all* of them are needed: the official
  Python SDK's API docs, ``build/docs/<Api>.md`` of ``platform-client-sdk-python`` 257.1.0
  ("Requires ANY permissions", "Requires ALL permissions", "Requires no permissions") [V]. A
  permission is ``domain:entity:action`` (``routing:queue:view``).
- **Scopes** per endpoint: the ``security`` of each operation in Genesys' published swagger
  (``https://api.mypurecloud.com/api/v2/docs/swagger``), read from two community copies that
  agree with each other and whose permissions agree with the SDK's (``xfaith4/genesys-contract-
  client`` ``generated/operations.json``, ``api-evangelist/genesys`` ``openapi/*.yml``) [C].
  Any one listed scope suffices: "the app must be authorized with required OAuth scopes (either
  read-write or read-only)" (help.mypurecloud.com, *Permissions and scopes in the public API*)
  [V]; every read in the table lists ``x`` and ``x:readonly``, every write only ``x``, so a write
  scope covers its ``:readonly`` (:func:`scope_granted`).
- **Role policies** (``DomainOrganizationRole.permissionPolicies``): ``{domain, entityName,
  actionSet}``, where ``entityName`` ``"*"`` means every entity of the domain and ``actionSet``
  ``["*"]`` every action (terraform-provider-genesyscloud ``docs/resources/auth_role.md``) [V].
  The domain has no wildcard. A role's ``permissions`` list holds *general* permissions such as
  ``group_creation``, not ``domain:entity:action`` strings (same source) [V]: grants are read
  from the policies (:func:`permission_granted`).
- Scopes "only apply to clients not using the client_credential grant" and role-divisions "only
  apply to clients using the client_credential grant" (SDK model ``OAuthClient``) [V]; orgs do not
  enforce scopes unless an admin turns "Enforce Scopes" on (help.mypurecloud.com, *Enabling OAuth
  scope enforcement*) [V]. So a client-credentials token is limited by its roles, a user token
  (browser login) by its scopes and its user's roles.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

__all__ = [
    "DEFAULT_ROLE_NAME",
    "ENDPOINT_NEEDS",
    "EndpointNeed",
    "endpoint_need",
    "minimal_permissions",
    "minimal_scopes",
    "parse_permission",
    "permission_granted",
    "permissions_satisfied",
    "scope_granted",
]

#: The name of the role the sandbox gives a client whose seed names no roles.
DEFAULT_ROLE_NAME = "Chaos Tooling"

_READONLY = ":readonly"
_WILDCARD = "*"


@dataclass(frozen=True)
class EndpointNeed:
    """What one endpoint needs.

    ``scopes``: any one of them suffices (``()``: the endpoint is not behind an API scope, as the
    login service's ``/oauth/token``). ``permissions``: ``domain:entity:action`` strings combined
    by ``rule`` (``"any"`` or ``"all"``); ``()`` means no permission is needed. ``source`` says
    where the facts come from, tagged ``[V]`` / ``[C]``.
    """

    method: str
    path: str
    scopes: tuple[str, ...]
    permissions: tuple[str, ...]
    rule: str
    source: str

    @property
    def key(self) -> str:
        """``"GET /api/v2/users/{userId}"``: the key of :data:`ENDPOINT_NEEDS`."""
        return f"{self.method} {self.path}"


_SCOPES_SRC = "scopes [C] swagger security (2 community copies)"


def _need(
    method: str,
    path: str,
    scopes: tuple[str, ...],
    permissions: tuple[str, ...] = (),
    rule: str = "any",
    *,
    sdk: str,
) -> EndpointNeed:
    source = f"permissions [V] SDK {sdk}; {_SCOPES_SRC}" if sdk else _SCOPES_SRC
    return EndpointNeed(method, path, scopes, permissions, rule, source)


_USERS = ("users", "users:readonly")
_PRESENCE = ("presence", "presence:readonly")
_ROUTING = ("routing", "routing:readonly")
_ANALYTICS = ("analytics", "analytics:readonly")
_CONVERSATIONS = ("conversations", "conversations:readonly")

_TABLE: tuple[EndpointNeed, ...] = (
    EndpointNeed(
        "POST", "/oauth/token", (), (), "any",
        "login service, not the API: no scope or permission; the client must be active and "
        "have the client-credentials grant [V] developer.genesys.cloud, Use a client "
        "credentials grant",
    ),
    _need("GET", "/api/v2/tokens/me", ("user-basic-info",), sdk="TokensApi.get_tokens_me"),
    _need("HEAD", "/api/v2/tokens/me", ("user-basic-info",), sdk="TokensApi.head_tokens_me"),
    _need("DELETE", "/api/v2/tokens/me", ("user-basic-info",),
          sdk="TokensApi.delete_tokens_me"),
    _need("GET", "/api/v2/users", _USERS, sdk="UsersApi.get_users"),
    _need("GET", "/api/v2/users/{userId}", _USERS, sdk="UsersApi.get_user"),
    _need("GET", "/api/v2/users/{userId}/routingstatus", _USERS,
          sdk="UsersApi.get_user_routingstatus"),
    _need("PUT", "/api/v2/users/{userId}/routingstatus", ("users",),
          sdk="UsersApi.put_user_routingstatus"),
    _need("GET", "/api/v2/users/{userId}/queues", _USERS, ("routing:queue:view",),
          sdk="RoutingApi.get_user_queues"),
    _need("GET", "/api/v2/users/{userId}/presences/purecloud", _PRESENCE,
          sdk="PresenceApi.get_user_presences_purecloud"),
    _need("PATCH", "/api/v2/users/{userId}/presences/purecloud", ("presence",),
          sdk="PresenceApi.patch_user_presences_purecloud"),
    _need("GET", "/api/v2/presence/definitions", _PRESENCE,
          ("presence:presenceDefinition:view",), "all",
          sdk="PresenceApi.get_presence_definitions"),
    _need("GET", "/api/v2/routing/queues/{queueId}/members", _ROUTING,
          ("routing:queue:view", "routing:queue:edit", "routing:queue:readonly",
           "routing:queueMember:manage"),
          sdk="RoutingApi.get_routing_queue_members"),
    _need("GET", "/api/v2/routing/wrapupcodes", _ROUTING, ("routing:wrapupCode:view",), "all",
          sdk="RoutingApi.get_routing_wrapupcodes"),
    _need("POST", "/api/v2/analytics/queues/observations/query", _ANALYTICS,
          ("analytics:queueObservation:view",),
          sdk="RoutingApi.post_analytics_queues_observations_query"),
    _need("GET", "/api/v2/analytics/agents/{userId}/status", _ANALYTICS,
          ("analytics:agentState:view",), sdk="AnalyticsApi.get_analytics_agent_status"),
    _need("GET", "/api/v2/conversations/{conversationId}", _CONVERSATIONS,
          ("conversation:communication:view",), sdk="ConversationsApi.get_conversation"),
    _need("PATCH", "/api/v2/conversations/calls/{conversationId}/participants/{participantId}",
          ("conversations",),
          ("conversation:participant:wrapup", "conversation:call:record",
           "conversation:communication:disconnect"),
          sdk="ConversationsApi.patch_conversations_call_participant"),
    _need("POST",
          "/api/v2/conversations/calls/{conversationId}/participants/{participantId}"
          "/communications/{communicationId}/wrapup",
          ("conversations",), ("conversation:participant:wrapup",),
          sdk="ConversationsApi.post_conversations_call_participant_communication_wrapup"),
    _need("POST", "/api/v2/notifications/channels", ("notifications",),
          sdk="NotificationsApi.post_notifications_channels"),
    _need("HEAD", "/api/v2/notifications/channels/{channelId}", ("notifications",),
          sdk="NotificationsApi.head_notifications_channel"),
    _need("PUT", "/api/v2/notifications/channels/{channelId}/subscriptions", ("notifications",),
          sdk="NotificationsApi.put_notifications_channel_subscriptions"),
    _need("GET", "/api/v2/oauth/clients/{clientId}", ("oauth", "oauth:readonly"),
          ("oauth:client:view",), sdk="OAuthApi.get_oauth_client"),
    _need("GET", "/api/v2/authorization/roles/{roleId}",
          ("authorization", "authorization:readonly"), ("authorization:role:view",),
          sdk="AuthorizationApi.get_authorization_role"),
)

#: Every endpoint the package calls (and the preflight reads), keyed ``"METHOD /path"`` with
#: the platform's path template (``{userId}``).
ENDPOINT_NEEDS: Mapping[str, EndpointNeed] = MappingProxyType({n.key: n for n in _TABLE})


def _segments_match(template: str, path: str) -> bool:
    left, right = template.strip("/").split("/"), path.strip("/").split("/")
    if len(left) != len(right):
        return False
    return all(
        (t.startswith("{") and t.endswith("}") and bool(p)) or t == p
        for t, p in zip(left, right, strict=True)
    )


def endpoint_need(method: str, path: str) -> EndpointNeed:
    """What ``method path`` needs; ``path`` is a template (``/api/v2/users/{userId}``) or a
    concrete path (``/api/v2/users/0b6b...``, a query string is ignored). An endpoint not in the
    table raises :class:`ValueError` naming it."""
    verb = method.strip().upper()
    bare = path.split("?", 1)[0]
    found = ENDPOINT_NEEDS.get(f"{verb} {bare}")
    if found is not None:
        return found
    for need in _TABLE:
        if need.method == verb and _segments_match(need.path, bare):
            return need
    raise ValueError(
        f"no permission data for {verb} {bare}: not an endpoint chaosgenesys calls "
        "(chaosgenesys.platform.permissions.ENDPOINT_NEEDS)"
    )


def parse_permission(permission: str) -> tuple[str, str, str]:
    """``"routing:queue:view"`` -> ``("routing", "queue", "view")``; anything else raises
    :class:`ValueError` naming it."""
    parts = permission.split(":")
    if len(parts) != 3 or not all(part.strip() for part in parts):
        raise ValueError(f"permission {permission!r} is not 'domain:entity:action'")
    domain, entity, action = (part.strip() for part in parts)
    return domain, entity, action


def permission_granted(permission: str, policies: Iterable[Mapping[str, Any]]) -> bool:
    """Whether role ``policies`` (``permissionPolicies`` of one or more roles: ``{"domain",
    "entityName", "actionSet"}``) grant ``permission``.

    The domain must be equal; ``entityName`` ``"*"`` matches every entity and an ``actionSet``
    holding ``"*"`` every action. Names compare exactly (Genesys spells them in camelCase:
    ``queueObservation``). Conditions (``allowConditions``, ``resourceConditionNode``) and named
    resources narrow a grant to some objects; they are not evaluated here: such a policy counts
    as granting."""
    domain, entity, action = parse_permission(permission)
    for policy in policies:
        if policy.get("domain") != domain:
            continue
        if policy.get("entityName") not in (entity, _WILDCARD):
            continue
        actions = policy.get("actionSet") or ()
        if action in actions or _WILDCARD in actions:
            return True
    return False


def permissions_satisfied(need: EndpointNeed, policies: Iterable[Mapping[str, Any]]) -> bool:
    """Whether ``policies`` satisfy ``need`` (any or all of its permissions; none needed: true)."""
    if not need.permissions:
        return True
    held = list(policies)
    granted = (permission_granted(p, held) for p in need.permissions)
    return all(granted) if need.rule == "all" else any(granted)


def scope_granted(needed: Iterable[str], authorized: Iterable[str]) -> bool:
    """Whether ``authorized`` scopes (``TokenInfo.authorizedScope``) hold one of ``needed``;
    ``x`` covers ``x:readonly``. Nothing needed: true. No wildcard: the swagger's declared
    ``all`` scope is not treated as one (never seen on a token)."""
    wanted = list(needed)
    if not wanted:
        return True
    have = set(authorized)
    for scope in wanted:
        if scope in have:
            return True
        if scope.endswith(_READONLY) and scope[: -len(_READONLY)] in have:
            return True
    return False


def minimal_scopes(needs: Iterable[EndpointNeed] | None = None) -> tuple[str, ...]:
    """The fewest scopes that satisfy every need (default: the whole table), sorted: per scope
    family (``presence``), ``x:readonly`` if every need of the family accepts it, else ``x``."""
    chosen: set[str] = set()
    families: dict[str, bool] = {}  # family -> a need accepts only the write scope
    for need in _TABLE if needs is None else needs:
        if not need.scopes:
            continue
        family = need.scopes[0].removesuffix(_READONLY)
        readonly = f"{family}{_READONLY}" in need.scopes
        families[family] = families.get(family, False) or not readonly
    for family, write in families.items():
        chosen.add(family if write else f"{family}{_READONLY}")
    return tuple(sorted(chosen))


def minimal_permissions(needs: Iterable[EndpointNeed] | None = None) -> tuple[str, ...]:
    """Permissions that satisfy every need (default: the whole table), sorted: all of an
    ``all`` need's, the first of an ``any`` need's unless another need already brings one."""
    chosen: set[str] = set()
    pending: list[EndpointNeed] = []
    for need in _TABLE if needs is None else needs:
        if need.rule == "all":
            chosen.update(need.permissions)
        elif need.permissions:
            pending.append(need)
    for need in pending:
        if not chosen.intersection(need.permissions):
            chosen.add(need.permissions[0])
    return tuple(sorted(chosen))
