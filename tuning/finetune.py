"""Fine-tuning with the Hugging Face Trainer: the function behind `emotion train` and every sweep trial.

A run loads a corpus, maps its labels onto the model's, splits it by speaker, fine-tunes a
pretrained checkpoint (or a config from scratch) with a named freezing policy, class weights
and the plugins' ``augment`` hooks, and exports a model folder that `emotion serve` loads as it is.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import structlog
import torch
from sklearn.utils.class_weight import compute_class_weight
from transformers import (
    AutoConfig,
    AutoFeatureExtractor,
    AutoModelForAudioClassification,
    EvalPrediction,
    HfArgumentParser,
    PreTrainedModel,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    set_seed,
)

import emotion_service.architectures  # noqa: F401  (a --model folder may hold one of the project's architectures)
from emotion_service.audio import load_audio
from emotion_service.tuning.datasets import (
    LABELS6,
    Example,
    load_dataset,
    map_labels,
    parse_label_map,
    parse_speakers,
    split_by_speaker,
    train_val_split,
)
from emotion_service.tuning.metrics import compute_metrics
from emotion_service.tuning.modeling import SCRATCH_ARCHITECTURES, build_from_scratch, label_fields

log = structlog.get_logger(__name__)

METRIC = "uar"  # what picks the best epoch and the best trial: robust to class imbalance


@dataclass
class ModelArguments:
    """Which model to start from and which of its parameters train."""

    model: str | None = field(
        default=None,
        metadata={"help": "Hub id or folder to fine-tune, e.g. facebook/hubert-base-ls960 (its head is replaced)."},
    )
    from_scratch: bool = field(
        default=False,
        metadata={"help": "Random initialisation: the --model's config if given, else the built-in --architecture."},
    )
    architecture: str = field(
        default="logmel-cnn",
        metadata={
            "choices": list(SCRATCH_ARCHITECTURES),
            "help": "With --from_scratch and no --model: logmel-cnn (four conv blocks over log-mel filterbanks, "
            "the bundled model's), conformer-small (log-mel conformer) or hubert-small (HuBERT on the raw waveform).",
        },
    )
    config_overrides: str | None = field(
        default=None, metadata={"help": "JSON object of config fields to change, e.g. '{\"hidden_size\": 64}'."}
    )
    feature_overrides: str | None = field(
        default=None,
        metadata={
            "help": "JSON object of feature-extractor settings to change, saved in the model folder's "
            'preprocessor_config.json, e.g. \'{"voiced_threshold_db": 35, "normalize_level": true}\' '
            "(see LogMelFeatureExtractor)."
        },
    )
    labels: str = field(default=",".join(LABELS6), metadata={"help": "Comma-separated label set of the model."})
    freeze: Literal["auto", "feature-encoder", "top-n", "none"] = field(
        default="auto",
        metadata={
            "help": "feature-encoder: freeze the conv front end; top-n: also freeze all transformer "
            "layers but the top --trainable_layers; none: train everything; auto: none from scratch, "
            "else feature-encoder where the model has one."
        },
    )
    trainable_layers: int = field(
        default=2, metadata={"help": "With --freeze top-n: how many top transformer layers train."}
    )


@dataclass
class DataArguments:
    """Which corpus, which labels and which speakers."""

    data: str = field(metadata={"help": "Corpus folder, or the CSV manifest with --dataset csv."})
    dataset: Literal["ravdess", "emodb", "cremad", "csv"] = field(
        default="ravdess", metadata={"help": "Loader of the corpus (csv: columns path,label,speaker)."}
    )
    label_map: str | None = field(
        default=None,
        metadata={
            "help": "Corpus-to-model labels, e.g. 'angry=ANG,sad=SAD'; other labels outside the set are skipped."
        },
    )
    exclude_speakers: str | None = field(
        default=None,
        metadata={"help": "Speakers never trained or validated on, e.g. 19-24 (RAVDESS test actors) or 1001,1002."},
    )
    val_fraction: float = field(
        default=0.2,
        metadata={
            "help": "Share of speakers held out for validation; 0: train on every speaker, validate nothing "
            "and export the last epoch (the final fit once a recipe is chosen)."
        },
    )
    random_split: bool = field(
        default=False, metadata={"help": "Split clips at random instead of by speaker (speakers leak; not comparable)."}
    )


@dataclass
class EmotionTrainingArguments(TrainingArguments):
    """Trainer arguments with this project's defaults, plus augmentation, class weights and resume."""

    output_dir: str = field(
        default="emotion-model", metadata={"help": "Model folder to export (checkpoints go inside)."}
    )
    eval_strategy: str = field(default="epoch", metadata={"help": "When to validate: epoch, steps or no."})
    save_strategy: str = field(default="epoch", metadata={"help": "When to checkpoint: epoch, steps or no."})
    logging_strategy: str = field(default="epoch", metadata={"help": "When to log: epoch, steps or no."})
    load_best_model_at_end: bool = field(
        default=True, metadata={"help": "Export the epoch with the best validation UAR."}
    )
    metric_for_best_model: str = field(
        default=METRIC, metadata={"help": "Validation metric that picks the best epoch."}
    )
    save_total_limit: int = field(default=2, metadata={"help": "Checkpoints kept (the best one is always kept)."})
    # Checkpoints without an attention mask (hubert-base) change their answers under padding.
    per_device_eval_batch_size: int = field(
        default=1, metadata={"help": "Validation batch size (1 scores as the server)."}
    )
    report_to: list[str] = field(
        default_factory=lambda: ["tensorboard"],
        metadata={"help": "Loggers: tensorboard, wandb (when installed) or none."},
    )
    remove_unused_columns: bool = field(default=False, metadata={"help": "Keep every column of the clip dataset."})
    # Pinning only speeds copies to a GPU; on a CPU-only machine torch warns about it every epoch.
    dataloader_pin_memory: bool = field(
        default=torch.cuda.is_available(),
        metadata={"help": "Pin batches in host memory for faster GPU copies [default: on when CUDA is available]."},
    )
    augment_probability: float = field(
        default=0.5, metadata={"help": "Share of training clips passed through the plugins' augment hooks."}
    )
    max_seconds: float = field(default=6.0, metadata={"help": "Training clips longer than this are randomly cropped."})
    teacher: Literal["none", "speaker-encoder"] = field(
        default="none",
        metadata={
            "help": "speaker-encoder: distil from a linear probe on resemblyzer's pretrained speaker embeddings of "
            "the clean training clips, out of fold by speaker (training only; the exported model is unchanged in "
            "kind and cost). Needs the resemblyzer wheel."
        },
    )
    distillation_weight: float = field(
        default=0.5,
        metadata={
            "help": "With --teacher: share of the loss given to the teacher's soft labels (the rest: the labels)."
        },
    )
    class_weights: Literal["balanced", "none"] = field(
        default="balanced", metadata={"help": "balanced: weight the loss by inverse class frequency."}
    )
    resume: bool = field(default=False, metadata={"help": "Resume from the last checkpoint in --output_dir."})
    num_workers: int = field(
        default=0,
        metadata={
            "help": "Ray Train workers for data-parallel training (global batch = per-device batch x workers), on "
            "the local Ray or the cluster at --address / RAY_ADDRESS; 0: one process, no Ray."
        },
    )
    use_gpu: bool = field(default=False, metadata={"help": "With --num_workers: one GPU per worker (NCCL)."})
    cpus_per_worker: float = field(default=1.0, metadata={"help": "With --num_workers: CPUs Ray reserves per worker."})
    address: str | None = field(
        default=None,
        metadata={"help": "With --num_workers: Ray cluster address [default: $RAY_ADDRESS, else a local Ray]."},
    )
    storage_path: str | None = field(
        default=None,
        metadata={
            "help": "With --num_workers: where Ray keeps checkpoints, readable by every node (shared folder or "
            "bucket URI) [default: OUTPUT_DIR/ray]."
        },
    )
    max_failures: int = field(
        default=3, metadata={"help": "With --num_workers: restarts from the last checkpoint after a worker dies."}
    )

    def __post_init__(self) -> None:
        # Checked here rather than in the parser, so a Ray Tune sweep's config (parse_dict) fails as a flag does.
        for name in ("augment_probability", "distillation_weight"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"--{name} must lie in [0, 1], not {getattr(self, name)}")
        if self.max_seconds <= 0:
            raise ValueError(f"--max_seconds must be positive, not {self.max_seconds}")
        super().__post_init__()


ARGUMENT_GROUPS = (ModelArguments, DataArguments, EmotionTrainingArguments)
Arguments = tuple[ModelArguments, DataArguments, EmotionTrainingArguments]


def argument_parser() -> HfArgumentParser:
    """The parser of `emotion train` (every flag has help text)."""
    return HfArgumentParser(
        ARGUMENT_GROUPS,
        prog="emotion train",
        # A mistyped flag must fail, not silently set the flag it abbreviates.
        allow_abbrev=False,
        description="Fine-tune an audio classifier with the Hugging Face Trainer and export a servable model folder.",
    )


def parse_args(argv: Sequence[str]) -> Arguments:
    """Parses `emotion train` flags; an unknown flag exits at once with its name."""
    parser = argument_parser()
    try:
        *groups, unknown = parser.parse_args_into_dataclasses(args=list(argv), return_remaining_strings=True)
    except ValueError as exc:  # a value the argument dataclasses refuse, named in the message
        parser.error(str(exc))
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    training = groups[-1]
    if training.teacher == "speaker-encoder":
        from emotion_service.speaker_encoder import encoder_weights

        try:
            encoder_weights()
        except ValueError as exc:
            parser.error(str(exc))
    return tuple(groups)  # type: ignore[return-value]


def parse_dict(values: dict[str, Any]) -> Arguments:
    """Arguments from flag names without dashes (a sweep's config); an unknown key raises ValueError."""
    return argument_parser().parse_dict(values)  # type: ignore[return-value]


class ClipDataset(torch.utils.data.Dataset):
    """Decoded clips and label ids; training sets crop and augment with a generator seeded per epoch and clip."""

    def __init__(
        self,
        waves: Sequence[np.ndarray],
        label_ids: Sequence[int],
        augment: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None,
        augment_probability: float = 0.0,
        max_samples: int | None = None,
        seed: int = 0,
        soft_labels: np.ndarray | None = None,
    ) -> None:
        self.waves, self.label_ids = list(waves), list(label_ids)
        self.soft_labels = soft_labels  # a teacher's probabilities per clip (--teacher), or None
        self.augment, self.augment_probability = augment, augment_probability
        self.max_samples, self.seed = max_samples, seed
        self.epoch = 0  # set by EpochCallback, so each epoch draws new augmentations reproducibly

    def __len__(self) -> int:
        return len(self.waves)

    def __getitem__(self, index: int) -> dict[str, Any]:
        wave = self.waves[index]
        if self.augment is not None:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            if rng.random() < self.augment_probability:
                wave = self.augment(wave, rng)
            if self.max_samples and len(wave) > self.max_samples:
                start = int(rng.integers(0, len(wave) - self.max_samples + 1))
                wave = wave[start : start + self.max_samples]
        item = {"input_values": wave, "labels": self.label_ids[index]}
        if self.soft_labels is not None:
            item["soft_labels"] = self.soft_labels[index]
        return item


@dataclass
class Collator:
    """Pads a batch exactly as the server does (feature extractor with an attention mask)."""

    feature_extractor: Any

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch = self.feature_extractor(
            [f["input_values"] for f in features],
            sampling_rate=self.feature_extractor.sampling_rate,
            padding=True,
            return_tensors="pt",
            return_attention_mask=True,
        )
        batch["labels"] = torch.tensor([f["labels"] for f in features])
        if "soft_labels" in features[0]:
            batch["soft_labels"] = torch.from_numpy(np.stack([f["soft_labels"] for f in features]))
        return dict(batch)


class EpochCallback(TrainerCallback):
    """Tells the training set which epoch runs, for its per-epoch augmentation seeds."""

    def __init__(self, dataset: ClipDataset) -> None:
        self.dataset = dataset

    def on_epoch_begin(self, args: TrainingArguments, state: Any, control: Any, **kwargs: Any) -> None:
        self.dataset.epoch = int(state.epoch or 0)


class WeightedTrainer(Trainer):
    """A Trainer whose cross-entropy weights each class (inverse frequency against imbalance), mixed with a
    teacher's soft labels when the batch carries them (``--teacher``, weight ``--distillation_weight``)."""

    def __init__(self, *args: Any, class_weights: torch.Tensor | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.class_weights = class_weights

    def compute_loss(
        self,
        model: torch.nn.Module,
        inputs: dict[str, torch.Tensor],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        outputs = model(**{key: value for key, value in inputs.items() if key not in ("labels", "soft_labels")})
        logits = outputs.logits
        weight = None if self.class_weights is None else self.class_weights.to(logits.device, logits.dtype)
        loss = torch.nn.functional.cross_entropy(
            logits, inputs["labels"], weight=weight, label_smoothing=self.args.label_smoothing_factor
        )
        if "soft_labels" in inputs:  # cross-entropy against the teacher's probabilities (KL up to a constant)
            distilled = -(inputs["soft_labels"].to(logits.dtype) * logits.log_softmax(-1)).sum(-1).mean()
            share = self.args.distillation_weight
            loss = (1 - share) * loss + share * distilled
        return (loss, outputs) if return_outputs else loss


def build_model(args: ModelArguments, labels: Sequence[str]) -> tuple[PreTrainedModel, Any]:
    """The classifier over `labels` and its feature extractor, pretrained or from scratch."""
    model, feature_extractor = _build_model(args, labels)
    return model, _override_features(feature_extractor, args.feature_overrides)


def _build_model(args: ModelArguments, labels: Sequence[str]) -> tuple[PreTrainedModel, Any]:
    overrides = json.loads(args.config_overrides) if args.config_overrides else {}
    head = label_fields(labels)
    if args.from_scratch and not args.model:
        return build_from_scratch(args.architecture, labels, **overrides)
    if not args.model:
        raise ValueError("give --model (hub id or folder) or --from_scratch")
    feature_extractor = AutoFeatureExtractor.from_pretrained(args.model)
    if args.from_scratch:
        config = AutoConfig.from_pretrained(args.model, **head, **overrides)
        return AutoModelForAudioClassification.from_config(config), feature_extractor
    # The checkpoint's head (if any) has other labels: ignore_mismatched_sizes starts a new one.
    model = AutoModelForAudioClassification.from_pretrained(
        args.model, ignore_mismatched_sizes=True, **head, **overrides
    )
    return model, feature_extractor


def _override_features(feature_extractor: Any, overrides: str | None) -> Any:
    """The extractor rebuilt with ``--feature_overrides`` (its own checks run); an unknown key fails, named."""
    if not overrides:
        return feature_extractor
    changes = json.loads(overrides)
    settings = feature_extractor.to_dict()
    unknown = sorted(set(changes) - set(settings) - set(inspect.signature(type(feature_extractor)).parameters))
    if unknown:
        raise ValueError(
            f"--feature_overrides: {type(feature_extractor).__name__} has no setting(s) {', '.join(unknown)}"
        )
    settings.pop("feature_extractor_type", None)
    return type(feature_extractor)(**{**settings, **changes})


def apply_freezing(model: PreTrainedModel, policy: str, trainable_layers: int, from_scratch: bool = False) -> int:
    """Freezes parameters by name according to `policy`; returns how many parameters still train."""
    has_feature_encoder = hasattr(model, "freeze_feature_encoder")
    if policy == "auto":
        # A random front end must learn; a pretrained one is kept as it is (the usual fine-tuning recipe).
        policy = "feature-encoder" if has_feature_encoder and not from_scratch else "none"
    if policy == "feature-encoder" and not has_feature_encoder:
        raise ValueError(
            f"--freeze feature-encoder: {type(model).__name__} has no conv feature encoder; use none or top-n"
        )
    if policy in ("feature-encoder", "top-n") and has_feature_encoder:
        model.freeze_feature_encoder()
    if policy == "top-n":
        prefix = model.base_model_prefix
        layers = model.config.num_hidden_layers
        kept = tuple(f"{prefix}.encoder.layers.{i}." for i in range(max(0, layers - trainable_layers), layers))
        for name, parameter in model.named_parameters():
            # Heads (projector, classifier) live outside the base model and always train.
            if name.startswith(f"{prefix}.") and not name.startswith(kept):
                parameter.requires_grad = False
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    log.info("freezing", policy=policy, trainable_parameters=trainable)
    return trainable


@dataclass
class Corpus:
    """The examples of one run after label mapping and splitting."""

    train: list[Example]
    val: list[Example]
    skipped: int
    excluded: int


def prepare_corpus(data: DataArguments, labels: Sequence[str], seed: int) -> Corpus:
    """Loads, maps labels, drops excluded speakers and splits (by speaker unless asked otherwise)."""
    examples, skipped = map_labels(load_dataset(data.dataset, Path(data.data)), labels, parse_label_map(data.label_map))
    excluded: list[Example] = []
    if data.exclude_speakers:
        excluded, examples = split_by_speaker(examples, parse_speakers(data.exclude_speakers))
    if data.val_fraction == 0:
        train, val = list(examples), []
    else:
        train, val = train_val_split(examples, data.val_fraction, seed=seed, by_speaker=not data.random_split)
    log.info("corpus", train=len(train), val=len(val), skipped=skipped, excluded=len(excluded))
    return Corpus(train, val, skipped, len(excluded))


def _trainer_metrics(labels: Sequence[str]) -> Callable[[EvalPrediction], dict[str, float]]:
    def compute(prediction: EvalPrediction) -> dict[str, float]:
        logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
        y_pred = [labels[i] for i in np.asarray(logits).argmax(-1)]
        y_true = [labels[i] for i in np.asarray(prediction.label_ids)]
        scores = compute_metrics(y_true, y_pred, labels)
        return {"accuracy": scores["accuracy"], "uar": scores["uar"], "macro_f1": scores["macro_f1"]}

    return compute


def run_training(
    arguments: Arguments,
    command: str,
    callbacks: Sequence[TrainerCallback] = (),
    prepare: Callable[[Trainer], Trainer] | None = None,
    resume_from: str | None = None,
    export: bool = True,
) -> dict[str, float]:
    """Trains, exports the best epoch to ``output_dir`` with a model card, returns its validation metrics.

    :param prepare: applied to the built Trainer (Ray Train's ``prepare_trainer`` on a worker).
    :param resume_from: a checkpoint folder to resume from (a Ray worker restarted after a failure).
    :param export: False on Ray workers: the driver exports from the reported checkpoint.
    """
    from emotion_service.plugins.manager import load_plugins

    model_args, data_args, training_args = arguments
    check_loggers(training_args.report_to)
    labels = [label.strip() for label in model_args.labels.split(",") if label.strip()]
    corpus = prepare_corpus(data_args, labels, training_args.seed)
    if not corpus.val:
        # Nothing to pick an epoch on: checkpoints stay (for --resume), the last epoch is exported.
        training_args = replace(training_args, eval_strategy="no", load_best_model_at_end=False)
    # The Trainer seeds only once it is built, after the model: without this a new head (or a model
    # from scratch) starts from different weights every run and --seed reproduces nothing.
    set_seed(training_args.seed)
    model, feature_extractor = build_model(model_args, labels)
    apply_freezing(model, model_args.freeze, model_args.trainable_layers, model_args.from_scratch)

    plugins = load_plugins()
    rate = int(feature_extractor.sampling_rate)

    def decode(examples: Sequence[Example]) -> list[np.ndarray]:
        return [plugins.preprocess(load_audio(e.path, rate), rate, {"stage": "train"}) for e in examples]

    ids = {label: i for i, label in enumerate(labels)}
    train_ids = [ids[e.label] for e in corpus.train]
    train_waves = decode(corpus.train)
    soft = None
    if training_args.teacher == "speaker-encoder":
        from emotion_service.tuning.teacher import speaker_encoder_soft_labels

        soft = speaker_encoder_soft_labels(train_waves, train_ids, [e.speaker for e in corpus.train], len(labels))
    train_set = ClipDataset(
        train_waves,
        train_ids,
        augment=lambda wave, rng: plugins.augment(wave, rate, rng),
        augment_probability=training_args.augment_probability,
        max_samples=int(training_args.max_seconds * rate),
        seed=training_args.seed,
        soft_labels=soft,
    )
    val_set = ClipDataset(decode(corpus.val), [ids[e.label] for e in corpus.val]) if corpus.val else None
    trainer = WeightedTrainer(
        model=model,
        args=training_args,
        train_dataset=train_set,
        eval_dataset=val_set,
        data_collator=Collator(feature_extractor),
        processing_class=feature_extractor,
        compute_metrics=_trainer_metrics(labels),
        callbacks=[EpochCallback(train_set), *callbacks],
        class_weights=_class_weights(train_ids, len(labels)) if training_args.class_weights == "balanced" else None,
    )
    if prepare is not None:
        trainer = prepare(trainer)
    resume = resume_from or (True if training_args.resume else training_args.resume_from_checkpoint)
    trainer.train(resume_from_checkpoint=resume)
    metrics = trainer.evaluate() if val_set is not None else {}
    if not export:
        return metrics
    output = Path(training_args.output_dir)
    trainer.save_model(str(output))  # weights, config and the feature extractor (processing_class)
    write_model_card(output, metrics, command, arguments, corpus)
    log.info("exported", output=str(output), **{k: round(v, 4) for k, v in metrics.items() if isinstance(v, float)})
    return metrics


def check_loggers(report_to: Sequence[str]) -> None:
    """Fails before any data is read when a requested logger is not installed."""
    if "wandb" in report_to and importlib.util.find_spec("wandb") is None:
        raise ValueError(
            "--report_to wandb needs `pip install wandb` (set WANDB_MODE=offline to log without an account)"
        )


def _class_weights(label_ids: Sequence[int], classes: int) -> torch.Tensor:
    present = np.unique(label_ids)
    weights = np.ones(classes, dtype=np.float32)
    weights[present] = compute_class_weight("balanced", classes=present, y=np.asarray(label_ids))
    return torch.from_numpy(weights)


def write_model_card(
    output: Path, metrics: dict[str, float], command: str, arguments: Arguments, corpus: Corpus
) -> Path:
    """README.md beside the weights: what the model is, how it scored on validation, the exact command."""
    model_args, data_args, _ = arguments
    start = model_args.model or f"the built-in {model_args.architecture} config"
    origin = f"trained from scratch ({start})" if model_args.from_scratch else f"fine-tuned from `{start}`"
    rows = "\n".join(
        f"| {name} | {metrics[f'eval_{name}']:.4f} |"
        for name in ("accuracy", "uar", "macro_f1")
        if f"eval_{name}" in metrics
    )
    if not corpus.val:
        split = "none (every speaker trained)"
    elif data_args.random_split:
        split = "random (speakers leak)"
    else:
        split = "by speaker"
    validation = (
        f"| metric | value |\n| --- | --- |\n{rows}"
        if rows
        else "None: `--val_fraction 0` trained on every speaker and exported the last epoch."
    )
    licence = "\nTrained on RAVDESS: CC BY-NC-SA 4.0 applies to this model.\n" if data_args.dataset == "ravdess" else ""
    licence_tag = "license: cc-by-nc-sa-4.0\n" if data_args.dataset == "ravdess" else ""
    text = f"""---
{licence_tag}library_name: transformers
pipeline_tag: audio-classification
tags: [speech-emotion-recognition]
---
# Speech emotion classifier

{origin}; labels: {model_args.labels}.

Data: `{data_args.dataset}` at `{data_args.data}`; {len(corpus.train)} training and {len(corpus.val)} validation clips,
split {split}; {corpus.skipped} clips skipped (labels outside the set), {corpus.excluded} of excluded speakers
({data_args.exclude_speakers or "none"}). Freezing: {model_args.freeze}.
{licence}
## Validation metrics (best epoch)

{validation}

Test figures come from `emotion evaluate` on held-out speakers, not from this table.

## Command

```
{command}
```

Serve it with `emotion serve --model {output}`.
"""
    path = output / "README.md"
    path.write_text(text)
    return path


def command_line(argv: Sequence[str]) -> str:
    """The exact `emotion train` command, quoted for a shell."""
    return shlex.join(["emotion", "train", *argv])
