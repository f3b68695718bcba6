"""The one exception tree of ctl. Lower-layer errors are mapped into it at the edge.

    CtlError                      anything ctl reports to a user (one line, exit code)
    ├── ConfigError               bad config file, key or environment value       exit 2
    ├── ValidationError           bad user input (number, extension, CSV row…)     exit 2
    ├── DomainError               the request breaks a rule of the product         exit 6
    │   ├── NotFound              unknown operator, project, call, session…        exit 4
    │   ├── Forbidden             the role may not; one's own call                exit 6
    │   ├── NoActiveCall          the operator has no call in progress            exit 7
    │   │   └── CallEnded         the call ended meanwhile                        exit 7
    │   └── Conflict              already exists / already in that state          exit 8
    │       └── AlreadyMonitored  another supervisor is on that call              exit 8
    ├── Unauthenticated           no API token, or one unknown, expired or revoked exit 9
    ├── StoreError                the database cannot be reached or is not migrated exit 5
    ├── StorageError              recording files: directory missing, not writable,
    │                             disk full, file missing or incomplete            exit 5
    └── SwitchError               the PBX side                                     exit 3
        ├── SwitchUnreachable     cannot connect (refused, timeout, lost)
        ├── AuthenticationFailed  the PBX refused our credentials
        ├── ActionTimeout         an action got no reply in time
        └── ActionFailed          the PBX answered with an error
"""

from __future__ import annotations


class CtlError(Exception):
    exit_code = 1
    kind = "error"


class ConfigError(CtlError):
    exit_code = 2
    kind = "config"


class ValidationError(CtlError):
    exit_code = 2
    kind = "invalid"


class DomainError(CtlError):
    exit_code = 6
    kind = "refused"


class NotFound(DomainError):
    exit_code = 4
    kind = "not_found"


class Forbidden(DomainError):
    kind = "forbidden"


class NoActiveCall(DomainError):
    exit_code = 7
    kind = "no_call"


class CallEnded(NoActiveCall):
    kind = "call_ended"


class Conflict(DomainError):
    exit_code = 8
    kind = "conflict"


class AlreadyMonitored(Conflict):
    kind = "already_monitored"


class Unauthenticated(CtlError):
    exit_code = 9
    kind = "unauthenticated"


class StoreError(CtlError):
    exit_code = 5
    kind = "store"


class StorageError(CtlError):
    exit_code = 5
    kind = "storage"


class SwitchError(CtlError):
    exit_code = 3
    kind = "switch"


class SwitchUnreachable(SwitchError):
    kind = "unreachable"


class AuthenticationFailed(SwitchError):
    kind = "auth"


class ActionTimeout(SwitchError):
    kind = "timeout"


class ActionFailed(SwitchError):
    kind = "action_failed"
