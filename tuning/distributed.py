"""Data-parallel `emotion train --num_workers N` on Ray Train: the same Trainer run on N workers.

Ray Train's ``TorchTrainer`` starts N workers (one process each, on any node of the cluster),
sets up torch.distributed between them (gloo on CPUs, NCCL on GPUs) and runs :func:`_worker`
on each. A worker is a plain `emotion train` run (:func:`run_training`) with Ray's Hugging Face
hook ``prepare_trainer`` and :class:`ReportCheckpoints`, which hands every Trainer checkpoint to
Ray, stored under ``--storage_path`` (a folder every node can read: a shared file system or a
bucket on a real cluster). The Trainer shards batches with its
distributed sampler, so the global batch is ``per_device_train_batch_size`` x N.

When a worker dies, Ray restarts the whole group (up to ``--max_failures`` times) and each worker
resumes from the last reported checkpoint: weights, optimiser, schedule and data position.
At the end the driver exports the model folder from the final (or best) checkpoint, so the folder
is the same as a single-process run's, wherever rank 0 ran.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import structlog
from transformers import TrainerCallback
from transformers.trainer_utils import get_last_checkpoint

from emotion_service.tuning.finetune import METRIC, Arguments, parse_args, prepare_corpus, write_model_card

log = structlog.get_logger(__name__)

# What a model folder needs from a Trainer checkpoint (the rest is optimiser and RNG state).
MODEL_FILES = ("config.json", "model.safetensors", "preprocessor_config.json")
# A file each worker appends a line to when it starts (rank, pid, checkpoint resumed from): for
# tests and operators following restarts. Like every EMOTION_* variable, it reaches the workers.
ATTEMPT_LOG_ENV = "EMOTION_TRAIN_ATTEMPT_LOG"


def run_distributed(argv: list[str], command: str, address: str | None) -> dict[str, float]:
    """Trains with ``--num_workers`` Ray workers; returns the exported checkpoint's metrics."""
    import ray
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    arguments = parse_args(argv)
    _, data_args, training_args = arguments
    output = Path(training_args.output_dir).resolve()
    storage = training_args.storage_path or str(output / "ray")
    if "://" not in storage:  # a bucket URI stays as it is; a folder must mean the same on every node
        storage = str(Path(storage).resolve())
    validated = data_args.val_fraction > 0
    started_here = not ray.is_initialized()
    if started_here and address:
        ray.init(address=address)
    elif started_here:
        ray.init(include_dashboard=False)
    try:
        trainer = TorchTrainer(
            _worker,
            train_loop_config={"argv": _worker_argv(argv, training_args.use_gpu), "command": command},
            scaling_config=ScalingConfig(
                num_workers=training_args.num_workers,
                use_gpu=training_args.use_gpu,
                resources_per_worker={"CPU": training_args.cpus_per_worker},
            ),
            run_config=RunConfig(
                name=output.name,
                storage_path=storage,
                # Workers on other nodes do not inherit this shell: hand them the project's settings
                # (plugins and their configuration are EMOTION_* variables).
                worker_runtime_env={"env_vars": {k: v for k, v in os.environ.items() if k.startswith("EMOTION_")}},
                failure_config=FailureConfig(max_failures=training_args.max_failures),
                checkpoint_config=CheckpointConfig(
                    num_to_keep=2,
                    checkpoint_score_attribute=f"eval_{METRIC}" if validated else None,
                    checkpoint_score_order="max",
                ),
            ),
        )
        result = trainer.fit()
    finally:
        if started_here:
            ray.shutdown()
    checkpoint = result.checkpoint
    if validated and result.best_checkpoints:
        checkpoint = max(result.best_checkpoints, key=lambda pair: pair[1].get(f"eval_{METRIC}", float("-inf")))[0]
    if checkpoint is None:
        raise RuntimeError(f"distributed training reported no checkpoint (see {storage})")
    metrics = {k: v for k, v in (result.metrics or {}).items() if isinstance(v, float)}
    _export(checkpoint, output, arguments, command, metrics)
    return metrics


def _export(checkpoint: Any, output: Path, arguments: Arguments, command: str, metrics: dict[str, float]) -> None:
    """The model folder from a Ray checkpoint, with the model card of a single-process run."""
    model_args, data_args, training_args = arguments
    output.mkdir(parents=True, exist_ok=True)
    with checkpoint.as_directory() as folder:
        source = Path(folder) / "checkpoint"
        for name in MODEL_FILES:
            if (source / name).is_file():
                shutil.copy2(source / name, output / name)
    labels = [label.strip() for label in model_args.labels.split(",") if label.strip()]
    corpus = prepare_corpus(data_args, labels, training_args.seed)
    write_model_card(output, metrics, command, arguments, corpus)
    log.info("exported", output=str(output), workers=training_args.num_workers)


def _worker(config: dict[str, Any]) -> None:
    """One Ray Train worker: `emotion train` with Ray's checkpoint reporting, resuming when Ray restarts it."""
    import ray.train
    from ray.train.huggingface.transformers import prepare_trainer

    from emotion_service.tuning.finetune import run_training

    context = ray.train.get_context()
    checkpoint = ray.train.get_checkpoint()
    attempt_log = os.environ.get(ATTEMPT_LOG_ENV)
    with checkpoint.as_directory() if checkpoint else _NoCheckpoint() as folder:
        resume = str(Path(folder) / "checkpoint") if folder else None
        if attempt_log:
            with open(attempt_log, "a") as handle:
                handle.write(f"rank={context.get_world_rank()} pid={os.getpid()} resume={resume}\n")
        run_training(
            parse_args(config["argv"]),
            config["command"],
            callbacks=[ReportCheckpoints()],
            prepare=prepare_trainer,
            resume_from=resume,
            export=False,
        )


class ReportCheckpoints(TrainerCallback):
    """Hands each Trainer checkpoint to Ray: copied by rank 0 alone, once every rank has saved.

    Ray's own ``RayTrainReportCallback`` copies ``output_dir``'s last checkpoint on every rank and
    Ray merges the copies into one folder. Ranks on one node share ``output_dir``, and the Trainer
    does not wait for rank 0 to finish writing before the others' ``on_save``: a copy taken
    half-way overwrote the whole ``config.json`` with an empty one, and a worker killed later
    resumed from it and failed ("Expecting value: line 1 column 1"). Here every rank first waits
    for all to have saved (rank 0 the model, each its RNG state), then rank 0 reports the
    checkpoint and the others report the metrics alone (Ray wants every rank to report).
    """

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        import ray.train
        import torch.distributed as dist
        from ray.train import Checkpoint

        if dist.is_available() and dist.is_initialized():
            dist.barrier()
        metrics: dict[str, Any] = {}
        for entry in state.log_history:
            metrics.update(entry)
        source = get_last_checkpoint(args.output_dir) if ray.train.get_context().get_world_rank() == 0 else None
        if source is None:
            ray.train.report(metrics=metrics)
            return
        with tempfile.TemporaryDirectory() as folder:
            shutil.copytree(source, Path(folder) / "checkpoint")
            ray.train.report(metrics=metrics, checkpoint=Checkpoint.from_directory(folder))


class _NoCheckpoint:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _worker_argv(argv: list[str], use_gpu: bool) -> list[str]:
    """The flags as a worker needs them.

    ``--data`` and ``--output_dir`` made absolute (Ray workers run in their own working
    directories), and ``--use_cpu true`` without GPUs: otherwise the Trainer, seeing no GPU, sets
    up no distributed state over the gloo group Ray made, and each worker trains alone on all the data.
    """
    out = list(argv) + ([] if use_gpu else ["--use_cpu", "true"])
    for flag in ("--data", "--output_dir"):
        if flag in out and out.index(flag) + 1 < len(out):
            at = out.index(flag) + 1
            out[at] = str(Path(out[at]).resolve())
    return out
