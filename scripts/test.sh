#!/usr/bin/env bash
# Set up everything the test suite needs on a fresh Debian/Ubuntu machine with Python 3.11, then
# run it: a venv with the project and its dev extras, and Debian's Chromium + ChromeDriver for the
# MLflow UI test (browsers cannot be downloaded by test tools here). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq chromium chromium-driver >/dev/null
fi
python3 -m venv .venv
.venv/bin/pip install -q -e '.[dev]'
exec .venv/bin/python -m pytest "$@"
