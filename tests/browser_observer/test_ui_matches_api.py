"""ui_matches_api: the page's presence label against the real sandbox's presence of the user."""

from __future__ import annotations

from typing import Any

import pytest
from chaoslib.exceptions import ActivityFailed

from chaosgenesys.browser import actions, probes
from chaosgenesys.users.actions import set_presence
from tests.browser.pages import serve_test_page
from tests.browser_observer.conftest import page_in, wait_for
from tests.conftest import AGENT_1


def test_ui_matches_api_true_then_false_when_the_platform_moves(
    configuration: dict[str, Any], secrets: dict[str, str]
) -> None:
    with serve_test_page() as site:
        started = actions.start_observer(open_url=site.url + "/")
        with page_in(started["devtools_url"], "127\\.0\\.0\\.1") as page:
            page.evaluate("setPresence('On Queue')")  # the sandbox seeds AGENT_1 On Queue
            wait_for(lambda: probes.ui_presence() == "On Queue", 5)
            same = probes.ui_matches_api(AGENT_1, configuration=configuration, secrets=secrets)
            assert same == {"matches": True, "ui": "On Queue", "api": "On Queue",
                            "user_id": AGENT_1}
            set_presence(AGENT_1, "Offline", configuration, secrets)
            apart = probes.ui_matches_api(AGENT_1, started["id"], configuration, secrets)
            assert apart == {"matches": False, "ui": "On Queue", "api": "Offline",
                             "user_id": AGENT_1}
            page.evaluate("setPresence('OFFLINE')")  # spellings compare loosely
            wait_for(lambda: probes.ui_presence() == "OFFLINE", 5)
            assert probes.ui_matches_api(AGENT_1, "", configuration, secrets)["matches"] is True
            with pytest.raises(ActivityFailed, match="user_id"):
                probes.ui_matches_api("no-such-user", "", configuration, secrets)
        actions.stop_observer()


def test_probes_name_a_missing_observer() -> None:
    with pytest.raises(ActivityFailed, match="no browser observer has run in this run"):
        probes.browser_summary()
    with pytest.raises(ActivityFailed, match="observer_id 'nope'"):
        probes.ui_presence("nope")
    with pytest.raises(ActivityFailed, match="silence_s"):
        probes.browser_summary(silence_s=0)
