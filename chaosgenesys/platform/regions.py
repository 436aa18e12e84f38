"""Genesys Cloud regions and their base URLs.

Each region has three hosts: ``api.<domain>``, ``login.<domain>`` and ``streaming.<domain>``.
:func:`resolve_region` accepts the names the Genesys tools use (``us_east_1``, ``us-east-1``,
``US_EAST_1``), a bare domain (``mypurecloud.ie``) or a full URL on one of the region's hosts
(``https://api.mypurecloud.ie``).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from chaoslib.exceptions import ActivityFailed

__all__ = ["REGIONS", "Region", "region_names", "resolve_region"]


@dataclass(frozen=True)
class Region:
    """One Genesys Cloud region: its name (``us_east_1``) and domain (``mypurecloud.com``)."""

    name: str
    domain: str
    label: str = ""

    @property
    def api_url(self) -> str:
        """Base URL of the Platform API, e.g. ``https://api.mypurecloud.com``."""
        return f"https://api.{self.domain}"

    @property
    def login_url(self) -> str:
        """Base URL of the OAuth server, e.g. ``https://login.mypurecloud.com``."""
        return f"https://login.{self.domain}"

    @property
    def streaming_url(self) -> str:
        """Base URL of the notification WebSockets, e.g. ``wss://streaming.mypurecloud.com``."""
        return f"wss://streaming.{self.domain}"


_TABLE: tuple[tuple[str, str, str], ...] = (
    ("us_east_1", "mypurecloud.com", "Americas (US East)"),
    ("eu_west_1", "mypurecloud.ie", "EMEA (Dublin)"),
    ("ap_southeast_2", "mypurecloud.com.au", "Asia Pacific (Sydney)"),
    ("ap_northeast_1", "mypurecloud.jp", "Asia Pacific (Tokyo)"),
    ("eu_central_1", "mypurecloud.de", "EMEA (Frankfurt)"),
    ("us_west_2", "usw2.pure.cloud", "Americas (US West)"),
    ("ca_central_1", "cac1.pure.cloud", "Americas (Canada)"),
    ("ap_northeast_2", "apne2.pure.cloud", "Asia Pacific (Seoul)"),
    ("eu_west_2", "euw2.pure.cloud", "EMEA (London)"),
    ("ap_south_1", "aps1.pure.cloud", "Asia Pacific (Mumbai)"),
    ("us_east_2", "use2.us-gov-pure.cloud", "Americas (US East 2, FedRAMP)"),
    ("sa_east_1", "sae1.pure.cloud", "Americas (Sao Paulo)"),
    ("me_central_1", "mec1.pure.cloud", "Middle East (UAE)"),
    ("ap_northeast_3", "apne3.pure.cloud", "Asia Pacific (Osaka)"),
    ("eu_central_2", "euc2.pure.cloud", "EMEA (Zurich)"),
    ("mx_central_1", "mxc1.pure.cloud", "Americas (Mexico)"),
    ("ap_southeast_1", "apse1.pure.cloud", "Asia Pacific (Jakarta)"),
    ("eusc_de_east_1", "edee1.eusc-pure.cloud", "EU Sovereign Cloud (Germany)"),
)

#: Every region by name.
REGIONS: dict[str, Region] = {name: Region(name, domain, label) for name, domain, label in _TABLE}
_BY_DOMAIN: dict[str, Region] = {region.domain: region for region in REGIONS.values()}
_HOST_PREFIXES = ("api.", "login.", "streaming.", "apps.")


def region_names() -> list[str]:
    """The names of all regions, in table order."""
    return list(REGIONS)


def _unknown(value: object, key: str) -> ActivityFailed:
    return ActivityFailed(
        f"unknown Genesys Cloud region {key}={value!r}; valid regions are "
        f"{', '.join(REGIONS)} (or one of their domains, such as mypurecloud.ie)"
    )


def _by_domain(host: str) -> Region | None:
    host = host.strip().lower().rstrip(".")
    if host in _BY_DOMAIN:
        return _BY_DOMAIN[host]
    for prefix in _HOST_PREFIXES:
        if host.startswith(prefix) and host[len(prefix) :] in _BY_DOMAIN:
            return _BY_DOMAIN[host[len(prefix) :]]
    return None


def resolve_region(value: object, key: str = "genesys_region") -> Region:
    """The :class:`Region` a name, domain or URL designates.

    ``key`` names the setting the value came from, for the error message. An unknown value
    raises ``ActivityFailed`` naming the value and listing the valid regions.
    """
    if not isinstance(value, str) or not value.strip():
        raise _unknown(value, key)
    text = value.strip()
    name = text.lower().replace("-", "_")
    if name in REGIONS:
        return REGIONS[name]
    if "://" in text:
        host = urlsplit(text).hostname or ""
    else:
        host = text.split("/", 1)[0].split(":", 1)[0]
    region = _by_domain(host)
    if region is None:
        raise _unknown(value, key)
    return region
