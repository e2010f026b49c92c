#!/usr/bin/env bash
# Unlearn through accelerate launch, one run or a sweep:
#   [NUM_PROCESSES=N] [ACCELERATE_CONFIG=...] scripts/unlearn.sh RECIPE [overrides...] [--overwrite] [--merge]
#
# Sweep: METHODS, FORGET_SPLITS and MODELS (space-separated lists) run every combination (models outermost,
# then methods, then splits). {model}, {method}, {forget_split} and {retain_split} in RECIPE and in the
# overrides become each run's values:
#   METHODS="GradAscent GradDiff NPO" FORGET_SPLITS="forget01 forget05 forget10" \
#     NUM_PROCESSES=2 scripts/unlearn.sh 'tofu_unlearn/{method}'
# Forget splits set the recipe knobs forget_split and retain_split unless {forget_split} appears somewhere:
# forgetNN pairs with retain(100-NN), as TOFU names them; other names give their pair as FORGET:RETAIN.
# Each run of a sweep writes to $OUTPUT_ROOT/<model>/<method>/<forget_split> (OUTPUT_ROOT defaults to
# outputs/sweep) unless an override sets run.output_dir.
# ON_FAILURE=stop (default) ends the sweep at the first failed run, ON_FAILURE=continue runs the others;
# either way a summary follows, and the exit status is non-zero if any run failed.
# Other settings (processes, accelerate config, nodes, interpreter, DRY_RUN=1): scripts/_launch.sh.
set -euo pipefail
# shellcheck source=scripts/_launch.sh
source "$(dirname "${BASH_SOURCE[0]}")/_launch.sh"
[ $# -ge 1 ] || unlearn_die "usage: scripts/unlearn.sh RECIPE [dotted.key=value ...] [--overwrite] [--merge]"
recipe=$1
shift
overrides=("$@")
on_failure=${ON_FAILURE:-stop}
[[ $on_failure == stop || $on_failure == continue ]] || unlearn_die "ON_FAILURE must be stop or continue, not '$on_failure'"

read -r -a models <<<"${MODELS:-}"
read -r -a methods <<<"${METHODS:-}"
read -r -a splits <<<"${FORGET_SPLITS:-}"
all_text="$recipe ${overrides[*]:-}"
[[ $all_text == *"{model}"* ]] && [ ${#models[@]} -eq 0 ] && unlearn_die "{model} appears in the arguments but MODELS is empty"
[[ $all_text == *"{method}"* ]] && [ ${#methods[@]} -eq 0 ] && unlearn_die "{method} appears in the arguments but METHODS is empty"
[ ${#models[@]} -gt 0 ] && [[ $all_text != *"{model}"* ]] && unlearn_die "MODELS is set but no argument holds {model}
  hint: name the recipe (or an override) by model, e.g. 'my_unlearn_{model}.toml'"
[ ${#methods[@]} -gt 0 ] && [[ $all_text != *"{method}"* ]] && unlearn_die "METHODS is set but no argument holds {method}
  hint: e.g. scripts/unlearn.sh 'tofu_unlearn/{method}' (a recipe per method keeps its own method_args)"
[ ${#models[@]} -gt 0 ] || models=("")
[ ${#methods[@]} -gt 0 ] || methods=("")
[ ${#splits[@]} -gt 0 ] || splits=("")
total=$((${#models[@]} * ${#methods[@]} * ${#splits[@]}))
sets_output=0
for arg in "${overrides[@]}"; do [[ $arg == run.output_dir=* ]] && sets_output=1; done

retain_of() { # forgetNN → retainMM (MM = 100 - NN); FORGET:RETAIN → RETAIN; else nothing
  if [[ $1 == *:* ]]; then
    echo "${1#*:}"
  elif [[ $1 =~ ^forget([0-9]+)$ ]]; then
    printf 'retain%02d' $((100 - 10#${BASH_REMATCH[1]}))
  fi
}

fill() { # the run's values in place of {model}, {method}, {forget_split}, {retain_split}
  local text=${1//\{model\}/$model}
  text=${text//\{method\}/$method}
  text=${text//\{forget_split\}/$forget}
  echo "${text//\{retain_split\}/$retain}"
}

unlearn_find_python
results=()
failed=0
index=0
for model in "${models[@]}"; do
  for method in "${methods[@]}"; do
    for split in "${splits[@]}"; do
      index=$((index + 1))
      forget=${split%%:*}
      retain=$(retain_of "$split")
      run_recipe=$(fill "$recipe")
      run_args=()
      for arg in "${overrides[@]}"; do run_args+=("$(fill "$arg")"); done
      if [ -n "$forget" ] && [[ $all_text != *"{forget_split}"* ]]; then
        run_args+=("forget_split=$forget")
        [ -n "$retain" ] && run_args+=("retain_split=$retain")
      fi
      label=$(echo "${model:+$model/}${method:+$method/}${forget}" | sed 's:/$::')
      label=${label:-$run_recipe}
      if [ "$total" -gt 1 ] && [ "$sets_output" = 0 ]; then
        run_args+=("run.output_dir=${OUTPUT_ROOT:-outputs/sweep}/$label")
      fi
      echo "=== [$index/$total] $label: unlearn $run_recipe ${run_args[*]:-}" >&2
      started=$SECONDS
      status=0
      unlearn_launch unlearn "$run_recipe" "${run_args[@]}" || status=$?
      elapsed=$((SECONDS - started))
      if [ "$status" -eq 0 ]; then
        results+=("$(printf '%-8s %6ss  %s' ok "$elapsed" "$label")")
      else
        failed=$((failed + 1))
        results+=("$(printf '%-8s %6ss  %s (exit %s)' FAILED "$elapsed" "$label" "$status")")
        [ "$on_failure" = stop ] && break 3
      fi
    done
  done
done

if [ "$total" -gt 1 ] || [ "$failed" -gt 0 ]; then
  echo "=== summary: $((${#results[@]} - failed)) ok, $failed failed, $((total - ${#results[@]})) not run (of $total)" >&2
  printf '%s\n' "${results[@]}" >&2
fi
[ "$failed" -eq 0 ]
