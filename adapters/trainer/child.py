"""Training in a separate (spawned) process: the trainer's parent never trains.

The child loads the base model, trains one LoRA adapter (from scratch, or from a copy of a
registered adapter: a warm start), writes its folder atomically with
:func:`lsat.adapters.lifecycle.artifacts.save_adapter` — its metadata records the prompt it was
trained with — and sends back the path, sha256 and metrics.
A child that
dies (killed, out of memory) leaves no folder behind (``save_adapter`` renames a complete
staging folder into place) and the parent raises :class:`TrainerChildFailed`.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing as mp
import os
import signal
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from lsat.adapters.lifecycle.adapter_prompt import AdapterPrompt
from lsat.adapters.model.base_model import load_base_model
from lsat.adapters.model.training import TrainConfig, top_layers
from lsat.adapters.trainer.errors import TrainerChildFailed
from lsat.data.types import Sample

__all__ = ["ChildJob", "ChildResult", "InitAdapter", "train_in_child"]

log = logging.getLogger(__name__)

TRAINING_STARTED = "child pid %d: training the %s adapter on %d samples"
"""Log line (stderr) a child writes once its model is loaded and training begins."""


@dataclass(frozen=True)
class InitAdapter:
    """A registered adapter folder to start from (checked against ``sha256`` on load)."""

    path: str
    sha256: str
    key: str = ""


@dataclass(frozen=True)
class ChildJob:
    """Everything the child needs: data, titles, config, prompt, an optional adapter to start
    from, and where to write the adapter."""

    base_model: str
    cache_dir: str
    kind: str
    train: Sequence[Sample]
    validation: Sequence[Sample]
    titles: Mapping[str, str]
    target_dir: str
    config: TrainConfig
    top_layer_count: int | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    prompt: AdapterPrompt = field(default_factory=AdapterPrompt)
    init: InitAdapter | None = None


@dataclass(frozen=True)
class ChildResult:
    """The written adapter folder, its weights' sha256 and training metrics."""

    path: str
    sha256: str
    metrics: dict[str, float]


def run_job(job: ChildJob) -> ChildResult:
    """Train and save (runs inside the child; callable directly for debugging)."""
    import torch

    from lsat.adapters.lifecycle.artifacts import load_adapter, save_adapter
    from lsat.adapters.model.recommender import LoraRecommender

    torch.set_num_threads(max(1, torch.get_num_threads()))
    base = load_base_model(job.base_model, cache_dir=Path(job.cache_dir))
    config = job.config
    if job.top_layer_count is not None:
        total = int(base.model.config.num_hidden_layers)
        config = replace(config, layers=top_layers(min(job.top_layer_count, total), total))
    recommender = LoraRecommender(
        base,
        dict(job.titles),
        item_noun=job.prompt.item_noun,
        prompt_format=job.prompt.prompt_format,
        train_config=config,
        progress=False,
    )
    init_from = None
    if job.init is not None:
        start = load_adapter(Path(job.init.path), expected_sha256=job.init.sha256)
        init_from = "init"
        recommender.set_lora_state(init_from, start.state, start.config)
    log.info(TRAINING_STARTED, os.getpid(), job.kind, len(job.train))
    report = recommender.train_adapter(
        job.kind, job.train, job.validation, config=config, init_from=init_from
    )
    if init_from is not None:
        recommender.delete_adapter(init_from)
    metrics = {
        "train_val_auc": float(report.val_auc),
        "train_steps": float(report.steps),
        "train_samples": float(len(job.train)),
        "train_seconds": float(report.seconds),
        "train_epochs_run": float(report.steps / max(1, -(-len(job.train) // config.batch_size))),
        "train_bf16": float(config.bf16_autocast),
    }
    metrics = {k: v for k, v in metrics.items() if v == v}  # drop NaN (single-class validation)
    metadata = {
        **job.metadata,
        **job.prompt.metadata(),
        "base_model": base.name,
        "kind": job.kind,
        "metrics": metrics,
    }
    if job.init is not None:
        metadata["init_from"] = job.init.key or job.init.path
    _exit_if_orphaned()  # nobody would register the folder
    path = save_adapter(
        Path(job.target_dir),
        recommender.lora_state(job.kind),
        recommender.adapter_config(job.kind),
        metadata,
    )
    sha256 = load_adapter(path).metadata["sha256"]
    return ChildResult(path=str(path), sha256=sha256, metrics=metrics)


_watched_parent: int | None = None
"""In a training child: the trainer's pid (None when :func:`run_job` runs in-process)."""

_PR_SET_PDEATHSIG = 1


def _exit_if_orphaned() -> None:
    """In a training child whose trainer is gone: exit now, writing nothing."""
    if _watched_parent is not None and os.getppid() != _watched_parent:
        os._exit(70)


def _exit_when_orphaned(parent_pid: int, poll_s: float = 0.2) -> None:
    """Kill this child as soon as its parent is gone (a killed trainer must not leave a child
    that still writes an adapter folder nobody will register).

    On Linux the kernel does it (``PR_SET_PDEATHSIG`` = SIGKILL, at the parent's death); a
    watcher thread polling the parent pid is the portable fallback, and :func:`run_job` checks
    once more right before it moves the finished folder into place.
    """
    import threading
    import time

    global _watched_parent
    _watched_parent = parent_pid
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):  # no prctl: the watcher still works
            log.debug("prctl(PR_SET_PDEATHSIG) unavailable")
    _exit_if_orphaned()  # the parent may have died before prctl took effect

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(poll_s)
        os._exit(70)

    threading.Thread(target=watch, name="orphan-watch", daemon=True).start()


def _child_main(job: ChildJob, conn: Any, parent_pid: int) -> None:
    _exit_when_orphaned(parent_pid)
    logging.basicConfig(level=logging.INFO, format="%(name)s %(message)s")  # stderr, inherited
    try:
        conn.send(("ok", run_job(job)))
    except BaseException as exc:
        conn.send(("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))
    finally:
        conn.close()


def train_in_child(
    job: ChildJob, *, on_start: Callable[[int], None] | None = None, poll_s: float = 0.5
) -> ChildResult:
    """Run :func:`run_job` in a spawned process and return its result.

    Raises :class:`TrainerChildFailed` if the child raised or died without answering.
    """
    context = mp.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_child_main, args=(job, sender, os.getpid()), daemon=True)
    process.start()
    sender.close()
    pid = process.pid
    if pid is None:  # start() returned without a process: nothing to wait for
        raise TrainerChildFailed(f"training child for {job.target_dir} did not start")
    log.info("training %s adapter in child pid %d", job.kind, pid)
    if on_start is not None:
        on_start(pid)
    try:
        while not receiver.poll(poll_s):
            if not process.is_alive():
                break
        try:
            status, payload = receiver.recv()
        except (EOFError, OSError):
            process.join(5)
            raise TrainerChildFailed(
                f"training child pid {process.pid} died (exit code {process.exitcode}) "
                f"before answering"
            ) from None
    finally:
        process.join(30)
        if process.is_alive():
            process.kill()
        receiver.close()
    if status != "ok":
        raise TrainerChildFailed(f"training child pid {process.pid} failed: {payload}")
    return payload
