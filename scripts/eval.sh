#!/usr/bin/env bash
# Evaluate through accelerate launch: [NUM_PROCESSES=N] [ACCELERATE_CONFIG=...] scripts/eval.sh RECIPE [overrides...]
# Runs `unlearn eval RECIPE ...` on every rank (each scores a share of the items; the aggregates are the
# same as on one process). Settings: see scripts/_launch.sh and docs/distributed.md.
set -euo pipefail
# shellcheck source=scripts/_launch.sh
source "$(dirname "${BASH_SOURCE[0]}")/_launch.sh"
[ $# -ge 1 ] || unlearn_die "usage: scripts/eval.sh RECIPE [dotted.key=value ...]"
unlearn_find_python
unlearn_launch eval "$@"
