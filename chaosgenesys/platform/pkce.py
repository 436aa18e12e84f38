"""PKCE (RFC 7636) S256, both sides: the challenge a client sends with its authorization request
and the one the sandbox's authorization server checks the token request's verifier against.

Only the standard library: the sandbox and the synthetic agents import it without the HTTP
client around it.
"""

from __future__ import annotations

import base64
import hashlib
import secrets

__all__ = ["new_verifier", "s256_challenge"]


def new_verifier() -> str:
    """A fresh code verifier: 64 characters of ``[A-Za-z0-9_-]`` (RFC 7636 allows 43-128)."""
    return secrets.token_urlsafe(48)


def s256_challenge(verifier: str) -> str:
    """``BASE64URL(SHA256(verifier))`` without padding: the ``S256`` code challenge."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
