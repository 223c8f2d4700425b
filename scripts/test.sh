#!/usr/bin/env bash
# Set up (a .venv with every driver's client library and the test tools) and run the
# whole test suite. Extra arguments go to pytest.
#   ./scripts/test.sh                  every test; a server that is down is skipped
#   QUEUE_TEST_REQUIRE_ALL=1 ./scripts/test.sh   (CI) a server that is down fails
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[all,dev]'
exec .venv/bin/python -m pytest "$@"
