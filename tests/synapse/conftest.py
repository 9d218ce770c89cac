"""Fixtures: one stack (Synapse + mas-server + nginx) per Synapse generation.

`stack` is session-scoped and parametrised over "modern" and "legacy"; pytest runs
all tests of one generation before those of the other. A stack is started when its
generation's first test needs it and stays up to the end of the session (`stacks`).
Each test gets fresh users from `stack.new_user()`.

Synapse caches every introspection answer for 2 minutes, so a token that ends
without Synapse being told (a lock; on legacy, also a logout or a revocation) keeps
working there for up to that long. Tests that end such a token do not wait: they
note it with `stack.expect_refused(...)`, and the last test of the session
(test_synapse_catches_up.py) waits for those of both generations at once, so the
2-minute wait is paid once per run.
"""

from __future__ import annotations

import itertools
import os
import secrets
import string
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import harness
from harness import Mas, Service

KINDS = ("modern", "legacy")
PASSWORD = "correct horse battery staple 7"


@dataclass
class User:
    localpart: str
    password: str

    @property
    def mxid(self) -> str:
        return f"@{self.localpart}:{harness.SERVER_NAME}"


@dataclass
class Ended:
    """A token that Synapse must refuse once its cached introspection runs out."""

    what: str
    token: str
    ended_at: float  # time.monotonic() of the lock, logout or revocation
    cached_at: float  # time.monotonic() just before Synapse last accepted it


# Measured propagation times, printed in the terminal summary.
TIMINGS: list[str] = []
# What test_replicas.py measured, printed in the terminal summary.
REPLICAS: list[str] = []
# Logs of mas-server processes outside the stacks (the replicas, the admin API's), for
# test_zz_log_audit.py: (log, the generated configuration file, other secrets by name,
# a path the log must show requests to).
AUDITED_LOGS: list[tuple[Path, Path, dict[str, str], str]] = []


@dataclass
class Stack:
    kind: str
    dir: Path
    mas: Mas
    secret: str  # matrix.secret = Synapse's MAS secret (modern) / admin_token (legacy)
    client_secret: str  # the SYNAPSE static client's secret (legacy)
    synapse_port: int
    proxy_port: int
    services: list[Service] = field(default_factory=list)
    ended: list[Ended] = field(default_factory=list)
    _names: itertools.count = field(default_factory=lambda: itertools.count(1))

    @property
    def synapse_url(self) -> str:
        return f"http://127.0.0.1:{self.synapse_port}"

    @property
    def mas_url(self) -> str:
        return self.mas.base.rstrip("/")

    @property
    def proxy_url(self) -> str:
        return f"http://127.0.0.1:{self.proxy_port}"

    @property
    def issuer(self) -> str:
        """MAS's public base and issuer: the proxy."""
        return self.mas.public_base

    def expect_refused(self, what: str, token: str, ended_at: float, cached_at: float) -> None:
        """Leave the check that Synapse ends up refusing `token` to the last test."""
        self.ended.append(Ended(what, token, ended_at, cached_at))

    def report(self, line: str) -> None:
        """A line for the terminal summary."""
        TIMINGS.append(f"[{self.kind}] {line}")

    def new_user(self, prefix: str = "user") -> User:
        """Register a fresh user in MAS (only; provisioning on Synapse is MAS's job)."""
        user = User(f"{prefix}{next(self._names)}", PASSWORD)
        self.mas.register_user(user.localpart, user.password)
        return user

    def log_tails(self) -> dict[str, str]:
        return {s.name: harness.tail(s.log, 30) for s in self.services}


def random_secret(n: int = 32) -> str:
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(n))


def require_binaries() -> None:
    for var in ("MAS_CLI", "MAS_SERVER"):
        path = os.environ.get(var)
        if not path or not os.access(path, os.X_OK):
            pytest.exit(f"{var} must name the built binary (got {path!r})", returncode=2)


def start_stack(kind: str, tmp_path_factory) -> Stack:
    require_binaries()
    dir = tmp_path_factory.mktemp(kind)
    synapse_port, mas_port, proxy_port = (harness.free_port() for _ in range(3))
    secret, client_secret = random_secret(), random_secret()
    t0 = time.monotonic()
    services: list[Service] = []
    try:
        # Synapse takes seconds to import; generate MAS's config meanwhile.
        synapse = harness.launch_synapse(
            kind, dir / "synapse", synapse_port, mas_port, proxy_port, secret, client_secret
        )
        services.append(synapse)
        mas = harness.prepare_mas(
            kind, dir / "mas", mas_port, f"http://127.0.0.1:{proxy_port}/", synapse_port, secret, client_secret
        )
        synapse.wait_healthy(f"http://127.0.0.1:{synapse_port}/health")
        t_synapse = time.monotonic() - t0
        services.append(harness.start_mas(mas))
        services.append(harness.start_nginx(dir / "nginx", proxy_port, mas_port, synapse_port))
    except BaseException:
        for s in reversed(services):
            s.stop()
        raise
    print(
        f"\n[{kind}] synapse healthy after {t_synapse:.1f}s, all up after {time.monotonic() - t0:.1f}s;"
        f" proxy {proxy_port}, mas {mas_port}, synapse {synapse_port}; files in {dir}"
    )
    return Stack(kind, dir, mas, secret, client_secret, synapse_port, proxy_port, services)


@pytest.fixture(scope="session")
def stacks():
    """The stacks started so far, by kind; all are stopped at the end of the session."""
    started: dict[str, Stack] = {}
    yield started
    for stack in started.values():
        for s in reversed(stack.services):
            s.stop()
        if stack.ended:
            stack.report(f"not checked (the last test did not run): {[e.what for e in stack.ended]}")


@pytest.fixture(scope="session", params=KINDS)
def stack(request, stacks, tmp_path_factory):
    kind = request.param
    if kind not in stacks:
        stacks[kind] = start_stack(kind, tmp_path_factory)
    return stacks[kind]


# The files whose tests must run after all others, in this order.
LAST = ("test_synapse_catches_up.py", "test_zz_log_audit.py")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items):
    """Runs after pytest grouped the tests by stack, which puts tests without a stack
    (test_replicas.py) after everything else: move the waiting test and the log audit
    back to the end, so that the wait also covers the replicas' run and the audit reads
    their logs."""
    last = [item for name in LAST for item in items if item.path.name == name]
    items[:] = [item for item in items if item.path.name not in LAST] + last


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On a failure, attach the tails of the services' logs to the report."""
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    # A stack, or the replicas of test_replicas.py.
    for value in getattr(item, "funcargs", {}).values():
        if callable(getattr(value, "log_tails", None)):
            for name, text in value.log_tails().items():
                report.sections.append((f"log tail: {name}", text))


def pytest_terminal_summary(terminalreporter):
    if REPLICAS:
        terminalreporter.section("two replicas on one PostgreSQL")
        for line in REPLICAS:
            terminalreporter.write_line(line)
    if TIMINGS:
        terminalreporter.section("how long Synapse kept accepting ended tokens")
        for line in TIMINGS:
            terminalreporter.write_line(line)
