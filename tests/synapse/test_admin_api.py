"""The admin API under schemathesis (PyPI), driven by its own OpenAPI document at
/api/spec.json: on SQLite and on PostgreSQL, a mas-server provisioning into the
modern stack's Synapse gets every check schemathesis has (no 5xx, every answer
matches the document in status, content type, headers and schema, schema-valid input
accepted, invalid input refused, no operation answering without a token), through
its examples, coverage, fuzzing and stateful phases (following the document's links:
a user created, then locked, deactivated...)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import requests

import conftest
import harness

CACHE = Path(os.environ.get("MAS_SYNAPSE_CACHE", "/var/tmp/mas-synapse"))
SCHEMATHESIS = os.environ.get("SCHEMATHESIS") or str(CACHE / "schemathesis" / "bin" / "st")
ADMIN_CLIENT_ID = "01J44QC8BCY7FCFM7WGHQGKMTJ"
HERE = Path(__file__).resolve().parent


def modern_stack(stacks, tmp_path_factory) -> conftest.Stack:
    if "modern" not in stacks:
        stacks["modern"] = conftest.start_stack("modern", tmp_path_factory)
    return stacks["modern"]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_schemathesis_finds_nothing_wrong_with_the_admin_api(backend, stacks, tmp_path_factory, tmp_path):
    if not os.access(SCHEMATHESIS, os.X_OK):
        if os.environ.get("CI") == "true":
            pytest.fail(f"schemathesis is required under CI=true (no {SCHEMATHESIS}; run.sh installs it)")
        pytest.skip(f"no schemathesis at {SCHEMATHESIS}")
    stack = modern_stack(stacks, tmp_path_factory)
    database = harness.create_database("mas_admin_api") if backend == "postgres" else None
    port = harness.free_port()
    client_secret = conftest.random_secret()
    mas = harness.prepare_mas(
        "modern",
        tmp_path / "mas",
        port,
        f"http://127.0.0.1:{port}/",
        stack.synapse_port,
        stack.secret,
        stack.client_secret,
        harness.database_url(database) if database else None,
    )
    # A client for scripts, allowed the admin scope (docs/admin-api.md).
    admin = harness.write_yaml(tmp_path / "mas" / "admin.yaml", {
        "clients": [{"client_id": ADMIN_CLIENT_ID, "client_auth_method": "client_secret_basic",
                     "client_secret": client_secret}],
        "policy": {"data": {"admin_clients": [ADMIN_CLIENT_ID]}},
        # Password strength is not in the document (no schema can score a password), so
        # a schema-valid password must be accepted: the weak-password answer is tested
        # in crates/handlers/src/admin_tests.rs.
        "passwords": {"minimum_complexity": 0},
    })
    mas.config_files.insert(-1, admin)
    service = harness.start_mas(mas)
    conftest.AUDITED_LOGS.append((mas.dir / "mas.log", mas.config_files[0],
                                  {"matrix.secret": stack.secret, "the admin client's secret": client_secret},
                                  "/api/admin/v1/"))
    try:
        # Someone for the by-username operation and the lists to find.
        someone = f"fuzzed-{backend}"
        mas.register_user(someone, conftest.PASSWORD)
        base = mas.base.rstrip("/")
        env = {
            **os.environ,
            "SCHEMATHESIS_HOOKS": "schemathesis_hooks",
            "PYTHONPATH": str(HERE),
            "MAS_ADMIN_TOKEN_URL": f"{base}/oauth2/token",
            "MAS_ADMIN_CLIENT_ID": ADMIN_CLIENT_ID,
            "MAS_ADMIN_CLIENT_SECRET": client_secret,
        }
        report = tmp_path / "schemathesis"
        result = subprocess.run(
            [SCHEMATHESIS, "run", f"{base}/api/spec.json", "--url", base,
             "--checks", "all", "--max-examples", os.environ.get("MAS_SCHEMATHESIS_EXAMPLES", "25"),
             "--seed", "7", "--request-timeout", "20",
             # One worker: hypothesis reads lambdas' source with `ast` while it builds
             # strategies, and CPython 3.11's `ast` fails under threads ("AST constructor
             # recursion depth mismatch").
             "--workers", "1",
             "--report", "junit", "--report-dir", str(report),
             "--output-truncate", "false"],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=420,
        )
        output = result.stdout + result.stderr
        (tmp_path / "schemathesis.txt").write_text(output)
        summary = output[output.rfind("SUMMARY"):] if "SUMMARY" in output else output[-3000:]
        stack.report(f"schemathesis on {backend}: {summary.splitlines()[-1].strip('= ') if summary else '?'}")
        assert result.returncode == 0, output[-20000:]
        # The run left the service healthy, and its own token still gets in.
        token = requests.post(f"{base}/oauth2/token", auth=(ADMIN_CLIENT_ID, client_secret),
                              data={"grant_type": "client_credentials", "scope": "urn:mas:admin"}, timeout=10)
        assert token.status_code == 200, harness.describe(token)
        users = requests.get(f"{base}/api/admin/v1/users/by-username/{someone}",
                             headers=harness.bearer(token.json()["access_token"]), timeout=10)
        assert users.status_code == 200, harness.describe(users)
        assert users.json()["data"]["attributes"]["username"] == someone
    finally:
        service.stop()
        if database:
            harness.psql(harness.ADMIN_URL, f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
