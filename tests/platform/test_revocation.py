"""Revoking a token and proving it dead, against the sandbox: the rule of
``chaosgenesys.revocation`` that the token control, the agents and the observer share."""

from __future__ import annotations

from typing import Any

from chaosgenesys.platform.settings import settings_from
from chaosgenesys.platform.tokens import request_token, token_cache
from chaosgenesys.revocation import outcome, revoke_token


def test_a_revoked_token_is_proved_dead_and_a_second_revocation_says_so(
    configuration: dict[str, Any], secrets: dict[str, str], sandbox: Any
) -> None:
    settings = settings_from(configuration, secrets)
    token = request_token(settings).value
    done = revoke_token(settings.api_url, token, timeout=5)
    assert done.revoked is True and done.still_works is False and done.detail == ""
    again = revoke_token(settings.api_url, token, timeout=5)  # already dead: 401, not an error
    assert again.revoked is True and again.still_works is False
    # another token of the same client lives on: revocation is per token
    other = request_token(settings).value
    assert revoke_token(settings.api_url, other, timeout=5).revoked is True


def test_no_answer_and_a_token_that_survives_are_named() -> None:
    unreachable = revoke_token("http://127.0.0.1:9", "x" * 20, timeout=1)
    assert unreachable.revoked is False and "DELETE" in unreachable.detail
    assert "x" * 20 not in unreachable.detail  # never the token
    survivor = outcome(204, 200)
    assert survivor.revoked and survivor.still_works and "still works" in survivor.detail
    assert outcome(500, 200).detail == "DELETE /api/v2/tokens/me answered 500"


def test_take_all_hands_out_the_cached_tokens_once(
    configuration: dict[str, Any], secrets: dict[str, str]
) -> None:
    settings = settings_from(configuration, secrets)
    cache = token_cache()
    cache.get(settings)
    taken = cache.take_all()
    assert [s.client_id for s, _ in taken] == [settings.client_id]
    assert cache.take_all() == [] and cache.peek(settings) is None
    assert revoke_token(settings.api_url, taken[0][1].value, timeout=5).revoked
