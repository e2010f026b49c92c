#!/usr/bin/env bash
# The GPU check of docs/performance.md, for a machine with a CUDA GPU and no network. From the repository root:
#   scripts/build_wheels.sh              # beforehand, where there is network: wheels/ (carry it along)
#   scripts/gpu_check.sh [wheels]        # on the GPU machine
# Uses the machine's own CUDA torch (a virtual environment that sees the system packages), installs the rest
# from the wheels, then runs the tiny fine-tune and NPO on CUDA in bf16 with sdpa attention, with and without
# LoRA, and prints tokens/s and peak GPU memory per run (benchmarks/memory.py), plus one end-to-end
# `unlearn train` whose manifest records the device. Paste the tables into docs/performance.md with the card.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
wheels=${1:-wheels}
python=${UNLEARN_PYTHON:-python3}
"$python" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' ||
  { echo "error: $python has no CUDA torch (or sees no GPU)" >&2; exit 2; }
venv=$(mktemp -d)/venv
"$python" -m venv --system-site-packages "$venv"
if [ -d "$wheels" ]; then
  "$venv/bin/python" -m pip install --quiet --no-index --find-links "$wheels" \
    $(ls "$wheels" | sed -n 's/^\([A-Za-z0-9_.]*\)-[0-9].*\.whl$/\1/p' | grep -v -i '^torch$')
fi
export PYTHONPATH=$PWD UNLEARN_PYTHON=$venv/bin/python HF_HUB_OFFLINE=1
export UNLEARN_CLI_CACHE=${UNLEARN_CLI_CACHE:-$(mktemp -d)} HF_DATASETS_CACHE=${HF_DATASETS_CACHE:-$(mktemp -d)}
"$venv/bin/python" - <<'PY'
import torch, transformers, peft
print(f"{torch.cuda.get_device_name()} | torch {torch.__version__} (CUDA {torch.version.cuda}) | "
      f"transformers {transformers.__version__} | peft {peft.__version__} | bf16: {torch.cuda.is_bf16_supported()}")
PY
"$venv/bin/python" benchmarks/memory.py --device cuda --precision bf16 --attn sdpa --epochs 3 --only \
  "fine-tune, full model" "fine-tune, LoRA" "fine-tune, LoRA + checkpointing" \
  "NPO, reference copy" "NPO, cached log-probs" "NPO, LoRA, disabled adapter"
out=$(mktemp -d)/finetune
"$venv/bin/python" -m unlearn_cli.cli train quickstart/finetune trainer.args.bf16=true \
  'model.model_args.dtype="bfloat16"' 'model.model_args.attn_implementation="sdpa"' \
  trainer.args.num_train_epochs=2 "run.output_dir=$out"
"$venv/bin/python" -c "import json; m = json.load(open('$out/manifest.json')); print(json.dumps(m['launch'], indent=1))"
