#!/usr/bin/env bash
# Set everything up (idempotent), then run the whole suite: lint, import
# contracts and the tests on real libvirt + QEMU. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
.venv/bin/ruff check jobtui tests bench
.venv/bin/ruff format --check jobtui tests bench
.venv/bin/lint-imports
.venv/bin/mypy jobtui
exec .venv/bin/python -m pytest "$@"
