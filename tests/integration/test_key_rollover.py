"""Signing-key rollover, as Entra and B2C roll keys: a new key is published beside the old one,
tokens are signed with it, the old one is retired. The running app keeps signing users in,
without a restart, and refuses what only the retired key could have signed."""

from __future__ import annotations

import pytest

from tests.integration.client import AppClient


# One key cache serves both platforms (the keys named by the metadata's jwks_uri).
@pytest.mark.parametrize("platform", ["b2c"], indirect=True)
def test_a_key_rollover_signs_in_without_a_restart(start_app, client_factory, make_user, fake):
    site = start_app(workers=1)  # one process, one key cache: the fetches can be counted
    before = client_factory(site)
    before.sign_in(make_user())  # the app now holds the current key set
    fetched = fake.counters()["jwks"] + fake.counters()["external_jwks"]

    fake.rotate_signing_key()  # new key beside the old; tokens signed with the new one
    rolled = client_factory(site)
    rolled.sign_in(make_user())  # an unknown key id: the app fetches the set again at once
    assert rolled.get("/api/me").status_code == 200
    assert fake.counters()["jwks"] + fake.counters()["external_jwks"] == fetched + 1

    fake.retire_old_signing_keys()
    after = client_factory(site)
    after.sign_in(make_user())  # the new key is known already: no further fetch
    assert fake.counters()["jwks"] + fake.counters()["external_jwks"] == fetched + 1
    assert isinstance(before, AppClient) and before.get("/api/me").status_code == 200  # sessions stay
