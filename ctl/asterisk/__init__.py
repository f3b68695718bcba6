"""Asterisk adapter: AMI over panoramisk.

frames     bytes → AMI messages (pure; split on bytes, then decode)
actions    AMI action builders (pure; every value checked for CR/LF)
translate  AMI events → PBX-neutral events (pure)
switch     AsteriskSwitch: connection, timeouts, reconnect, dispatch
"""

from ctl.asterisk.switch import AsteriskSwitch

__all__ = ["AsteriskSwitch"]
