"""Runs after every other test (this file sorts last): the service's log, written at
debug level through the whole run, must not hold a password, a token, a client secret,
the homeserver's shared secret or any secret of the configuration. Only the service's
own log is read; the proxy's access log is the operator's to configure."""

from __future__ import annotations

import re

import yaml

from conftest import PASSWORD

# Every token this service issues or imports: PREFIX_30 random_6 checksum.
TOKEN = re.compile(r"\b(?:mat|mar|mct|mcr|mpt|syt|syr)_[A-Za-z0-9]{30}_[A-Za-z0-9]{6}\b")


def configured_secrets(stack) -> list[str]:
    """The secrets in the service's generated configuration file."""
    doc = yaml.safe_load(stack.mas.config_files[0].read_text())
    secrets = doc.get("secrets", {})
    found = [secrets.get("encryption")]
    found += [key.get("key") for key in secrets.get("keys", []) if isinstance(key, dict)]
    # A PEM key is checked by its base64 lines, which is what a leak would show.
    lines = []
    for value in filter(None, found):
        lines += [line for line in value.splitlines() if len(line) > 40 and "-----" not in line]
    return lines


def test_the_log_holds_no_secret(stack):
    log = (stack.mas.dir / "mas.log").read_text(errors="replace")
    # Not vacuous: the run was logged at debug level, requests included.
    assert " DEBUG " in log, "the service did not log at debug level"
    assert "/oauth2/introspect" in log, "requests were not logged"
    leaks = {
        "the test users' password": PASSWORD,
        "matrix.secret": stack.secret,
        "the homeserver client's secret": stack.client_secret,
    }
    for n, line in enumerate(configured_secrets(stack)):
        leaks[f"configuration secret line {n}"] = line
    found = [what for what, value in leaks.items() if value and value in log]
    tokens = sorted(set(TOKEN.findall(log)))
    assert not found, f"in {stack.mas.dir / 'mas.log'}: {found}"
    assert not tokens, f"tokens in {stack.mas.dir / 'mas.log'}: {tokens[:5]}"
