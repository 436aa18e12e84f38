"""Which Genesys Cloud endpoints each activity and control calls with the tooling's OAuth client.

The preflight (``chaosgenesys.controls.preflight``) turns an experiment into the endpoints it
will call, then into the scopes and role permissions those need
(``chaosgenesys.platform.permissions``). Every activity of the extension is listed (a test
checks it against ``chaosgenesys.discover()``), so a new activity cannot be forgotten: one that
calls no Genesys API maps to ``()``. Endpoints are written ``"METHOD /path/{param}"`` with the
official SDK's parameter names. Pure data.
"""

from __future__ import annotations

__all__ = [
    "ACTIVITY_ENDPOINTS",
    "CONTROL_ENDPOINTS",
    "SANDBOX_ONLY",
    "TOOLING_TOKEN",
]

#: Every call through the platform client first needs the tooling's token.
TOOLING_TOKEN = "POST /oauth/token"

_USER = "GET /api/v2/users/{userId}"
_USERS = "GET /api/v2/users"
_PRESENCE = "GET /api/v2/users/{userId}/presences/purecloud"
_PRESENCE_SET = "PATCH /api/v2/users/{userId}/presences/purecloud"
_ROUTING = "GET /api/v2/users/{userId}/routingstatus"
_ROUTING_SET = "PUT /api/v2/users/{userId}/routingstatus"
_DEFINITIONS = "GET /api/v2/presence/definitions"
_CONVERSATION = "GET /api/v2/conversations/{conversationId}"
_PARTICIPANT_SET = "PATCH /api/v2/conversations/calls/{conversationId}/participants/{participantId}"
_WRAPUP = (
    "POST /api/v2/conversations/calls/{conversationId}/participants/{participantId}"
    "/communications/{communicationId}/wrapup"
)
_WRAPUP_CODES = "GET /api/v2/routing/wrapupcodes"
_QUEUE_MEMBERS = "GET /api/v2/routing/queues/{queueId}/members"
_QUEUE_OBSERVATIONS = "POST /api/v2/analytics/queues/observations/query"
_AGENT_STATUS = "GET /api/v2/analytics/agents/{userId}/status"
_CHANNELS = "POST /api/v2/notifications/channels"
_SUBSCRIPTIONS = "PUT /api/v2/notifications/channels/{channelId}/subscriptions"
_TOKEN_ME = "GET /api/v2/tokens/me"
_TOKEN_CHECK = "HEAD /api/v2/tokens/me"
_TOKEN_REVOKE = "DELETE /api/v2/tokens/me"

_READ_PRESENCE = (_PRESENCE, _USER)  # an unknown user is told apart by reading it
_READ_ROUTING = (_ROUTING, _USER)
_WATCH = (_CHANNELS, _SUBSCRIPTIONS, _USER)
_DESKTOP = (
    _USER, _DEFINITIONS, _PRESENCE_SET, _ROUTING_SET, _CHANNELS, _SUBSCRIPTIONS,
    _CONVERSATION, _PARTICIPANT_SET, _WRAPUP, _WRAPUP_CODES, _AGENT_STATUS, _TOKEN_CHECK,
    _TOKEN_REVOKE,
)
_NONE: tuple[str, ...] = ()

#: ``"module.function"`` → the endpoints it calls (besides the tooling's token).
ACTIVITY_ENDPOINTS: dict[str, tuple[str, ...]] = {
    # the API as the source of truth
    "chaosgenesys.users.probes.get_user": (_USER,),
    "chaosgenesys.users.probes.get_presence": _READ_PRESENCE,
    "chaosgenesys.users.probes.get_routing_status": _READ_ROUTING,
    "chaosgenesys.users.probes.presence_is": _READ_PRESENCE,
    "chaosgenesys.users.probes.routing_status_is": _READ_ROUTING,
    "chaosgenesys.users.probes.wait_for_presence": _READ_PRESENCE,
    "chaosgenesys.users.probes.presence_and_routing_agree": (_USER, _PRESENCE, _ROUTING),
    "chaosgenesys.users.probes.agents_state": (_USERS,),
    "chaosgenesys.users.actions.set_presence": (_DEFINITIONS, _PRESENCE, _PRESENCE_SET),
    "chaosgenesys.users.actions.restore_presence": (_PRESENCE_SET,),
    "chaosgenesys.conversations.probes.get_conversation": (_CONVERSATION,),
    "chaosgenesys.conversations.probes.participant_state": (_CONVERSATION,),
    "chaosgenesys.conversations.probes.wait_for_participant_state": (_CONVERSATION,),
    "chaosgenesys.conversations.probes.call_is_connected": (_CONVERSATION,),
    "chaosgenesys.conversations.probes.active_interactions": (_USER,),
    "chaosgenesys.conversations.probes.wrapup_state": (_CONVERSATION,),
    "chaosgenesys.routing.probes.queue_members": (_QUEUE_MEMBERS,),
    "chaosgenesys.routing.probes.queue_observations": (_QUEUE_OBSERVATIONS,),
    "chaosgenesys.routing.probes.queue_is_isolated": (_QUEUE_MEMBERS, _QUEUE_OBSERVATIONS),
    "chaosgenesys.auth.probes.token_info": (_TOKEN_ME,),
    "chaosgenesys.auth.actions.revoke_token": (_TOKEN_REVOKE,),
    "chaosgenesys.auth.actions.wait_until_token_expiry": _NONE,
    "chaosgenesys.notifications.probes.watch_events": _WATCH,
    "chaosgenesys.notifications.probes.longest_not_on_queue": _NONE,
    "chaosgenesys.notifications.probes.max_reconnect_latency": _NONE,
    # the protocol: its own reads (bulk), the rest is measured from what runs
    "chaosgenesys.protocol.probes.measure_baseline": (_USERS,),
    "chaosgenesys.protocol.probes.time_to_recover": (_USERS,),
    "chaosgenesys.protocol.probes.compare_with_baseline": _NONE,
    "chaosgenesys.protocol.probes.recovery_within": _NONE,
    "chaosgenesys.protocol.probes.protocol_figures": _NONE,
    # synthetic desktops log in with the tooling's client and act for their agent
    "chaosgenesys.agent.actions.start_agents": _DESKTOP,
    "chaosgenesys.agent.actions.stop_agents": _NONE,
    "chaosgenesys.agent.actions.wait_until_agent_token_expiry": _NONE,
    "chaosgenesys.agent.probes.agent_summary": _NONE,
    "chaosgenesys.agent.probes.desktop_longest_off_queue": _NONE,
    "chaosgenesys.agent.probes.desktop_max_reconnect_latency": _NONE,
    # a desktop in a browser logs in as its agent, not with the tooling's client
    "chaosgenesys.browser.actions.start_observer": _NONE,
    "chaosgenesys.browser.actions.stop_observer": _NONE,
    "chaosgenesys.browser.actions.wait_until_browser_token_expiry": _NONE,
    "chaosgenesys.browser.actions.delay_browser_requests": _NONE,
    "chaosgenesys.browser.actions.fail_browser_requests": _NONE,
    "chaosgenesys.browser.actions.block_websocket_handshakes": _NONE,
    "chaosgenesys.browser.actions.close_browser_websockets": _NONE,
    "chaosgenesys.browser.actions.emulate_network": _NONE,
    "chaosgenesys.browser.actions.clear_browser_faults": _NONE,
    "chaosgenesys.browser.probes.browser_summary": _NONE,
    "chaosgenesys.browser.probes.browser_faults": _NONE,
    "chaosgenesys.browser.probes.ui_presence": _NONE,
    "chaosgenesys.browser.probes.ui_matches_api": (_USER,),
    # faults on this machine: no Genesys API
    "chaosgenesys.faults.actions.revert_all": _NONE,
    "chaosgenesys.faults.probes.active_faults": _NONE,
    "chaosgenesys.network.actions.add_latency": _NONE,
    "chaosgenesys.network.actions.add_packet_loss": _NONE,
    "chaosgenesys.network.actions.apply_netem": _NONE,
    "chaosgenesys.network.actions.blackhole": _NONE,
    "chaosgenesys.network.actions.create_test_network": _NONE,
    "chaosgenesys.network.actions.delete_test_network": _NONE,
    "chaosgenesys.network.actions.remove_faults": _NONE,
    "chaosgenesys.network.actions.throttle_bandwidth": _NONE,
    "chaosgenesys.network.probes.list_faults": _NONE,
    "chaosgenesys.network.probes.measure_http": _NONE,
    "chaosgenesys.network.probes.measure_tcp": _NONE,
    "chaosgenesys.network.probes.measure_udp": _NONE,
    "chaosgenesys.network.probes.netem_supported": _NONE,
    "chaosgenesys.proxy.actions.add_rules": _NONE,
    "chaosgenesys.proxy.actions.clear_rules": _NONE,
    "chaosgenesys.proxy.actions.close_websockets": _NONE,
    "chaosgenesys.proxy.actions.delay_requests": _NONE,
    "chaosgenesys.proxy.actions.delay_websocket_messages": _NONE,
    "chaosgenesys.proxy.actions.drop_websocket_messages": _NONE,
    "chaosgenesys.proxy.actions.fail_requests": _NONE,
    "chaosgenesys.proxy.actions.load_fiddler_rules": _NONE,
    "chaosgenesys.proxy.actions.reset_requests": _NONE,
    "chaosgenesys.proxy.actions.start_proxy": _NONE,
    "chaosgenesys.proxy.actions.stop_proxy": _NONE,
    "chaosgenesys.proxy.actions.throttle_responses": _NONE,
    "chaosgenesys.proxy.probes.list_rules": _NONE,
    "chaosgenesys.proxy.probes.proxy_stats": _NONE,
    "chaosgenesys.sockets.actions.reject_connections": _NONE,
    "chaosgenesys.sockets.actions.remove_rejections": _NONE,
    "chaosgenesys.sockets.actions.reset_connections": _NONE,
    "chaosgenesys.sockets.probes.list_connections": _NONE,
    # the embedded sandbox's admin API: no real org has it
    "chaosgenesys.sandbox.actions.inject_api_fault": _NONE,
    "chaosgenesys.sandbox.actions.clear_sandbox_faults": _NONE,
    "chaosgenesys.sandbox.actions.expire_tokens": _NONE,
    "chaosgenesys.sandbox.actions.revoke_tokens": _NONE,
    "chaosgenesys.sandbox.actions.set_token_lifetime": _NONE,
    "chaosgenesys.sandbox.actions.close_notification_sockets": _NONE,
    "chaosgenesys.sandbox.actions.send_socket_closing": _NONE,
    "chaosgenesys.sandbox.actions.disconnect_call": _NONE,
    "chaosgenesys.sandbox.actions.route_call": _NONE,
    "chaosgenesys.sandbox.actions.configure_platform": _NONE,
}

#: Activities that need the embedded sandbox (its admin API): refused against a real org.
SANDBOX_ONLY = frozenset(
    name for name in ACTIVITY_ENDPOINTS if name.startswith("chaosgenesys.sandbox.actions.")
)

#: Controls (by module) → the endpoints they call.
CONTROL_ENDPOINTS: dict[str, tuple[str, ...]] = {
    "chaosgenesys.controls.safeguard": (_QUEUE_MEMBERS, _QUEUE_OBSERVATIONS),
    "chaosgenesys.controls.tokens": (_TOKEN_CHECK, _TOKEN_REVOKE),
    "chaosgenesys.controls.killswitch": _NONE,
    "chaosgenesys.controls.verdict": _NONE,
    "chaosgenesys.controls.browser": _NONE,
    "chaosgenesys.controls.sandbox": _NONE,
    "chaosgenesys.controls.telemetry": _NONE,
    "chaosgenesys.network.control": _NONE,
    "chaosgenesys.controls.preflight": (
        _TOKEN_ME,
        "GET /api/v2/oauth/clients/{clientId}",
        "GET /api/v2/authorization/roles/{roleId}",
        "GET /api/v2/users/{userId}/queues",
        _USER,
    ),
}
