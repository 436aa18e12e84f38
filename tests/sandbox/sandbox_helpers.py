"""Helpers for the sandbox tests: an authenticated HTTP client over a real sandbox.

The shared ids come from ``tests/conftest.py``. Test modules declare the ``api`` fixture with
:func:`api_fixture`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.conftest import AGENT_1, AGENT_2, AGENT_3, CLIENT_ID, CLIENT_SECRET, QUEUE, make_seed
from tests.polling import wait_until as wait_until

__all__ = [
    "AGENT_1",
    "AGENT_2",
    "AGENT_3",
    "CLIENT_ID",
    "CLIENT_SECRET",
    "QUEUE",
    "Api",
    "api_fixture",
    "make_seed",
    "wait_until",
]


class Api:
    """A small requests-based client of a running sandbox (bearer token from /oauth/token)."""

    def __init__(
        self, sandbox: Any, client_id: str = CLIENT_ID, client_secret: str = CLIENT_SECRET
    ) -> None:
        self.sandbox = sandbox
        self.url = sandbox.url
        self.session = requests.Session()
        self.client_id = client_id
        self.client_secret = client_secret
        self.token = self.new_token()

    def new_token(self) -> str:
        response = self.session.post(
            f"{self.url}/oauth/token",
            auth=(self.client_id, self.client_secret),
            data={"grant_type": "client_credentials"},
            timeout=5,
        )
        assert response.status_code == 200, response.text
        token: str = response.json()["access_token"]
        return token

    def request(
        self, method: str, path: str, *, token: str | None = None, **kwargs: Any
    ) -> requests.Response:
        headers = dict(kwargs.pop("headers", {}))
        headers.setdefault("Authorization", f"Bearer {token or self.token}")
        return self.session.request(
            method, f"{self.url}{path}", headers=headers, timeout=10, **kwargs
        )

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("PATCH", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("PUT", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("DELETE", path, **kwargs)

    def admin(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """A request to the admin surface (no auth)."""
        return self.session.request(method, f"{self.url}/sandbox/v1{path}", timeout=10, **kwargs)

    def close(self) -> None:
        self.session.close()


def api_fixture() -> Any:
    """A pytest fixture ``api``: an authenticated client of the ``sandbox`` fixture."""

    @pytest.fixture
    def api(sandbox: Any) -> Iterator[Api]:
        client = Api(sandbox)
        yield client
        client.close()

    return api


