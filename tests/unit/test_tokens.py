"""API tokens: shown once, kept as a hash, bound to a person, expiring and revocable."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ctl.config import CallSettings
from ctl.errors import Conflict, NotFound, Unauthenticated, ValidationError
from ctl.services.directory import add_operator
from ctl.services.tokens import authenticate, create_token, digest, list_tokens, parse_lifetime, revoke_token
from ctl.store.engine import Store
from ctl.store.models import ApiToken


def test_a_token_is_stored_as_a_hash_and_authenticates_its_owner(store: Store) -> None:
    with store.transaction() as session:
        add_operator(session, CallSettings(), "200", "Sue", "supervisor", None)
        new = create_token(session, "200", "crm", parse_lifetime("90d"))
        token, token_id = new.token, new.row.id
    assert token.startswith("ctl_") and len(token) == 47
    with store.transaction() as session:
        row = session.get(ApiToken, token_id)
        assert row is not None and row.token_hash == digest(token) and token not in (row.prefix, row.name)
        assert row.expires_at is not None and row.expires_at - row.created_at == timedelta(days=90)
        assert authenticate(session, token).extension == "200"
        assert session.get(ApiToken, token_id).last_used_at is not None  # type: ignore[union-attr]
    with store.transaction() as session:
        assert [t.id for t in list_tokens(session, "200")] == [token_id]
        revoke_token(session, token_id)
    with store.transaction() as session, pytest.raises(Unauthenticated, match="revoked"):
        authenticate(session, token)
    with store.transaction() as session, pytest.raises(Conflict):
        revoke_token(session, token_id)
    with store.transaction() as session, pytest.raises(NotFound):
        revoke_token(session, 999)
    with store.transaction() as session, pytest.raises(NotFound):
        create_token(session, "999", "x", None)


@pytest.mark.parametrize("text", ["0d", "90", "d", "-1d", "1y", "100000d", " 9d"])
def test_lifetimes_are_checked(text: str) -> None:
    with pytest.raises(ValidationError):
        parse_lifetime(text)
    assert parse_lifetime("never") is None and parse_lifetime("12h") == timedelta(hours=12)
