#!/usr/bin/env bash
# The earlier name of scripts/finetune.sh (same arguments and settings).
exec "$(dirname "${BASH_SOURCE[0]}")/finetune.sh" "$@"
