#!/usr/bin/env bash
# End-to-end smoke test of a built hubmon binary; see smoke.py.
set -euo pipefail
exec python3 "$(dirname "$0")/smoke.py" "${1:-target/release/hubmon}"
