"""Two mas-server replicas on one PostgreSQL database, behind nginx, with a real modern
Synapse (issue #14). What the replicas share goes through the database, and this file
checks each part end to end:

- migrations: both replicas start at the same moment on an empty database; both come
  up, and each migration was applied once, by one of them. Both also store the
  configured client at start; the one that lost that race used to exit with a
  duplicate key error, and now syncs again;
- revocations: a token refreshed on one replica and logged out on the other stops
  being active in the first one's introspection (which had cached it) within a second,
  and Synapse refuses it;
- jobs: every homeserver job runs exactly once, counted at a recording proxy between
  the replicas and Synapse, while both replicas run their workers;
- a replica killed under load: the other keeps serving, and no login or refresh that
  was answered is lost.

The stack is its own (Synapse, a PostgreSQL database made for the run and dropped at
the end, nginx running the replicas example of docs/setup/reverse-proxy.md), started
once for the module. The tests run in file order and build on each other: the last one
kills replica A.
"""

from __future__ import annotations

import itertools
import os
import re
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

import conftest
import harness
from conftest import PASSWORD, User
from harness import Recorder, Service, bearer, describe, poll

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations" / "src"
# The revocation feed's bound, as for `mas-cli` revocations (harness.CLI_REVOCATION_TIMEOUT).
FEED_TIMEOUT = 1.0
# The load around the kill: threads, and seconds before and after it. After this many
# refreshes a thread logs in again, leaving the old chain's last token unused, so that
# tokens answered before the kill (some by A) are checked as they were handed out.
LOAD_THREADS, BEFORE_KILL, AFTER_KILL, CHAIN_LENGTH = 4, 1.5, 2.5, 12
# A static client in the shared configuration: both replicas store it at start.
STATIC_CLIENT = "01JREP11CA5000000000000000"


# --- the stack -----------------------------------------------------------------------


@dataclass
class Replicas:
    dir: Path
    database: str
    mas: harness.Mas  # for mas-cli; the shared configuration files
    a: harness.Mas
    b: harness.Mas
    secret: str
    synapse_port: int
    proxy_port: int
    recorder: Recorder
    services: dict[str, Service]
    started_at: dict[str, float]
    healthy_after: dict[str, float] = field(default_factory=dict)
    _names: itertools.count = field(default_factory=lambda: itertools.count(1))

    @property
    def proxy_url(self) -> str:
        return f"http://127.0.0.1:{self.proxy_port}"

    @property
    def db_url(self) -> str:
        return harness.database_url(self.database)

    def url(self, replica: str) -> str:
        return getattr(self, replica).base.rstrip("/")

    def log(self, replica: str) -> str:
        return (getattr(self, replica).dir / "mas.log").read_text(errors="replace")

    def new_user(self, prefix: str) -> User:
        user = User(f"{prefix}{next(self._names)}", PASSWORD)
        self.mas.register_user(user.localpart, user.password)
        return user

    def new_users(self, prefix: str, n: int) -> list[User]:
        """Registered at once, by n `mas-cli` processes."""
        users = [User(f"{prefix}{next(self._names)}", PASSWORD) for _ in range(n)]
        with ThreadPoolExecutor(n) as pool:
            list(pool.map(lambda u: self.mas.register_user(u.localpart, u.password), users))
        return users

    def introspect(self, replica: str, token: str) -> dict:
        """Ask `replica` about a token as Synapse does."""
        response = requests.post(
            f"{self.url(replica)}/oauth2/introspect",
            data={"token": token, "token_type_hint": "access_token"},
            headers={"Authorization": f"Bearer {self.secret}", "Accept": "application/json"},
            timeout=15,
        )
        assert response.status_code == 200, describe(response)
        return response.json()

    def whoami(self, token: str) -> requests.Response:
        """Synapse, through nginx."""
        return requests.get(f"{self.proxy_url}/_matrix/client/v3/account/whoami", headers=bearer(token), timeout=15)

    def wait_provisioned(self, users: list[User]) -> None:
        def done():
            seen = {c.body.get("localpart") for c in self.recorder.mas_calls("provision_user") if c.status < 300}
            return all(u.localpart in seen for u in users)

        poll(f"provisioning of {[u.localpart for u in users]}", done, timeout=harness.PROVISION_TIMEOUT)

    def wait_queue_empty(self) -> None:
        poll(
            "the job queue to be done",
            lambda: harness.psql(self.db_url, "SELECT count(*) FROM queue_jobs WHERE state <> 'completed'") == [["0"]],
            timeout=harness.PROVISION_TIMEOUT,
        )

    def log_tails(self) -> dict[str, str]:
        return {name: harness.tail(s.log, 30) for name, s in self.services.items()}


def login(base: str, user: User, device_id: str | None = None, timeout: float = 15) -> requests.Response:
    body = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": user.localpart},
        "password": user.password,
        "refresh_token": True,
    }
    if device_id:
        body["device_id"] = device_id
    return requests.post(f"{base}/_matrix/client/v3/login", json=body, timeout=timeout)


def refresh(base: str, refresh_token: str, timeout: float = 15) -> requests.Response:
    return requests.post(
        f"{base}/_matrix/client/v3/refresh", json={"refresh_token": refresh_token}, timeout=timeout
    )


def ok(response: requests.Response) -> dict:
    assert response.status_code == 200, describe(response)
    return response.json()


def report(line: str) -> None:
    conftest.REPLICAS.append(line)


@pytest.fixture(scope="module")
def replicas(tmp_path_factory):
    conftest.require_binaries()
    dir = tmp_path_factory.mktemp("replicas")
    synapse_port, proxy_port, port_a, port_b = (harness.free_port() for _ in range(4))
    secret = conftest.random_secret()
    database = harness.create_database("mas_replicas")
    services: dict[str, Service] = {}
    recorder = None
    try:
        # Synapse reaches the service through the load balancer.
        synapse = harness.launch_synapse(
            "modern", dir / "synapse", synapse_port, proxy_port, proxy_port, secret, "unused"
        )
        services["synapse"] = synapse
        recorder = Recorder(synapse_port)
        mas = harness.prepare_mas(
            "modern",
            dir / "mas",
            port_a,
            f"http://127.0.0.1:{proxy_port}/",
            recorder.port,
            secret,
            "unused",
            database_uri=harness.database_url(database),
        )
        # Both replicas store this client at start, racing each other.
        client_secret = conftest.random_secret()
        clients = harness.write_yaml(
            mas.dir / "clients.yaml",
            {
                "clients": [
                    {
                        "client_id": STATIC_CLIENT,
                        "client_auth_method": "client_secret_basic",
                        "client_secret": client_secret,
                        "redirect_uris": ["https://app.example.com/cb"],
                    }
                ]
            },
        )
        mas.config_files.insert(-1, clients)
        a, b = harness.mas_replica(mas, "a", port_a), harness.mas_replica(mas, "b", port_b)
        synapse.wait_healthy(f"http://127.0.0.1:{synapse_port}/health")
        # The same moment, on the empty database.
        started_at = {}
        for name, replica in (("a", a), ("b", b)):
            started_at[name] = time.monotonic()
            services[name] = harness.launch_mas(replica, f"mas-server {name}")
        stack = Replicas(dir, database, mas, a, b, secret, synapse_port, proxy_port, recorder, services, started_at)
        for name, replica in (("a", a), ("b", b)):
            services[name].wait_healthy(f"{replica.base}health")
            stack.healthy_after[name] = time.monotonic() - started_at[name]
        services["nginx"] = harness.run_nginx(
            dir / "nginx", proxy_port, harness.replicas_nginx_config(dir / "nginx", proxy_port, [port_a, port_b], synapse_port)
        )
        for name in ("a", "b"):
            conftest.AUDITED_LOGS.append(
                (
                    getattr(stack, name).dir / "mas.log",
                    mas.config_files[0],
                    {"matrix.secret": secret, "the static client's secret": client_secret},
                    "/_matrix/client/v3/",
                )
            )
        print(
            f"\n[replicas] database {database}; A on {port_a}, B on {port_b}, nginx {proxy_port},"
            f" recorder {recorder.port} -> synapse {synapse_port}; files in {dir}"
        )
        yield stack
    finally:
        for name in ("nginx", "a", "b", "synapse"):
            if name in services:
                services[name].stop()
        if recorder is not None:
            recorder.shutdown()
            recorder.server_close()
        harness.psql(harness.ADMIN_URL, f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


# --- the tests ---------------------------------------------------------------------

APPLIED = re.compile(r"applied migration migration=(\S+)")


def test_both_replicas_start_together_and_migrate_once(replicas):
    expected = sorted(p.stem for p in MIGRATIONS.glob("m*.rs"))
    assert expected, MIGRATIONS
    for name in ("a", "b"):
        assert replicas.services[name].proc.poll() is None, f"replica {name} exited"
        health = requests.get(f"{replicas.url(name)}/health", timeout=5)
        assert health.status_code == 200, describe(health)
        assert "revocation feed: live" in health.text, health.text
        assert "job worker: running" in health.text, health.text
    rows = harness.psql(replicas.db_url, "SELECT version, count(*) FROM seaql_migrations GROUP BY version ORDER BY version")
    assert rows == [[v, "1"] for v in expected], rows
    applied = {name: APPLIED.findall(replicas.log(name)) for name in ("a", "b")}
    # One replica applied them all, in order; the other found nothing to do.
    assert sorted(applied.values(), key=len) == [[], expected], applied
    migrator = "a" if applied["a"] else "b"
    # Both stored the static client (one of them after losing the race to create it).
    assert harness.psql(replicas.db_url, f"SELECT count(*) FROM oauth2_clients WHERE id = '{STATIC_CLIENT}'") == [["1"]]
    # Each says what it did: "created" twice when the second found the row only in its
    # own insert-or-update, "unchanged" when it found it first or synced again.
    syncs = {name: re.findall(rf"config sync: client {STATIC_CLIENT}: (\w+)", replicas.log(name)) for name in ("a", "b")}
    assert all(len(found) == 1 for found in syncs.values()), syncs
    assert "created" in syncs["a"] + syncs["b"], syncs
    assert set(syncs["a"] + syncs["b"]) <= {"created", "unchanged"}, syncs
    raced = [name for name in ("a", "b") if "syncing again" in replicas.log(name)]
    report(
        f"start-up: A healthy after {replicas.healthy_after['a']:.2f}s, B after {replicas.healthy_after['b']:.2f}s;"
        f" {len(expected)} migrations applied once, all by {migrator.upper()}; static client stored once"
        f" (A: {syncs['a'][0]}, B: {syncs['b'][0]}{'; ' + raced[0].upper() + ' lost the race to insert it and synced again' if raced else ''})"
    )


def test_a_logout_on_one_replica_reaches_the_others_introspection(replicas):
    user = replicas.new_user("rev")
    replicas.wait_provisioned([user])
    first = ok(login(replicas.url("a"), user, "REVDEVICE"))
    # A has answered for the first token, so it keeps that answer.
    assert replicas.introspect("a", first["access_token"])["active"] is True
    second = ok(refresh(replicas.url("b"), first["refresh_token"]))
    rotated = poll_inactive(replicas, "a", first["access_token"], "the token rotated away on B")
    # B has answered for the refreshed token (Synapse would have): now it keeps that answer.
    answer = replicas.introspect("b", second["access_token"])
    assert answer["active"] is True and answer["sub"], answer
    response = replicas.whoami(second["access_token"])
    assert response.status_code == 200 and response.json()["device_id"] == "REVDEVICE", describe(response)
    logout = requests.post(
        f"{replicas.url('a')}/_matrix/client/v3/logout", headers=bearer(second["access_token"]), timeout=15
    )
    assert logout.status_code == 200, describe(logout)
    logged_out = time.monotonic()
    ended = poll_inactive(replicas, "b", second["access_token"], "the token logged out on A")

    def refused():
        response = replicas.whoami(second["access_token"])
        assert response.status_code == 401 and response.json()["errcode"] == "M_UNKNOWN_TOKEN", describe(response)
        return True

    poll("Synapse to refuse the logged-out token", refused, timeout=harness.REVOKE_TIMEOUT, interval=0.1)
    synapse_after = time.monotonic() - logged_out
    report(
        f"revocation feed (each replica had cached its answer): refresh on B -> A calls the old token inactive"
        f" within {rotated * 1000:.0f} ms; logout on A -> B calls the refreshed token inactive within"
        f" {ended * 1000:.0f} ms (both counting the introspection request itself); Synapse refused it {synapse_after * 1000:.0f} ms"
        f" after the logout"
    )


def poll_inactive(replicas, replica: str, token: str, what: str) -> float:
    """How long until `replica`'s own introspection calls `token` inactive (at most
    FEED_TIMEOUT)."""
    started = time.monotonic()
    while True:
        answer = replicas.introspect(replica, token)
        elapsed = time.monotonic() - started
        if answer == {"active": False}:
            return elapsed
        assert elapsed < FEED_TIMEOUT, f"{what}: replica {replica.upper()} still answers {answer} after {elapsed:.2f}s"
        time.sleep(0.005)


# mas-server's debug line for a job that succeeded (its span names the job).
JOB_DONE = re.compile(r"job\{queue=\S+ id=(?P<id>\w+) attempt=\d+\}.*job done")


def test_each_homeserver_job_runs_once_across_replicas(replicas):
    users = replicas.new_users("job", 6)
    replicas.wait_provisioned(users)
    replicas.wait_queue_empty()
    # One device each, logged in on A and B in turn (devices are made during the login).
    for n, user in enumerate(users):
        ok(login(replicas.url("ab"[n % 2]), user, f"JOBDEV{n}"))
    locked, deactivated = users[0], users[1]
    replicas.mas.cli("manage", "lock-user", locked.localpart)
    replicas.mas.cli("manage", "lock-user", "--deactivate", deactivated.localpart)

    def finished():
        done = {c.body.get("localpart") for c in replicas.recorder.mas_calls("delete_user")}
        locks = [c for c in replicas.recorder.mas_calls("provision_user") if c.body.get("locked") is True]
        return deactivated.localpart in done and locks

    poll("the lock and the deactivation to reach Synapse", finished, timeout=harness.PROVISION_TIMEOUT)
    replicas.wait_queue_empty()
    # A job run twice would come from the other replica at about the same time.
    time.sleep(1.0)

    ours = {u.localpart for u in users}
    counts: dict[tuple, int] = {}
    for call in replicas.recorder.calls:
        localpart = call.body.get("localpart") or call.query.get("localpart")
        if localpart not in ours or not call.path.startswith("/_synapse/mas/"):
            continue
        name = call.path.rsplit("/", 1)[1]
        key = (name, localpart, call.body.get("device_id")) if "device_id" in call.body else (name, localpart)
        if name == "provision_user":
            key = (name, localpart, "locked" if call.body.get("locked") else "unlocked")
        counts[key] = counts.get(key, 0) + 1
        assert call.status < 300, f"{call} failed at Synapse"
    expected: dict[tuple, int] = {}
    for n, user in enumerate(users):
        expected[("is_localpart_available", user.localpart)] = 1  # register-user asks first
        expected[("provision_user", user.localpart, "unlocked")] = 1
        expected[("upsert_device", user.localpart, f"JOBDEV{n}")] = 1
    expected[("provision_user", locked.localpart, "locked")] = 1
    for user in (locked, deactivated):
        expected[("sync_devices", user.localpart)] = 1  # their sessions ended
    expected[("delete_user", deactivated.localpart)] = 1
    assert counts == expected, {k: (counts.get(k), expected.get(k)) for k in counts.keys() | expected.keys() if counts.get(k) != expected.get(k)}

    # The database agrees: every job was claimed once and completed.
    jobs = harness.psql(replicas.db_url, "SELECT id, queue, state, attempts FROM queue_jobs")
    assert jobs and all(state == "completed" and attempts == "1" for _, _, state, attempts in jobs), jobs
    # And each was done by exactly one replica.
    done = {name: {m["id"] for m in JOB_DONE.finditer(replicas.log(name))} for name in ("a", "b")}
    assert not done["a"] & done["b"], done["a"] & done["b"]
    assert done["a"] | done["b"] == {job[0] for job in jobs}, (done, jobs)
    report(
        f"jobs: {len(jobs)} queued, each claimed once (A ran {len(done['a'])}, B ran {len(done['b'])});"
        f" homeserver calls for {len(users)} users: "
        + ", ".join(f"{name} x{n}" for name, n in sorted(_by_name(counts).items()))
    )


def _by_name(counts: dict[tuple, int]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for key, n in counts.items():
        totals[key[0]] = totals.get(key[0], 0) + n
    return totals


# --- a replica killed under load ------------------------------------------------------


@dataclass
class Attempt:
    kind: str  # "login" or "refresh"
    started: float
    ended: float
    outcome: str  # "200", another status, or the exception's class
    chain: int
    retry: bool  # a refresh tried again after one that got no answer


@dataclass
class Chain:
    """One login and the refreshes that followed it."""

    id: int
    user: User
    tokens: list[str] = field(default_factory=list)  # acknowledged access tokens, in order
    refresh_token: str = ""
    before_kill: bool = False  # the last token was answered before the kill
    # A refresh that got no answer and, tried again, was refused: the replica that died
    # had committed it, so the last acknowledged token was rotated away without a reply.
    lost_refresh: bool = False


@dataclass
class Load:
    stop: threading.Event = field(default_factory=threading.Event)
    killed: list[float] = field(default_factory=list)  # the moment replica A was dead
    chains: list[Chain] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    ids: itertools.count = field(default_factory=itertools.count)


def load(replicas, user: User, run: Load) -> None:
    """Logins and refreshes through nginx until `run.stop`. A login without an answer
    is made again; a refresh without an answer is tried again with the same refresh
    token: a 200 means the lost one did nothing, a 401 that the dead replica had used
    the token up (the chain ends there and a new login follows)."""
    chain: Chain | None = None
    retry = False
    while not run.stop.is_set():
        if chain is not None and not retry and len(chain.tokens) > CHAIN_LENGTH:
            chain = None
        kind = "refresh" if chain is not None else "login"
        if chain is None:
            chain = Chain(next(run.ids), user)
        started = time.monotonic()
        try:
            if kind == "login":
                response = login(replicas.proxy_url, user, timeout=10)
            else:
                response = refresh(replicas.proxy_url, chain.refresh_token, timeout=10)
            outcome = str(response.status_code)
        except requests.RequestException as e:
            response, outcome = None, type(e).__name__
        run.attempts.append(Attempt(kind, started, time.monotonic(), outcome, chain.id, retry))
        if outcome == "200":
            body = response.json()
            if kind == "login":
                run.chains.append(chain)
            chain.tokens.append(body["access_token"])
            chain.refresh_token = body["refresh_token"]
            chain.before_kill = not run.killed
            retry = False
        elif response is None or response.status_code in (502, 503, 504):
            if kind == "login":
                chain = None
            else:
                retry = True
        elif retry and response.status_code == 401:
            chain.lost_refresh = True
            chain, retry = None, False
        else:
            run.errors.append(describe(response))
            return


def test_killing_a_replica_under_load_loses_no_acknowledged_token(replicas):
    users = replicas.new_users("load", LOAD_THREADS)
    replicas.wait_provisioned(users)
    run = Load()
    threads = [threading.Thread(target=load, args=(replicas, u, run), daemon=True) for u in users]
    began = time.monotonic()
    for t in threads:
        t.start()
    time.sleep(BEFORE_KILL)
    a = replicas.services["a"]
    t_signal = time.monotonic()
    a.proc.send_signal(signal.SIGKILL)
    a.proc.wait()
    t_dead = time.monotonic()
    run.killed.append(t_dead)
    time.sleep(AFTER_KILL)
    run.stop.set()
    for t in threads:
        t.join(timeout=20)
    assert not any(t.is_alive() for t in threads), "a load thread hung"
    assert not run.errors, run.errors

    attempts = run.attempts
    before = [x for x in attempts if x.ended < t_signal]
    in_flight = [x for x in attempts if x.started <= t_dead and x.ended >= t_signal]
    after = [x for x in attempts if x.started > t_dead]
    unanswered = [x for x in attempts if x.outcome not in ("200", "401")]
    refused = [x for x in attempts if x.outcome == "401"]
    # Before the kill both replicas answered everything; after it, B alone did.
    assert all(x.outcome == "200" for x in before), [x for x in before if x.outcome != "200"]
    assert after, "no request after the kill"
    assert all(x.outcome == "200" or x in refused for x in after), [x for x in after if x.outcome != "200"]
    # Only requests in flight at the kill went unanswered (a 502 from nginx, or a
    # connection error); a 401 only for a refresh tried again after one of those.
    assert all(x in in_flight for x in unanswered), [x for x in unanswered if x not in in_flight]
    assert all(x.retry for x in refused), refused
    served_by_a = len(re.findall(r'path="/_matrix/client/v3/(?:login|refresh)".*started processing', replicas.log("a")))
    assert served_by_a > 0, "replica A served none of the load before the kill"

    # Nothing acknowledged is lost: B's introspection calls the last token of each chain
    # active (unless its refresh token was used up by A without an answer), and every
    # token before it, rotated away by an acknowledged refresh, inactive.
    active, lost = [], []
    for chain in run.chains:
        *rotated, last = chain.tokens
        for token in rotated:
            assert replicas.introspect("b", token) == {"active": False}, "a rotated token is still active"
        answer = replicas.introspect("b", last)
        if chain.lost_refresh:
            assert answer == {"active": False}, answer
            lost.append(chain)
        else:
            assert answer.get("active") is True, f"an acknowledged token of {chain.user.mxid} is not active: {answer}"
            active.append((chain, last))
    assert len(lost) == len(refused), (lost, refused)
    # Synapse accepts a sample: tokens answered before the kill (chains left unused
    # since, some of them answered by A) and after it (by B alone).
    early = [x for x in active if x[0].before_kill]
    late = [x for x in active if not x[0].before_kill]
    assert early and late, (len(early), len(late))
    for chain, token in early[:3] + late[:3]:
        response = replicas.whoami(token)
        assert response.status_code == 200, describe(response)
        assert response.json()["user_id"] == chain.user.mxid, response.json()

    answered = {k: sum(1 for x in attempts if x.kind == k and x.outcome == "200") for k in ("login", "refresh")}
    outcomes: dict[str, int] = {}
    for x in unanswered:
        outcomes[f"{x.kind} {x.outcome}"] = outcomes.get(f"{x.kind} {x.outcome}", 0) + 1
    tokens = sum(len(c.tokens) for c in run.chains)
    report(
        f"kill: {len(attempts)} requests by {LOAD_THREADS} threads in {time.monotonic() - began:.1f}s,"
        f" A served {served_by_a} before the kill; {answered['login']} logins and {answered['refresh']} refreshes"
        f" answered ({len(before)} requests before the kill, {len(after)} after it); {len(in_flight)} in flight at"
        f" the kill, {len(unanswered)} of them unanswered {outcomes}; {len(refused)} retried refresh(es) refused"
        f" because A had used the token up without answering; {tokens} acknowledged tokens checked at B ({len(early)} left unused since before"
        f" the kill), {len(early[:3]) + len(late[:3])} at Synapse"
    )
    print(f"\n[replicas] {conftest.REPLICAS[-1]}")
