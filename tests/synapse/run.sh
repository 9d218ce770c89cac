#!/usr/bin/env bash
# Real-Synapse end-to-end tests: two Synapse generations (modern: the
# matrix_authentication_service block; legacy: experimental_features.msc3861),
# each behind nginx next to mas-server, exercised with matrix-nio and raw HTTP.
#
#   MAS_CLI=/path/to/mas-cli MAS_SERVER=/path/to/mas-server bash tests/synapse/run.sh [pytest args]
#
# Extra arguments go to pytest: `-k legacy` for one generation, `--maxfail=100` to go
# on past the first failure (the default is -x), `-s` to see the start-up timings.
# Services' files (configs, logs, databases) are kept in /tmp/pytest-of-$USER/.
# The nginx configuration is the example in docs/setup/reverse-proxy.md, and
# test_setup_check.py runs the "Checking the setup" block of docs/setup/homeserver.md.
# test_replicas.py runs two mas-server replicas on a PostgreSQL database it creates
# and drops (on the server of MAS_TEST_DATABASE_URL, by default the local one, with
# psql); without PostgreSQL it is skipped, except under CI=true.
# test_metrics.py has Debian's Prometheus scrape mas-server's /metrics (installed with
# apt-get when missing, as nginx is). test_admin_api.py runs schemathesis (its own
# venv) against the admin API of a mas-server on SQLite and one on PostgreSQL.
# A run takes about 2.5 minutes, most of it one wait for Synapse's 2-minute token
# cache (see conftest.py); the summary shows how long Synapse kept ended tokens.
#
# Virtualenvs are kept in ${MAS_SYNAPSE_CACHE:-/var/tmp/mas-synapse} and reused when
# they already hold the pinned versions.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

: "${MAS_CLI:?set MAS_CLI to the mas-cli binary}"
: "${MAS_SERVER:?set MAS_SERVER to the mas-server binary}"
MAS_CLI="$(realpath "$MAS_CLI")"
MAS_SERVER="$(realpath "$MAS_SERVER")"
export MAS_CLI MAS_SERVER
export no_proxy="127.0.0.1,localhost${no_proxy:+,$no_proxy}" NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}"
export PIP_DISABLE_PIP_VERSION_CHECK=1

cache="${MAS_SYNAPSE_CACHE:-/var/tmp/mas-synapse}"
python="${PYTHON:-python3}"
mkdir -p "$cache"

# venv NAME REQUIREMENT...: (re)create $cache/NAME unless its marker file
# holds exactly the requirement list (written only after a successful install).
venv() {
  local name="$1"; shift
  local dir="$cache/$name" want="$*"
  if [ -x "$dir/bin/python" ] && [ "$(cat "$dir/.installed" 2>/dev/null)" = "$want" ]; then
    echo "venv $name: cached ($want)"
    return
  fi
  local t0=$SECONDS
  rm -rf "$dir"
  if ! "$python" -m venv "$dir" 2>/dev/null; then
    # Debian's python3 ships venv/ensurepip separately.
    rm -rf "$dir"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq python3-venv >/dev/null
    "$python" -m venv "$dir"
  fi
  "$dir/bin/pip" install -q "$@"
  printf '%s' "$want" >"$dir/.installed"
  echo "venv $name: installed in $((SECONDS - t0))s ($want)"
}

venv modern 'matrix-synapse[postgres]==1.163.2' 'matrix-nio' 'pytest' 'requests' 'opentelemetry-proto==1.45.2'
venv legacy 'matrix-synapse[oidc]==1.156.0'
# The SMTP server the browser tests' mail goes to.
venv mail 'aiosmtpd==1.4.6'
# test_admin_api.py fuzzes the admin API with it (its own venv: it pins its own
# jsonschema and hypothesis).
venv schemathesis 'schemathesis==4.32.5'
export SCHEMATHESIS="$cache/schemathesis/bin/st"

if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
  echo "installing nginx"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq nginx >/dev/null
fi
# Only the binary is used (with its own config and prefix), never a system service.
export NGINX="${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}"
# Prometheus scrapes /metrics in test_metrics.py; likewise only its binary is run.
if ! command -v prometheus >/dev/null 2>&1 && [ ! -x /usr/bin/prometheus ]; then
  echo "installing prometheus"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
export PROMETHEUS="${PROMETHEUS:-$(command -v prometheus || echo /usr/bin/prometheus)}"

export SYNAPSE_MODERN_PYTHON="$cache/modern/bin/python"
export SYNAPSE_LEGACY_PYTHON="$cache/legacy/bin/python"

cd "$here"
export PYTHONDONTWRITEBYTECODE=1
# A hung service must not hold CI for its whole budget; `timeout` signals the whole
# process group, services included. conftest.py runs test_synapse_catches_up.py (its
# test waits for what the others left behind) and then test_zz_log_audit.py after
# every other test.
set +e
timeout --kill-after=20 "${MAS_SYNAPSE_TIMEOUT:-600}" \
  "$cache/modern/bin/python" -m pytest -x -q -rfE -p no:cacheprovider "$@" test_*.py
rc=$?
set -e
if [ "$rc" = 124 ]; then echo "synapse tests: timed out after ${MAS_SYNAPSE_TIMEOUT:-600}s" >&2; fi
exit "$rc"
