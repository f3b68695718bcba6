"""schemathesis against the served OpenAPI document: generated requests for every operation
(the event stream aside: it never ends), no 500, every response matches the document."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from ctl.api.app import create_app
from ctl.config import CallSettings, Settings
from ctl.services.directory import add_operator
from ctl.services.tokens import create_token
from ctl.store.engine import Store, upgrade
from ctl.testing import FakeSwitch


def _app() -> tuple[Any, str]:
    """A migrated store in a private temporary directory (removed at exit), with an admin's token."""
    directory = tempfile.mkdtemp(prefix="ctl-schemathesis-")
    atexit.register(shutil.rmtree, directory, True)
    url = f"sqlite:///{Path(directory) / 'ctl.db'}"
    upgrade(url)
    store = Store(url)
    with store.transaction() as session:
        for extension, role in (("101", "operator"), ("200", "supervisor"), ("201", "admin")):
            add_operator(session, CallSettings(), extension, f"P{extension}", role, None)
        token = create_token(session, "201", "schemathesis", None).token
    switch = FakeSwitch(node="asterisk")
    switch._connected = True  # serve holds it connected  # noqa: SLF001
    return create_app(store, Settings(), {"asterisk": switch}), token


APP, TOKEN = _app()
schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", APP).exclude(path="/api/v1/events")


@schema.parametrize()
@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_api_matches_its_document(case: Any) -> None:
    case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"},
                           checks=[not_a_server_error, response_schema_conformance, status_code_conformance])
