"""What a next-generation Matrix client does, on both Synapse generations: register
itself at MAS, sign the user in through MAS's pages with the authorization code flow
(PKCE, a device scope), use the access token at Synapse, and log out by revoking it.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import string
import time
from urllib.parse import parse_qs, urlencode, urlsplit

import requests

from harness import (
    assert_refused_promptly,
    assert_service_refuses,
    assert_whoami,
    bearer,
    browse,
    describe,
    introspect_as_synapse,
    whoami,
)

REDIRECT_URI = "http://127.0.0.1/callback"


def register_client(metadata: dict) -> str:
    """Dynamic registration (MSC2966) of a native public client."""
    response = requests.post(
        metadata["registration_endpoint"],
        json={
            "client_name": "e2e test client",
            "client_uri": "https://client.example.org/",
            "application_type": "native",
            "redirect_uris": [REDIRECT_URI],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
        },
        timeout=15,
    )
    assert response.status_code == 201, describe(response)
    return response.json()["client_id"]


def authorize(metadata: dict, client_id: str, user, scope: str) -> tuple[str, str]:
    """The browser part of the code flow: MAS's login and consent pages.
    Returns (code, code_verifier)."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    state = secrets.token_urlsafe(12)
    query = urlencode({
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": scope,
        "state": state,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    })
    location, pages = browse(f"{metadata['authorization_endpoint']}?{query}", user, REDIRECT_URI)
    assert pages == ["login", "consent"], pages

    params = parse_qs(urlsplit(location).query)
    assert params.get("state") == [state], location
    assert "code" in params, location
    return params["code"][0], verifier


def exchange_code(metadata: dict, client_id: str, code: str, verifier: str) -> requests.Response:
    """The token request of the code flow, for a public client."""
    return requests.post(
        metadata["token_endpoint"],
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "client_id": client_id,
            "code_verifier": verifier,
        },
        timeout=15,
    )


def test_oauth_client_uses_its_token_at_synapse_and_revokes_it(stack):
    """Registration, code flow with a device scope, the token at Synapse's whoami, then
    revocation: MAS refuses the token at once; modern Synapse promptly (MAS deletes the
    device there); legacy Synapse once its cached answer runs out (checked by
    test_synapse_catches_up.py; measured: 120-121 s after Synapse first saw it)."""
    user = stack.new_user("olivia")
    metadata = requests.get(f"{stack.issuer}.well-known/openid-configuration", timeout=15).json()
    assert metadata["issuer"] == stack.issuer, metadata
    client_id = register_client(metadata)

    device_id = "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(10))
    device_scope = f"urn:matrix:client:device:{device_id}"
    code, verifier = authorize(metadata, client_id, user, f"openid urn:matrix:client:api:* {device_scope}")

    response = exchange_code(metadata, client_id, code, verifier)
    assert response.status_code == 200, describe(response)
    tokens = response.json()
    assert tokens["token_type"].lower() == "bearer", tokens
    assert tokens["access_token"].startswith("mat_"), tokens
    assert tokens["refresh_token"].startswith("mar_"), tokens
    assert device_scope in tokens["scope"].split(), tokens
    access = tokens["access_token"]

    seen_at = time.monotonic()
    assert_whoami(stack, access, user, device_id)
    # The refresh token sent as a bearer token: Synapse asks MAS (hinting an access
    # token) and must be told it is not one.
    response = whoami(stack, tokens["refresh_token"])
    assert response.status_code == 401, describe(response)
    assert response.json()["errcode"] == "M_UNKNOWN_TOKEN", describe(response)

    response = requests.post(
        metadata["revocation_endpoint"],
        data={"token": tokens["refresh_token"], "token_type_hint": "refresh_token", "client_id": client_id},
        timeout=15,
    )
    assert response.status_code == 200, describe(response)
    revoked_at = time.monotonic()
    assert introspect_as_synapse(stack, access) == {"active": False}
    response = requests.post(
        metadata["token_endpoint"],
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": client_id},
        timeout=15,
    )
    assert response.status_code == 400, describe(response)
    assert response.json()["error"] == "invalid_grant", describe(response)

    if stack.kind == "modern":
        assert_refused_promptly(stack, access, "a revoked OAuth access token")
    else:
        stack.expect_refused("OAuth token after revocation", access, revoked_at, seen_at)


def test_demoting_an_admin_ends_its_admin_tokens(stack):
    """An admin's token with the Synapse admin scope works at Synapse's admin API; after
    `mas-cli manage demote-admin`, MAS answers it inactive, it no longer refreshes, and
    modern Synapse refuses it promptly."""
    user = stack.new_user("demoted")
    stack.mas.cli("manage", "promote-admin", user.localpart)
    metadata = requests.get(f"{stack.issuer}.well-known/openid-configuration", timeout=15).json()
    client_id = register_client(metadata)
    device_id = "".join(secrets.choice(string.ascii_uppercase) for _ in range(10))
    scope = f"urn:matrix:client:api:* urn:synapse:admin:* urn:matrix:client:device:{device_id}"
    code, verifier = authorize(metadata, client_id, user, scope)
    response = exchange_code(metadata, client_id, code, verifier)
    assert response.status_code == 200, describe(response)
    tokens = response.json()
    access = tokens["access_token"]
    assert_whoami(stack, access, user, device_id)
    admin_api = f"{stack.synapse_url}/_synapse/admin/v2/users/{user.mxid}"
    response = requests.get(admin_api, headers=bearer(access), timeout=15)
    assert response.status_code == 200, describe(response)
    seen_at = time.monotonic()

    demoted = stack.mas.cli("manage", "demote-admin", user.localpart)
    assert "ended 1 session(s)" in demoted.stdout, demoted.stdout
    demoted_at = time.monotonic()
    # The running server hears of the CLI's change through the database.
    assert_service_refuses(stack, access, "a demoted admin's token")
    response = requests.post(
        metadata["token_endpoint"],
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": client_id},
        timeout=15,
    )
    assert response.status_code == 400, describe(response)
    assert response.json()["error"] == "invalid_grant", describe(response)
    if stack.kind == "modern":
        assert_refused_promptly(stack, access, "a demoted admin's token")
    else:
        stack.expect_refused("a demoted admin's token", access, demoted_at, seen_at)
