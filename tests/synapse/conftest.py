"""Fixtures: one stack (Synapse + mas-server + nginx) per Synapse generation.

`stack` is session-scoped and parametrised over "modern" and "legacy"; pytest runs
all tests of one generation before starting the other, and tears the first stack
down before the second comes up. Each test gets fresh users from `stack.new_user()`.
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
class Stack:
    kind: str
    dir: Path
    mas: Mas
    secret: str  # matrix.secret = Synapse's MAS secret (modern) / admin_token (legacy)
    client_secret: str  # the SYNAPSE static client's secret (legacy)
    synapse_port: int
    proxy_port: int
    services: list[Service] = field(default_factory=list)
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

    def new_user(self, prefix: str = "user") -> User:
        """Register a fresh user in MAS (only; provisioning on Synapse is MAS's job)."""
        user = User(f"{prefix}{next(self._names)}", PASSWORD)
        self.mas.register_user(user.localpart, user.password)
        return user

    def log_tails(self) -> dict[str, str]:
        return {s.name: harness.tail(s.log, 30) for s in self.services}


def _secret(n: int = 32) -> str:
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(n))


def _require_binaries() -> None:
    for var in ("MAS_CLI", "MAS_SERVER"):
        path = os.environ.get(var)
        if not path or not os.access(path, os.X_OK):
            pytest.exit(f"{var} must name the built binary (got {path!r})", returncode=2)


@pytest.fixture(scope="session", params=KINDS)
def stack(request, tmp_path_factory):
    _require_binaries()
    kind = request.param
    dir = tmp_path_factory.mktemp(kind)
    synapse_port, mas_port, proxy_port = (harness.free_port() for _ in range(3))
    secret, client_secret = _secret(), _secret()
    t0 = time.monotonic()
    services: list[Service] = []
    try:
        # Synapse takes seconds to import; generate MAS's config meanwhile.
        synapse = harness.launch_synapse(
            kind, dir / "synapse", synapse_port, mas_port, proxy_port, secret, client_secret
        )
        services.append(synapse)
        mas = harness.prepare_mas(kind, dir / "mas", mas_port, synapse_port, secret, client_secret)
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
    stack = Stack(kind, dir, mas, secret, client_secret, synapse_port, proxy_port, services)
    yield stack
    for s in reversed(services):
        s.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On a failure, attach the tails of the services' logs to the report."""
    outcome = yield
    report = outcome.get_result()
    stack = item.funcargs.get("stack") if hasattr(item, "funcargs") else None
    if report.failed and isinstance(stack, Stack):
        for name, text in stack.log_tails().items():
            report.sections.append((f"log tail: {name}", text))
