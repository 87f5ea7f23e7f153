"""Ray Tune sweeps (`emotion tune`): our own Tuner around the same training function as `emotion train`.

The search-space file is TOML with three tables:

    [train]         fixed `emotion train` arguments, named as its flags without dashes
    [tune]          sweep settings (num_samples, gpus_per_trial, cpus_per_trial, output_dir, grace_period)
    [search_space]  sampled `emotion train` arguments: { loguniform = [lo, hi] }, { uniform = [lo, hi] },
                    { choice = [...] }, { randint = [lo, hi] } (hi exclusive), or a plain value

Every trial validates every epoch, reports validation UAR to Ray with a checkpoint of the model
folder, and ASHA stops the weak ones early. The best checkpoint of all trials is exported as a
model folder that `emotion serve --model` loads.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import structlog
from transformers import TrainerCallback

from emotion_service.tuning.finetune import ARGUMENT_GROUPS, METRIC, EmotionTrainingArguments, parse_dict, run_training

log = structlog.get_logger(__name__)

TUNE_METRIC = f"eval_{METRIC}"
SAMPLERS = ("loguniform", "uniform", "choice", "randint")


@dataclass
class SweepSettings:
    """The [tune] table; command-line flags override it."""

    num_samples: int = 4
    gpus_per_trial: float = 0.0
    cpus_per_trial: float = 1.0
    output_dir: str = "emotion-sweep"
    # ASHA: epochs every trial runs before it may be stopped.
    grace_period: int = 1


@dataclass
class SweepFile:
    """A parsed search-space file."""

    train: dict[str, Any]
    search_space: dict[str, Any]
    settings: SweepSettings = field(default_factory=SweepSettings)


def load_sweep_file(path: Path) -> SweepFile:
    """Reads a search-space TOML file; unknown tables or [tune] keys raise ValueError naming them."""
    document = tomllib.loads(Path(path).read_text())
    unknown = set(document) - {"train", "tune", "search_space"}
    if unknown:
        raise ValueError(
            f"{path}: unknown table(s) {', '.join(sorted(unknown))}; expected [train], [tune], [search_space]"
        )
    known = {f.name for f in fields(SweepSettings)}
    bad = set(document.get("tune", {})) - known
    if bad:
        raise ValueError(f"{path}: unknown [tune] key(s) {', '.join(sorted(bad))}; known: {', '.join(sorted(known))}")
    sweep = SweepFile(
        document.get("train", {}), document.get("search_space", {}), SweepSettings(**document.get("tune", {}))
    )
    if not sweep.search_space:
        raise ValueError(f"{path}: [search_space] is empty")
    # Fail before any trial starts when a key is not an `emotion train` argument. Names only:
    # building TrainingArguments here would check the driver's hardware (bf16 on a GPU-less head).
    arguments = {f.name for group in ARGUMENT_GROUPS for f in fields(group)}
    for table in ("train", "search_space"):
        unknown_keys = set(getattr(sweep, table)) - arguments
        if unknown_keys:
            raise ValueError(
                f"{path}: [{table}] key(s) {', '.join(sorted(unknown_keys))} are not `emotion train` arguments"
            )
    if 0 in (sweep.train.get("val_fraction"), sweep.search_space.get("val_fraction")):
        raise ValueError(f"{path}: val_fraction = 0 leaves trials nothing to be compared on; keep a validation share")
    return sweep


def tune_space(search_space: dict[str, Any]) -> dict[str, Any]:
    """Ray Tune samplers from the file's [search_space] table."""
    from ray import tune

    space: dict[str, Any] = {}
    for key, spec in search_space.items():
        if not isinstance(spec, dict):
            space[key] = spec
            continue
        if len(spec) != 1 or next(iter(spec)) not in SAMPLERS:
            raise ValueError(f"search_space.{key}: expected one of {', '.join(SAMPLERS)}, got {spec!r}")
        kind, values = next(iter(spec.items()))
        space[key] = tune.choice(values) if kind == "choice" else getattr(tune, kind)(*values)
    return space


class ReportToTune(TrainerCallback):
    """Reports each validation to Ray Tune with the model folder as its checkpoint."""

    def on_evaluate(self, args: Any, state: Any, control: Any, metrics: dict[str, float], **kwargs: Any) -> None:
        from ray import tune

        with tempfile.TemporaryDirectory() as folder:
            kwargs["model"].save_pretrained(folder)
            kwargs["processing_class"].save_pretrained(folder)
            tune.report({**metrics, "epoch": state.epoch}, checkpoint=tune.Checkpoint.from_directory(folder))


def _trial(config: dict[str, Any], base: dict[str, Any], cpus: float) -> None:
    """One trial: `emotion train` with the fixed arguments and this trial's sample."""
    import torch
    from ray import tune

    torch.set_num_threads(max(1, int(cpus)))
    values = {**base, **config, "output_dir": str(Path(tune.get_context().get_trial_dir()) / "model")}
    run_training(
        parse_dict(values), command=f"ray tune trial {json.dumps(config, default=str)}", callbacks=[ReportToTune()]
    )


def run_sweep(sweep: SweepFile, address: str | None = None, num_cpus: int | None = None, command: str = "") -> Path:
    """Runs the sweep on local Ray (or the cluster at `address`), prints the results, exports the best model."""
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    settings = sweep.settings
    output = Path(settings.output_dir).resolve()
    base = {"disable_tqdm": True, **sweep.train}
    if "data" in base and Path(base["data"]).exists():
        base["data"] = str(Path(base["data"]).resolve())  # trials run in their own working directories
    epochs = int(base.get("num_train_epochs", EmotionTrainingArguments.num_train_epochs))
    started_here = not ray.is_initialized()
    if started_here:
        if address:
            ray.init(address=address)
        else:
            ray.init(num_cpus=num_cpus, include_dashboard=False)
    try:
        trainable = tune.with_resources(
            tune.with_parameters(_trial, base=base, cpus=settings.cpus_per_trial),
            {"cpu": settings.cpus_per_trial, "gpu": settings.gpus_per_trial},
        )
        tuner = tune.Tuner(
            trainable,
            param_space=tune_space(sweep.search_space),
            tune_config=tune.TuneConfig(
                metric=TUNE_METRIC,
                mode="max",
                num_samples=settings.num_samples,
                # One report per epoch, plus the final evaluation of the best epoch.
                scheduler=ASHAScheduler(
                    time_attr="training_iteration", max_t=epochs + 1, grace_period=settings.grace_period
                ),
            ),
            run_config=tune.RunConfig(
                name="emotion-tune",
                storage_path=str(output / "trials"),
                checkpoint_config=tune.CheckpointConfig(
                    num_to_keep=1, checkpoint_score_attribute=TUNE_METRIC, checkpoint_score_order="max"
                ),
                verbose=1,
            ),
        )
        results = tuner.fit()
        print_results(results, list(sweep.search_space))
        best = results.get_best_result(metric=TUNE_METRIC, mode="max", scope="all")
        checkpoint = best.get_best_checkpoint(TUNE_METRIC, "max")
        if checkpoint is None:
            raise RuntimeError(f"no trial reported a checkpoint; see {output / 'trials'}")
        destination = output / "best-model"
        shutil.rmtree(destination, ignore_errors=True)
        with checkpoint.as_directory() as folder:
            shutil.copytree(folder, destination)
        write_sweep_card(destination, best.config, best.metrics, command)
    finally:
        if started_here:
            ray.shutdown()
    log.info("best_model_exported", output=str(destination), **{TUNE_METRIC: best.metrics.get(TUNE_METRIC)})
    return destination


def print_results(results: Any, keys: list[str]) -> None:
    """One row per trial: its sampled values and its best validation metrics, best first."""
    frame = results.get_dataframe(filter_metric=TUNE_METRIC, filter_mode="max")
    columns = ["trial_id", *[f"config/{key}" for key in keys], "eval_accuracy", TUNE_METRIC, "eval_macro_f1", "epoch"]
    table = frame[[c for c in columns if c in frame]].sort_values(TUNE_METRIC, ascending=False)
    table = table.rename(columns=lambda c: c.removeprefix("config/")).rename(columns={"epoch": "best_epoch"})
    print(table.to_string(index=False))


def write_sweep_card(folder: Path, config: dict[str, Any], metrics: dict[str, Any], command: str) -> Path:
    """README.md of the exported best trial: its hyper-parameters, validation metrics and the command."""
    rows = "\n".join(
        f"| {name} | {metrics[f'eval_{name}']:.4f} |"
        for name in ("accuracy", "uar", "macro_f1")
        if f"eval_{name}" in metrics
    )
    sampled = "\n".join(f"- `{key}` = {value!r}" for key, value in config.items())
    path = folder / "README.md"
    path.write_text(
        f"# Speech emotion classifier: best trial of a Ray Tune sweep\n\nSampled hyper-parameters:\n\n{sampled}\n\n"
        f"## Validation metrics (best epoch)\n\n| metric | value |\n| --- | --- |\n{rows}\n\n"
        f"## Command\n\n```\n{command}\n```\n\nServe it with `emotion serve --model {folder}`.\n"
    )
    return path


def default_address(flag: str | None) -> str | None:
    """--address, else $RAY_ADDRESS, else None (start a local Ray)."""
    return flag or os.environ.get("RAY_ADDRESS") or None
