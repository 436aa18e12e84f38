"""settings_from: configuration keys, secrets (flat or scoped), env fallbacks, defaults, errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from chaoslib.exceptions import ActivityFailed

from chaosgenesys.platform import (
    ClientSettings,
    clear_default_credentials,
    register_default_credentials,
    settings_from,
)
from tests.platform.platform_fixtures import isolated_platform  # noqa: F401 - autouse

SECRET = "s3cr3t-value-never-shown"
CREDS = {"client_id": "cid", "client_secret": SECRET}


def test_region_gives_api_and_login_urls_and_defaults() -> None:
    s = settings_from({"genesys_region": "eu-west-1"}, CREDS)
    assert s.api_url == "https://api.mypurecloud.ie"
    assert s.login_url == "https://login.mypurecloud.ie"
    assert (s.client_id, s.client_secret) == ("cid", SECRET)
    assert s.timeout == 10.0
    assert s.verify_tls is True
    assert s.token_refresh_margin == 60.0
    assert s.max_retry_wait == 30.0
    assert s.max_retries == 5


def test_explicit_urls_win_over_region_and_are_normalised() -> None:
    s = settings_from(
        {
            "genesys_region": "us_east_1",
            "genesys_api_url": "HTTP://127.0.0.1:8080/",
            "genesys_login_url": "http://127.0.0.1:8081",
        },
        CREDS,
    )
    assert s.api_url == "http://127.0.0.1:8080"
    assert s.login_url == "http://127.0.0.1:8081"


def test_login_is_derived_from_a_real_api_url() -> None:
    s = settings_from({"genesys_api_url": "https://api.usw2.pure.cloud"}, CREDS)
    assert s.login_url == "https://login.usw2.pure.cloud"


def test_login_equals_api_url_for_a_sandbox_or_proxy() -> None:
    s = settings_from({"genesys_api_url": "http://127.0.0.1:9999"}, CREDS)
    assert s.login_url == "http://127.0.0.1:9999"


def test_region_plus_explicit_login_url() -> None:
    s = settings_from(
        {"genesys_region": "mypurecloud.de", "genesys_login_url": "http://127.0.0.1:1"}, CREDS
    )
    assert s.api_url == "https://api.mypurecloud.de"
    assert s.login_url == "http://127.0.0.1:1"


def test_numbers_from_strings_and_tls_settings(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    s = settings_from(
        {
            "genesys_region": "us_east_1",
            "genesys_timeout": "2.5",
            "genesys_verify_tls": str(bundle),
            "genesys_token_refresh_margin": 5,
            "genesys_max_retry_wait": "7",
            "genesys_max_retries": "2",
        },
        CREDS,
    )
    assert s.timeout == 2.5
    assert s.verify_tls == str(bundle)
    assert s.token_refresh_margin == 5.0
    assert s.max_retry_wait == 7.0
    assert s.max_retries == 2
    assert (
        settings_from(
            {"genesys_region": "us_east_1", "genesys_verify_tls": "false"}, CREDS
        ).verify_tls
        is False
    )
    assert (
        settings_from(
            {"genesys_region": "us_east_1", "genesys_verify_tls": False}, CREDS
        ).verify_tls
        is False
    )


@pytest.mark.parametrize(
    "key,value",
    [
        ("genesys_timeout", 0),
        ("genesys_timeout", -1),
        ("genesys_timeout", "soon"),
        ("genesys_timeout", True),
        ("genesys_timeout", float("nan")),
        ("genesys_max_retry_wait", -3),
        ("genesys_token_refresh_margin", "x"),
        ("genesys_max_retries", 1.5),
        ("genesys_verify_tls", "/no/such/bundle.pem"),
        ("genesys_verify_tls", 3),
        ("genesys_api_url", "ftp://api.example.com"),
        ("genesys_api_url", "not a url"),
    ],
)
def test_bad_values_name_key_and_value(key: str, value: Any) -> None:
    config: dict[str, Any] = {"genesys_region": "us_east_1", key: value}
    with pytest.raises(ActivityFailed) as info:
        settings_from(config, CREDS)
    text = str(info.value)
    assert key in text
    assert repr(value) in text or str(value) in text
    assert SECRET not in text


def test_scoped_secrets_as_controls_receive_them() -> None:
    s = settings_from({"genesys_region": "us_east_1"}, {"genesys": dict(CREDS)})
    assert (s.client_id, s.client_secret) == ("cid", SECRET)
    s = settings_from({"genesys_region": "us_east_1"}, {"other": {"x": 1}, "mine": dict(CREDS)})
    assert s.client_id == "cid"


def test_environment_fallbacks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENESYSCLOUD_OAUTHCLIENT_ID", "env-id")
    monkeypatch.setenv("GENESYSCLOUD_OAUTHCLIENT_SECRET", SECRET)
    monkeypatch.setenv("GENESYSCLOUD_REGION", "ap-southeast-2")
    s = settings_from(None, None)
    assert s.api_url == "https://api.mypurecloud.com.au"
    assert s.login_url == "https://login.mypurecloud.com.au"
    assert s.client_id == "env-id"
    monkeypatch.setenv("GENESYSCLOUD_API_REGION", "https://api.mypurecloud.jp")
    s = settings_from({}, {})
    assert s.api_url == "https://api.mypurecloud.jp"
    assert s.login_url == "https://login.mypurecloud.jp"
    # configuration and secrets win over the environment
    s = settings_from({"genesys_region": "eu_west_2"}, CREDS)
    assert s.api_url == "https://api.euw2.pure.cloud"
    assert s.client_id == "cid"


def test_missing_credentials_say_which_keys() -> None:
    with pytest.raises(ActivityFailed) as info:
        settings_from({"genesys_region": "us_east_1"}, None)
    text = str(info.value)
    for key in (
        "client_id",
        "client_secret",
        "GENESYSCLOUD_OAUTHCLIENT_ID",
        "GENESYSCLOUD_OAUTHCLIENT_SECRET",
    ):
        assert key in text


def test_half_credentials_name_the_missing_one(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ActivityFailed, match="client_secret") as info:
        settings_from({"genesys_region": "us_east_1"}, {"client_id": "cid"})
    assert "client_id" not in str(info.value).split("set", 1)[1].split("in the")[0]
    monkeypatch.setenv("GENESYSCLOUD_OAUTHCLIENT_SECRET", SECRET)
    with pytest.raises(ActivityFailed, match="GENESYSCLOUD_OAUTHCLIENT_ID") as info:
        settings_from({"genesys_region": "us_east_1"}, None)
    assert SECRET not in str(info.value)


def test_missing_region_says_which_keys() -> None:
    with pytest.raises(ActivityFailed) as info:
        settings_from({}, CREDS)
    text = str(info.value)
    for key in (
        "genesys_region",
        "genesys_api_url",
        "GENESYSCLOUD_REGION",
        "GENESYSCLOUD_API_REGION",
    ):
        assert key in text


def test_default_credentials_per_login_url() -> None:
    register_default_credentials("http://127.0.0.1:4321/", "sandbox-id", SECRET)
    s = settings_from({"genesys_api_url": "http://127.0.0.1:4321"}, None)
    assert (s.client_id, s.client_secret) == ("sandbox-id", SECRET)
    # another login URL does not get them
    with pytest.raises(ActivityFailed):
        settings_from({"genesys_api_url": "http://127.0.0.1:4322"}, None)
    # secrets win over the defaults
    assert settings_from({"genesys_api_url": "http://127.0.0.1:4321"}, CREDS).client_id == "cid"
    clear_default_credentials("http://127.0.0.1:4321")
    with pytest.raises(ActivityFailed):
        settings_from({"genesys_api_url": "http://127.0.0.1:4321"}, None)


def test_registered_defaults_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # A real org's client exported in the shell must not be sent to the sandbox.
    monkeypatch.setenv("GENESYSCLOUD_OAUTHCLIENT_ID", "real-org-id")
    monkeypatch.setenv("GENESYSCLOUD_OAUTHCLIENT_SECRET", "real-org-secret")
    register_default_credentials("http://127.0.0.1:4323/", "sandbox-id", SECRET)
    try:
        s = settings_from({"genesys_api_url": "http://127.0.0.1:4323"}, None)
        assert s.client_id == "sandbox-id"
        # Elsewhere the environment still applies.
        other = settings_from({"genesys_api_url": "http://127.0.0.1:4324"}, None)
        assert other.client_id == "real-org-id"
    finally:
        clear_default_credentials("http://127.0.0.1:4323")


def test_settings_are_frozen_hashable_and_hide_the_secret() -> None:
    s = settings_from({"genesys_region": "us_east_1"}, CREDS)
    assert SECRET not in repr(s)
    assert hash(s) == hash(settings_from({"genesys_region": "us_east_1"}, CREDS))
    with pytest.raises(AttributeError):
        s.timeout = 3  # type: ignore[misc]
    assert isinstance(s, ClientSettings)
