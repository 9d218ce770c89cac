"""Traces and metrics over OTLP: a mas-server with `telemetry.tracing.exporter: otlp`
and `telemetry.metrics.exporter: otlp` sends its spans and metrics to a receiver here,
which decodes them with the official OpenTelemetry protobuf definitions (PyPI
`opentelemetry-proto`). Between mas-server and the modern stack's Synapse, a recording
proxy shows the headers of the homeserver calls.

A password login through the compatibility layer, sent with a W3C `traceparent`, makes
one trace: the caller's trace ID, the request span a child of the caller's span, the
database and homeserver spans below the request span, and the device call to Synapse
carrying the same trace. A request without `traceparent` starts a trace of its own. The
pushed metrics count the login's route and the sign-in."""

from __future__ import annotations

import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

import conftest
import harness

trace_service_pb2 = pytest.importorskip(
    "opentelemetry.proto.collector.trace.v1.trace_service_pb2",
    reason="run.sh installs opentelemetry-proto in the modern venv",
)
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2  # noqa: E402


class Receiver(ThreadingHTTPServer):
    """An OTLP/HTTP trace receiver: decodes each export and keeps its spans."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Export)
        self.spans: list = []
        self.metrics: list = []
        self.lock = threading.Lock()
        threading.Thread(target=self.serve_forever, name="otlp", daemon=True).start()

    @property
    def port(self) -> int:
        return self.server_address[1]

    def of_trace(self, trace_id: bytes) -> list:
        with self.lock:
            return [s for s in self.spans if s.trace_id == trace_id]


# What each OTLP path carries: the request and answer messages, and the path from the
# request down to its items (spans, metrics), which the receiver keeps under that name.
SIGNALS = {
    "/v1/traces": (trace_service_pb2.ExportTraceServiceRequest, trace_service_pb2.ExportTraceServiceResponse,
                   "resource_spans", "scope_spans", "spans"),
    "/v1/metrics": (metrics_service_pb2.ExportMetricsServiceRequest, metrics_service_pb2.ExportMetricsServiceResponse,
                    "resource_metrics", "scope_metrics", "metrics"),
}


class _Export(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status, answer = 404, b""
        signal = SIGNALS.get(self.path)
        if signal and self.headers.get("Content-Type") == "application/x-protobuf":
            request, response, resources, scopes, items = signal
            export = request.FromString(body)
            kept = [item for resource in getattr(export, resources)
                    for scope in getattr(resource, scopes) for item in getattr(scope, items)]
            with self.server.lock:
                getattr(self.server, items).extend(kept)
            status, answer = 200, response().SerializeToString()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass


def ancestors(span, by_id: dict) -> list[str]:
    """The names of a span's ancestors within the trace, nearest first."""
    names = []
    while span.parent_span_id in by_id:
        span = by_id[span.parent_span_id]
        names.append(span.name)
    return names


def login(base: str, user: str, headers: dict) -> requests.Response:
    body = {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": user},
            "password": conftest.PASSWORD, "device_id": f"TRACED{secrets.token_hex(3).upper()}"}
    return requests.post(f"{base}/_matrix/client/v3/login", json=body, headers=headers, timeout=15)


def labels(point) -> dict[str, str]:
    return {a.key: a.value.string_value for a in point.attributes}


def test_a_request_is_one_trace_continued_from_the_caller_and_passed_on(stacks, tmp_path_factory, tmp_path,
                                                                      monkeypatch):
    if "modern" not in stacks:
        stacks["modern"] = conftest.start_stack("modern", tmp_path_factory)
    stack = stacks["modern"]
    receiver = Receiver()
    recorder = harness.Recorder(stack.synapse_port)
    port = harness.free_port()
    mas = harness.prepare_mas("modern", tmp_path / "mas", port, f"http://127.0.0.1:{port}/",
                              recorder.port, stack.secret, stack.client_secret)
    # As docs/observability.md configures it; the endpoint without a path gets OTLP's.
    traced = harness.write_yaml(tmp_path / "mas" / "tracing.yaml", {
        "telemetry": {"tracing": {"exporter": "otlp", "endpoint": f"http://127.0.0.1:{receiver.port}/",
                                  "sample_rate": 1.0},
                      "metrics": {"exporter": "otlp", "endpoint": f"http://127.0.0.1:{receiver.port}/"}},
    })
    mas.config_files.insert(-1, traced)
    # Metrics are pushed every minute; every second here.
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "1000")
    service = harness.start_mas(mas)
    try:
        user = f"traced{secrets.token_hex(3)}"
        mas.register_user(user, conftest.PASSWORD)
        trace_id, caller_span = secrets.token_bytes(16), secrets.token_bytes(8)
        traceparent = f"00-{trace_id.hex()}-{caller_span.hex()}-01"
        response = login(mas.base.rstrip("/"), user, {"traceparent": traceparent})
        assert response.status_code == 200, harness.describe(response)
        # A request of no trace: one of its own.
        untraced = requests.get(f"{mas.base}.well-known/openid-configuration", timeout=10)
        assert untraced.status_code == 200

        def exported():
            spans = receiver.of_trace(trace_id)
            names = {s.name for s in spans}
            assert "request" in names and "homeserver.request" in names, sorted(names)
            return spans

        spans = harness.poll("the login's spans at the receiver", exported, timeout=30)
        by_id = {s.span_id: s for s in spans}
        requests_spans = [s for s in spans if s.name == "request"]
        assert len(requests_spans) == 1, [s.name for s in spans]
        request = requests_spans[0]
        # Continued from the caller: its span is the parent of ours.
        assert request.parent_span_id == caller_span
        attributes = {a.key: a.value.string_value for a in request.attributes}
        assert attributes.get("path") == "/_matrix/client/v3/login", attributes
        for span in spans:
            if span is not request:
                assert "request" in ancestors(span, by_id), (span.name, ancestors(span, by_id))
        database = [s for s in spans if s.name.startswith("db.")]
        assert database, [s.name for s in spans]
        homeserver = [s for s in spans if s.name == "homeserver.request"]
        # The device call went on to Synapse in the same trace, from the homeserver span.
        # (The worker's jobs call Synapse too, each in a trace of its own.)
        ours = [c for c in recorder.calls
                if c.headers.get("traceparent", "").split("-")[1:2] == [trace_id.hex()]]
        assert ours, [(c.path, c.headers.get("traceparent")) for c in recorder.calls]
        for call in ours:
            parent = bytes.fromhex(call.headers["traceparent"].split("-")[2])
            assert parent in {s.span_id for s in homeserver}, call.path

        def own_trace():
            others = [s for s in receiver.spans if s.trace_id != trace_id and s.name == "request"
                      and any(a.value.string_value == "/.well-known/openid-configuration" for a in s.attributes)]
            assert others
            return others[0]

        alone = harness.poll("the discovery request's trace", own_trace, timeout=30)
        assert alone.parent_span_id == b""

        def pushed():
            with receiver.lock:
                metrics = {m.name: m for m in receiver.metrics}
            duration = metrics["http.server.request.duration"]
            routes = {labels(p).get("http.route") for p in duration.histogram.data_points}
            assert "/_matrix/client/v3/login" in routes, routes
            logins = metrics["mas.login.attempts"]
            assert any(labels(p).get("outcome") == "success" and p.as_int >= 1
                       for p in logins.sum.data_points), logins
            return metrics

        metrics = harness.poll("the pushed metrics", pushed, timeout=30)
        assert "mas.db.connections" in metrics
        stack.report(f"tracing: {len(spans)} spans in the login's trace, "
                     f"{len(database)} database, {len(homeserver)} homeserver")
    finally:
        service.stop()
        recorder.shutdown()
        recorder.server_close()
        receiver.shutdown()
        receiver.server_close()
