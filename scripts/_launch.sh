# Sourced by scripts/finetune.sh, unlearn.sh and eval.sh: find the toolkit's Python, then run one `unlearn`
# command through `accelerate launch`. Settings come from environment variables:
#
#   NUM_PROCESSES      processes in all, one per GPU (default: every visible GPU on every node; 1 without
#                      CUDA). Without CUDA, NUM_PROCESSES=2 runs two CPU ranks (gloo), as the tests do.
#   ACCELERATE_CONFIG  an accelerate config: a packaged one (single_gpu, multi_gpu, fsdp, zero2, zero3,
#                      zero3_offload; `unlearn recipe list`) or a file. Default: plain DDP.
#   NUM_MACHINES, MACHINE_RANK, MAIN_PROCESS_IP, MAIN_PROCESS_PORT
#                      several nodes: run the same command on each (scripts/slurm/multinode.sbatch does).
#                      One node: MAIN_PROCESS_PORT defaults to a free port.
#   ACCELERATE_ARGS    more `accelerate launch` flags, e.g. "--gpu_ids 0,1".
#   UNLEARN_PYTHON     the interpreter unlearn-cli is installed in. Default: the one the `unlearn` command
#                      runs with, else $VIRTUAL_ENV's, else the repository's .venv — never a bare `python`.
#   DRY_RUN=1          check the recipe and print the launch command; launch nothing.
#
# The recipe is checked once, by one process, before the ranks start, so a mistake is reported once.

UNLEARN_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

unlearn_die() {
  echo "error: $*" >&2
  exit 2
}

_unlearn_imports() {
  [ -x "$1" ] && "$1" -c 'import unlearn_cli' >/dev/null 2>&1
}

# The interpreter named in the first lines of an installed console script (pip writes either
# "#!/path/python" or, for long paths, "#!/bin/sh" followed by "'''exec' /path/python ...").
_unlearn_script_python() {
  local first second words
  { IFS= read -r first; IFS= read -r second; } <"$1" || true
  case "$first" in
    '#!/bin/sh'*) second=${second#"'''exec' "}; echo "${second%% \"\$0\"*}" ;;
    '#!'*)
      read -r -a words <<<"${first#\#!}"
      if [ "${words[0]##*/}" = env ] && [ ${#words[@]} -gt 1 ]; then command -v "${words[1]}"; else echo "${words[0]}"; fi
      ;;
  esac
}

unlearn_find_python() {
  if [ -n "${UNLEARN_PYTHON:-}" ]; then
    _unlearn_imports "$UNLEARN_PYTHON" || unlearn_die "UNLEARN_PYTHON=$UNLEARN_PYTHON cannot import unlearn_cli"
    PY=$UNLEARN_PYTHON
    return
  fi
  local candidates=() exe candidate
  exe=$(command -v unlearn 2>/dev/null || true)
  [ -n "$exe" ] && candidates+=("$(_unlearn_script_python "$exe")")
  [ -n "${VIRTUAL_ENV:-}" ] && candidates+=("$VIRTUAL_ENV/bin/python")
  candidates+=("$UNLEARN_REPO/.venv/bin/python")
  for candidate in "${candidates[@]}"; do
    if _unlearn_imports "$candidate"; then
      PY=$candidate
      return
    fi
  done
  unlearn_die "cannot find the Python that has unlearn-cli installed (tried: ${candidates[*]:-nothing})
  hint: activate its virtual environment, or set UNLEARN_PYTHON=/path/to/venv/bin/python"
}

# unlearn_launch COMMAND RECIPE [overrides and flags...]: check the recipe, then launch (returns its status).
unlearn_launch() {
  local command=$1
  shift
  local plan GPUS PORT CONFIG
  plan=$("$PY" -m unlearn_cli.launch plan "${ACCELERATE_CONFIG:-}") || return 2
  eval "$plan"
  local machines=${NUM_MACHINES:-1} rank=${MACHINE_RANK:-0}
  local processes=${NUM_PROCESSES:-$((GPUS > 0 ? GPUS * machines : 1))}
  local port=${MAIN_PROCESS_PORT:-}
  if [ -z "$port" ]; then
    [ "$machines" -gt 1 ] && unlearn_die "NUM_MACHINES=$machines needs MAIN_PROCESS_IP and MAIN_PROCESS_PORT (the same on every node)"
    port=$PORT
  fi
  local args=(-m accelerate.commands.launch --num_processes "$processes" --num_machines "$machines"
    --machine_rank "$rank" --main_process_port "$port" --dynamo_backend no)
  [ -n "${MAIN_PROCESS_IP:-}" ] && args+=(--main_process_ip "$MAIN_PROCESS_IP")
  if [ -n "$CONFIG" ]; then
    args+=(--config_file "$CONFIG")
  else
    args+=(--mixed_precision no) # precision comes from the recipe (trainer.args.bf16 / fp16)
    [ "$processes" -gt 1 ] && args+=(--multi_gpu)
  fi
  local extra=()
  read -r -a extra <<<"${ACCELERATE_ARGS:-}"
  args+=("${extra[@]}")
  if [ "$GPUS" -eq 0 ] && [ "$processes" -gt 1 ]; then
    export ACCELERATE_USE_CPU=true # CPU ranks with gloo; without it each rank would train alone
    if [ -n "$CONFIG" ] && grep -Eq '^distributed_type: *(FSDP|DEEPSPEED)' "$CONFIG"; then
      echo "warning: no CUDA GPU here: the CPU ranks run plain data parallel, not $(basename "$CONFIG")'s engine" >&2
    fi
  fi
  export UNLEARN_ACCELERATE_CONFIG=$CONFIG # accelerate does not tell the ranks; the manifest records it

  if [ "$rank" -eq 0 ]; then
    if [ "$command" = eval ]; then
      local recipe_args=() arg
      for arg in "$@"; do [[ $arg == --* ]] || recipe_args+=("$arg"); done
      "$PY" -m unlearn_cli.cli recipe validate "${recipe_args[@]}" >/dev/null || return $?
    else
      "$PY" -m unlearn_cli.cli "$command" --dry-run "$@" || return $?
    fi
  fi
  if [ "${DRY_RUN:-0}" = 1 ]; then
    printf 'would run:'
    printf ' %q' "$PY" "${args[@]}" -m unlearn_cli.cli "$command" "$@"
    printf '\n'
    return 0
  fi
  "$PY" "${args[@]}" -m unlearn_cli.cli "$command" "$@"
}
