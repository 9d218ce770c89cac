"""`mas-cli doctor` against the running stack, on both Synapse generations: with the
configuration files mas-server runs with, every check passes; with a wrong
`matrix.secret` on top, the secret check fails and so does the command.
"""

from __future__ import annotations

import dataclasses
import re

from harness import write_yaml

LINE = re.compile(r"(ok|warn|FAIL) +(?P<what>[^:]+): (?P<detail>.*)")


def doctor(mas) -> tuple[int, list[str], str]:
    result = mas.cli("doctor", check=False)
    transcript = f"exit {result.returncode}\n--- stdout\n{result.stdout}--- stderr\n{result.stderr}"
    return result.returncode, result.stdout.splitlines(), transcript


def checks(lines: list[str]) -> dict[str, str]:
    """check -> its whole line, for the per-check lines (not the closing summary)."""
    return {m["what"]: line for line in lines if (m := LINE.fullmatch(line))}


def test_doctor_passes_on_the_running_stack(stack):
    code, lines, transcript = doctor(stack.mas)
    assert code == 0, transcript
    assert lines and lines[-1] == "all checks passed", transcript
    for line in lines[:-1]:
        assert line.startswith(("ok", "warn")), f"{line!r}\n{transcript}"
    found = checks(lines)
    # The homeserver checks ran (they are skipped when Synapse cannot be reached).
    for what in (
        "homeserver reachable",
        "matrix.homeserver",
        "homeserver accepts the secret",
        "homeserver delegates to this service",
    ):
        assert found.get(what, "").startswith("ok"), f"{what}\n{transcript}"


def test_doctor_fails_on_a_wrong_secret(stack):
    wrong = write_yaml(stack.mas.dir / "wrong-secret.yaml", {"matrix": {"secret": "not-the-secret-" + "x" * 16}})
    mas = dataclasses.replace(stack.mas, config_files=[*stack.mas.config_files, wrong])
    code, lines, transcript = doctor(mas)
    assert code == 1, transcript
    found = checks(lines)
    assert found.get("homeserver accepts the secret", "").startswith("FAIL"), transcript
    assert "all checks passed" not in lines, transcript
    # Nothing else is wrong: the one failure is the secret.
    assert [line for line in lines if line.startswith("FAIL")] == [found["homeserver accepts the secret"]], transcript
