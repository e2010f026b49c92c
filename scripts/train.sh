#!/usr/bin/env bash
# Fine-tune on several GPUs: scripts/train.sh RECIPE [overrides...] [--overwrite | --resume [CHECKPOINT]]
#   NUM_PROCESSES    processes (one per GPU); default: every visible GPU (1 without CUDA)
#   ACCELERATE_ARGS  extra `accelerate launch` flags, e.g. "--config_file my_fsdp.yaml"
# Without GPUs, NUM_PROCESSES=2 runs two CPU ranks (gloo) — what the test suite does.
# Effective batch = per_device_train_batch_size × gradient_accumulation_steps × NUM_PROCESSES.
set -euo pipefail
# One process checks the recipe, this machine and the output folder first, so a mistake is reported once.
# Ctrl-C / SIGTERM reach every rank: they stop at the same step with a checkpoint; rerun with --resume.
python -m unlearn_cli.cli train --dry-run "$@"
: "${NUM_PROCESSES:=$(python -c 'import torch; print(max(torch.cuda.device_count(), 1))')}"
extra="${ACCELERATE_ARGS:-}"
if [ "$NUM_PROCESSES" -gt 1 ] && ! [[ "$extra" =~ --(multi_gpu|use_fsdp|use_deepspeed|config_file) ]]; then
  extra="--multi_gpu $extra"
fi
# shellcheck disable=SC2086
exec accelerate launch --num_processes "$NUM_PROCESSES" --num_machines 1 --mixed_precision no \
  --dynamo_backend no $extra -m unlearn_cli.cli train "$@"
