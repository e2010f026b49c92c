#!/usr/bin/env bash
# Fine-tune on several GPUs: scripts/train.sh RECIPE [overrides...] [--overwrite]
#   NUM_PROCESSES  processes (GPUs) to launch; default: every visible GPU (1 without CUDA)
#   ACCELERATE_ARGS extra `accelerate launch` flags, e.g. "--cpu" or "--config_file my_fsdp.yaml"
# Effective batch = per_device_train_batch_size × gradient_accumulation_steps × NUM_PROCESSES.
set -euo pipefail
: "${NUM_PROCESSES:=$(python -c 'import torch; print(max(torch.cuda.device_count(), 1))')}"
# shellcheck disable=SC2086
exec accelerate launch --num_processes "$NUM_PROCESSES" ${ACCELERATE_ARGS:-} -m unlearn_cli.cli train "$@"
