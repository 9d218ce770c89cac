"""Runs after every other test (this file sorts last): the service's logs, written at
debug level through the whole run, must not hold a password, a token, a client secret,
the homeserver's shared secret or any secret of the configuration. The logs of both
stacks' mas-server are read, and those of the replicas of test_replicas.py; the
proxy's access log is the operator's to configure."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from conftest import AUDITED_LOGS, PASSWORD

# Every token this service issues or imports: PREFIX_30 random_6 checksum.
TOKEN = re.compile(r"\b(?:mat|mar|mct|mcr|mpt|syt|syr)_[A-Za-z0-9]{30}_[A-Za-z0-9]{6}\b")


def configured_secrets(config: Path) -> list[str]:
    """The secrets in the service's generated configuration file."""
    doc = yaml.safe_load(config.read_text())
    secrets = doc.get("secrets", {})
    found = [secrets.get("encryption")]
    found += [key.get("key") for key in secrets.get("keys", []) if isinstance(key, dict)]
    # A PEM key is checked by its base64 lines, which is what a leak would show.
    lines = []
    for value in filter(None, found):
        lines += [line for line in value.splitlines() if len(line) > 40 and "-----" not in line]
    return lines


def assert_no_secret(log_path: Path, config: Path, secrets: dict[str, str]) -> str:
    """Checks one log; returns its text."""
    log = log_path.read_text(errors="replace")
    # Not vacuous: the run was logged at debug level.
    assert " DEBUG " in log, f"{log_path}: the service did not log at debug level"
    leaks = {"the test users' password": PASSWORD, **secrets}
    for n, line in enumerate(configured_secrets(config)):
        leaks[f"configuration secret line {n}"] = line
    found = [what for what, value in leaks.items() if value and value in log]
    tokens = sorted(set(TOKEN.findall(log)))
    assert not found, f"in {log_path}: {found}"
    assert not tokens, f"tokens in {log_path}: {tokens[:5]}"
    return log


def test_the_log_holds_no_secret(stack):
    log = assert_no_secret(
        stack.mas.dir / "mas.log",
        stack.mas.config_files[0],
        {"matrix.secret": stack.secret, "the homeserver client's secret": stack.client_secret},
    )
    assert "/oauth2/introspect" in log, "requests were not logged"


def test_the_other_servers_logs_hold_no_secret():
    """The replicas' (test_replicas.py) and the fuzzed admin API's (test_admin_api.py)."""
    if not AUDITED_LOGS:
        pytest.skip("neither test_replicas.py nor test_admin_api.py ran")
    for log_path, config, secrets, path in AUDITED_LOGS:
        log = assert_no_secret(log_path, config, secrets)
        assert path in log, f"{log_path}: requests to {path} were not logged"
