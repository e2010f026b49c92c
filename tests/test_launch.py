"""Launching: packaged accelerate configs, the launch wrappers (interpreter, command, sweeps), the manifest's
launch record, and the rank helpers under a real gloo process group."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from unlearn_cli.launch import accelerate_config_path, launch_record
from unlearn_cli.recipes.loading import packaged_accelerate_config_names

REPO = Path(__file__).resolve().parent.parent
CONFIGS = ["single_gpu", "multi_gpu", "fsdp", "zero2", "zero3", "zero3_offload"]


# --- packaged accelerate configs ---------------------------------------------------------------------------


def test_every_accelerate_config_is_packaged_and_parsed_by_accelerate() -> None:
    from accelerate.commands.config.config_args import load_config_from_file

    assert packaged_accelerate_config_names() == sorted(f"accelerate/{name}" for name in CONFIGS)
    loaded = {name: load_config_from_file(str(accelerate_config_path(name))) for name in CONFIGS}
    assert {name: str(c.distributed_type.value) for name, c in loaded.items()} == {
        "single_gpu": "NO",
        "multi_gpu": "MULTI_GPU",
        "fsdp": "FSDP",
        "zero2": "DEEPSPEED",
        "zero3": "DEEPSPEED",
        "zero3_offload": "DEEPSPEED",
    }
    fsdp = loaded["fsdp"].fsdp_config
    assert fsdp["fsdp_version"] == 2 and fsdp["fsdp_reshard_after_forward"] is True  # full shard
    assert fsdp["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP" and fsdp["fsdp_activation_checkpointing"]
    assert fsdp["fsdp_state_dict_type"] == "FULL_STATE_DICT"
    stages = {name: loaded[name].deepspeed_config for name in ("zero2", "zero3", "zero3_offload")}
    assert [s["zero_stage"] for s in stages.values()] == [2, 3, 3]
    assert (
        stages["zero3_offload"]["offload_optimizer_device"] == stages["zero3_offload"]["offload_param_device"]
    )
    assert stages["zero3_offload"]["offload_param_device"] == "cpu"
    for config in loaded.values():  # precision, batch size and accumulation come from the recipe
        assert config.mixed_precision == "no"
        assert "gradient_accumulation_steps" not in (config.deepspeed_config or {})


def test_recipe_list_shows_the_accelerate_configs_and_cp_copies_one(run_unlearn: Any, tmp_path: Path) -> None:
    listing = run_unlearn("recipe", "list")
    assert listing.code == 0
    assert "accelerate/zero3_offload\t" in listing.stdout  # piped: one plain row per entry
    assert "CPU offload" in listing.stdout  # each config's first comment line describes it
    listed = json.loads(run_unlearn("recipe", "list", "--json").stdout)
    kinds = {entry["name"]: entry["kind"] for entry in listed}
    assert kinds["accelerate/fsdp"] == "accelerate config" and kinds["tofu_unlearn/NPO"] == "recipe"
    copied = run_unlearn("recipe", "cp", "accelerate/fsdp", str(tmp_path))
    assert (
        copied.code == 0
        and (tmp_path / "fsdp.yaml").read_text() == accelerate_config_path("fsdp").read_text()
    )
    short = run_unlearn("recipe", "cp", "zero3", str(tmp_path / "mine.yaml"))
    assert short.code == 0 and (tmp_path / "mine.yaml").is_file()


def test_an_unknown_accelerate_config_suggests_the_close_one() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "unlearn_cli.launch", "plan", "zer3"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2 and "did you mean 'zero3'" in proc.stderr


# --- the manifest's launch record ---------------------------------------------------------------------------


def test_the_launch_record_counts_nodes_and_keeps_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    config = accelerate_config_path("zero3")
    monkeypatch.setenv("WORLD_SIZE", "16")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "8")
    monkeypatch.setenv("LOCAL_RANK", "3")
    monkeypatch.setenv("UNLEARN_ACCELERATE_CONFIG", str(config))
    launch = launch_record()["launch"]
    assert (launch["world_size"], launch["num_nodes"], launch["processes_per_node"]) == (16, 2, 8)
    assert launch["launcher"] == "accelerate launch"
    assert launch["accelerate_config"]["path"] == str(config)
    assert launch["accelerate_config"]["settings"]["deepspeed_config"]["zero_stage"] == 3


def test_a_plain_process_is_recorded_as_one(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("WORLD_SIZE", "LOCAL_WORLD_SIZE", "LOCAL_RANK", "UNLEARN_ACCELERATE_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    launch = launch_record()["launch"]
    assert launch == {
        "world_size": 1,
        "num_nodes": 1,
        "processes_per_node": 1,
        "launcher": "single process",
        "accelerate_config": None,
    }


# --- the wrappers -------------------------------------------------------------------------------------------


def _wrapper(
    script: str, *args: str, path: str = "/usr/bin:/bin", **env: str
) -> subprocess.CompletedProcess[str]:
    """Run scripts/<script> with a PATH that holds no Python of this project."""
    base = {k: v for k, v in os.environ.items() if k not in ("PATH", "VIRTUAL_ENV", "UNLEARN_PYTHON")}
    base["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return subprocess.run(
        ["bash", str(REPO / "scripts" / script), *args],
        capture_output=True,
        text=True,
        env={**base, "PATH": path, "NO_COLOR": "1", **env},
        timeout=600,
        check=False,
    )


def test_without_an_installed_toolkit_in_sight_the_wrapper_says_how_to_point_to_one(tmp_path: Path) -> None:
    import shutil

    shutil.copytree(REPO / "scripts", tmp_path / "scripts")  # no .venv next to this copy
    proc = subprocess.run(
        ["bash", str(tmp_path / "scripts" / "finetune.sh"), "quickstart/finetune"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "DRY_RUN": "1"},
        check=False,
    )
    assert proc.returncode == 2
    assert (
        "cannot find the Python that has unlearn-cli installed" in proc.stderr
        and "UNLEARN_PYTHON" in proc.stderr
    )


@pytest.mark.slow
def test_the_wrapper_runs_the_interpreter_of_the_unlearn_command_not_the_first_python(tmp_path: Path) -> None:
    """`unlearn` found on PATH names its interpreter; a `python` earlier on PATH is never used."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "unlearn").write_text(f"#!{sys.executable}\nfrom unlearn_cli.cli import main\nmain()\n")
    (bin_dir / "python").write_text("#!/bin/sh\necho 'the wrong python' >&2; exit 97\n")
    for name in ("unlearn", "python"):
        (bin_dir / name).chmod(0o755)
    output_dir = tmp_path / "out"
    proc = _wrapper(
        "finetune.sh",
        "quickstart/finetune",
        f"run.output_dir={output_dir}",
        path=f"{bin_dir}:/usr/bin:/bin",
        DRY_RUN="1",
        NUM_PROCESSES="2",
    )
    assert proc.returncode == 0, proc.stderr
    assert "would train into" in proc.stdout  # the recipe was checked once, before any launch
    command = proc.stdout.split("would run: ", 1)[1].split()
    assert command[:3] == [sys.executable, "-m", "accelerate.commands.launch"]
    assert command[command.index("--num_processes") + 1] == "2" and "--multi_gpu" in command
    assert int(command[command.index("--main_process_port") + 1]) > 0
    assert command[-4:] == ["unlearn_cli.cli", "train", "quickstart/finetune", f"run.output_dir={output_dir}"]
    assert not output_dir.exists()

    zero3 = _wrapper(
        "finetune.sh",
        "quickstart/finetune",
        UNLEARN_PYTHON=sys.executable,
        DRY_RUN="1",
        ACCELERATE_CONFIG="zero3",
    )
    assert zero3.returncode == 0, zero3.stderr
    command = zero3.stdout.split("would run: ", 1)[1].split()
    assert command[command.index("--config_file") + 1] == str(accelerate_config_path("zero3"))
    assert "--multi_gpu" not in command


@pytest.mark.slow
def test_a_sweep_stops_at_the_first_failure_or_runs_on_with_a_summary(tmp_path: Path) -> None:
    sweep = ["quickstart/unlearn", "finetuned_model=builtin://tiny-llama", "trainer.handler={method}"]
    sweep.append("~trainer.method_args")
    common = {
        "UNLEARN_PYTHON": sys.executable,
        "DRY_RUN": "1",
        "FORGET_SPLITS": "forget05",
        "OUTPUT_ROOT": "sweep",
    }
    stopped = _wrapper("unlearn.sh", *sweep, METHODS="Bogus GradDiff", **common)
    assert stopped.returncode == 1
    assert "unknown trainer handler 'Bogus'" in stopped.stderr
    assert "0 ok, 1 failed, 1 not run (of 2)" in stopped.stderr and "would run" not in stopped.stdout

    went_on = _wrapper("unlearn.sh", *sweep, METHODS="Bogus GradDiff", ON_FAILURE="continue", **common)
    assert went_on.returncode == 1
    assert "1 ok, 1 failed, 0 not run (of 2)" in went_on.stderr
    summary = went_on.stderr.split("=== summary")[1]
    assert "FAILED" in summary and "Bogus/forget05 (exit 2)" in summary and "GradDiff/forget05" in summary
    command = went_on.stdout.split("would run: ", 1)[1]
    assert "trainer.handler=GradDiff" in command
    assert "forget_split=forget05 retain_split=retain95" in command  # TOFU's pairing
    assert "run.output_dir=sweep/GradDiff/forget05" in command


def test_a_sweep_over_methods_needs_a_place_for_them(tmp_path: Path) -> None:
    proc = _wrapper("unlearn.sh", "quickstart/unlearn", UNLEARN_PYTHON=sys.executable, METHODS="NPO GradDiff")
    assert proc.returncode == 2 and "no argument holds {method}" in proc.stderr


@pytest.mark.parametrize(
    "script",
    [
        "finetune.sh",
        "unlearn.sh",
        "eval.sh",
        "train.sh",
        "build_wheels.sh",
        "gpu_check.sh",
        "slurm/multinode.sbatch",
    ],
)
def test_the_scripts_are_valid_bash(script: str) -> None:
    proc = subprocess.run(
        ["bash", "-n", str(REPO / "scripts" / script)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr


# --- rank helpers under a real process group ----------------------------------------------------------------

RANKS_SCRIPT = """
import json, os, sys, time
import torch, torch.distributed as dist
from unlearn_cli.distributed import prepared_once, share_across_ranks

rank, world, port, log = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=port, LOCAL_RANK=sys.argv[5])
dist.init_process_group("gloo", rank=rank, world_size=world)
with prepared_once():
    started = time.time()
    time.sleep(0.5)
    with open(log, "a") as f:
        f.write(json.dumps({"rank": rank, "start": started, "end": time.time()}) + "\\n")
asked = []
def compute(indices):
    asked.append(list(indices))
    return {("part",): torch.tensor(indices, dtype=torch.float) * 10}
shared = share_across_ranks(5, compute)
print(json.dumps({"asked": asked, "shared": shared[("part",)].tolist()}))
dist.destroy_process_group()
"""


def test_ranks_prepare_in_turn_and_share_an_even_split(tmp_path: Path) -> None:
    """Three ranks on two 'nodes' (local ranks 0, 1 | 0): rank 0 first, then node two's first rank, then the
    rest; five items split 2/2/1 (the last share padded), all five on every rank."""
    from unlearn_cli.launch import free_port

    script, log = tmp_path / "ranks.py", tmp_path / "log.jsonl"
    script.write_text(RANKS_SCRIPT)
    port = str(free_port())
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(rank), "3", port, str(log), local],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for rank, local in ((0, "0"), (1, "1"), (2, "0"))
    ]
    deadline = time.time() + 300
    outputs = [p.communicate(timeout=max(deadline - time.time(), 1)) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-2000:] for _, err in outputs]
    turns = sorted((json.loads(line) for line in log.read_text().splitlines()), key=lambda t: t["start"])
    assert [t["rank"] for t in turns] == [0, 2, 1]
    assert all(earlier["end"] <= later["start"] for earlier, later in itertools.pairwise(turns))
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    assert [r["asked"] for r in results] == [[[0, 1]], [[2, 3]], [[4, 4]]]
    assert all(r["shared"] == [0.0, 10.0, 20.0, 30.0, 40.0] for r in results)


def test_a_merge_after_a_zero3_run_loads_its_model_whole() -> None:
    """Under ZeRO-3 every load is partitioned (a collective); rank 0 merging alone must load whole."""
    from transformers.integrations import deepspeed as hf_deepspeed

    from unlearn_cli.distributed import loading_whole, zero3_enabled

    class Zero3Config:  # what TrainingArguments registers under a ZeRO-3 launch, as transformers reads it
        def is_zero3(self) -> bool:
            return True

    config = Zero3Config()
    hf_deepspeed.set_hf_deepspeed_config(config)
    try:
        assert zero3_enabled()
        with loading_whole():
            assert not zero3_enabled()
        assert zero3_enabled()
    finally:
        hf_deepspeed.unset_hf_deepspeed_config()
    assert not zero3_enabled()
