"""What a Matrix client sees through the reverse proxy, on both Synapse generations:
password login, logout and refresh answered by MAS's compatibility layer, and
tokens that Synapse accepts because MAS provisioned the user and device there.
"""

from __future__ import annotations

import asyncio

import pytest
import requests
from nio import (
    AsyncClient,
    AsyncClientConfig,
    LoginError,
    LoginResponse,
    LogoutResponse,
    ProfileGetDisplayNameResponse,
    ProfileSetDisplayNameResponse,
    RoomCreateResponse,
    SyncResponse,
    WhoamiResponse,
)

import harness
from harness import Fatal, bearer, describe, not_served, poll

# Provisioning on Synapse is asynchronous (a job in mas-server), so a brand-new user
# may need a moment before the first login works end to end.
PROVISION_TIMEOUT = 15.0
# How long Synapse may take to stop accepting a token after a logout (modern: MAS
# deletes the device on Synapse, which drops its introspection cache at once).
REVOKE_TIMEOUT = 10.0
NIO_CONFIG = AsyncClientConfig(
    max_limit_exceeded=0, max_timeouts=0, request_timeout=15, encryption_enabled=False
)


def run(coro):
    return asyncio.run(coro)


# --- helpers ------------------------------------------------------------------------


def password_login(stack, user, identifier: str | None = None, version: str = "v3", **extra) -> requests.Response:
    body = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": identifier or user.localpart},
        "password": user.password,
        **extra,
    }
    return requests.post(f"{stack.proxy_url}/_matrix/client/{version}/login", json=body, timeout=15)


def login_ok(stack, user, **kwargs) -> dict:
    """Log in with raw HTTP, retrying while provisioning may still be running."""

    def attempt():
        response = password_login(stack, user, **kwargs)
        if not_served(response):
            raise Fatal(describe(response))
        assert response.status_code == 200, describe(response)
        return response.json()

    return poll(f"a password login of {user.mxid}", attempt, timeout=PROVISION_TIMEOUT, interval=0.5)


def whoami(stack, token: str) -> requests.Response:
    return requests.get(
        f"{stack.proxy_url}/_matrix/client/v3/account/whoami", headers=bearer(token), timeout=15
    )


def assert_whoami(stack, token: str, user, device_id: str) -> None:
    """Synapse (not MAS) accepts the token: it introspected it at MAS and found the
    user and device that MAS provisioned. The device may trail the login a little."""

    def check():
        response = whoami(stack, token)
        if not_served(response):
            raise Fatal(describe(response))
        assert response.status_code == 200, describe(response)
        return response.json()

    body = poll(f"whoami for {user.mxid}", check, timeout=PROVISION_TIMEOUT, interval=0.2)
    assert body["user_id"] == user.mxid
    assert body["device_id"] == device_id


def introspect(stack, token: str) -> dict:
    """Ask MAS about a token as legacy Synapse does (the static client, Basic auth)."""
    response = requests.post(
        f"{stack.mas_url}/oauth2/introspect",
        data={"token": token, "token_type_hint": "access_token"},
        headers={
            "Authorization": harness.basic_auth(harness.SYNAPSE_CLIENT_ID, stack.client_secret),
            "Accept": "application/json",
        },
        timeout=15,
    )
    assert response.status_code == 200, describe(response)
    return response.json()


def assert_token_dead(stack, token: str) -> None:
    """After a logout: modern Synapse rejects the token promptly; legacy Synapse may
    serve it from its 2-minute cache, so there we ask MAS, which must say inactive."""
    if stack.kind == "modern":

        def rejected():
            response = whoami(stack, token)
            assert response.status_code == 401, describe(response)
            assert response.json()["errcode"] == "M_UNKNOWN_TOKEN", describe(response)
            return True

        poll("Synapse to reject a logged-out token", rejected, timeout=REVOKE_TIMEOUT, interval=0.2)
    else:
        body = introspect(stack, token)
        assert body["active"] is False, body


def assert_device_gone_from_synapse(stack, user, device_id: str) -> None:
    """Legacy only: MAS deletes the device through Synapse's admin API (its token
    may still be cached by Synapse, but the device must go)."""
    url = f"{stack.synapse_url}/_synapse/admin/v2/users/{user.mxid}/devices/{device_id}"

    def gone():
        response = requests.get(url, headers=bearer(stack.secret), timeout=15)
        assert response.status_code == 404, describe(response)
        return True

    poll(f"device {device_id} to be deleted on Synapse", gone, timeout=REVOKE_TIMEOUT, interval=0.2)


def nio_client(stack, user) -> AsyncClient:
    return AsyncClient(stack.proxy_url, user.mxid, config=NIO_CONFIG)


async def nio_login(stack, user, client: AsyncClient, device_name: str = "nio test") -> LoginResponse:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + PROVISION_TIMEOUT
    while True:
        response = await client.login(user.password, device_name=device_name)
        if isinstance(response, LoginResponse) or loop.time() >= deadline:
            break
        if response.transport_response is not None and response.transport_response.status in (404, 405):
            break  # no login endpoint: waiting will not help
        await asyncio.sleep(0.5)
    status = response.transport_response.status if response.transport_response is not None else None
    assert isinstance(response, LoginResponse), f"login of {user.mxid} through {stack.proxy_url}: HTTP {status}, {response}"
    return response


async def poll_async(call, expected_type, timeout: float = PROVISION_TIMEOUT):
    """Await `call()` until it returns `expected_type` (the device may trail the login)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        response = await call()
        if isinstance(response, expected_type) or loop.time() >= deadline:
            assert isinstance(response, expected_type), str(response)
            return response
        await asyncio.sleep(0.2)


# --- the harness itself (these pass without the compatibility layer) ---------------


def get_json_eventually(url: str) -> dict:
    """GET `url` until it answers 200. Synapse fetches MAS's discovery document lazily
    and does not cache a failure, so the first answers may still be errors."""

    def fetch():
        response = requests.get(url, timeout=15)
        assert response.status_code == 200, describe(response)
        return response.json()

    return poll(f"GET {url}", fetch, timeout=15)


def test_synapse_uses_mas_as_issuer(stack):
    """Synapse serves MAS's metadata to clients (what next-generation clients read)."""
    for path in (
        "/_matrix/client/v1/auth_metadata",
        "/_matrix/client/unstable/org.matrix.msc2965/auth_metadata",
    ):
        metadata = get_json_eventually(stack.proxy_url + path)
        assert metadata["issuer"] == stack.mas.base, path
        assert metadata["introspection_endpoint"].startswith(stack.mas.base), path

    issuer = requests.get(
        f"{stack.proxy_url}/_matrix/client/unstable/org.matrix.msc2965/auth_issuer", timeout=15
    )
    if stack.kind == "legacy":
        # Only the msc3861 generation still has the older auth_issuer endpoint.
        assert issuer.status_code == 200, describe(issuer)
        assert issuer.json() == {"issuer": stack.mas.base}
    else:
        assert issuer.status_code == 404, describe(issuer)


def test_well_known_points_clients_at_the_proxy_and_mas(stack):
    body = get_json_eventually(f"{stack.proxy_url}/.well-known/matrix/client")
    assert body["m.homeserver"]["base_url"] == f"{stack.proxy_url}/", body
    assert body["org.matrix.msc2965.authentication"]["issuer"] == stack.mas.base, body


def test_mas_accepts_synapse_credentials(stack):
    """Introspection with the credentials this Synapse generation uses is accepted
    (an unknown token is simply inactive)."""
    if stack.kind == "legacy":
        assert introspect(stack, "mct_not_a_real_token_000000")["active"] is False
    else:
        response = requests.post(
            f"{stack.mas_url}/oauth2/introspect",
            data={"token": "mct_not_a_real_token_000000", "token_type_hint": "access_token"},
            headers={**bearer(stack.secret), "Accept": "application/json"},
            timeout=15,
        )
        assert response.status_code == 200, describe(response)
        assert response.json()["active"] is False, describe(response)


# --- the compatibility layer ------------------------------------------------------


@pytest.mark.parametrize("version", ["v3", "r0"])
def test_login_flows_are_served_by_mas(stack, version):
    response = requests.get(f"{stack.proxy_url}/_matrix/client/{version}/login", timeout=15)
    assert response.status_code == 200, describe(response)
    flows = [flow["type"] for flow in response.json()["flows"]]
    assert "m.login.password" in flows, flows


def test_new_user_logs_in_with_nio_and_uses_synapse(stack):
    user = stack.new_user("alice")

    async def scenario():
        client = nio_client(stack, user)
        try:
            login = await nio_login(stack, user, client)
            assert login.user_id == user.mxid
            assert login.access_token.startswith("mct_"), login.access_token
            assert login.device_id

            # Served by Synapse, which introspects the token at MAS.
            whoami = await poll_async(client.whoami, WhoamiResponse)
            assert whoami.user_id == user.mxid
            assert whoami.device_id == login.device_id

            sync = await client.sync(timeout=0)
            assert isinstance(sync, SyncResponse), str(sync)

            set_name = await client.set_displayname("Alice Test")
            assert isinstance(set_name, ProfileSetDisplayNameResponse), str(set_name)
            name = await client.get_displayname()
            assert isinstance(name, ProfileGetDisplayNameResponse), str(name)
            assert name.displayname == "Alice Test"

            room = await client.room_create(name="compat test")
            assert isinstance(room, RoomCreateResponse), str(room)
            assert room.room_id.startswith("!")
        finally:
            await client.close()

    run(scenario())


def test_wrong_password_and_unknown_user_are_forbidden(stack):
    user = stack.new_user("bob")

    async def scenario():
        # The real password works first (so the failures below are not just "no
        # login endpoint at all").
        client = nio_client(stack, user)
        try:
            await nio_login(stack, user, client)
        finally:
            await client.close()

        for mxid, password in ((user.mxid, "not the password"), ("@nobody:localhost", user.password)):
            client = AsyncClient(stack.proxy_url, mxid, config=NIO_CONFIG)
            try:
                response = await client.login(password, device_name="nio test")
            finally:
                await client.close()
            assert isinstance(response, LoginError), f"{mxid}: {response}"
            assert response.status_code == "M_FORBIDDEN", f"{mxid}: {response}"

    run(scenario())


@pytest.mark.parametrize("identifier", ["localpart", "mxid"])
def test_raw_login_refresh_and_whoami(stack, identifier):
    user = stack.new_user("carol")
    body = login_ok(stack, user, identifier=user.localpart if identifier == "localpart" else user.mxid,
                    refresh_token=True, initial_device_display_name="raw http")
    assert body["user_id"] == user.mxid
    assert body["access_token"].startswith("mct_"), body
    assert body["refresh_token"].startswith("mcr_"), body
    assert isinstance(body["expires_in_ms"], int) and body["expires_in_ms"] > 0, body
    device_id = body["device_id"]
    assert_whoami(stack, body["access_token"], user, device_id)

    response = requests.post(
        f"{stack.proxy_url}/_matrix/client/v3/refresh",
        json={"refresh_token": body["refresh_token"]},
        timeout=15,
    )
    assert response.status_code == 200, describe(response)
    refreshed = response.json()
    assert refreshed["access_token"].startswith("mct_"), refreshed
    assert refreshed["access_token"] != body["access_token"]
    assert refreshed["refresh_token"].startswith("mcr_"), refreshed
    assert refreshed["refresh_token"] != body["refresh_token"]
    assert isinstance(refreshed["expires_in_ms"], int) and refreshed["expires_in_ms"] > 0
    assert_whoami(stack, refreshed["access_token"], user, device_id)


def test_login_without_refresh_token_gets_none(stack):
    user = stack.new_user("dave")
    body = login_ok(stack, user, version="r0")
    assert body["access_token"].startswith("mct_"), body
    assert "refresh_token" not in body, body


def test_logout_ends_the_session(stack):
    user = stack.new_user("erin")

    async def scenario():
        client = nio_client(stack, user)
        try:
            login = await nio_login(stack, user, client)
            await poll_async(client.whoami, WhoamiResponse)
            if stack.kind == "legacy":
                assert introspect(stack, login.access_token)["active"] is True
            logout = await client.logout()
            assert isinstance(logout, LogoutResponse), str(logout)
            return login
        finally:
            await client.close()

    login = run(scenario())
    assert_token_dead(stack, login.access_token)
    if stack.kind == "legacy":
        assert_device_gone_from_synapse(stack, user, login.device_id)


def test_logout_all_ends_every_session(stack):
    user = stack.new_user("frank")
    first = login_ok(stack, user)
    second = login_ok(stack, user)
    assert first["device_id"] != second["device_id"]
    for body in (first, second):
        assert_whoami(stack, body["access_token"], user, body["device_id"])

    response = requests.post(
        f"{stack.proxy_url}/_matrix/client/v3/logout/all",
        json={},
        headers=bearer(first["access_token"]),
        timeout=15,
    )
    assert response.status_code == 200, describe(response)
    for body in (first, second):
        assert_token_dead(stack, body["access_token"])
        if stack.kind == "legacy":
            assert_device_gone_from_synapse(stack, user, body["device_id"])
