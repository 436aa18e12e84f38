"""Regions: every name of the API reference, its spellings, domains and URLs."""

from __future__ import annotations

import pytest
from chaoslib.exceptions import ActivityFailed

from chaosgenesys.platform.regions import REGIONS, resolve_region
from tests.platform.platform_fixtures import isolated_platform  # noqa: F401 - autouse

TABLE = {
    "us_east_1": "mypurecloud.com",
    "eu_west_1": "mypurecloud.ie",
    "ap_southeast_2": "mypurecloud.com.au",
    "ap_northeast_1": "mypurecloud.jp",
    "eu_central_1": "mypurecloud.de",
    "us_west_2": "usw2.pure.cloud",
    "ca_central_1": "cac1.pure.cloud",
    "ap_northeast_2": "apne2.pure.cloud",
    "eu_west_2": "euw2.pure.cloud",
    "ap_south_1": "aps1.pure.cloud",
    "us_east_2": "use2.us-gov-pure.cloud",
    "sa_east_1": "sae1.pure.cloud",
    "me_central_1": "mec1.pure.cloud",
    "ap_northeast_3": "apne3.pure.cloud",
    "eu_central_2": "euc2.pure.cloud",
    "mx_central_1": "mxc1.pure.cloud",
    "ap_southeast_1": "apse1.pure.cloud",
    "eusc_de_east_1": "edee1.eusc-pure.cloud",
}


def test_all_eighteen_regions_of_the_reference() -> None:
    assert len(REGIONS) == 18
    assert {name: r.domain for name, r in REGIONS.items()} == TABLE


@pytest.mark.parametrize("name,domain", sorted(TABLE.items()))
def test_each_region_by_every_spelling(name: str, domain: str) -> None:
    spellings = [
        name,
        name.replace("_", "-"),
        name.upper(),
        domain,
        f"https://api.{domain}",
        f"https://login.{domain}/",
        f"api.{domain}",
    ]
    for spelling in spellings:
        region = resolve_region(spelling)
        assert region.name == name, spelling
        assert region.api_url == f"https://api.{domain}"
        assert region.login_url == f"https://login.{domain}"
        assert region.streaming_url == f"wss://streaming.{domain}"


@pytest.mark.parametrize("value", ["us_east_9", "mypurecloud.example", "", "https://example.com"])
def test_unknown_region_names_the_value_and_lists_valid_ones(value: str) -> None:
    with pytest.raises(ActivityFailed) as info:
        resolve_region(value)
    text = str(info.value)
    assert f"genesys_region={value!r}" in text
    assert "us_east_1" in text and "eusc_de_east_1" in text and "ap_southeast_1" in text


def test_non_string_region_is_rejected() -> None:
    with pytest.raises(ActivityFailed, match="genesys_region=42"):
        resolve_region(42)
