"""`mas-cli manage` verbs from docs/cli.md ("Homeserver and session verbs", and the
homeserver check of `register-user`) against the running stack, on both Synapse generations: what the operator reads on the terminal,
and what a Matrix client then meets at Synapse through the proxy.
"""

from __future__ import annotations

import time

import requests

from harness import (
    PROVISION_TIMEOUT,
    REVOKE_TIMEOUT,
    Fatal,
    assert_refused_promptly,
    assert_whoami,
    bearer,
    describe,
    assert_service_refuses,
    introspect_as_synapse,
    not_served,
    poll,
)


def transcript(result) -> str:
    return f"exit {result.returncode}\n--- stdout\n{result.stdout}--- stderr\n{result.stderr}"


def issue_token(stack, user, *args: str) -> tuple[str, str]:
    """Runs `issue-compatibility-token`; returns the token (the whole of stdout) and
    stderr. A script does `TOKEN=$(mas-cli ...)`, so stdout must be the token alone."""
    result = stack.mas.cli("manage", "issue-compatibility-token", user.localpart, *args)
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and result.stdout == lines[0] + "\n", transcript(result)
    token = lines[0]
    assert token.startswith("mct_") and token.strip() == token, transcript(result)
    assert token not in result.stderr, transcript(result)
    return token, result.stderr


def password_login(stack, user) -> dict:
    """A password login through the proxy, retried while provisioning may still run."""

    def attempt():
        response = requests.post(
            f"{stack.proxy_url}/_matrix/client/v3/login",
            json={
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": user.localpart},
                "password": user.password,
            },
            timeout=15,
        )
        if not_served(response):
            raise Fatal(describe(response))
        assert response.status_code == 200, describe(response)
        return response.json()

    return poll(f"a password login of {user.mxid}", attempt, timeout=PROVISION_TIMEOUT, interval=0.5)


def synapse_admin_get_user(stack, token: str, user) -> requests.Response:
    """An admin-only Synapse endpoint (server_version needs no auth at all, so it
    would prove nothing). Asked at Synapse itself: the documented proxy does not
    route `/_synapse/admin/` (docs/setup/reverse-proxy.md), as an operator's
    admin tooling would not go through it either."""
    return requests.get(
        f"{stack.synapse_url}/_synapse/admin/v2/users/{user.mxid}", headers=bearer(token), timeout=15
    )


# One Synapse admin token per generation, issued by the command under test.
_ADMIN_TOKENS: dict[str, str] = {}


def synapse_admin_token(stack) -> str:
    """A token Synapse's admin API accepts. Legacy Synapse takes its admin_token
    (stack.secret), but modern Synapse takes the shared secret only on
    /_synapse/mas/, so this is an admin compatibility token from the CLI."""
    if stack.kind not in _ADMIN_TOKENS:
        operator = stack.new_user("operator")
        _ADMIN_TOKENS[stack.kind], _ = issue_token(
            stack, operator, "OPERATOR", "--yes-i-want-to-grant-synapse-admin-privileges"
        )
    return _ADMIN_TOKENS[stack.kind]


def synapse_devices(stack, user) -> set[str]:
    """The user's devices as Synapse's admin API lists them."""
    response = requests.get(
        f"{stack.synapse_url}/_synapse/admin/v2/users/{user.mxid}/devices",
        headers=bearer(synapse_admin_token(stack)),
        timeout=15,
    )
    assert response.status_code == 200, describe(response)
    return {device["device_id"] for device in response.json()["devices"]}


# --- issue-compatibility-token -------------------------------------------------------


def test_issued_token_works_at_synapse(stack):
    """The token printed alone on stdout is accepted by Synapse for the named device;
    without the admin flag it is not a Synapse admin token."""
    user = stack.new_user("bot")
    token, stderr = issue_token(stack, user, "BOTDEVICE")
    # The device is made at once when Synapse answers; if the brand-new user was not
    # provisioned there yet, the worker makes it a moment later. Either way the
    # operator is told, on stderr.
    assert (
        "Device BOTDEVICE is ready on the homeserver" in stderr
        or "mas-server's worker will create device BOTDEVICE" in stderr
    ), stderr
    assert "admin rights" not in stderr, stderr

    assert_whoami(stack, token, user, "BOTDEVICE")
    assert introspect_as_synapse(stack, token)["active"] is True

    response = synapse_admin_get_user(stack, token, user)
    assert response.status_code == 403, describe(response)
    assert response.json()["errcode"] == "M_FORBIDDEN", describe(response)


def test_issued_token_with_admin_flag_is_a_synapse_admin(stack):
    """`--yes-i-want-to-grant-synapse-admin-privileges` (on a new device, named with
    `--device-id`): Synapse lets the token use its admin API, on both generations
    (each reads `urn:synapse:admin:*` from MAS's introspection answer). The user
    itself was never promoted: the flag alone grants it, as in the reference."""
    user = stack.new_user("adminbot")
    token, stderr = issue_token(
        stack, user, "--device-id", "ADMINBOT", "--yes-i-want-to-grant-synapse-admin-privileges"
    )
    assert "This token carries homeserver admin rights" in stderr, stderr
    assert_whoami(stack, token, user, "ADMINBOT")
    assert "urn:synapse:admin:*" in introspect_as_synapse(stack, token)["scope"].split()

    response = synapse_admin_get_user(stack, token, user)
    assert response.status_code == 200, describe(response)
    body = response.json()
    assert body["name"] == user.mxid, body


# --- issue-personal-access-token / revoke-personal-access-token -------------------


def issue_personal_token(stack, user, *args: str) -> str:
    """Runs `issue-personal-access-token`; the token is the whole of stdout."""
    result = stack.mas.cli("manage", "issue-personal-access-token", user.localpart, *args)
    token = result.stdout.removesuffix("\n")
    assert token.startswith("mpt_") and result.stdout == token + "\n", transcript(result)
    assert token not in result.stderr, transcript(result)
    return token


def test_personal_access_tokens_work_at_synapse_until_revoked(stack):
    """A personal access token is the user's at Synapse (no device), an admin's may
    carry the Synapse admin scope, and a revoked one is refused: by the service at
    once, by Synapse when its cache lets go."""
    user = stack.new_user("pat")
    token = issue_personal_token(stack, user, "--name", "nightly job", "--expires-in", "600")

    def whoami():
        response = requests.get(f"{stack.proxy_url}/_matrix/client/v3/account/whoami", headers=bearer(token), timeout=15)
        if not_served(response):
            raise Fatal(describe(response))
        assert response.status_code == 200, describe(response)
        return response.json()

    seen_at = time.monotonic()
    body = poll("the personal token at Synapse", whoami, timeout=PROVISION_TIMEOUT)
    assert body["user_id"] == user.mxid and "device_id" not in body, body
    answer = introspect_as_synapse(stack, token)
    assert answer["active"] is True and answer["username"] == user.localpart, answer
    assert "urn:synapse:admin:*" not in answer["scope"].split(), answer
    assert 0 < answer["expires_in"] <= 600, answer
    response = synapse_admin_get_user(stack, token, user)
    assert response.status_code == 403, describe(response)

    # Admin scopes only for a user who may request admin.
    refused = stack.mas.cli("manage", "issue-personal-access-token", user.localpart,
                            "--scope", "urn:synapse:admin:*", check=False)
    assert refused.returncode == 1 and "may not request admin rights" in refused.stderr, transcript(refused)
    stack.mas.cli("manage", "promote-admin", user.localpart)
    admin = issue_personal_token(stack, user, "--scope", "urn:matrix:client:api:*", "--scope", "urn:synapse:admin:*")
    admin_seen_at = time.monotonic()
    response = poll("the admin token at Synapse's admin API", lambda: ok(synapse_admin_get_user(stack, admin, user)),
                    timeout=PROVISION_TIMEOUT)
    assert response.json()["name"] == user.mxid

    revoked = stack.mas.cli("manage", "revoke-personal-access-token", token)
    assert revoked.stdout.startswith("revoked personal session ") and token not in revoked.stdout, transcript(revoked)
    ended_at = time.monotonic()
    assert_service_refuses(stack, token, "a revoked personal access token")
    stack.expect_refused("a revoked personal access token", token, ended_at, seen_at)
    # The other token of the user is untouched...
    assert introspect_as_synapse(stack, admin)["active"] is True
    # ...until the user may no longer request admin rights: its session is revoked.
    demoted = stack.mas.cli("manage", "demote-admin", user.localpart)
    assert "ended 1 session(s) that held an admin scope" in demoted.stdout, transcript(demoted)
    demoted_at = time.monotonic()
    assert_service_refuses(stack, admin, "an admin personal token after demote-admin")
    stack.expect_refused("an admin personal token after demote-admin", admin, demoted_at, admin_seen_at)


def ok(response: requests.Response) -> requests.Response:
    assert response.status_code == 200, describe(response)
    return response


# --- kill-sessions ------------------------------------------------------------------


def test_kill_sessions_dry_run_then_for_real(stack):
    user = stack.new_user("kim")
    logins = [password_login(stack, user) for _ in range(2)]
    assert logins[0]["device_id"] != logins[1]["device_id"]
    for body in logins:
        assert_whoami(stack, body["access_token"], user, body["device_id"])
    devices = {body["device_id"] for body in logins}
    # Both devices exist on Synapse (MAS made them), so their removal below means
    # something.
    poll("both devices on Synapse", lambda: devices <= synapse_devices(stack, user), timeout=PROVISION_TIMEOUT)

    # --dry-run counts and changes nothing. Password logins make no browser session.
    dry = stack.mas.cli("manage", "kill-sessions", user.localpart, "--dry-run")
    assert dry.stdout.splitlines() == [
        "would end 2 compatibility session(s), 0 OAuth 2.0 session(s) and 0 browser session(s)"
        f" of `{user.localpart}`"
    ], transcript(dry)
    for body in logins:
        assert introspect_as_synapse(stack, body["access_token"])["active"] is True
        assert_whoami(stack, body["access_token"], user, body["device_id"])
    # Counting again gives the same answer: the dry run ended nothing.
    again = stack.mas.cli("manage", "kill-sessions", user.localpart, "--dry-run")
    assert again.stdout == dry.stdout, transcript(again)

    real = stack.mas.cli("manage", "kill-sessions", user.localpart)
    assert real.stdout.splitlines() == [
        "ended 2 compatibility session(s), 0 OAuth 2.0 session(s) and 0 browser session(s)"
        f" of `{user.localpart}`"
    ], transcript(real)
    # The service calls the tokens inactive as soon as its server hears of the command
    # (within 50 ms), although it had kept their answers from the dry run's checks.
    for body in logins:
        assert_service_refuses(stack, body["access_token"], "a token after kill-sessions")
    after = stack.mas.cli("manage", "kill-sessions", user.localpart, "--dry-run")
    assert after.stdout.startswith("would end 0 compatibility session(s), "), transcript(after)

    if stack.kind == "modern":
        # The worker's sync-devices job deletes the devices on Synapse, which drops
        # its cached introspection answers with them: refused within seconds.
        for body in logins:
            assert_refused_promptly(stack, body["access_token"], "a token after kill-sessions")
    else:
        # Legacy Synapse does not tie its token cache to devices, so it may accept the
        # tokens for up to 2 minutes (not waited for here); the devices must go.
        def gone():
            left = synapse_devices(stack, user) & devices
            assert not left, f"still on Synapse: {sorted(left)}"
            return True

        poll("the killed devices to be deleted on Synapse", gone, timeout=REVOKE_TIMEOUT + 5, interval=0.3)


# --- promote-admin / list-admin-users / demote-admin ---------------------------------


def test_promote_list_and_demote_admin(stack):
    user = stack.new_user("root")
    other = stack.new_user("plain")

    def admins(verb: str) -> list[str]:
        result = stack.mas.cli("manage", verb)
        names = result.stdout.splitlines()
        # The count goes to stderr, so stdout is usable as a list of names.
        assert f"{len(names)} user(s) may request admin rights" in result.stderr, transcript(result)
        return names

    assert user.localpart not in admins("list-admin-users")

    promoted = stack.mas.cli("manage", "promote-admin", user.localpart)
    assert f"`{user.localpart}`" in promoted.stdout, transcript(promoted)
    for verb in ("list-admin-users", "list-admins"):
        names = admins(verb)
        assert user.localpart in names, (verb, names)
        assert other.localpart not in names, (verb, names)

    demoted = stack.mas.cli("manage", "demote-admin", user.localpart)
    assert f"`{user.localpart}`" in demoted.stdout, transcript(demoted)
    for verb in ("list-admin-users", "list-admins"):
        assert user.localpart not in admins(verb), verb

    # An unknown user: exit status 1 and the documented message, nothing on stdout.
    missing = stack.mas.cli("manage", "promote-admin", "nosuchuser", check=False)
    assert missing.returncode == 1, transcript(missing)
    assert "no user `nosuchuser`" in missing.stderr, transcript(missing)
    assert missing.stdout == "", transcript(missing)


# --- register-user ---------------------------------------------------------------------


def test_register_user_refuses_names_synapse_refuses(stack):
    """register-user asks Synapse before creating anything: a name Synapse would not
    take is refused with Synapse's own rule, and no user is made."""
    for name, rule in (
        ("_bridge1", "User ID may not begin with _"),
        ("4242", "Numeric user IDs are reserved for guest users."),
    ):
        result = stack.mas.cli("manage", "register-user", name, "-y", check=False)
        assert result.returncode == 1, transcript(result)
        assert f"the homeserver refuses the username `{name}`: {rule}" in result.stderr, transcript(result)
        missing = stack.mas.cli("manage", "promote-admin", name, check=False)
        assert f"no user `{name}`" in missing.stderr, transcript(missing)
