#!/usr/bin/env bash
# Wheels for scripts/gpu_check.sh, for a GPU machine without network: unlearn-cli's dependencies (the versions
# installed here), without torch and its CUDA libraries, which the GPU machine brings itself.
#   scripts/build_wheels.sh [FOLDER]      (default: wheels/, which git ignores)
#   PYTHON_VERSION=3.10 PLATFORM=manylinux2014_x86_64 scripts/build_wheels.sh   for another target
#   SKIP_WHEELS="pyarrow pandas numpy" ...   to leave out what the GPU machine has (pyarrow alone is ~40 MB)
set -euo pipefail
# shellcheck source=scripts/_launch.sh
source "$(dirname "${BASH_SOURCE[0]}")/_launch.sh"
out=${1:-$UNLEARN_REPO/wheels}
unlearn_find_python
mkdir -p "$out"
# unlearn-cli's requirements and theirs, pinned to what is installed here, minus torch and what comes with it
mapfile -t pins < <(SKIP_WHEELS=${SKIP_WHEELS:-} "$PY" - <<'PY'
import importlib.metadata as md
import os
import re

from packaging.requirements import Requirement

SKIP = re.compile(r"^(torch|triton|nvidia-.*|sympy|mpmath|networkx|jinja2|markupsafe|filelock|fsspec|setuptools)$")
skip = set(os.environ["SKIP_WHEELS"].split())
target = {"sys_platform": "linux", "platform_system": "Linux", "extra": ""}
seen, todo = {}, ["unlearn-cli", "peft"]
while todo:
    name = todo.pop().lower().replace("_", "-")
    if name in seen or name in skip or SKIP.match(name):
        continue
    try:
        dist = md.distribution(name)
    except md.PackageNotFoundError:
        continue
    seen[name] = dist.version
    for text in dist.requires or []:
        requirement = Requirement(text)
        if requirement.marker is None or requirement.marker.evaluate(target):
            todo.append(requirement.name)
for name, version in sorted(seen.items()):
    if name != "unlearn-cli":
        print(f"{name}=={version}")
PY
)
"$PY" -m pip download --dest "$out" --no-deps --only-binary=:all: \
  --python-version "${PYTHON_VERSION:-3.11}" --platform "${PLATFORM:-manylinux2014_x86_64}" "${pins[@]}"
du -sh "$out"
