"""The "Checking the setup" block of docs/setup/homeserver.md, run as written against
each stack, so that the page stays true: only the example addresses, the
configuration file and the server name are replaced, and `mas-cli` is found on the
PATH as an administrator's would be. Any failing command fails the test."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import harness

HOMESERVER_DOC = Path(__file__).resolve().parents[2] / "docs" / "setup" / "homeserver.md"
START, END = "<!-- setup-check:start -->", "<!-- setup-check:end -->"


def documented_check(stack) -> str:
    script = harness.documented_block(HOMESERVER_DOC, START, END, "sh")
    config = " ".join(f"-c {shlex.quote(str(f))}" for f in stack.mas.config_files)
    return harness.substitute(
        script,
        [
            ("-c /etc/mas/config.yaml", config),
            ("http://127.0.0.1:8008", stack.synapse_url),
            ("https://matrix.example.com", stack.proxy_url),
            ("@alice:example.com", f"@alice:{harness.SERVER_NAME}"),
        ],
        "the setup check",
        doc=HOMESERVER_DOC,
    )


def test_the_documented_setup_check_passes(stack, tmp_path):
    bin = tmp_path / "bin"
    bin.mkdir()
    (bin / "mas-cli").symlink_to(harness.MAS_CLI)
    env = {**harness.mas_env(), "PATH": f"{bin}{os.pathsep}{os.environ.get('PATH', '')}"}
    # As the page says a script would run it; -x shows which command failed.
    script = "set -xeuo pipefail\n" + documented_check(stack)
    result = subprocess.run(
        ["bash", "-c", script], cwd=stack.mas.dir, env=env, capture_output=True, text=True, timeout=120
    )
    transcript = f"exit {result.returncode}\n--- stdout\n{result.stdout}--- stderr\n{result.stderr}"
    assert result.returncode == 0, transcript
    # What the page tells people to look for was printed.
    lines = result.stdout.splitlines()
    assert "all checks passed" in lines, transcript
    assert f'"issuer":"{stack.issuer}"' in lines, transcript
    assert f'"user_id":"@alice:{harness.SERVER_NAME}"' in lines, transcript
