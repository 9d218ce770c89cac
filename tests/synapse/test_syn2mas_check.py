"""`mas-cli syn2mas check` against the SQLite database of a real Synapse that signs people
in itself: Synapse makes its configuration and schema, two people register, one of them
is linked to an SSO provider. The check counts what would move, and names each problem
before anything is written: a provider with no counterpart here (or one not yet stored
by `config sync`), a pepper that does not match, a login method that cannot move, a
localpart this service cannot hold (the move refuses, or leaves that user out when told
to), a schema version this release was not tested with."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import yaml

import harness

PASSWORD = "correct horse battery staple"


def mas_cli(tmp_path, *args):
    return subprocess.run(
        [harness.MAS_CLI, *args], cwd=tmp_path, env=harness.mas_env(), capture_output=True, text=True,
    )


def test_the_check_counts_what_would_move_and_names_each_problem(tmp_path):
    python = sys.executable
    homeserver = tmp_path / "homeserver.yaml"
    subprocess.run(
        [python, "-m", "synapse.app.homeserver", "--server-name", "example.com",
         "--config-path", str(homeserver), "--generate-config", "--report-stats=no"],
        cwd=tmp_path, check=True, capture_output=True,
    )
    port = harness.free_port()
    listener = harness.write_yaml(tmp_path / "listener.yaml", {
        "listeners": [{"port": port, "bind_addresses": ["127.0.0.1"], "type": "http", "tls": False,
                       "resources": [{"names": ["client"], "compress": False}]}],
    })
    synapse = harness.Service(
        "synapse (own logins)",
        [python, "-m", "synapse.app.homeserver", "-c", str(homeserver), "-c", str(listener)],
        tmp_path / "synapse.log", tmp_path,
    ).start()
    try:
        synapse.wait_healthy(f"http://127.0.0.1:{port}/health")
        for name, admin in (("alice", "--admin"), ("bob", "--no-admin")):
            subprocess.run(
                [python, "-m", "synapse._scripts.register_new_matrix_user", "-c", str(homeserver),
                 "-u", name, "-p", PASSWORD, admin, f"http://127.0.0.1:{port}"],
                cwd=tmp_path, check=True, capture_output=True,
            )
    finally:
        synapse.stop()
    with sqlite3.connect(tmp_path / "homeserver.db") as db:
        db.execute(
            "INSERT INTO user_external_ids (auth_provider, external_id, user_id) VALUES (?, ?, ?)",
            ("oidc-github", "42", "@bob:example.com"),
        )

    generated = mas_cli(tmp_path, "config", "generate", "--synapse-config", str(homeserver), "--output", "mas.yaml")
    assert generated.returncode == 0, generated.stderr
    (tmp_path / "db.yaml").write_text(f"database:\n  uri: sqlite://{tmp_path / 'mas.db'}\n")
    ours = ["-c", "mas.yaml", "-c", "db.yaml"]
    migrated = mas_cli(tmp_path, *ours, "database", "migrate")
    assert migrated.returncode == 0, migrated.stderr
    check = ["syn2mas", "check", "--synapse-config", str(homeserver)]

    refused = mas_cli(tmp_path, *ours, *check)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "Synapse: 2 users to move (2 with a password)" in refused.stdout, refused.stdout
    assert "error: users are linked to the identity provider `oidc-github`" in refused.stdout, refused.stdout
    assert "1 problem(s) to fix" in refused.stderr, refused.stderr

    (tmp_path / "github.yaml").write_text(
        "upstream_oauth2:\n  providers:\n"
        "    - id: 01JF8X4R2ZQK9W7V3N5M6B1C0F\n      synapse_idp_id: oidc-github\n"
        "      discovery_mode: disabled\n      client_id: gh\n      client_secret: s\n"
        "      token_endpoint_auth_method: client_secret_post\n      scope: read:user\n"
        "      authorization_endpoint: https://github.com/login/oauth/authorize\n"
        "      token_endpoint: https://github.com/login/oauth/access_token\n"
    )
    # Configured, but `config sync` has not stored it yet.
    unsynced = mas_cli(tmp_path, *ours, "-c", "github.yaml", *check)
    assert unsynced.returncode == 1, unsynced.stdout + unsynced.stderr
    assert "not in the database yet: run `mas-cli config sync`" in unsynced.stdout, unsynced.stdout
    synced = mas_cli(tmp_path, *ours, "-c", "github.yaml", "config", "sync")
    assert synced.returncode == 0, synced.stdout + synced.stderr
    passed = mas_cli(tmp_path, *ours, "-c", "github.yaml", *check)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "check passed" in passed.stdout, passed.stdout

    # A pepper here that Synapse did not use, and a login method that cannot move.
    peppered = yaml.safe_load((tmp_path / "mas.yaml").read_text())
    peppered["passwords"]["schemes"][0]["secret"] = "not-synapses"
    harness.write_yaml(tmp_path / "peppered.yaml", peppered)
    (tmp_path / "cas.yaml").write_text("cas_config: {enabled: true, server_url: 'https://cas.example.com'}\n")
    both = mas_cli(
        tmp_path, "-c", "peppered.yaml", "-c", "db.yaml", "-c", "github.yaml",
        *check, "--synapse-config", str(tmp_path / "cas.yaml"),
    )
    assert both.returncode == 1, both.stdout + both.stderr
    assert "error: the bcrypt scheme's secret is not Synapse's password_config.pepper" in both.stdout, both.stdout
    assert "error: cas_config (CAS): this login method cannot be carried over" in both.stdout, both.stdout

    # A user from Synapse's early days whose localpart cannot be held here: named, and
    # the move refuses (writing nothing) unless told to leave such users out.
    with sqlite3.connect(tmp_path / "homeserver.db") as db:
        db.execute(
            "INSERT INTO users (name, password_hash, creation_ts, admin, is_guest, deactivated, locked) "
            "VALUES ('@Legacy:example.com', NULL, 1500000000, 0, 0, 0, 0)"
        )
    fine = [*ours, "-c", "github.yaml"]
    named = mas_cli(tmp_path, *fine, *check)
    assert named.returncode == 1, named.stdout + named.stderr
    assert "error: 1 users have a localpart this service cannot hold" in named.stdout, named.stdout
    assert "@Legacy:example.com" in named.stdout and "--skip-invalid-localparts" in named.stdout, named.stdout
    migrate = ["syn2mas", "migrate", "--synapse-config", str(homeserver)]
    refused = mas_cli(tmp_path, *fine, *migrate)
    assert refused.returncode == 1 and "@Legacy:example.com" in refused.stdout, refused.stdout + refused.stderr
    with sqlite3.connect(tmp_path / "mas.db") as db:
        assert db.execute("SELECT count(*) FROM users").fetchone()[0] == 0
    skipped = mas_cli(tmp_path, *fine, *check, "--skip-invalid-localparts")
    assert skipped.returncode == 0, skipped.stdout + skipped.stderr
    assert "warning: 1 users have a localpart" in skipped.stdout and "they are not moved" in skipped.stdout
    moved = mas_cli(tmp_path, *fine, *migrate, "--skip-invalid-localparts")
    assert moved.returncode == 0, moved.stdout + moved.stderr
    assert "left out: 1 (localpart not allowed here)" in moved.stdout, moved.stdout
    with sqlite3.connect(tmp_path / "mas.db") as db:
        assert sorted(r[0] for r in db.execute("SELECT username FROM users")) == ["alice", "bob"]
        linked = db.execute(
            "SELECT u.username, l.subject FROM upstream_oauth_links l JOIN users u ON u.id = l.user_id"
        ).fetchall()
        assert linked == [("bob", "42")]

    # A Synapse schema this release was not tested with: named, before anything else.
    with sqlite3.connect(tmp_path / "homeserver.db") as db:
        db.execute("UPDATE schema_version SET version = 99")
    newer = mas_cli(tmp_path, *fine, *check)
    assert newer.returncode == 1, newer.stdout + newer.stderr
    assert "error: Synapse's database has schema version 99" in newer.stdout, newer.stdout
