#!/usr/bin/env bash
# Fine-tune through accelerate launch: [NUM_PROCESSES=N] [ACCELERATE_CONFIG=...] scripts/finetune.sh RECIPE [overrides...] [--overwrite] [--merge]
#   e.g. NUM_PROCESSES=8 scripts/finetune.sh tofu_finetune trainer.args.gradient_accumulation_steps=1
#        ACCELERATE_CONFIG=zero3 scripts/finetune.sh tofu_finetune
# Settings (processes, accelerate config, nodes, interpreter, DRY_RUN=1): see scripts/_launch.sh and
# docs/distributed.md. Effective batch = per_device_train_batch_size × gradient_accumulation_steps × NUM_PROCESSES.
set -euo pipefail
# shellcheck source=scripts/_launch.sh
source "$(dirname "${BASH_SOURCE[0]}")/_launch.sh"
[ $# -ge 1 ] || unlearn_die "usage: scripts/finetune.sh RECIPE [dotted.key=value ...] [--overwrite] [--merge]"
unlearn_find_python
unlearn_launch train "$@"
