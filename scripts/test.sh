#!/usr/bin/env bash
# Set up (a .venv with every driver's client library and the test tools) and run the
# whole test suite. Extra arguments go to pytest.
#   ./scripts/test.sh                  every test; a server that is down is skipped
#   QUEUE_TEST_REQUIRE_ALL=1 ./scripts/test.sh   (CI) a server that is down fails
set -euo pipefail
cd "$(dirname "$0")/.."

# The beanstalk tests start their own beanstalkd; on a machine where we are root with
# apt, install the binary (Debian's package) rather than skip them.
if ! command -v beanstalkd >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  apt-get install -y -q beanstalkd >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q beanstalkd >/dev/null 2>&1; } \
    || echo "could not install beanstalkd; its tests will say so" >&2
fi

# The dashboard's browser tests drive Debian's chromium with its chromedriver (never a
# downloaded one); install both the same way.
if { [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; } && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium chromium-driver >/dev/null 2>&1; } \
    || echo "could not install chromium and chromium-driver; the browser tests will say so" >&2
fi

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[all,dev]'
# Three test processes on two cores: most tests wait on worker processes and servers rather
# than compute, and a third process fills that time (a test that takes its server down waits
# for the others' tests of that server: see _server_turn in tests/conftest.py); -n 0 as an
# argument runs one.
exec .venv/bin/python -m pytest -n 3 "$@"
