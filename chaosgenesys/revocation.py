"""Revoke an access token and prove it no longer works (the guide's PCI-DSS trap: session tokens
left valid after a failover test).

``DELETE {api}/api/v2/tokens/me`` with the token revokes it (the platform answers 204 or 200);
``HEAD {api}/api/v2/tokens/me`` with it then answers 401 when it is dead. :func:`revoke_token`
does both and tells what it saw; it never raises for an HTTP answer and never returns, logs or
prints the token. Used for the tooling's own tokens (:mod:`chaosgenesys.controls.tokens`); the
synthetic agents and the browser observer do the same with their own HTTP stacks
(:func:`outcome` is the shared rule; this module imports nothing heavy, so the agent process,
which never imports ``requests``, can use it).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["REVOKE_PATH", "Revocation", "outcome", "revoke_token"]

REVOKE_PATH = "/api/v2/tokens/me"


@dataclass(frozen=True)
class Revocation:
    """What revoking one token did: ``revoked`` (the DELETE was accepted, or the token was
    already dead), ``still_works`` (the check afterwards was accepted: the token lives on),
    and a short reason when either is not as wanted."""

    revoked: bool
    still_works: bool
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def outcome(delete_status: int | None, check_status: int | None, error: str = "") -> Revocation:
    """The verdict from the DELETE's and the check's HTTP statuses (``None``: no answer)."""
    revoked = delete_status is not None and (200 <= delete_status < 300 or delete_status == 401)
    still_works = check_status is not None and 200 <= check_status < 300
    if error:
        detail = error
    elif not revoked:
        detail = f"DELETE {REVOKE_PATH} answered {delete_status}"
    elif still_works:
        detail = f"the token still works after its revocation (HEAD answered {check_status})"
    elif check_status is None:
        detail = "the check after the revocation got no answer"
    else:
        detail = ""
    return Revocation(revoked, still_works, detail)


def revoke_token(
    api_url: str, token: str, *, timeout: float = 5.0, verify: bool | str = True
) -> Revocation:
    """Revoke ``token`` at ``api_url`` and check that it no longer works."""
    from chaoslib.exceptions import ActivityFailed

    from chaosgenesys.platform import http

    url = api_url.rstrip("/") + REVOKE_PATH
    headers = {"Authorization": f"Bearer {token}"}
    try:
        deleted = http.send("DELETE", url, headers=headers, timeout=timeout, verify=verify)
    except ActivityFailed as error:
        return outcome(None, None, str(error))
    try:
        checked = http.send("HEAD", url, headers=headers, timeout=timeout, verify=verify)
    except ActivityFailed as error:
        return outcome(deleted.status_code, None, str(error))
    return outcome(deleted.status_code, checked.status_code)
