#!/usr/bin/env bash
# Set everything up (idempotent), then start the TUI on an embedded QEMU lab
# with live jobs. Quitting (q or Ctrl-C) destroys everything the lab made.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
exec .venv/bin/jobtui demo "$@"
