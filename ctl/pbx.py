"""Which PBX: a deployment may have an Asterisk node, a FreeSWITCH node, or both, sharing one store.

A person's phone is on the PBX its dial string names (PJSIP/101 → Asterisk, user/101 →
FreeSWITCH); a call, a session or a recording is on the node its row names.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ctl.config import Settings
from ctl.errors import ConfigError, DomainError, ValidationError
from ctl.store import queries
from ctl.store.engine import Store
from ctl.switch import Switch
from ctl.validation import check_path_token

# Dial-string technologies of each PBX (the part before the first '/').
ASTERISK_TECHNOLOGIES = frozenset({"PJSIP", "SIP", "IAX2", "DAHDI", "Local", "Motif", "WebRTC"})
FREESWITCH_TECHNOLOGIES = frozenset({"user", "sofia", "loopback", "verto.rtc", "freetdm", "group"})


def configured_nodes(settings: Settings) -> list[str]:
    nodes = []
    if settings.asterisk.host:
        nodes.append(settings.asterisk.node)
    if settings.freeswitch.host:
        nodes.append(settings.freeswitch.node)
    return nodes


def node_of_dial_string(settings: Settings, dial_string: str) -> str:
    technology = dial_string.partition("/")[0]
    if technology in FREESWITCH_TECHNOLOGIES:
        if not settings.freeswitch.host:
            raise ConfigError(f"{dial_string} is a FreeSWITCH dial string but no FreeSWITCH is configured "
                              "([freeswitch] host / CTL_FREESWITCH_HOST)")
        return settings.freeswitch.node
    if not settings.asterisk.host:
        raise ConfigError(f"{dial_string} is an Asterisk dial string but no Asterisk is configured "
                          "([asterisk] host / CTL_ASTERISK_HOST)")
    return settings.asterisk.node


def trunks_of(settings: Settings, node: str) -> tuple[str, ...]:
    """The endpoints (Asterisk) or gateways (FreeSWITCH) of `node` that lead to clients."""
    if settings.freeswitch.host and node == settings.freeswitch.node:
        return settings.freeswitch.trunks
    return settings.asterisk.trunks


def handled_by(settings: Settings, node: str) -> Callable[[str], bool]:
    """Whether a dial string is a phone of `node` (False for a PBX not configured here)."""
    def handles(dial_string: str) -> bool:
        try:
            return node_of_dial_string(settings, dial_string) == node
        except ConfigError:
            return False
    return handles


def make_switch(settings: Settings, node: str | None = None) -> Switch:
    """The adapter of `node` (default: Asterisk if configured, else FreeSWITCH)."""
    if node is None:
        configured = configured_nodes(settings)
        if not configured:
            raise ConfigError("no PBX configured: set [asterisk] host or [freeswitch] host")
        node = configured[0]
    if settings.freeswitch.host and node == settings.freeswitch.node:
        from ctl.freeswitch.switch import FreeswitchSwitch

        return FreeswitchSwitch(settings.freeswitch)
    if settings.asterisk.host and node == settings.asterisk.node:
        from ctl.asterisk import AsteriskSwitch

        return AsteriskSwitch(settings.asterisk, spy_context=settings.monitor.spy_context)
    raise ConfigError(f"node {node!r} is not configured here (configured: {', '.join(configured_nodes(settings))})")


def node_of_request(store: Store, settings: Settings, people: Sequence[str] = (), call_id: int | None = None,
                    session_id: int | None = None, supervisor: str | None = None) -> str | None:
    """The node a request is about: the people's phones (their dial strings name the PBX;
    they must all be on one), else the call's or the session's node (None: none known)."""
    with store.transaction() as session:
        nodes = {}
        for extension in people:
            person = queries.operator_by_extension(session, extension)
            if person is not None:
                nodes[person.extension] = node_of_dial_string(settings, person.dial_string)
        if len(set(nodes.values())) > 1:
            raise DomainError("these phones are on different PBXs: "
                              + ", ".join(f"{ext} on {where}" for ext, where in nodes.items()))
        if nodes:
            return next(iter(nodes.values()))
        if call_id is not None:
            return queries.node_of_call(session, call_id)
        if session_id is not None or supervisor is not None:
            return queries.node_of_monitor_session(session, session_id, supervisor)
    return None


def switch_for_request(store: Store, settings: Settings, people: Sequence[str] = (), call_id: int | None = None,
                       session_id: int | None = None, supervisor: str | None = None) -> Switch:
    """The adapter of the PBX the request is about (see node_of_request), else the first
    configured PBX. Unknown names are left to the service, which refuses them."""
    node = node_of_request(store, settings, people, call_id, session_id, supervisor)
    # A row of a node this controller does not drive: the first PBX, and the service's own
    # checks (the call's state, its channels) say what is wrong.
    return make_switch(settings, node if node in configured_nodes(settings) else None)


def check_feature_code_secret(settings: Settings, node: str) -> None:
    """The secret the PBX's dialplan presents to ctl serve's feature-code server."""
    try:
        if settings.freeswitch.host and node == settings.freeswitch.node:
            check_path_token(settings.freeswitch.outbound_secret, "[freeswitch] outbound_secret",
                             "CTL_FREESWITCH_OUTBOUND_SECRET, the ctl_token the dialplan sets")
        else:
            check_path_token(settings.monitor.agi_secret, "[monitor] agi_secret",
                             "CTL_MONITOR_AGI_SECRET; install-conf wrote it to the secrets file as agi=…")
    except ValidationError as error:
        raise ConfigError(str(error)) from None
