"""What a Matrix client sees through the reverse proxy, on both Synapse generations:
password login, logout and refresh answered by MAS's compatibility layer, and
tokens that Synapse accepts because MAS provisioned the user and device there.
"""

from __future__ import annotations

import asyncio
import time
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from nio import (
    AsyncClient,
    AsyncClientConfig,
    LoginError,
    LoginInfoResponse,
    LoginResponse,
    LogoutResponse,
    ProfileGetDisplayNameResponse,
    ProfileSetDisplayNameResponse,
    JoinResponse,
    RoomCreateResponse,
    RoomMessagesResponse,
    RoomMessageText,
    RoomSendResponse,
    SyncResponse,
    WhoamiResponse,
)

from harness import (
    PROVISION_TIMEOUT,
    REVOKE_TIMEOUT,
    Fatal,
    assert_refused_promptly,
    assert_whoami,
    bearer,
    browse,
    describe,
    assert_service_refuses,
    introspect_as_synapse,
    not_served,
    poll,
    whoami,
)

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


def assert_token_dead(stack, token: str, what: str | None = None, seen_at: float | None = None) -> None:
    """After a logout: MAS calls the token inactive at once, and modern Synapse refuses
    it promptly. Legacy Synapse may serve it from its 2-minute cache; given `what` and
    `seen_at` (just before Synapse first saw the token), the last test of the run
    (test_synapse_catches_up.py) waits for the refusal there."""
    ended_at = time.monotonic()
    assert introspect_as_synapse(stack, token)["active"] is False
    if stack.kind == "modern":
        assert_refused_promptly(stack, token, "a logged-out token")
    elif what is not None:
        stack.expect_refused(what, token, ended_at, seen_at)


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
        assert metadata["issuer"] == stack.issuer, path
        assert metadata["introspection_endpoint"].startswith(stack.issuer), path

    issuer = requests.get(
        f"{stack.proxy_url}/_matrix/client/unstable/org.matrix.msc2965/auth_issuer", timeout=15
    )
    if stack.kind == "legacy":
        # Only the msc3861 generation still has the older auth_issuer endpoint.
        assert issuer.status_code == 200, describe(issuer)
        assert issuer.json() == {"issuer": stack.issuer}
    else:
        assert issuer.status_code == 404, describe(issuer)


def test_well_known_points_clients_at_the_proxy_and_mas(stack):
    body = get_json_eventually(f"{stack.proxy_url}/.well-known/matrix/client")
    assert body["m.homeserver"]["base_url"] == f"{stack.proxy_url}/", body
    assert body["org.matrix.msc2965.authentication"]["issuer"] == stack.issuer, body


def test_mas_accepts_synapse_credentials(stack):
    """Introspection with the credentials this Synapse generation uses is accepted
    (an unknown token is simply inactive)."""
    assert introspect_as_synapse(stack, "mct_not_a_real_token_000000") == {"active": False}


def test_proxy_serves_the_documented_routes(stack):
    """The nginx config is the example in docs/setup/reverse-proxy.md: MAS's own
    endpoints and pages are reached through it, the client API goes to Synapse."""
    discovery = requests.get(f"{stack.proxy_url}/.well-known/openid-configuration", timeout=15)
    assert discovery.status_code == 200, describe(discovery)
    assert discovery.json()["issuer"] == stack.issuer
    login_page = requests.get(f"{stack.proxy_url}/login", timeout=15)
    assert login_page.status_code == 200, describe(login_page)
    assert 'name="password"' in login_page.text
    versions = requests.get(f"{stack.proxy_url}/_matrix/client/versions", timeout=15)
    assert versions.status_code == 200, describe(versions)
    assert "v1.1" in versions.json()["versions"]


# --- tokens that end without Synapse being told --------------------------------------
# Early in the file on purpose: Synapse's 2-minute introspection cache decides when
# these tokens stop working there, and the wait for that (in the last test) runs
# while the other tests do.


def test_locking_a_user_ends_its_tokens(stack):
    """`mas-cli manage lock-user`: MAS refuses the user's token at once (its running server
    hears the command's revocation through the database within 50 ms). Nothing tells
    Synapse, so it keeps accepting the token until its cached introspection answer
    expires (checked by test_synapse_catches_up.py). Measured: modern and legacy both
    refused it 120-121 s after Synapse first saw it, i.e. about 120 s after the lock
    (the run's summary prints the times)."""
    user = stack.new_user("gina")
    body = login_ok(stack, user)
    seen_at = time.monotonic()
    assert_whoami(stack, body["access_token"], user, body["device_id"])
    assert introspect_as_synapse(stack, body["access_token"])["active"] is True

    stack.mas.cli("manage", "lock-user", user.localpart)
    locked_at = time.monotonic()
    assert_service_refuses(stack, body["access_token"], "a locked user's token")
    stack.expect_refused("compat token of a locked user", body["access_token"], locked_at, seen_at)

    # A new login is refused, with the Matrix error for a locked account.
    response = password_login(stack, user)
    assert response.status_code == 401, describe(response)
    assert response.json()["errcode"] == "M_USER_LOCKED", describe(response)

    # Unlocking lets the user log in again, but revives no token from before the lock.
    stack.mas.cli("manage", "unlock-user", user.localpart)
    assert introspect_as_synapse(stack, body["access_token"]) == {"active": False}
    assert login_ok(stack, user)["access_token"] != body["access_token"]


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


def test_users_exchange_a_message_in_a_room(stack):
    """Two users logged in with nio: one creates a room, invites the other and sends
    a text message; the other joins and reads it with /messages, and the sender sees
    it in its own sync."""
    alice, bob = stack.new_user("alice"), stack.new_user("bob")
    text = f"hello from {alice.localpart} on {stack.kind}"

    async def scenario():
        a, b = nio_client(stack, alice), nio_client(stack, bob)
        try:
            await nio_login(stack, alice, a)
            await nio_login(stack, bob, b)
            # The invitee must exist on Synapse (provisioned by MAS) before the invite.
            await poll_async(b.whoami, WhoamiResponse)

            room = await a.room_create(name="message test", invite=[bob.mxid])
            assert isinstance(room, RoomCreateResponse), str(room)
            sent = await a.room_send(room.room_id, "m.room.message", {"msgtype": "m.text", "body": text})
            assert isinstance(sent, RoomSendResponse), str(sent)

            joined = await b.join(room.room_id)
            assert isinstance(joined, JoinResponse), str(joined)
            history = await b.room_messages(room.room_id, limit=50)
            assert isinstance(history, RoomMessagesResponse), str(history)
            seen = [e for e in history.chunk if isinstance(e, RoomMessageText) and e.event_id == sent.event_id]
            assert len(seen) == 1, [str(e) for e in history.chunk]
            assert seen[0].body == text
            assert seen[0].sender == alice.mxid

            sync = await a.sync(timeout=0, sync_filter={"room": {"timeline": {"limit": 50}}})
            assert isinstance(sync, SyncResponse), str(sync)
            timeline = sync.rooms.join[room.room_id].timeline.events
            bodies = [e.body for e in timeline if isinstance(e, RoomMessageText)]
            assert bodies == [text], bodies
        finally:
            await a.close()
            await b.close()

    run(scenario())


def test_sso_login_in_the_browser(stack):
    """A client's browser login: /login/sso/redirect (sent to MAS by the proxy) leads
    to MAS's login page and its /complete-compat-sso confirmation page, then back to
    the client with a loginToken, which nio exchanges (m.login.token) for a token
    that Synapse accepts."""
    user = stack.new_user("sam")
    callback = "http://127.0.0.1/sso-callback"
    start = f"{stack.proxy_url}/_matrix/client/v3/login/sso/redirect?" + urlencode({"redirectUrl": callback})
    location, pages = browse(start, user, callback)
    assert pages == ["login", "compat-sso"], pages
    token = parse_qs(urlsplit(location).query)["loginToken"]

    async def scenario():
        client = nio_client(stack, user)
        try:
            info = await client.login_info()
            assert isinstance(info, LoginInfoResponse), str(info)
            assert {"m.login.sso", "m.login.token"} <= set(info.flows), info.flows
            login = await client.login(token=token[0], device_name="sso test")
            assert isinstance(login, LoginResponse), str(login)
            assert login.user_id == user.mxid
            whoami = await poll_async(client.whoami, WhoamiResponse)
            assert (whoami.user_id, whoami.device_id) == (user.mxid, login.device_id)
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
    # The refresh token is no access token: Synapse must not take it for one.
    response = whoami(stack, body["refresh_token"])
    assert response.status_code == 401, describe(response)
    assert response.json()["errcode"] == "M_UNKNOWN_TOKEN", describe(response)

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
    """Legacy Synapse does not check the device, so it serves the logged-out token from
    its cache until that runs out (checked by test_synapse_catches_up.py; measured:
    refused 120-121 s after Synapse first saw it). Modern Synapse refuses it at once:
    MAS deletes the device there, which clears Synapse's cache."""
    user = stack.new_user("erin")

    async def scenario():
        client = nio_client(stack, user)
        try:
            login = await nio_login(stack, user, client)
            seen_at = time.monotonic()
            await poll_async(client.whoami, WhoamiResponse)
            assert introspect_as_synapse(stack, login.access_token)["active"] is True
            logout = await client.logout()
            assert isinstance(logout, LogoutResponse), str(logout)
            return login, seen_at
        finally:
            await client.close()

    login, seen_at = run(scenario())
    assert_token_dead(stack, login.access_token, "compat token after /logout", seen_at)
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
