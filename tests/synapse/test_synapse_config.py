"""`mas-cli config generate --synapse-config` on a homeserver.yaml that Synapse itself
generated, plus the edits an administrator of a real server has made (a pepper, email,
an OpenID Connect provider, a CAS login): the result passes `config check` and carries
each of them over, and what cannot be carried over is named."""

from __future__ import annotations

import subprocess
import sys

import yaml

import harness

EXTRA = """
public_baseurl: https://matrix.example.com/
password_config:
  pepper: the-pepper
enable_registration: true
enable_registration_without_verification: true
email:
  smtp_host: mail.example.com
  smtp_port: 465
  force_tls: true
  notif_from: "%(app)s <noreply@example.com>"
oidc_providers:
  - idp_id: keycloak
    idp_name: Example Corp
    issuer: https://sso.example.com/realms/example
    client_id: synapse
    client_secret: s3cret
    scopes: [openid, profile]
    user_mapping_provider:
      config:
        localpart_template: "{{ user.preferred_username }}"
        display_name_template: "{{ user.name }}"
cas_config:
  enabled: true
  server_url: https://cas.example.com
"""


def test_a_configuration_synapse_generated_becomes_a_starting_point(tmp_path):
    homeserver = tmp_path / "homeserver.yaml"
    subprocess.run(
        [sys.executable, "-m", "synapse.app.homeserver", "--server-name", "example.com",
         "--config-path", str(homeserver), "--generate-config", "--report-stats=no"],
        cwd=tmp_path, check=True, capture_output=True,
    )
    extra = tmp_path / "extra.yaml"
    extra.write_text(EXTRA)
    out = tmp_path / "mas.yaml"
    generated = subprocess.run(
        [harness.MAS_CLI, "config", "generate", "--synapse-config", str(homeserver),
         "--synapse-config", str(extra), "--output", str(out)],
        cwd=tmp_path, env=harness.mas_env(), capture_output=True, text=True,
    )
    assert generated.returncode == 0, generated.stderr
    assert "cas_config (CAS): not carried over" in generated.stderr, generated.stderr
    assert "needs editing" not in generated.stderr, generated.stderr

    config = yaml.safe_load(out.read_text())
    assert config["matrix"]["homeserver"] == "example.com"
    assert config["matrix"]["endpoint"] == "https://matrix.example.com/"
    bcrypt, argon2 = config["passwords"]["schemes"]
    assert (bcrypt["version"], bcrypt["algorithm"], bcrypt["secret"]) == (1, "bcrypt", "the-pepper")
    assert bcrypt["unicode_normalization"] is True
    assert (argon2["version"], argon2["algorithm"]) == (2, "argon2id")
    assert config["account"]["password_registration_enabled"] is True
    assert config["email"]["transport"] == "smtp"
    assert config["email"]["mode"] == "tls"
    assert config["email"]["from"] == "Matrix <noreply@example.com>"
    (provider,) = config["upstream_oauth2"]["providers"]
    assert provider["synapse_idp_id"] == "oidc-keycloak"
    assert provider["human_name"] == "Example Corp"
    assert provider["claims_imports"]["localpart"] == {
        "action": "require", "template": "{{ user.preferred_username }}", "on_conflict": "fail",
    }

    check = subprocess.run(
        [harness.MAS_CLI, "-c", str(out), "config", "check"],
        cwd=tmp_path, env=harness.mas_env(), capture_output=True, text=True,
    )
    assert check.returncode == 0, check.stderr
