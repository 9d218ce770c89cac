"""Prometheus (Debian's package) scrapes mas-server's `/metrics` as
docs/observability.md configures it, and its query API answers with the request
counter of a route the test called, and the sign-ins it made. And each Synapse stack
(which runs with metrics on) reports its calls to Synapse and its provisioning jobs."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
import requests
import yaml

import harness

PROMETHEUS = os.environ.get("PROMETHEUS") or shutil.which("prometheus") or "/usr/bin/prometheus"


def query(base: str, promql: str) -> list[dict]:
    response = requests.get(f"{base}/api/v1/query", params={"query": promql}, timeout=5)
    assert response.status_code == 200, harness.describe(response)
    body = response.json()
    assert body["status"] == "success", body
    return body["data"]["result"]


def test_prometheus_scrapes_the_request_counter_of_a_route(tmp_path):
    if not os.path.exists(PROMETHEUS):
        if os.environ.get("CI") == "true":
            pytest.fail(f"Prometheus is required under CI=true (no {PROMETHEUS}; apt-get install prometheus)")
        pytest.skip("no prometheus binary (apt-get install prometheus)")
    web, internal, prom = (harness.free_port() for _ in range(3))
    config = tmp_path / "config.yaml"
    subprocess.run([harness.MAS_CLI, "config", "generate", "-o", str(config)], cwd=tmp_path,
                   env=harness.mas_env(), check=True, capture_output=True)
    doc = yaml.safe_load(config.read_text())
    # The documented layout: the public listener, and an internal one with /metrics.
    doc["http"]["listeners"] = [
        {"name": "web", "resources": [{"name": "discovery"}, {"name": "compat"}],
         "binds": [{"address": f"127.0.0.1:{web}"}]},
        {"name": "internal", "resources": [{"name": "health"}, {"name": "prometheus"}],
         "binds": [{"address": f"127.0.0.1:{internal}"}]},
    ]
    doc["http"]["public_base"] = f"http://127.0.0.1:{web}/"
    doc["database"] = {"uri": f"sqlite://{tmp_path / 'mas.db'}"}
    doc["telemetry"] = {"metrics": {"exporter": "prometheus"}}
    harness.write_yaml(config, doc)
    mas = harness.Service("mas-server", [harness.MAS_SERVER, "-c", str(config)], tmp_path / "mas.log",
                          tmp_path, env=harness.mas_env()).start()
    scrape = harness.write_yaml(tmp_path / "prometheus.yml", {
        "global": {"scrape_interval": "1s"},
        "scrape_configs": [{"job_name": "matrix-authentication-service",
                            "static_configs": [{"targets": [f"127.0.0.1:{internal}"]}]}],
    })
    prometheus = harness.Service(
        "prometheus",
        [PROMETHEUS, f"--config.file={scrape}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{prom}"],
        tmp_path / "prometheus.log", tmp_path,
    ).start()
    try:
        mas.wait_healthy(f"http://127.0.0.1:{internal}/health")
        # /metrics is not on the public listener.
        assert requests.get(f"http://127.0.0.1:{web}/metrics", timeout=5).status_code == 404
        for _ in range(3):
            response = requests.get(f"http://127.0.0.1:{web}/.well-known/openid-configuration", timeout=5)
            assert response.status_code == 200, harness.describe(response)
        wrong = {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "nobody"},
                 "password": "not it"}
        response = requests.post(f"http://127.0.0.1:{web}/_matrix/client/v3/login", json=wrong, timeout=15)
        assert response.status_code == 403, harness.describe(response)
        prometheus.wait_healthy(f"http://127.0.0.1:{prom}/-/ready")
        base = f"http://127.0.0.1:{prom}"

        def scraped():
            rows = query(base, 'http_server_request_duration_seconds_count'
                               '{http_route="/.well-known/openid-configuration",http_response_status_code="200"}')
            assert rows and float(rows[0]["value"][1]) >= 3, rows
            return rows

        rows = harness.poll("Prometheus to scrape the request counter", scraped, timeout=20, interval=0.5)
        assert rows[0]["metric"]["job"] == "matrix-authentication-service", rows
        assert rows[0]["metric"]["http_request_method"] == "GET", rows
        failures = query(base, 'mas_login_attempts_total{kind="compat",outcome="failure"}')
        assert failures and float(failures[0]["value"][1]) == 1, failures
        # The failed sign-in still waited for a hashing thread (the decoy hash).
        waits = query(base, "mas_password_queue_wait_seconds_count")
        assert waits and float(waits[0]["value"][1]) >= 1, waits
        up = query(base, 'up{job="matrix-authentication-service"}')
        assert up and up[0]["value"][1] == "1", up
    finally:
        prometheus.stop()
        mas.stop()


def metric_lines(stack, name: str) -> list[str]:
    response = requests.get(f"{stack.mas.base}metrics", timeout=5)
    assert response.status_code == 200, harness.describe(response)
    return [line for line in response.text.splitlines() if line.startswith(name + "{")]


def test_calls_to_synapse_and_provisioning_jobs_are_measured(stack):
    """Registering someone queues a provisioning job, which the worker runs against the
    real Synapse: both show up in the stack's /metrics."""
    stack.new_user("metered")

    def reported():
        jobs = [l for l in metric_lines(stack, "mas_jobs_runs_total")
                if 'queue="provision-user"' in l and 'outcome="done"' in l]
        assert jobs and float(jobs[0].rsplit(" ", 1)[1]) >= 1, jobs
        calls = [l for l in metric_lines(stack, "mas_homeserver_request_duration_seconds_count")
                 if 'outcome="success"' in l]
        assert calls, metric_lines(stack, "mas_homeserver_request_duration_seconds_count")
        # The queue's depth, counted at start and every 15 s after.
        assert metric_lines(stack, "mas_jobs_waiting"), "no mas_jobs_waiting"
        return True

    harness.poll("the provisioning job in /metrics", reported, timeout=harness.PROVISION_TIMEOUT, interval=0.3)
