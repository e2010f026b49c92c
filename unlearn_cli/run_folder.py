"""Run folders that cannot lose work: claimed, marked, committed atomically, and never confused with yours.

A run folder is recognised by its `manifest.json` *marker*: a JSON object with ``"format": "unlearn-cli
run"`` and a `status` (running, finished, failed, interrupted). A folder without that marker is not a run,
whatever files it holds, and nothing in it is ever deleted or moved, `--overwrite` or not. Inside a run
folder, only the entries the toolkit wrote (the marker's `files`, `checkpoint-N` folders and the fixed
names below) are the toolkit's; any other entry stops every operation that would move or delete something.

Lifecycle (`run_folder`):

- **claim**: a new or empty folder is created and marked `running`; a folder holding a run that saved
  nothing (failed or interrupted before its first checkpoint, or killed outright) is taken over without
  `--overwrite`; a finished run, or one with checkpoints, needs `--overwrite` (or `--resume` to continue
  it). Replacing moves the earlier run's entries into ``<folder>.previous`` until the new run finishes.
- **commit**: final outputs are written into a staging folder inside the run folder, moved into place one
  `os.replace` each, and the marker turns `finished` last, so a crash never leaves a half-written model
  that looks complete. The replaced run in ``.previous`` is deleted only then.
- **failure / interruption**: the marker records the status and the reason; checkpoints stay. A run that
  saved nothing while replacing an earlier run gives the earlier run back.
- a ``.previous`` left by a killed process is restored when nothing took its place, and reported (never
  deleted) otherwise.

Commands use the context manager `run_folder(...)`; `plan_run_folder(...)` makes the same checks without
changing anything (for `--dry-run`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import Any

from unlearn_cli.errors import UserError

MANIFEST = "manifest.json"
RUN_FORMAT = "unlearn-cli run"
RUN_FORMAT_VERSION = 1
RECIPE_FILE = "recipe.toml"
LOSS_LOG = "loss_log.jsonl"
EVAL_LOG = "eval_log.jsonl"
EVAL_FOLDER = "eval"
STAGING = ".unlearn-staging"
PREVIOUS_SUFFIX = ".previous"
FIXED_ENTRIES = frozenset({MANIFEST, RECIPE_FILE, LOSS_LOG, EVAL_LOG, STAGING})
"""Entries every run may write, whether or not its marker got to list them (a killed run)."""
CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
_TEMPORARY = re.compile(r"^\..+\.tmp-[A-Za-z0-9_]+$")
EVALUATION_FILE = re.compile(r"^(?P<benchmark>[A-Za-z0-9_.-]+)_(EVAL|SUMMARY|FINGERPRINTS)\.json$")
"""What a benchmark writes, each file whole, before its evaluation folder gets a marker; the toolkit's
own always come with a `<benchmark>_FINGERPRINTS.json` (the reference framework writes none)."""
KEY = "run.output_dir"


class RunStatus(str, Enum):
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def is_main_process() -> bool:
    """Rank 0 of a distributed launch (or a plain single process); decided before any process group exists."""
    return os.environ.get("RANK", "0") == "0"


# --- files with the user's normal permissions, replaced atomically -----------------------------------------


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def normal_permissions(path: Path) -> None:
    """Give `path` (and, for a folder, everything in it) the permissions a plain `open`/`mkdir` would."""
    mask = _umask()
    if path.is_dir():
        for child in [path, *path.rglob("*")]:
            child.chmod((0o777 if child.is_dir() else 0o666) & ~mask)
    else:
        path.chmod(0o666 & ~mask)


def write_atomically(path: Path, text: str) -> Path:
    """Write `text` to `path` through a temporary file and `os.replace`: readers see the old or new file."""
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        Path(temporary).chmod(0o666 & ~_umask())
        os.replace(temporary, path)
    except BaseException:
        with suppress(OSError):
            os.unlink(temporary)
        raise
    return path


def write_json(path: Path, record: dict[str, Any]) -> Path:
    return write_atomically(path, json.dumps(record, indent=2, default=str) + "\n")


# --- what a folder holds -----------------------------------------------------------------------------------


def read_marker(folder: Path) -> dict[str, Any] | None:
    """The run marker of `folder` (its manifest.json), or None when the folder holds no toolkit run."""
    try:
        record = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if isinstance(record, dict) and record.get("format") == RUN_FORMAT and "status" in record:
        return record
    return None


def checkpoint_step(path: Path) -> int | None:
    match = CHECKPOINT.match(path.name)
    return int(match.group(1)) if match else None


def complete_checkpoints(folder: Path) -> list[Path]:
    """`checkpoint-N` folders that finished saving (they hold trainer_state.json), by step."""
    if not folder.is_dir():
        return []
    found = [
        path
        for path in folder.iterdir()
        if path.is_dir() and checkpoint_step(path) is not None and (path / "trainer_state.json").is_file()
    ]
    return sorted(found, key=lambda path: checkpoint_step(path) or 0)


def process_start(pid: int) -> str | None:
    """When process `pid` started (Linux clock ticks since boot), to tell it from a later one with its pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[19]


def _pid_alive(pid: int, started: str | None = None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    except OSError:
        return False
    current = process_start(pid)
    return started is None or current is None or current == started  # else: a recycled pid


@dataclass
class FolderState:
    """What a path holds, as far as runs are concerned."""

    path: Path
    kind: str
    """'absent', 'empty', 'file', 'run' or 'foreign' (a non-empty folder that is not a run)."""
    marker: dict[str, Any] | None = None
    entries: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)
    checkpoints: list[Path] = field(default_factory=list)

    @property
    def status(self) -> str | None:
        return self.marker.get("status") if self.marker else None

    @property
    def alive(self) -> bool | None:
        """For a `running` marker: whether its process still runs (None: on another host, unknowable)."""
        if self.status != RunStatus.RUNNING or self.marker is None:
            return False
        if self.marker.get("host") != socket.gethostname():
            return None
        pid = self.marker.get("pid")
        return _pid_alive(pid, self.marker.get("pid_start")) if isinstance(pid, int) else False

    @property
    def saved_something(self) -> bool:
        return self.status == RunStatus.FINISHED or bool(self.checkpoints)

    def describe(self) -> str:
        """'a finished run (started ...)', 'an interrupted run with checkpoint-12', ..."""
        marker = self.marker or {}
        status = self.status or "unknown"
        started = f", started {marker['started_at']}" if marker.get("started_at") else ""
        command = f"`unlearn {marker['command']}` " if marker.get("command") else ""
        if self.status == RunStatus.RUNNING and self.alive is False:
            status = "killed"  # marked running by a process that no longer exists
        article = "an" if status[0] in "aeiou" else "a"
        text = f"{article} {status} {command}run{started}"
        if self.checkpoints and self.status != RunStatus.FINISHED:
            text += f", with {_checkpoint_list(self.checkpoints)}"
        return text


def _checkpoint_list(checkpoints: list[Path]) -> str:
    names = [path.name for path in checkpoints]
    return names[0] if len(names) == 1 else f"{len(names)} checkpoints (latest {names[-1]})"


def _toolkit_entries(marker: dict[str, Any]) -> set[str]:
    return set(FIXED_ENTRIES) | set(marker.get("files") or ())


def _is_toolkit_entry(name: str, known: set[str]) -> bool:
    return name in known or CHECKPOINT.match(name) is not None or _TEMPORARY.match(name) is not None


def inspect_folder(path: Path) -> FolderState:
    """Read what `path` holds without changing anything."""
    if not path.exists():
        return FolderState(path, "absent")
    if not path.is_dir():
        return FolderState(path, "file")
    try:
        entries = sorted(entry.name for entry in path.iterdir())
    except OSError as exc:
        raise UserError(f"cannot read output folder {path}: {exc.strerror or exc}", key=KEY) from None
    if not entries:
        return FolderState(path, "empty")
    marker = read_marker(path)
    if marker is None:
        return FolderState(path, "foreign", entries=entries, foreign=entries)
    known = _toolkit_entries(marker)
    foreign = [
        name for name in entries if not _is_toolkit_entry(name, known) and not _is_nested_run(path / name)
    ]
    return FolderState(path, "run", marker, entries, foreign, complete_checkpoints(path))


def _is_nested_run(path: Path) -> bool:
    """A folder inside a run that another toolkit command made and holds nothing else (e.g. `unlearn eval`
    writing `<run>/eval`): the toolkit's, so it goes with the run it describes. An `eval/` folder whose
    evaluation was killed before writing its marker counts when it holds only benchmark result files."""
    if not path.is_dir() or path.is_symlink():
        return False
    state = inspect_folder(path)
    if state.kind == "run":
        return not state.foreign
    if path.name != EVAL_FOLDER or state.kind != "foreign":
        return False
    results = [EVALUATION_FILE.match(name) for name in state.entries if not _TEMPORARY.match(name)]
    return all(
        match is not None and f"{match['benchmark']}_FINGERPRINTS.json" in state.entries for match in results
    )


def previous_path(path: Path) -> Path:
    return path.with_name(path.name + PREVIOUS_SUFFIX)


def _listing(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


# --- the decision: may this run use this folder, and how? ---------------------------------------------------


@dataclass
class FolderPlan:
    """What claiming the folder will do; `plan_run_folder` returns it without doing any of it."""

    path: Path
    action: str
    """'create', 'use-empty', 'take-over' (a run that saved nothing), 'replace' or 'resume'."""
    state: FolderState
    checkpoint: Path | None = None
    before_restore: FolderState | None = None
    """What the folder held when an earlier run waits in `.previous` to be given back first."""
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        text = {
            "create": f"a new folder {self.path}",
            "use-empty": f"the empty folder {self.path}",
            "take-over": f"{self.path}, replacing {self.state.describe()} that saved nothing",
            "replace": f"{self.path}, replacing {self.state.describe()} (kept in "
            f"{previous_path(self.path)} until this run finishes)",
            "replace-again": f"{self.path}, replacing {self.state.describe()}",
            "resume": f"{self.path}, resuming from {self.checkpoint.name if self.checkpoint else '?'}",
            "passive": f"{self.path} (written by rank 0)",
        }[self.action]
        return text


def _refuse_foreign(path: Path, names: list[str], doing: str) -> UserError:
    return UserError(
        f"output folder {path} holds {len(names)} entr{'y' if len(names) == 1 else 'ies'} unlearn-cli did "
        f"not write ({_listing(names)}); refusing to {doing}, even with --overwrite: nothing you made is "
        "ever moved or deleted",
        key=KEY,
        hint=f"move your files out of {path}, or choose another folder: {KEY}=path/to/new_folder",
    )


def _refuse_alive(state: FolderState) -> UserError:
    marker = state.marker or {}
    where = f"pid {marker.get('pid')} on {marker.get('host')}"
    if state.alive is None:
        return UserError(
            f"output folder {state.path} is marked as written by a run on another machine ({where}, started "
            f"{marker.get('started_at')}); it may still be running",
            key=KEY,
            hint="if that run is gone (killed without warning), continue it with --resume or start over "
            f"with --overwrite; otherwise choose another folder: {KEY}=path/to/new_folder",
        )
    return UserError(
        f"output folder {state.path} is being written by a run that is still going ({where}, started "
        f"{marker.get('started_at')})",
        key=KEY,
        hint=f"wait for it, stop it (Ctrl-C or kill {marker.get('pid')}), or choose another folder",
    )


def resolve_checkpoint(state: FolderState, resume: str) -> Path:
    """The checkpoint `--resume` names: 'latest', a `checkpoint-N` of the run folder, or a path to one."""
    if resume == "latest":
        if not state.checkpoints:
            raise UserError(
                f"{state.path} holds {state.describe()} but no checkpoint to resume from: it stopped before "
                "its first save",
                key="--resume",
                hint="run again without --resume (a run that saved nothing is replaced without --overwrite); "
                'for runs you may want to resume, save checkpoints: trainer.args.save_strategy = "steps" '
                "and save_steps",
            )
        return state.checkpoints[-1]
    candidate = Path(resume).expanduser()
    if not candidate.is_absolute() and not candidate.exists():
        candidate = state.path / resume
    candidate = candidate.resolve()
    if not (candidate / "trainer_state.json").is_file():
        available = ", ".join(path.name for path in state.checkpoints) or "none"
        raise UserError(
            f"'{resume}' is not a complete checkpoint (a folder with trainer_state.json)",
            key="--resume",
            hint=f"checkpoints of {state.path}: {available}; or pass --resume alone for the latest",
        )
    return candidate


def plan_run_folder(
    output_dir: Path, *, overwrite: bool = False, resume: str | None = None, command: str | None = None
) -> FolderPlan:
    notes: list[str] = []
    try:
        return _plan(Path(output_dir), overwrite, resume, command, notes)
    except UserError as exc:
        exc.notes.extend(note for note in notes if note not in exc.notes)
        raise


def _plan(
    output_dir: Path, overwrite: bool, resume: str | None, command: str | None, notes: list[str]
) -> FolderPlan:
    """Decide how a run may use `output_dir`, or raise the UserError that explains why it may not.

    Ranks other than 0 of a distributed launch get a passive plan: rank 0 decides and writes; the others
    only need the checkpoint to resume from (read before rank 0 changes anything but the marker).
    """
    path = Path(output_dir).expanduser().absolute()
    if not is_main_process():
        state = inspect_folder(path)
        checkpoint = resolve_checkpoint(state, resume) if resume is not None and state.kind == "run" else None
        return FolderPlan(path, "passive", state, checkpoint=checkpoint)
    if path == Path(path.anchor):
        raise UserError(f"{path} cannot be a run folder", key=KEY, hint="choose a folder for this run")
    state = inspect_folder(path)
    if state.kind == "file":
        raise UserError(f"output path {path} exists and is not a folder", key=KEY, hint="choose a folder")
    previous = previous_path(path)
    previous_marker = read_marker(previous) if previous.is_dir() else None
    pending = state.marker is not None and state.marker.get("previous") == str(previous)
    before_restore = None
    if previous_marker is not None:
        live = state.status == RunStatus.RUNNING and state.alive is not False
        took_nothing = state.kind in ("absent", "empty") or (
            state.kind == "run" and not state.saved_something and not live and not state.foreign
        )
        if took_nothing:
            before_restore = state
            notes.append(
                f"{previous} holds an earlier run that a replacing run left there when it stopped without "
                f"saving anything; it goes back into {path} first"
            )
            state = _state_after_restore(path, previous)
            pending = False
        elif not pending:
            notes.append(
                f"{previous} holds an earlier run "
                f"({FolderState(previous, 'run', previous_marker).describe()}) "
                "left there by a replacing run that was killed; it is kept: delete it yourself if you no "
                "longer need it"
            )
    plan = FolderPlan(path, "create", state, before_restore=before_restore, notes=notes)
    if resume is not None:
        return _plan_resume(plan, resume, command)
    if state.kind == "absent":
        return plan
    if state.kind == "empty":
        plan.action = "use-empty"
        return plan
    if state.kind == "foreign":
        if not overwrite:
            raise UserError(
                f"output folder {path} is not empty and holds no unlearn-cli run ({_listing(state.foreign)})",
                key=KEY,
                hint=f"choose a new or empty folder: {KEY}=path/to/new_folder",
            )
        raise _refuse_foreign(path, state.foreign, "replace it")
    if state.status == RunStatus.RUNNING and state.alive is not False:
        raise _refuse_alive(state)
    if state.foreign:
        raise _refuse_foreign(path, state.foreign, "replace the run in it")
    if not state.saved_something:
        plan.action = "take-over"
        return plan
    if not overwrite:
        raise _refuse_existing(state)
    if pending:
        plan.action = "replace-again"
        notes.append(
            f"--overwrite deletes {state.describe()}; the earlier run it was replacing stays in {previous} "
            "until this run finishes"
        )
        return plan
    if (previous.exists() or previous.is_symlink()) and before_restore is None:
        what = "holds no unlearn-cli run" if previous_marker is None else "holds an earlier run (see above)"
        raise UserError(
            f"cannot replace the run in {path}: {previous} already exists and {what}",
            key=KEY,
            hint=f"move or delete {previous} yourself (unlearn-cli never deletes it), or choose another "
            "folder",
        )
    plan.action = "replace"
    return plan


def _state_after_restore(path: Path, previous: Path) -> FolderState:
    """The state `path` will have once `previous` is moved back (for a plan, before anything moves)."""
    state = inspect_folder(previous)
    state.path = path
    state.checkpoints = [path / checkpoint.name for checkpoint in state.checkpoints]
    return state


def _refuse_existing(state: FolderState) -> UserError:
    path = state.path
    if state.status == RunStatus.FINISHED:
        return UserError(
            f"output folder {path} holds {state.describe()}; refusing to overwrite earlier results",
            key=KEY,
            hint=f"pass --overwrite to replace it (it is kept in {previous_path(path)} until the new run "
            f"finishes), or choose another folder: {KEY}=path/to/new_folder",
        )
    return UserError(
        f"output folder {path} holds {state.describe()}",
        key=KEY,
        hint="continue it with --resume (the latest checkpoint; or --resume checkpoint-N), or start over "
        f"with --overwrite (the old run is kept in {previous_path(path)} until the new one finishes)",
    )


def _plan_resume(plan: FolderPlan, resume: str, command: str | None) -> FolderPlan:
    state, path = plan.state, plan.path
    if state.kind != "run":
        what = "no such folder" if state.kind == "absent" else "it holds no unlearn-cli run"
        raise UserError(
            f"there is no run to resume in {path} ({what})",
            key="--resume",
            hint="start the run without --resume, or point run.output_dir at the folder of the run to "
            "continue",
        )
    marker = state.marker or {}
    if command is not None and marker.get("command") not in (None, command):
        raise UserError(
            f"{path} holds a run of `unlearn {marker.get('command')}`, not of `unlearn {command}`",
            key="--resume",
            hint=f"resume it with `unlearn {marker.get('command')} ... --resume`",
        )
    if state.status == RunStatus.FINISHED:
        raise UserError(
            f"{path} holds {state.describe()}: there is nothing to resume",
            key="--resume",
            hint="to train again, pass --overwrite instead of --resume, or choose another folder",
        )
    if state.status == RunStatus.RUNNING and state.alive is True:
        raise _refuse_alive(state)
    if state.status == RunStatus.RUNNING and state.alive is None:
        plan.notes.append(
            f"the folder is marked as written by a run on {marker.get('host')}; resuming assumes that run "
            "is gone"
        )
    if state.foreign:
        plan.notes.append(f"entries unlearn-cli did not write stay untouched: {_listing(state.foreign)}")
    plan.action = "resume"
    plan.checkpoint = resolve_checkpoint(state, resume)
    return plan


# --- the lifecycle -----------------------------------------------------------------------------------------


class RunFolder:
    """A claimed run folder: its marker, staging, commit and the record of how the run ended.

    On ranks other than 0 of a distributed launch it is passive: it knows the path and the checkpoint to
    resume from, and writes nothing.
    """

    def __init__(self, plan: FolderPlan, *, command: str, main: bool) -> None:
        self.plan = plan
        self.path = plan.path
        self.command = command
        self.main = main
        self.marker: dict[str, Any] = {}
        self.committed = False
        self.written: set[str] = set()
        """Names this run put into the folder itself (files it wrote, outputs it moved in)."""
        self.keep_staging = False

    # -- marker --------------------------------------------------------------------------------------------

    @property
    def previous(self) -> Path | None:
        previous = self.marker.get("previous")
        return Path(previous) if previous else None

    @property
    def resume_from(self) -> Path | None:
        return self.plan.checkpoint

    def update(self, **fields: Any) -> None:
        """Merge `fields` into the marker and rewrite it atomically (rank 0 only)."""
        self.marker.update(fields)
        if self.main:
            self.marker["files"] = self._written_entries()
            self.marker["updated_at"] = now()
            write_json(self.path / MANIFEST, self.marker)

    def _written_entries(self) -> list[str]:
        """The folder's entries the toolkit wrote: names it recorded (now or, resumed, before) and those of
        its own kinds (checkpoints, logs, temporary files). Anything else — a file you put in while the run
        was going — stays yours; a run another toolkit command made inside (`eval/`) is recognised by what
        it holds, each time (see `_is_nested_run`)."""
        foreign = set(self.plan.state.foreign)
        known = _toolkit_entries(self.marker) | self.written
        return sorted(
            entry.name
            for entry in self.path.iterdir()
            if entry.name not in foreign and _is_toolkit_entry(entry.name, known)
        )

    def write_text(self, name: str, text: str) -> Path:
        """A toolkit file in the run folder, written atomically (rank 0 only)."""
        target = self.path / name
        if self.main:
            write_atomically(target, text)
            self.written.add(name)
        return target

    def checkpoints(self) -> list[Path]:
        return complete_checkpoints(self.path)

    # -- final outputs -------------------------------------------------------------------------------------

    @property
    def staging(self) -> Path:
        """Where final outputs are written before `commit` moves them into place (same on every rank)."""
        return self.path / STAGING

    def prepare_staging(self) -> Path:
        if self.main:
            shutil.rmtree(self.staging, ignore_errors=True)
            self.staging.mkdir(parents=True)
        return self.staging

    def commit(self, remove: list[str] | None = None, **fields: Any) -> None:
        """Move the staged outputs into the folder, mark the run finished, then delete the run it replaced
        and the entries in `remove`, needed only until now (rank 0 only)."""
        self.committed = True
        if not self.main:
            return
        if self.staging.is_dir():
            normal_permissions(self.staging)
            staged = sorted(self.staging.iterdir())
            taken = sorted(set(self.plan.state.foreign) & {entry.name for entry in staged})
            if taken:
                self.committed, self.keep_staging = False, True
                raise UserError(
                    f"cannot put the outputs into {self.path}: {_listing(taken)} there "
                    f"{'is' if len(taken) == 1 else 'are'} yours and would be replaced; nothing was moved",
                    key=KEY,
                    hint=f"the finished outputs are in {self.staging}: move your {_listing(taken)} out of "
                    f"{self.path}, then move the outputs up into it",
                )
            for entry in staged:
                target = self.path / entry.name
                if target.is_dir() and not target.is_symlink():
                    shutil.rmtree(target)  # a toolkit output folder an earlier crashed commit left
                os.replace(entry, target)
                self.written.add(entry.name)
            self.staging.rmdir()
        self.update(status=RunStatus.FINISHED.value, finished_at=now(), **fields)
        previous = self.previous
        if previous is not None and previous.is_dir() and read_marker(previous) is not None:
            shutil.rmtree(previous)
        self.marker.pop("previous", None)
        known = _toolkit_entries(self.marker)
        for name in remove or []:
            target = self.path / name
            if _is_toolkit_entry(name, known) and target.exists():
                shutil.rmtree(target) if target.is_dir() else target.unlink()
        self.update()

    # -- claiming and ending -------------------------------------------------------------------------------

    def claim(self, record: dict[str, Any]) -> None:
        plan = self.plan
        if not self.main:
            return
        if plan.before_restore is not None:
            if plan.before_restore.kind == "run":
                _remove_toolkit_entries(self.path, plan.before_restore)
            _restore(self.path, previous_path(self.path))
        if plan.action == "resume":
            self.marker = dict(plan.state.marker or {})
            history = list(self.marker.get("resumes") or [])
            history.append({"from": plan.checkpoint.name if plan.checkpoint else None, "at": now()})
            self.marker.pop("error", None)
            self.marker.pop("stopped", None)
            self.update(
                status=RunStatus.RUNNING.value,
                pid=os.getpid(),
                pid_start=process_start(os.getpid()),
                host=socket.gethostname(),
                resumes=history,
            )
            return
        previous = None
        if plan.action in ("take-over", "replace-again"):
            _remove_toolkit_entries(self.path, plan.state)
            if plan.action == "replace-again":
                previous = previous_path(self.path)
        elif plan.action == "replace":
            previous = previous_path(self.path)
            _move_entries(self.path, previous, plan.state.entries)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(
                f"cannot create output folder {self.path}: {exc.strerror or exc}",
                key=KEY,
                hint="choose a folder you can write to",
            ) from None
        self.marker = {
            "format": RUN_FORMAT,
            "format_version": RUN_FORMAT_VERSION,
            "status": RunStatus.RUNNING.value,
            "command": self.command,
            "pid": os.getpid(),
            "pid_start": process_start(os.getpid()),
            "host": socket.gethostname(),
            "started_at": now(),
            **({"previous": str(previous)} if previous else {}),
            **record,
        }
        self.update()

    def end(self, status: RunStatus, **fields: Any) -> list[str]:
        """Record how the run ended; give back a replaced run when this one saved nothing. Returns notes."""
        notes: list[str] = []
        if not self.main:
            return notes
        if not self.keep_staging:
            shutil.rmtree(self.staging, ignore_errors=True)
        self.update(status=status.value, ended_at=now(), **fields)
        checkpoints = self.checkpoints()
        previous = self.previous
        if previous is not None and previous.is_dir() and read_marker(previous) is not None:
            if checkpoints:
                notes.append(
                    f"the run this one was replacing is kept in {previous}; it is deleted when this run "
                    "finishes (e.g. after --resume)"
                )
            else:
                state = inspect_folder(self.path)
                _remove_toolkit_entries(self.path, state)
                _restore(self.path, previous)
                notes.append(f"this run saved nothing; the run it was replacing is back in {self.path}")
        return notes


def _move_entries(source: Path, target: Path, names: list[str]) -> None:
    target.mkdir()
    for name in names:
        os.replace(source / name, target / name)


def _restore(path: Path, previous: Path) -> None:
    """Move an earlier run back from `previous` into `path` (whose toolkit entries are already gone)."""
    path.mkdir(parents=True, exist_ok=True)
    for entry in sorted(previous.iterdir()):
        os.replace(entry, path / entry.name)
    previous.rmdir()


def _remove_toolkit_entries(path: Path, state: FolderState) -> None:
    known = _toolkit_entries(state.marker or {})
    for name in state.entries:
        target = path / name
        if not _is_toolkit_entry(name, known) or not (target.exists() or target.is_symlink()):
            continue
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        else:
            target.unlink()


class RunInterrupted(BaseException):
    """SIGINT or SIGTERM stopped the run; a BaseException like KeyboardInterrupt, so nothing swallows it."""

    def __init__(self, signum: int, message: str = "", *, graceful: bool = False) -> None:
        self.signum = signum
        self.message = message
        self.graceful = graceful
        """Stopped at a step boundary with a checkpoint (else: at once, saving nothing more)."""
        self.notes: list[str] = []
        """What happened to an earlier run this one was replacing (printed after the stop message)."""
        super().__init__(message or f"interrupted by signal {signum}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def _claimed_alike(one: FolderPlan, other: FolderPlan) -> bool:
    """Whether claiming the folder by either plan does the same. A new folder and an empty one are claimed
    alike: the trainer creates its output folder when it is built, between the two plans of a run."""

    def claim(plan: FolderPlan) -> tuple[str, Path | None]:
        return ("create" if plan.action == "use-empty" else plan.action, plan.checkpoint)

    return claim(one) == claim(other)


@contextmanager
def run_folder(
    output_dir: Path,
    *,
    command: str,
    overwrite: bool = False,
    resume: str | None = None,
    record: dict[str, Any] | None = None,
    plan: FolderPlan | None = None,
) -> Iterator[RunFolder]:
    """Claim `output_dir` for one run of `command` and record how it ends.

    The body writes its outputs (checkpoints into the folder, final outputs into `folder.staging`) and
    calls `folder.commit(**results)`. Leaving the body without committing marks the run `failed` (or
    `interrupted` for `RunInterrupted`), keeps its checkpoints, and gives back a run it was replacing when it
    saved nothing. `record` starts the marker (see `outputs.run_record`); `plan` is a `plan_run_folder` result
    made earlier (it is made again here, so the folder cannot have changed in between).
    """
    fresh = plan_run_folder(output_dir, overwrite=overwrite, resume=resume, command=command)
    if plan is not None and fresh.action == "passive":
        fresh = plan
    if plan is not None and not _claimed_alike(fresh, plan):
        raise UserError(
            f"output folder {fresh.path} changed while the run was being set up (another process?)",
            key=KEY,
            hint="run again",
        )
    folder = RunFolder(fresh, command=command, main=is_main_process())
    folder.claim(record or {})
    try:
        yield folder
    except RunInterrupted as stop:
        if not folder.committed:
            stop.notes.extend(
                folder.end(RunStatus.INTERRUPTED, stopped={"signal": stop.signum, "reason": stop.message})
            )
        raise
    except BaseException as exc:
        if not folder.committed:
            reason = exc.render() if isinstance(exc, UserError) else f"{type(exc).__name__}: {exc}"
            notes = folder.end(RunStatus.FAILED, error=reason)
            if isinstance(exc, UserError) and notes:
                exc.notes.extend(notes)
        raise
    if not folder.committed:
        folder.end(RunStatus.FAILED, error="the run ended without saving its outputs")
