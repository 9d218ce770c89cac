"""Moving a real Synapse that signs people in itself, as docs/setup/migration.md tells
it, once on SQLite and once on PostgreSQL (Synapse's database and ours on the same
engine). People register and sign in on two devices with matrix-nio and talk; Synapse
stops; `syn2mas check`, `migrate --dry-run` (nothing written) and `migrate` run; Synapse
restarts delegating to this service. Then the phones' tokens still work, a Synapse
refresh token refreshes once, the passwords still sign in (and are re-hashed), the
devices are the same, the admin is still admin, the deactivated and locked users stay
out, and the email address is on the account."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import time
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import pytest
import requests
import yaml
from nio import AsyncClient, AsyncClientConfig, LoginResponse, RoomCreateResponse, RoomSendResponse

import harness
from harness import Forms, bearer, describe

SERVER = "example.com"
PYTHON = harness.SYNAPSE_PYTHON["modern"]
NIO_CONFIG = AsyncClientConfig(max_limit_exceeded=0, max_timeouts=0, request_timeout=15, encryption_enabled=False)
FAST = {"per_second": 1000, "burst_count": 1000}


@dataclass
class Person:
    name: str
    password: str
    # (device ID, access token) of each nio sign-in.
    devices: list[tuple[str, str]] = field(default_factory=list)

    @property
    def mxid(self) -> str:
        return f"@{self.name}:{SERVER}"


def synapse_cmd(tmp_path, *args, check=True) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, *args], cwd=tmp_path, check=check, capture_output=True, text=True, timeout=120)


def mas_cli(tmp_path, files, *args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [harness.MAS_CLI, *(a for f in files for a in ("-c", str(f))), *args],
        cwd=tmp_path, env=harness.mas_env(), capture_output=True, text=True, timeout=300,
    )


async def sign_in_and_talk(base: str, people: list[Person], room_message: str) -> None:
    """Each person signs in on a phone and a laptop; the first creates a room and
    speaks."""
    for person in people:
        for device in ("phone", "laptop"):
            client = AsyncClient(base, person.mxid, config=NIO_CONFIG)
            try:
                response = await client.login(person.password, device_name=f"{person.name}'s {device}")
                assert isinstance(response, LoginResponse), str(response)
                person.devices.append((response.device_id, response.access_token))
                if person is people[0] and device == "phone":
                    room = await client.room_create(name="before the move")
                    assert isinstance(room, RoomCreateResponse), str(room)
                    sent = await client.room_send(
                        room.room_id, "m.room.message", {"msgtype": "m.text", "body": room_message}
                    )
                    assert isinstance(sent, RoomSendResponse), str(sent)
            finally:
                await client.close()


def counts(output: str) -> dict[str, list[str]]:
    """The summary table's rows: the first word of the row, then moved and left out."""
    rows = {}
    for line in output.splitlines():
        words = line.split()
        numbers = [w for w in words if w.replace(".", "").isdigit()]
        if words and line[:1].isalpha() and len(numbers) == 3:
            rows[words[0]] = numbers[:2]
    return rows


def password_versions(backend: str, mas_db: str, name: str) -> list[int]:
    sql = ("SELECT p.version FROM user_passwords p JOIN users u ON u.id = p.user_id "
           f"WHERE u.username = '{name}' ORDER BY p.created_at, p.version")
    if backend == "sqlite":
        with sqlite3.connect(mas_db) as db:
            return [row[0] for row in db.execute(sql)]
    return [int(row[0]) for row in harness.psql(mas_db, sql)]


def check_refresh(synapse_url: str, mas_base: str, tablet: dict) -> None:
    """The tablet's access token ran out before the move; its Synapse refresh token is
    taken here once, for new tokens that work."""
    expired = requests.get(f"{synapse_url}/_matrix/client/v3/account/whoami", headers=bearer(tablet["access_token"]), timeout=15)
    assert expired.status_code == 401, describe(expired)
    url = f"{mas_base}_matrix/client/v3/refresh"
    refreshed = requests.post(url, json={"refresh_token": tablet["refresh_token"]}, timeout=15)
    assert refreshed.status_code == 200, describe(refreshed)
    token = refreshed.json()["access_token"]
    assert token != tablet["access_token"] and refreshed.json()["refresh_token"] != tablet["refresh_token"]
    response = requests.get(f"{synapse_url}/_matrix/client/v3/account/whoami", headers=bearer(token), timeout=15)
    assert response.status_code == 200, describe(response)
    assert response.json()["device_id"] == tablet["device_id"]
    again = requests.post(url, json={"refresh_token": tablet["refresh_token"]}, timeout=15)
    assert again.status_code in (400, 401) and again.json()["errcode"] == "M_UNKNOWN_TOKEN", describe(again)


def count_users(backend: str, mas_db: str) -> int:
    if backend == "sqlite":
        with sqlite3.connect(mas_db) as db:
            return db.execute("SELECT count(*) FROM users").fetchone()[0]
    return int(harness.psql(mas_db, "SELECT count(*) FROM users")[0][0])


def html_sign_in(mas_base: str, name: str, password: str) -> requests.Session:
    """A person signs in on the service's own pages."""
    browser = requests.Session()
    page = browser.get(urljoin(mas_base, "login"), timeout=15)
    assert page.status_code == 200, describe(page)
    form = Forms(page.text).forms[0]
    data = {**dict(form["inputs"]), "username": name, "password": password}
    done = browser.post(urljoin(page.url, form["action"]), data=data, timeout=15)
    assert done.status_code == 200, describe(done)
    return browser


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_synapse_with_its_own_logins_moves_and_nobody_signs_in_again(tmp_path, backend):
    homeserver = tmp_path / "homeserver.yaml"
    synapse_cmd(tmp_path, "-m", "synapse.app.homeserver", "--server-name", SERVER,
                "--config-path", str(homeserver), "--generate-config", "--report-stats=no")
    port, mas_port = harness.free_port(), harness.free_port()
    synapse_files = [homeserver, harness.write_yaml(tmp_path / "listener.yaml", {
        "listeners": [{"port": port, "bind_addresses": ["127.0.0.1"], "type": "http", "tls": False,
                       "resources": [{"names": ["client"], "compress": False}]}],
        "rc_login": {"address": FAST, "account": FAST, "failed_attempts": FAST},
        "rc_message": FAST, "rc_room_creation": FAST,
        # So that the refreshing client's access token has run out by the move, as
        # Synapse's five-minute default would on a real server.
        "refreshable_access_token_lifetime": "2s",
    })]
    created: list[str] = []
    if backend == "postgres":
        synapse_db, mas_db_name = harness.create_database("syn2mas_synapse"), harness.create_database("syn2mas_mas")
        created += [synapse_db, mas_db_name]
        admin = urlsplit(harness.ADMIN_URL)
        synapse_files.append(harness.write_yaml(tmp_path / "database.yaml", {"database": {
            "name": "psycopg2",
            "args": {"user": admin.username or "postgres", "host": admin.hostname, "port": admin.port or 5432,
                     "database": synapse_db, "cp_min": 1, "cp_max": 5},
        }}))
        mas_db = harness.database_url(mas_db_name)
        mas_db_uri = mas_db
    else:
        mas_db = str(tmp_path / "mas.db")
        mas_db_uri = f"sqlite://{mas_db}"
    synapse_args = [a for f in synapse_files for a in ("-c", str(f))]
    try:
        run_the_move(tmp_path, backend, port, mas_port, synapse_files, synapse_args, mas_db, mas_db_uri)
    finally:
        for name in created:
            harness.psql(harness.ADMIN_URL, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def run_the_move(tmp_path, backend, port, mas_port, synapse_files, synapse_args, mas_db, mas_db_uri):
    synapse_url = f"http://127.0.0.1:{port}"
    people = {name: Person(name, f"{name}'s long passphrase") for name in ("alice", "bob", "carol", "dave", "erin")}
    alice, bob, carol, dave, erin = people.values()

    # --- Synapse signs people in itself ----------------------------------------------
    synapse = harness.Service(
        "synapse (own logins)", [PYTHON, "-m", "synapse.app.homeserver", *synapse_args],
        tmp_path / "synapse-before.log", tmp_path,
    ).start()
    try:
        synapse.wait_healthy(f"{synapse_url}/health")
        for person in people.values():
            synapse_cmd(tmp_path, "-m", "synapse._scripts.register_new_matrix_user", *synapse_args,
                        "-u", person.name, "-p", person.password,
                        "--admin" if person is alice else "--no-admin", synapse_url)
        asyncio.run(sign_in_and_talk(synapse_url, [alice, bob, dave, erin, carol], "said before the move"))
        # A client that asked for a refresh token (Synapse's access token then expires
        # in minutes, and the client refreshes it).
        refreshing = requests.post(f"{synapse_url}/_matrix/client/v3/login", json={
            "type": "m.login.password", "identifier": {"type": "m.id.user", "user": erin.name},
            "password": erin.password, "refresh_token": True, "initial_device_display_name": "erin's tablet",
        }, timeout=15)
        assert refreshing.status_code == 200 and refreshing.json()["refresh_token"].startswith("syr_"), describe(refreshing)
        tablet = refreshing.json()
        tablet_expires = time.monotonic() + tablet["expires_in_ms"] / 1000
        admin = bearer(alice.devices[0][1])
        for path, body in (
            (f"/_synapse/admin/v2/users/{erin.mxid}", {"threepids": [{"medium": "email", "address": "erin@example.com"}]}),
            (f"/_synapse/admin/v2/users/{dave.mxid}", {"locked": True}),
        ):
            response = requests.put(synapse_url + path, json=body, headers=admin, timeout=15)
            assert response.status_code == 200, describe(response)
        response = requests.post(f"{synapse_url}/_synapse/admin/v1/deactivate/{carol.mxid}", json={}, headers=admin, timeout=15)
        assert response.status_code == 200, describe(response)

        mas_yaml = tmp_path / "mas.yaml"
        generated = mas_cli(tmp_path, [], "config", "generate", *(a for f in synapse_files for a in ("--synapse-config", str(f))),
                            "--output", str(mas_yaml))
        assert generated.returncode == 0, generated.stderr
        doc = yaml.safe_load(mas_yaml.read_text())
        doc.get("http", {}).pop("listeners", None)
        harness.write_yaml(mas_yaml, doc)
        secret = doc["matrix"]["secret"]
        local = harness.write_yaml(tmp_path / "local.yaml", {
            "database": {"uri": mas_db_uri},
            "http": {"public_base": f"http://127.0.0.1:{mas_port}/"},
            "matrix": {"endpoint": f"{synapse_url}/"},
            "rate_limiting": {"login": {"per_ip": {"burst": 100, "per_second": 100},
                                        "per_account": {"burst": 100, "per_second": 100}}},
        })
        ours = [mas_yaml, local, harness.listener_file(tmp_path / "mas-listener.yaml", mas_port)]
        source = [a for f in synapse_files for a in ("--synapse-config", str(f))]

        migrated = mas_cli(tmp_path, ours, "database", "migrate")
        assert migrated.returncode == 0, migrated.stdout + migrated.stderr
        # Checking is fine while Synapse runs; moving is not.
        early = mas_cli(tmp_path, ours, "syn2mas", "check", *source)
        assert early.returncode == 0, early.stdout + early.stderr
        assert "warning: Synapse seems to be running" in early.stdout, early.stdout
        refused = mas_cli(tmp_path, ours, "syn2mas", "migrate", *source)
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert "error: Synapse seems to be running" in refused.stdout, refused.stdout
        assert count_users(backend, mas_db) == 0
    finally:
        synapse.stop()

    # --- the move ---------------------------------------------------------------------
    time.sleep(max(0.0, tablet_expires - time.monotonic()))
    result = mas_cli(tmp_path, ours, "syn2mas", "check", *source)
    assert result.returncode == 0, result.stdout + result.stderr
    # Each registration signed in once more (Synapse's shared-secret registration makes
    # a device), and Erin's tablet once; Carol's three devices went with her deactivation.
    assert "Synapse: 5 users to move (4 with a password), 13 devices, 13 access tokens, 1 email addresses" in result.stdout, result.stdout
    assert "check passed" in result.stdout

    dry = mas_cli(tmp_path, ours, "syn2mas", "migrate", *source, "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "dry run: everything was rolled back" in dry.stdout, dry.stdout
    assert count_users(backend, mas_db) == 0

    moved = mas_cli(tmp_path, ours, "syn2mas", "migrate", *source)
    assert moved.returncode == 0, moved.stdout + moved.stderr
    summary = counts(moved.stdout)
    assert summary["users"] == ["5", "0"], moved.stdout
    assert summary["passwords"] == ["4", "0"], moved.stdout
    assert summary["email"] == ["1", "0"], moved.stdout
    assert summary["devices"] == ["13", "0"], moved.stdout
    assert summary["access"] == ["13", "0"], moved.stdout
    assert summary["refresh"] == ["1", "0"], moved.stdout
    # The dry run said the same.
    assert counts(dry.stdout) == summary, dry.stdout
    assert count_users(backend, mas_db) == 5
    again = mas_cli(tmp_path, ours, "syn2mas", "migrate", *source)
    assert again.returncode == 1 and "already holds 5 users" in again.stdout, again.stdout + again.stderr

    # --- Synapse delegates to this service ----------------------------------------------
    delegating = harness.write_yaml(tmp_path / "delegate.yaml", {
        "matrix_authentication_service": {"enabled": True, "endpoint": f"http://127.0.0.1:{mas_port}/", "secret": secret},
        "password_config": {"enabled": False},
    })
    mas = harness.Service("mas-server", [harness.MAS_SERVER, *(a for f in ours for a in ("-c", str(f)))],
                          tmp_path / "mas.log", tmp_path, env=harness.mas_env()).start()
    synapse = harness.Service(
        "synapse (delegating)", [PYTHON, "-m", "synapse.app.homeserver", *synapse_args, "-c", str(delegating)],
        tmp_path / "synapse-after.log", tmp_path,
    ).start()
    try:
        mas.wait_healthy(f"http://127.0.0.1:{mas_port}/health")
        synapse.wait_healthy(f"{synapse_url}/health")
        check_after_the_move(synapse_url, f"http://127.0.0.1:{mas_port}/", people)
        check_refresh(synapse_url, f"http://127.0.0.1:{mas_port}/", tablet)
        # Bob's password was re-hashed with argon2id (scheme version 2) when he signed in.
        versions = password_versions(backend, mas_db, bob.name)
        assert versions == [1, 2], versions
    finally:
        synapse.stop()
        mas.stop()


def check_after_the_move(synapse_url: str, mas_base: str, people: dict[str, Person]) -> None:
    alice, bob, carol, dave, erin = people.values()
    # Every phone and laptop keeps working with the token it had.
    for person in (alice, bob, erin):
        for device_id, token in person.devices:
            response = requests.get(f"{synapse_url}/_matrix/client/v3/account/whoami", headers=bearer(token), timeout=15)
            assert response.status_code == 200, describe(response)
            assert response.json()["user_id"] == person.mxid
            assert response.json()["device_id"] == device_id
    sync = requests.get(f"{synapse_url}/_matrix/client/v3/sync", headers=bearer(alice.devices[1][1]), timeout=30)
    assert sync.status_code == 200, describe(sync)
    assert "said before the move" in sync.text
    devices = requests.get(f"{synapse_url}/_matrix/client/v3/devices", headers=bearer(bob.devices[0][1]), timeout=15)
    assert devices.status_code == 200, describe(devices)
    listed = {d["device_id"]: d.get("display_name") for d in devices.json()["devices"]}
    # The two signed in with nio, and the one Synapse's registration made.
    assert len(listed) == 3, listed
    assert {listed.get(d) for d, _ in bob.devices} == {"bob's phone", "bob's laptop"}, listed

    # The admin is still admin; the others are not.
    url = f"{synapse_url}/_synapse/admin/v2/users/{bob.mxid}"
    response = requests.get(url, headers=bearer(alice.devices[0][1]), timeout=15)
    assert response.status_code == 200, describe(response)
    response = requests.get(url, headers=bearer(bob.devices[0][1]), timeout=15)
    assert response.status_code == 403, describe(response)

    # The same passwords sign in through the compatibility login.
    def login(person: Person) -> requests.Response:
        body = {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": person.name},
                "password": person.password}
        return requests.post(f"{mas_base}_matrix/client/v3/login", json=body, timeout=15)

    fresh = login(bob)
    assert fresh.status_code == 200, describe(fresh)
    new_token = fresh.json()["access_token"]

    def whoami_new():
        response = requests.get(f"{synapse_url}/_matrix/client/v3/account/whoami", headers=bearer(new_token), timeout=15)
        assert response.status_code == 200, describe(response)
        return response.json()

    assert harness.poll("the new device on Synapse", whoami_new)["user_id"] == bob.mxid

    # The deactivated and the locked stay out, old tokens included.
    # Synapse dropped Carol's password when it deactivated her, as it does: her own
    # password is simply wrong now, as it was in Synapse.
    refused = login(carol)
    assert refused.status_code == 403 and refused.json()["errcode"] == "M_FORBIDDEN", describe(refused)
    refused = login(dave)
    assert refused.status_code in (401, 403) and refused.json()["errcode"] == "M_USER_LOCKED", describe(refused)
    response = requests.get(f"{synapse_url}/_matrix/client/v3/account/whoami", headers=bearer(dave.devices[0][1]), timeout=15)
    assert response.status_code == 401, describe(response)

    # Erin's address is on her account.
    account = html_sign_in(mas_base, erin.name, erin.password).get(urljoin(mas_base, "account/"), timeout=15)
    assert account.status_code == 200, describe(account)
    assert 'data-email="erin@example.com"' in account.text, account.text
