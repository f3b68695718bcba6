"""The connected switch serve holds for the PBX a request is about (the API never opens one)."""

from __future__ import annotations

from fastapi import Request

from ctl.config import Settings
from ctl.errors import SwitchUnreachable
from ctl.pbx import configured_nodes
from ctl.switch import Switch


def switch_of_node(request: Request, node: str | None) -> Switch:
    """The connected switch serve holds for the node the request is about."""
    settings: Settings = request.app.state.settings
    switches: dict[str, Switch] = request.app.state.switches
    nodes = configured_nodes(settings)
    chosen = node if node in switches else (nodes[0] if nodes else None)
    if chosen is None or chosen not in switches:
        raise SwitchUnreachable("serve drives no PBX for this request")
    return switches[chosen]
