"""Processes for the real-Synapse tests: Synapse (two generations), mas-server and
nginx, each on a free port in a temporary directory, plus small HTTP helpers.

Everything here is plain functions and one `Service` class; conftest.py wires them
into pytest fixtures and the tests import the helpers they need.

Gotchas found by running both Synapse versions (the contract is in docs/setup/homeserver.md):
- `serve_client_wellknown` is not a Synapse option at all (unknown keys are ignored):
  Synapse serves `/.well-known/matrix/client` only when `public_baseurl` is set, so
  we set `public_baseurl` to the nginx address and get the well-known from that.
- A normal start generates a missing signing key by itself (the same code path as
  `--generate-keys`), so the separate `--generate-keys` run is skipped: it costs a
  whole Synapse import (~4 s here) for nothing.
- Both generations start while MAS is down: modern fetches MAS's discovery document
  lazily (auth_metadata is a 500 until MAS answers), legacy retries it in the
  background. So the start order does not matter.
- Password login and registration default to off in both once delegation is on;
  turning either on makes Synapse refuse to start.
- `macaroon_secret_key`, `form_secret` and `registration_shared_secret` are not
  needed.
- Startup to `/health` takes ~3-5 s on a 2-core machine, most of it Python importing
  Synapse (~2.4 s); a fresh SQLite schema adds ~1 s. MAS's config is generated while
  Synapse boots.
- 1.156 (legacy) also mounts `/_synapse/mas/*`, authenticated with the admin_token;
  MAS uses the admin API there all the same.
- On MAS's side, lists from several config files concatenate, so the generated
  file's `http.listeners` are removed before our override adds its own.
- nginx runs the `server {}` block of docs/setup/reverse-proxy.md as written there
  (only the example addresses are replaced). As that page describes, MAS's
  `public_base` (and issuer) is the proxy, which serves MAS's own paths too; modern
  Synapse calls MAS directly, legacy Synapse through its issuer, i.e. the proxy.
- Synapse caches introspection answers for 2 minutes, not refreshed by later hits:
  a token ended without Synapse being told (a lock; on legacy also a logout or a
  revocation) was refused 120-121 s after Synapse first saw it, on both
  generations. See conftest.py for how the tests wait for that only once.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
import http.client
import threading
from dataclasses import dataclass, field
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests
import yaml

SYNAPSE_CLIENT_ID = "0000000000000000000SYNAPSE"
SERVER_NAME = "localhost"

MAS_CLI = os.environ.get("MAS_CLI", "")
MAS_SERVER = os.environ.get("MAS_SERVER", "")
NGINX = os.environ.get("NGINX") or shutil.which("nginx") or "/usr/sbin/nginx"
SYNAPSE_PYTHON = {
    "modern": os.environ.get("SYNAPSE_MODERN_PYTHON", "/var/tmp/mas-synapse/modern/bin/python"),
    "legacy": os.environ.get("SYNAPSE_LEGACY_PYTHON", "/var/tmp/mas-synapse/legacy/bin/python"),
}
# Generous enough for a slow CI machine, short enough to fail a broken run fast.
START_TIMEOUT = float(os.environ.get("MAS_SYNAPSE_START_TIMEOUT", "30"))

# Keep requests off any configured proxy for loopback addresses.
os.environ.setdefault("no_proxy", "127.0.0.1,localhost")
os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Fatal(AssertionError):
    """Raised inside a `poll` check for an answer that waiting cannot change."""


def poll(what: str, check: Callable[[], object], timeout: float = 15.0, interval: float = 0.1):
    """Call `check` until it returns something truthy (returned) or `timeout` passes.

    Exceptions from `check` count as "not yet" (the last one is reported on timeout),
    except `Fatal`, which ends the wait at once.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            result = check()
            if result:
                return result
            last = result
        except Fatal:
            raise
        except Exception as e:  # noqa: BLE001 - any other failure means "try again"
            last = e
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
        time.sleep(interval)


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as e:
        return f"<no log: {e}>"


@dataclass
class Service:
    """A child process whose stdout and stderr go to `log`."""

    name: str
    argv: list[str]
    log: Path
    cwd: Path
    env: dict[str, str] | None = None
    proc: subprocess.Popen | None = field(default=None, init=False)

    def start(self) -> "Service":
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                # Same process group as pytest, so run.sh's `timeout` (or a Ctrl-C)
                # also reaches the services.
            )
        return self

    def wait_healthy(self, url: str, timeout: float = START_TIMEOUT) -> None:
        def healthy() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"exited with status {self.proc.returncode}")
            return requests.get(url, timeout=2).status_code == 200

        deadline = time.monotonic() + timeout
        while True:
            try:
                if healthy():
                    return
            except RuntimeError as e:
                raise RuntimeError(f"{self.name} {e}; log tail ({self.log}):\n{tail(self.log)}") from None
            except requests.RequestException:
                pass
            if time.monotonic() >= deadline:
                raise RuntimeError(
                    f"{self.name}: no 200 from {url} within {timeout}s; log tail ({self.log}):\n{tail(self.log)}"
                )
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def write_yaml(path: Path, doc: dict) -> Path:
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


# --- Synapse ---------------------------------------------------------------------

_FAST = {"per_second": 1000, "burst_count": 1000}


def synapse_config(
    kind: str, dir: Path, port: int, mas_port: int, public_port: int, secret: str, client_secret: str
) -> dict:
    # Modern Synapse calls MAS directly; legacy Synapse finds MAS from its issuer, which
    # is MAS's public address (the proxy), as the reverse-proxy documentation says.
    mas = f"http://127.0.0.1:{mas_port}/"
    public = f"http://127.0.0.1:{public_port}/"
    doc: dict = {
        "server_name": SERVER_NAME,
        # What clients are told to use (the nginx in front); also turns on
        # /.well-known/matrix/client.
        "public_baseurl": public,
        "pid_file": str(dir / "homeserver.pid"),
        "listeners": [
            {
                "port": port,
                "bind_addresses": ["127.0.0.1"],
                "type": "http",
                "tls": False,
                "x_forwarded": True,
                # `keys` serves /_matrix/key/v2/server, where `mas-cli doctor` reads
                # Synapse's server_name.
                "resources": [{"names": ["client", "keys"], "compress": False}],
            }
        ],
        "database": {"name": "sqlite3", "args": {"database": str(dir / "homeserver.db")}},
        "media_store_path": str(dir / "media"),
        "signing_key_path": str(dir / "signing.key"),
        "report_stats": False,
        "trusted_key_servers": [],
        "enable_registration": False,
        "suppress_key_server_warning": True,
        # Raised so that a test run never meets a 429.
        "rc_message": _FAST,
        "rc_registration": _FAST,
        "rc_login": {"address": _FAST, "account": _FAST, "failed_attempts": _FAST},
        "rc_joins": {"local": _FAST, "remote": _FAST},
        "rc_joins_per_room": _FAST,
        "rc_invites": {"per_room": _FAST, "per_user": _FAST, "per_issuer": _FAST},
        "rc_room_creation": _FAST,
        "rc_presence": {"per_user": _FAST},
        "rc_delayed_event_mgmt": _FAST,
        "rc_admin_redaction": _FAST,
    }
    if kind == "modern":
        doc["matrix_authentication_service"] = {"enabled": True, "endpoint": mas, "secret": secret}
    elif kind == "legacy":
        doc["experimental_features"] = {
            "msc3861": {
                "enabled": True,
                "issuer": public,
                "client_id": SYNAPSE_CLIENT_ID,
                "client_auth_method": "client_secret_basic",
                "client_secret": client_secret,
                "admin_token": secret,
                "account_management_url": f"{public}account",
            }
        }
    else:
        raise ValueError(kind)
    return doc


def launch_synapse(
    kind: str, dir: Path, port: int, mas_port: int, public_port: int, secret: str, client_secret: str
) -> Service:
    """Start Synapse without waiting for it (call `wait_healthy` on the result)."""
    dir.mkdir(parents=True, exist_ok=True)
    config = write_yaml(
        dir / "homeserver.yaml",
        synapse_config(kind, dir, port, mas_port, public_port, secret, client_secret),
    )
    argv = [SYNAPSE_PYTHON[kind], "-m", "synapse.app.homeserver", "-c", str(config)]
    return Service(f"synapse ({kind})", argv, dir / "synapse.log", dir).start()


# --- PostgreSQL --------------------------------------------------------------------

# The server the PostgreSQL tests create their databases on (and drop them after).
ADMIN_URL = os.environ.get("MAS_TEST_DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/postgres"


def database_url(name: str) -> str:
    return urlsplit(ADMIN_URL)._replace(path=f"/{name}").geturl()


def psql(url: str, sql: str) -> list[list[str]]:
    """Rows of `sql` (unaligned, `|`-separated), through the psql client."""
    result = subprocess.run(
        ["psql", url, "-X", "-At", "-v", "ON_ERROR_STOP=1", "-c", sql],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if result.returncode != 0:
        raise AssertionError(f"psql {sql!r}: {result.stderr.strip()}")
    return [line.split("|") for line in result.stdout.splitlines()]


def create_database(prefix: str) -> str:
    """A fresh database for the run; the test is skipped when PostgreSQL cannot be
    reached, except under CI=true where that is a failure (as in the Rust tests)."""
    try:
        psql(ADMIN_URL, "SELECT 1")
    except (AssertionError, OSError) as e:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is required under CI=true but {ADMIN_URL} is unreachable: {e}")
        pytest.skip(f"PostgreSQL at {ADMIN_URL} is unreachable ({e}); set MAS_TEST_DATABASE_URL")
    name = f"{prefix}_{secrets.token_hex(6)}"
    # C collation: what Synapse wants of its PostgreSQL database (and harmless to ours).
    psql(ADMIN_URL, f"CREATE DATABASE {name} ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0")
    return name


# --- MAS ---------------------------------------------------------------------------


@dataclass
class Mas:
    dir: Path
    config_files: list[Path]
    port: int
    # http.public_base (also the issuer): the proxy, which serves MAS's own paths.
    public_base: str

    @property
    def base(self) -> str:
        """MAS reached directly (as modern Synapse does), not through the proxy."""
        return f"http://127.0.0.1:{self.port}/"

    def config_args(self) -> list[str]:
        return [arg for f in self.config_files for arg in ("-c", str(f))]

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [MAS_CLI, *self.config_args(), *args],
            cwd=self.dir,
            env=mas_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"mas-cli {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
            )
        return result

    def register_user(self, username: str, password: str) -> None:
        self.cli("manage", "register-user", username, "-p", password, "-y")


def mas_env() -> dict[str, str]:
    # MAS_CONFIG and MAS_<SECTION>__<KEY> from the caller's environment would change
    # what the files say; the files alone decide here.
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAS_") or k in ("MAS_CLI", "MAS_SERVER")}
    env.setdefault("RUST_LOG", "info")
    return env


_MAS_FAST = {"burst": 1000, "per_second": 1000}


def listener_file(path: Path, port: int) -> Path:
    """The one listener of a mas-server process, in a file of its own: replicas share
    every other configuration file and differ only in this one."""
    return write_yaml(
        path,
        {
            "http": {
                "listeners": [
                    {
                        "name": "web",
                        "resources": [
                            {"name": n}
                            for n in ("discovery", "human", "oauth", "compat", "assets", "adminapi", "health", "prometheus")
                        ],
                        "binds": [{"address": f"127.0.0.1:{port}"}],
                    }
                ]
            }
        },
    )


def prepare_mas(
    kind: str,
    dir: Path,
    port: int,
    public_base: str,
    synapse_port: int,
    secret: str,
    client_secret: str,
    database_uri: str | None = None,
) -> Mas:
    dir.mkdir(parents=True, exist_ok=True)
    generated = dir / "config.yaml"
    subprocess.run([MAS_CLI, "config", "generate", "-o", str(generated)], cwd=dir, env=mas_env(), check=True)
    override: dict = {
        "http": {"public_base": public_base},
        "database": {"uri": database_uri or f"sqlite://{dir / 'mas.db'}"},
        "matrix": {
            "kind": f"synapse_{kind}",
            "homeserver": SERVER_NAME,
            "secret": secret,
            "endpoint": f"http://127.0.0.1:{synapse_port}/",
        },
        "passwords": {"enabled": True},
        "account": {"password_registration_enabled": False},
        # Every stack runs with metrics on; test_metrics.py reads them.
        "telemetry": {"metrics": {"exporter": "prometheus"}},
        # The defaults allow 3 logins per minute per IP; every test logs in from
        # 127.0.0.1.
        "rate_limiting": {
            "login": {"per_ip": _MAS_FAST, "per_account": _MAS_FAST},
            "registration": _MAS_FAST,
        },
    }
    if kind == "legacy":
        override["clients"] = [
            {
                "client_id": SYNAPSE_CLIENT_ID,
                "client_auth_method": "client_secret_basic",
                "client_secret": client_secret,
            }
        ]
    # `http.listeners` in a later file would be concatenated with the generated
    # file's, not replace them: drop the generated listeners instead.
    doc = yaml.safe_load(generated.read_text())
    doc.get("http", {}).pop("listeners", None)
    write_yaml(generated, doc)
    override_path = write_yaml(dir / "override.yaml", override)
    listener = listener_file(dir / "listener.yaml", port)
    return Mas(dir, [generated, override_path, listener], port, public_base)


def mas_replica(mas: Mas, name: str, port: int) -> Mas:
    """Another mas-server on the same configuration files (secrets, keys, database) but
    its own listener, port and working directory (where its log goes)."""
    dir = mas.dir / name
    dir.mkdir(parents=True, exist_ok=True)
    listener = listener_file(mas.dir / f"listener-{name}.yaml", port)
    return Mas(dir, [*mas.config_files[:-1], listener], port, mas.public_base)


# The server logs at debug level in these tests, so that test_zz_log_audit.py can check
# that not even debug lines carry a password, a token or a secret. The HTTP and TLS
# libraries' own debug lines are connection chatter, left at info.
MAS_SERVER_LOG = "debug,hyper=info,hyper_util=info,h2=info,rustls=info,reqwest=info"


def launch_mas(mas: Mas, name: str = "mas-server") -> Service:
    """Start mas-server without waiting for it (call `wait_healthy` on the result)."""
    env = {**mas_env(), "RUST_LOG": MAS_SERVER_LOG}
    return Service(name, [MAS_SERVER, *mas.config_args()], mas.dir / "mas.log", mas.dir, env=env).start()


def start_mas(mas: Mas) -> Service:
    service = launch_mas(mas)
    try:
        service.wait_healthy(f"{mas.base}health")
    except BaseException:
        service.stop()
        raise
    return service


# --- nginx -------------------------------------------------------------------------

# The proxy configuration is the example in the admin documentation, run as written
# there: only the example addresses are replaced by our ports.
REVERSE_PROXY_DOC = Path(__file__).resolve().parents[2] / "docs" / "setup" / "reverse-proxy.md"
DOC_START, DOC_END = "<!-- nginx-example:start -->", "<!-- nginx-example:end -->"
# The documented example addresses: the service, Synapse, the proxy's listen line.
DOC_MAS, DOC_SYNAPSE, DOC_LISTEN = "127.0.0.1:8080", "127.0.0.1:8008", "listen 8000;"

# What nginx needs around a `server {}` block to run unprivileged in one directory.
NGINX_SCAFFOLD = """\
daemon off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log stderr notice;
events {{ worker_connections 256; }}
http {{
    access_log /dev/stderr;
    client_body_temp_path {dir}/tmp/body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;
{server}
}}
"""


def documented_block(doc: Path, start: str, end: str, language: str) -> str:
    """The one fenced block of `language` between the markers `start` and `end` in `doc`."""
    try:
        text = doc.read_text()
    except OSError as e:
        raise AssertionError(f"cannot read the documentation {doc}: {e}") from None
    if text.count(start) != 1 or text.count(end) != 1:
        raise AssertionError(f"{doc}: expected exactly one {start} ... {end} section")
    section = text.split(start, 1)[1].split(end, 1)[0]
    match = re.fullmatch(rf"\s*```{language}\n(.*?)```\s*", section, re.DOTALL)
    if not match:
        raise AssertionError(f"{doc}: the section between {start} and {end} must be one ```{language} block")
    return match.group(1)


def documented_nginx_server(doc: Path = REVERSE_PROXY_DOC) -> str:
    """The fenced nginx block between the markers in the reverse-proxy page."""
    return documented_block(doc, DOC_START, DOC_END, "nginx")


def substitute(text: str, replacements: list[tuple[str, str]], what: str, doc: Path = REVERSE_PROXY_DOC) -> str:
    """Replace each documented example value by ours; every one must be there."""
    for example, real in replacements:
        if example not in text:
            raise AssertionError(f"{doc}: {what} no longer contains `{example}`")
        text = text.replace(example, real)
    return text


def _scaffold(dir: Path, blocks: str) -> str:
    indented = "\n".join(f"    {line}" if line else "" for line in blocks.splitlines())
    return NGINX_SCAFFOLD.format(dir=dir, server=indented)


def nginx_config(dir: Path, port: int, mas_port: int, synapse_port: int) -> str:
    server = substitute(
        documented_nginx_server(),
        [
            (DOC_MAS, f"127.0.0.1:{mas_port}"),
            (DOC_SYNAPSE, f"127.0.0.1:{synapse_port}"),
            (DOC_LISTEN, f"listen 127.0.0.1:{port};"),
        ],
        "the nginx example",
    )
    return _scaffold(dir, server)


# The replicas example: an `upstream` block for the documented replicas, used by the
# server block above with `http://mas` where that block says `http://127.0.0.1:8080`
# (the page says so in words).
REPLICAS_START, REPLICAS_END = "<!-- nginx-replicas-example:start -->", "<!-- nginx-replicas-example:end -->"
DOC_REPLICAS = ("127.0.0.1:8080", "127.0.0.1:8081")
DOC_UPSTREAM = "http://mas"


def replicas_nginx_config(dir: Path, port: int, replica_ports: list[int], synapse_port: int) -> str:
    upstream = documented_block(REVERSE_PROXY_DOC, REPLICAS_START, REPLICAS_END, "nginx")
    if len(replica_ports) != len(DOC_REPLICAS):
        raise ValueError(f"the documented example has {len(DOC_REPLICAS)} replicas")
    upstream = substitute(
        upstream,
        [(f"server {doc};", f"server 127.0.0.1:{real};") for doc, real in zip(DOC_REPLICAS, replica_ports)],
        "the replicas example",
    )
    server = substitute(
        documented_nginx_server(),
        [
            (f"http://{DOC_MAS}", DOC_UPSTREAM),
            (DOC_SYNAPSE, f"127.0.0.1:{synapse_port}"),
            (DOC_LISTEN, f"listen 127.0.0.1:{port};"),
        ],
        "the nginx example",
    )
    return _scaffold(dir, f"{upstream}\n{server}")


def start_nginx(dir: Path, port: int, mas_port: int, synapse_port: int) -> Service:
    return run_nginx(dir, port, nginx_config(dir, port, mas_port, synapse_port))


def run_nginx(dir: Path, port: int, config: str) -> Service:
    """nginx on `config`, once it serves MAS's discovery document on `port`."""
    (dir / "tmp").mkdir(parents=True, exist_ok=True)
    conf = dir / "nginx.conf"
    conf.write_text(config)
    service = Service("nginx", [NGINX, "-e", "stderr", "-c", str(conf), "-p", str(dir)], dir / "nginx.log", dir).start()
    try:
        # Served by mas-server (already up) through the documented routes.
        service.wait_healthy(f"http://127.0.0.1:{port}/.well-known/openid-configuration", timeout=10)
    except BaseException:
        service.stop()
        raise
    return service


# --- HTTP helpers for the tests ---------------------------------------------------


def basic_auth(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def not_served(response: requests.Response) -> bool:
    """A 404/405: the endpoint does not exist, so retrying is pointless."""
    return response.status_code in (404, 405)


def describe(response: requests.Response) -> str:
    body = response.text
    try:
        body = json.dumps(response.json())
    except ValueError:
        pass
    return f"{response.request.method} {response.url} -> {response.status_code}: {body[:500]}"


# --- Matrix-side checks shared by the test files -----------------------------------

# Provisioning on Synapse is asynchronous (a job in mas-server), so a brand-new user
# may need a moment before the first login works end to end.
PROVISION_TIMEOUT = 15.0
# How long modern Synapse may take to refuse a token after a logout or revocation
# (MAS deletes the device on Synapse, which drops its introspection cache at once).
REVOKE_TIMEOUT = 10.0


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
    assert body["user_id"] == user.mxid, body
    assert body["device_id"] == device_id, body


def assert_refused_promptly(stack, token: str, what: str) -> None:
    """Modern Synapse stops accepting a token whose device MAS deleted."""

    def refused():
        response = whoami(stack, token)
        assert response.status_code == 401, describe(response)
        assert response.json()["errcode"] == "M_UNKNOWN_TOKEN", describe(response)
        return True

    poll(f"Synapse to refuse {what}", refused, timeout=REVOKE_TIMEOUT, interval=0.2)


def introspect_as_synapse(stack, token: str) -> dict:
    """Ask MAS about a token with the credentials this Synapse generation uses:
    matrix.secret as a bearer token (modern), the static client (legacy)."""
    if stack.kind == "legacy":
        auth = basic_auth(SYNAPSE_CLIENT_ID, stack.client_secret)
    else:
        auth = f"Bearer {stack.secret}"
    response = requests.post(
        f"{stack.mas_url}/oauth2/introspect",
        data={"token": token, "token_type_hint": "access_token"},
        headers={"Authorization": auth, "Accept": "application/json"},
        timeout=15,
    )
    assert response.status_code == 200, describe(response)
    return response.json()


# A `mas-cli` command is another process: the running server hears its revocations
# through the database (a log it reads every 50 ms on SQLite, NOTIFY on PostgreSQL) and
# drops the introspection answers it kept. A second is a generous bound for that.
CLI_REVOCATION_TIMEOUT = 1.0


def assert_service_refuses(stack, token: str, what: str):
    """MAS's own introspection calls `token` inactive within CLI_REVOCATION_TIMEOUT."""
    started = time.monotonic()
    while True:
        answer = introspect_as_synapse(stack, token)
        if answer == {"active": False}:
            return time.monotonic() - started
        assert time.monotonic() - started < CLI_REVOCATION_TIMEOUT, f"{what}: still {answer}"
        time.sleep(0.01)


# --- a browser for MAS's pages -------------------------------------------------------


class Forms(HTMLParser):
    """The forms of a page: action, method, inputs (name -> value) and named buttons."""

    def __init__(self, html: str):
        super().__init__()
        self.forms: list[dict] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append(
                {"action": attrs.get("action", ""), "method": attrs.get("method", "get").lower(),
                 "inputs": {}, "buttons": []}
            )
        elif self.forms and tag == "input" and attrs.get("name"):
            self.forms[-1]["inputs"][attrs["name"]] = attrs.get("value", "")
        elif self.forms and tag == "button" and attrs.get("name"):
            self.forms[-1]["buttons"].append((attrs["name"], attrs.get("value", "")))


# The button a person presses on each of MAS's confirmation pages.
CONFIRM_BUTTONS = {("action", "allow"): "consent", ("action", "continue"): "compat-sso"}


def browse(url: str, user, target: str) -> tuple[str, list[str]]:
    """Open `url` with a cookie-keeping session, follow redirects, sign in as `user` on
    the login page and confirm on the consent or SSO page, until a redirect to
    `target` (not followed). Returns that redirect's URL and the pages filled in."""
    browser = requests.Session()
    response = browser.get(url, allow_redirects=False, timeout=15)
    pages: list[str] = []
    for _ in range(10):
        if response.is_redirect:
            location = urljoin(response.url, response.headers["Location"])
            if location.startswith(target):
                return location, pages
            response = browser.get(location, allow_redirects=False, timeout=15)
            continue
        assert response.status_code == 200, describe(response)
        forms = Forms(response.text).forms
        assert len(forms) == 1 and forms[0]["method"] == "post", f"expected one form: {describe(response)}"
        form = forms[0]
        data = dict(form["inputs"])
        assert data.get("csrf"), form
        if "password" in data:
            pages.append("login")
            data.update(username=user.localpart, password=user.password)
        else:
            buttons = [b for b in form["buttons"] if b in CONFIRM_BUTTONS]
            assert buttons, f"an unexpected page: {describe(response)}"
            pages.append(CONFIRM_BUTTONS[buttons[0]])
            data.update([buttons[0]])
        response = browser.post(urljoin(response.url, form["action"]), data=data, allow_redirects=False, timeout=15)
    raise AssertionError(f"no redirect to {target} after {pages}: {describe(response)}")


# --- a recording proxy between mas-server and Synapse --------------------------------


@dataclass
class Call:
    method: str
    path: str  # without the query
    query: dict[str, str]
    body: dict
    status: int
    headers: dict[str, str]  # as sent, names in lower case


class Recorder(ThreadingHTTPServer):
    """Forwards every request to Synapse and records it: what mas-server asked of the
    homeserver (test_replicas.py counts the calls, test_tracing.py reads their headers)."""

    daemon_threads = True

    def __init__(self, target_port: int):
        super().__init__(("127.0.0.1", 0), _Forward)
        self.target_port = target_port
        self.calls: list[Call] = []
        self.lock = threading.Lock()
        threading.Thread(target=self.serve_forever, name="recorder", daemon=True).start()

    @property
    def port(self) -> int:
        return self.server_address[1]

    def mas_calls(self, name: str) -> list[Call]:
        with self.lock:
            return [c for c in self.calls if c.path == f"/_synapse/mas/{name}"]


class _Forward(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    HOP = {"connection", "keep-alive", "transfer-encoding", "host", "content-length"}

    def _forward(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k: v for k, v in self.headers.items() if k.lower() not in self.HOP}
        upstream = http.client.HTTPConnection("127.0.0.1", self.server.target_port, timeout=30)
        try:
            upstream.request(self.command, self.path, body=body or None, headers=headers)
            response = upstream.getresponse()
            data = response.read()
        finally:
            upstream.close()
        split = urlsplit(self.path)
        try:
            parsed = json.loads(body) if body else {}
        except ValueError:
            parsed = {}
        call = Call(
            self.command,
            split.path,
            {k: v[0] for k, v in parse_qs(split.query).items()},
            parsed,
            response.status,
            {k.lower(): v for k, v in self.headers.items()},
        )
        with self.server.lock:
            self.server.calls.append(call)
        self.send_response(response.status, response.reason)
        for k, v in response.getheaders():
            if k.lower() not in self.HOP:
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = _forward

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass
