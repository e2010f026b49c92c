"""Commands that only read recipes or the catalogue must not import torch, transformers or datasets."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

HEAVY = ("torch", "transformers", "datasets", "accelerate")

SCRIPT = f"""
import json, sys
args = json.loads(sys.argv[1])
sys.argv = ["unlearn", *args]
from unlearn_cli.cli import main
try:
    main()
    code = 0
except SystemExit as exc:
    code = exc.code
heavy = sorted(name for name in {HEAVY!r} if name in sys.modules)
print("\\nRESULT " + json.dumps({{"code": code, "heavy": heavy}}))
"""


def run_and_report(args: list[str]) -> tuple[dict[str, object], str]:
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**{k: v for k, v in os.environ.items() if k != "FORCE_COLOR"}, "COLUMNS": "200"},
    )
    marker = proc.stdout.rfind("RESULT ")
    assert marker != -1, proc.stderr
    return json.loads(proc.stdout[marker + len("RESULT ") :]), proc.stdout[:marker]


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        (["--help"], "registry"),
        (["registry", "list"], "finetune"),
        (["registry", "list", "--kind", "dataset"], "dataset\tQADataset\tunlearn_cli.data.qa:QADataset"),
        (["registry", "list", "--kind", "dataset", "--json"], '"name": "QADataset"'),
        (["recipe", "list", "--json"], '"name": "tofu_finetune"'),
        (["recipe", "list"], "tofu_finetune"),
        (["recipe", "show", "tofu_finetune"], 'handler = "finetune"'),
        (["recipe", "validate", "--help"], "overrides"),
    ],
)
def test_light_commands_do_not_import_heavy_libraries(args: list[str], shown: str) -> None:
    report, output = run_and_report(args)
    assert report == {"code": 0, "heavy": []}, output
    assert shown in output


def test_the_probe_sees_a_heavy_import() -> None:
    # any importable module can be named as a plugin, so this run must import torch: proves the probe works
    report, _ = run_and_report(["registry", "list", "--plugin", "torch"])
    assert report["code"] == 0
    assert "torch" in report["heavy"]  # type: ignore[operator]
