"""Run one modern Synapse (the `matrix_authentication_service` generation) for tests
outside pytest, e.g. tests/browser/pages.test.js:

    $SYNAPSE_MODERN_PYTHON tests/synapse/serve_synapse.py \\
        --mas-endpoint http://127.0.0.1:8080/ --secret S [--dir D] [--stop-on-eof]

Synapse gets a free loopback port and the same homeserver.yaml as the pytest stacks
(harness.synapse_config), except that `matrix_authentication_service.endpoint` is the
given URL and `public_baseurl` is Synapse's own address (there is no proxy). MAS may
start later: Synapse fetches its discovery document lazily.

Once /health answers, the base URL (`http://127.0.0.1:PORT`, no trailing slash) is
printed as the only line on stdout. The script then runs until SIGTERM or SIGINT
(or, with --stop-on-eof, until its stdin closes, so that a parent that dies does not
leave Synapse behind), stops Synapse and exits 0. If Synapse does not start, or exits
by itself, the tail of its log goes to stderr and the exit status is 1.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import threading
from pathlib import Path

import harness


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mas-endpoint", required=True, help="where Synapse reaches MAS (matrix_authentication_service.endpoint)")
    parser.add_argument("--secret", required=True, help="the shared secret (MAS's matrix.secret)")
    parser.add_argument("--dir", type=Path, help="for homeserver.yaml, the database and synapse.log (default: a new temporary directory)")
    parser.add_argument("--stop-on-eof", action="store_true", help="also stop when stdin reaches end of file")
    args = parser.parse_args()

    dir = (args.dir or Path(tempfile.mkdtemp(prefix="mas-synapse-"))).resolve()
    dir.mkdir(parents=True, exist_ok=True)
    port = harness.free_port()
    base = f"http://127.0.0.1:{port}"
    endpoint = args.mas_endpoint if args.mas_endpoint.endswith("/") else f"{args.mas_endpoint}/"

    # The ports of MAS and of the proxy are replaced just below.
    config = harness.synapse_config("modern", dir, port, 0, 0, args.secret, "")
    config["public_baseurl"] = f"{base}/"
    config["matrix_authentication_service"]["endpoint"] = endpoint
    path = harness.write_yaml(dir / "homeserver.yaml", config)
    argv = [sys.executable, "-m", "synapse.app.homeserver", "-c", str(path)]
    synapse = harness.Service("synapse (modern)", argv, dir / "synapse.log", dir)

    stop = threading.Event()
    serving = False

    class Interrupted(Exception):
        pass

    def on_signal(signum, _frame):
        stop.set()
        if not serving:  # still starting: end the wait for /health now
            raise Interrupted(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if args.stop_on_eof:

        def watch_stdin():
            # os.read, not sys.stdin: a daemon thread blocked in a buffered read
            # holds its lock and makes the interpreter abort at exit.
            try:
                while os.read(0, 4096):
                    pass
            except OSError:
                pass
            stop.set()

        threading.Thread(target=watch_stdin, daemon=True).start()

    try:
        # In this script's process group, so that a `timeout` or a Ctrl-C aimed at the
        # caller's group also reaches Synapse if this script cannot stop it.
        synapse.start()
        synapse.wait_healthy(f"{base}/health")
        serving = True
        print(base, flush=True)
        print(f"synapse: {base}, MAS at {endpoint}, files in {dir}", file=sys.stderr, flush=True)
        while not stop.wait(0.2):
            if synapse.proc.poll() is not None:
                print(
                    f"synapse exited with status {synapse.proc.returncode}; log tail ({synapse.log}):\n"
                    f"{harness.tail(synapse.log)}",
                    file=sys.stderr,
                )
                return 1
        return 0
    except RuntimeError as e:  # from wait_healthy, with the log tail
        print(e, file=sys.stderr)
        return 1
    except Interrupted as e:
        print(f"synapse: stopped by {e} while starting", file=sys.stderr)
        return 1
    finally:
        serving = True  # a second signal must not interrupt the stop
        synapse.stop()


if __name__ == "__main__":
    sys.exit(main())
