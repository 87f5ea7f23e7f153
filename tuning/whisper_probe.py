"""A frozen Whisper-base encoder with a small head: cross-validated by condition family, then bundled.

``python -m emotion_service.tuning.whisper_probe cv`` compares the levers by leave-one-family-out
cross-validation on RAVDESS actors 01-18 only (three folds of six actors; for each honest
condition family of :mod:`emotion_service.tuning.honest_conditions`, the head is trained without
that family's nearest training twin and scored on the fold's held-out actors under the family's
middle setting). The table is written as data (``cv.json``) beside the model card.

``... bundle --recipe NAME`` trains the chosen recipe on all of actors 01-18, writes the model
folder, and scores the test actors 19-24 (every honest condition) and EmoDB once.

``... folds`` writes one model per fold (the recipe trained without the fold's actors) into
``build/whisper-probe-folds``, for the alert calibration to score each training actor with a head
that never heard it (``alert_calibration --cross-fit``).

``... shift`` is a diagnosis, not a choice: how far EmoDB's vectors (and training actors 13-18's
clips cut as that EmoDB copy is, to 2.0 s from the speech onset) sit from the training vectors,
and what the clean probe scores on them (docs/research.md, "Where the EmoDB gap comes from").

Levers (``RECIPES``):
- ``probe-clean``: logistic regression on clean clips' vectors, nothing tuned (the issue's probe);
- ``probe-clean-c0.05``: the same, regularised twenty times more strongly (1024 inputs, 528-792 clips);
- ``probe-multicondition-c0.05``: that, trained on each clip clean and once per training condition
  family (:mod:`emotion_service.degradations`, the augmentation's generators);
- ``mlp-ensemble-multicondition``: five seeds of a one-hidden-layer head on the same data, their
  probabilities averaged.

Those four read the encoder's last layer. Round 2 asks which layer: the multi-condition linear probe
on each of layers 0-5 and on the mean of every layer's vector, then the round-1 winner on the layer
that won (``...-layer3``). Round 3 adds random crops of the clean clips (:func:`random_crop`) as a
training family, and clips cut to 2.0 s as a scored family (``cut``, trained without the crops).
``bundle`` without ``--recipe`` takes the highest CV mean.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from emotion_service import degradations
from emotion_service.audio import load_audio
from emotion_service.paths import REPO_ROOT, WHISPER_PROBE_MODEL
from emotion_service.tuning.datasets import Example, load_emodb, load_ravdess, speaker_ids, split_by_speaker
from emotion_service.tuning.honest_conditions import (
    HONEST_VERSION,
    ROOM_DISTANCES_M,
    TRAINING_TWIN,
    HonestCondition,
    honest_conditions,
    make_room,
    onset_cut,
)
from emotion_service.whisper_encoder import ENCODER_VERSION, FRONT_END, LAYERS, MODEL_SHA256, shared_encoder

DATA = REPO_ROOT.parent / "shared" / "data"
LABELS = ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")
TRAINING = speaker_ids(1, 18)
TEST = speaker_ids(19, 24)
FOLDS = [TRAINING[i::3] for i in range(3)]  # three men and three women each
TRAINING_FAMILIES = ("noise", "babble", "reverb", "telephone", "silence")
CACHE = REPO_ROOT / "build" / "whisper-layers"
FOLD_MODELS = REPO_ROOT / "build" / "whisper-probe-folds"


def training_transform(family: str, pool: Sequence[np.ndarray]) -> Callable[[np.ndarray, np.random.Generator], np.ndarray]:
    """One draw of a training condition family, as the augmentation plugin draws them."""

    def transform(wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if family == "noise":
            colour = str(rng.choice(["white", "pink", "brown"]))
            return degradations.noise_transform(colour, rng.uniform(0, 20))(wave, rng)
        if family == "babble":
            return degradations.babble_transform(pool, 4, rng.uniform(0, 20))(wave, rng)
        if family == "reverb":
            return degradations.reverb_transform(rng.uniform(0.2, 1.0))(wave, rng)
        if family == "telephone":
            if rng.random() < 0.5:
                return degradations.telephone_transform(mu_law=bool(rng.random() < 0.5))(wave, rng)
            fmt, subtype = [("MP3", "MPEG_LAYER_III"), ("OGG", "VORBIS"), ("OGG", "OPUS")][int(rng.integers(3))]
            return degradations.codec_transform(fmt, subtype, degradations.RATE, 0.9)(wave, rng)
        if family == "silence":
            return degradations.silence_transform(rng.uniform(0, 2.5), rng.uniform(0, 2.5))(wave, rng)
        if family == "crop":
            return random_crop(wave, rng)
        raise ValueError(family)

    return transform


class Features:
    """Clip vectors of every encoder layer (clips x 7 x 1024) under a condition, cached on disk by
    condition tag, clip list, encoder digest and version (as float16: seven layers per clip)."""

    def __init__(self, cache: Path = CACHE) -> None:
        from emotion_service.plugins.manager import load_plugins

        self.cache = cache
        self.encoder = shared_encoder(layers=LAYERS)
        self._audio: dict[Path, np.ndarray] = {}
        # The preprocess plugins the service runs (EMOTION_PLUGINS, all by default: audio_cleanup trims
        # and levels every clip), so the vectors are those the served model computes.
        self.plugins = load_plugins()
        self._plugins_key = ",".join(sorted(self.plugins.names()))

    def vector(self, wave: np.ndarray) -> np.ndarray:
        return self.encoder.embed_layers([self.plugins.preprocess(wave, 16_000, {"stage": "serve"})])

    def audio(self, example: Example) -> np.ndarray:
        if example.path not in self._audio:
            self._audio[example.path] = load_audio(example.path, 16_000)
        return self._audio[example.path]

    def path(self, tag: str, examples: Sequence[Example]) -> Path:
        """Where the vectors of ``examples`` under condition ``tag`` are cached."""
        names = "\n".join(str(e.path) for e in examples)
        key = names + tag + MODEL_SHA256 + ENCODER_VERSION + FRONT_END + HONEST_VERSION + self._plugins_key
        return self.cache / f"{tag}-{hashlib.sha256(key.encode()).hexdigest()[:12]}.npy"

    def get(self, tag: str, examples: Sequence[Example], apply: Callable[[np.ndarray, int], np.ndarray]) -> np.ndarray:
        path = self.path(tag, examples)
        if path.exists():
            return np.load(path).astype(np.float32)
        started = time.perf_counter()
        rows = np.concatenate([self.vector(apply(self.audio(e), _index(e))) for e in examples])
        self.cache.mkdir(parents=True, exist_ok=True)
        np.save(path, rows.astype(np.float16))
        print(f"features {tag}: {len(examples)} clips in {time.perf_counter() - started:.0f} s", flush=True)
        return rows


def _index(example: Example) -> int:
    """A clip's seed index: stable across runs and clip lists."""
    return int.from_bytes(hashlib.sha256(example.path.name.encode()).digest()[:4], "little")


def random_crop(wave: np.ndarray, rng: np.random.Generator, shortest_s: float = 1.0, longest_s: float = 2.5) -> np.ndarray:
    """A stretch of ``shortest_s`` to ``longest_s`` from anywhere in the clip's speech (30 dB under
    its peak, 0.1 s before it allowed): part of a sentence, as a stream window or a short cut hears it."""
    import librosa

    first, last = (int(v) for v in librosa.effects.trim(wave, top_db=30)[1])
    length = round(rng.uniform(shortest_s, longest_s) * 16_000)
    earliest = max(0, first - 1_600)
    start = int(rng.integers(earliest, max(earliest, last - length) + 1))
    return wave[start : start + length]


def _training_condition(family: str, pool: Sequence[np.ndarray]) -> Callable[[np.ndarray, int], np.ndarray]:
    transform = training_transform(family, pool)

    def apply(wave: np.ndarray, index: int) -> np.ndarray:
        rng = np.random.default_rng(int.from_bytes(hashlib.sha256(f"train:{family}:{index}".encode()).digest()[:8], "little"))
        return np.clip(transform(wave, rng), -1, 1).astype(np.float32)

    return apply


@dataclass(frozen=True)
class Recipe:
    """A head, the encoder layer it reads and the training data it sees."""

    name: str
    multicondition: bool
    head: str  # "linear" or "mlp"
    members: int = 1
    c: float = 1.0  # the logistic regression's inverse regularisation strength
    layer: int | None = LAYERS  # the encoder layer read; None: the mean of every layer's vector
    crops: bool = False  # also one random crop of each clean clip (:func:`random_crop`)

    @property
    def families(self) -> tuple[str, ...]:
        """The training families the recipe learns from: clean, the conditions, the crops."""
        conditions = TRAINING_FAMILIES if self.multicondition else ()
        return ("clean", *conditions, *(("crop",) if self.crops else ()))

    def held_out_for(self, family: str) -> str | None:
        """The training family left out when the CV scores ``family``: its twin, if the recipe trains on it."""
        twin = TRAINING_TWIN.get(family)
        return twin if twin in self.families else None

    def pick(self, x: np.ndarray) -> np.ndarray:
        """The recipe's vectors (clips x 1024) out of every layer's (clips x 7 x 1024)."""
        return x.mean(axis=1) if self.layer is None else x[:, self.layer]


RECIPES = {
    r.name: r
    for r in (
        Recipe("probe-clean", False, "linear"),
        Recipe("probe-clean-c0.05", False, "linear", c=0.05),
        Recipe("probe-multicondition-c0.05", True, "linear", c=0.05),
        Recipe("mlp-ensemble-multicondition", True, "mlp", members=5),
        # Which layer (round 2): the multi-condition linear probe on each layer, and on their mean
        *(Recipe(f"probe-multicondition-c0.05-layer{k}", True, "linear", c=0.05, layer=k) for k in range(LAYERS)),
        Recipe("probe-multicondition-c0.05-layer-mean", True, "linear", c=0.05, layer=None),
        # ... then the best recipe so far on the layer that won
        Recipe("mlp-ensemble-multicondition-layer3", True, "mlp", members=5, layer=3),
        # Round 3: random crops of the clean clips as a training family (EmoDB's copy is cut to 2.0 s)
        Recipe("probe-multicondition-c0.05-crops-layer3", True, "linear", c=0.05, layer=3, crops=True),
        Recipe("mlp-ensemble-multicondition-crops-layer3", True, "mlp", members=5, layer=3, crops=True),
    )
}


@dataclass
class Head:
    """Standardisation, then a linear layer or an ensemble of one-hidden-layer MLPs."""

    mean: np.ndarray
    scale: np.ndarray
    layers: list[dict[str, np.ndarray]]
    kind: str

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return head_module(self).forward(torch.as_tensor(x, dtype=torch.float32)).softmax(-1).numpy()


def head_module(head: Head) -> torch.nn.Module:
    from emotion_service.architectures import ProbeHead

    module = ProbeHead(len(head.mean), len(LABELS), head.kind, len(head.layers), _hidden(head))
    module.load_state_dict(head_state(head))
    return module.eval()


def _hidden(head: Head) -> int:
    return int(head.layers[0]["w1"].shape[0]) if head.kind == "mlp" else 0


def head_state(head: Head) -> dict[str, torch.Tensor]:
    state = {"mean": torch.as_tensor(head.mean), "scale": torch.as_tensor(head.scale)}
    for i, layer in enumerate(head.layers):
        for key, value in layer.items():
            state[f"members.{i}.{key}"] = torch.as_tensor(value)
    return {k: v.float() for k, v in state.items()}


def fit(recipe: Recipe, x: np.ndarray, y: np.ndarray, seed: int = 0) -> Head:
    scaler = StandardScaler().fit(x)
    z = scaler.transform(x)
    if recipe.head == "linear":
        model = LogisticRegression(max_iter=2000, C=recipe.c).fit(z, y)
        layers = [{"w": model.coef_.astype(np.float32), "b": model.intercept_.astype(np.float32)}]
    else:
        layers = [_fit_mlp(z, y, seed * 100 + member) for member in range(recipe.members)]
    return Head(scaler.mean_.astype(np.float32), scaler.scale_.astype(np.float32), layers, recipe.head)


def _fit_mlp(z: np.ndarray, y: np.ndarray, seed: int, hidden: int = 256, epochs: int = 60) -> dict[str, np.ndarray]:
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Dropout(0.2), torch.nn.Linear(z.shape[1], hidden), torch.nn.ReLU(),
                              torch.nn.Dropout(0.3), torch.nn.Linear(hidden, len(LABELS)))  # fmt: skip
    optimiser = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-2)
    xs, ys = torch.as_tensor(z, dtype=torch.float32), torch.as_tensor(y)
    for _ in range(epochs):
        for batch in torch.randperm(len(xs), generator=generator).split(64):
            optimiser.zero_grad()
            torch.nn.functional.cross_entropy(net(xs[batch]), ys[batch]).backward()
            optimiser.step()
    return {"w1": net[1].weight.detach().numpy(), "b1": net[1].bias.detach().numpy(),
            "w2": net[4].weight.detach().numpy(), "b2": net[4].bias.detach().numpy()}  # fmt: skip


def labels_of(examples: Sequence[Example]) -> np.ndarray:
    return np.array([LABELS.index(e.label) for e in examples])


def training_vectors(
    features: Features, family: str, everyone: Sequence[Example], examples: Sequence[Example], pool: Sequence[np.ndarray]
) -> np.ndarray:
    """Every layer's vectors of ``examples`` under a training family ("clean" or one of
    :data:`TRAINING_FAMILIES`). Encoded once for all of ``everyone`` (the training actors' clips,
    each with its own seeded draw) and picked out, but for babble, whose voices (``pool``) are the
    fold's own."""
    if family == "babble":
        tag = "-".join(sorted({e.speaker for e in examples}))
        return features.get(f"train-babble-{tag}", examples, _training_condition(family, pool))
    apply = (lambda w, i: w) if family == "clean" else _training_condition(family, pool)
    rows = features.get(f"train-{family}", everyone, apply)
    where = {e.path: i for i, e in enumerate(everyone)}
    return rows[[where[e.path] for e in examples]]


def training_set(
    features: Features,
    recipe: Recipe,
    everyone: Sequence[Example],
    examples: Sequence[Example],
    pool: Sequence[np.ndarray],
    drop: str | None,
) -> tuple[np.ndarray, np.ndarray]:
    """The recipe's clean vectors, plus one copy per training family (but ``drop``) for a
    multi-condition recipe."""
    xs = [recipe.pick(training_vectors(features, f, everyone, examples, pool)) for f in recipe.families if f != drop]
    return np.concatenate(xs), np.tile(labels_of(examples), len(xs))


def _honest(condition: HonestCondition) -> Callable[[np.ndarray, int], np.ndarray]:
    return lambda wave, index: condition.apply(wave, index)


def fold_split(ravdess: Sequence[Example], held: Sequence[str]) -> tuple[list[Example], list[Example]]:
    """(the held-out actors' clips, the other training actors' clips): the test actors are in neither."""
    return split_by_speaker([e for e in ravdess if e.speaker in TRAINING], held)


def cross_validate(features: Features, ravdess: Sequence[Example]) -> dict[str, Any]:
    """Leave-one-family-out CV on actors 01-18: every recipe, fold and honest family's middle setting."""
    rows = []
    rooms = {d: make_room(d, seed=int(d * 10)) for d in ROOM_DISTANCES_M}  # the same rooms for every speaker
    everyone = [e for e in ravdess if e.speaker in TRAINING]
    for fold, held in enumerate(FOLDS):
        scored, train = fold_split(ravdess, held)
        train_pool = [features.audio(e) for e in train[::4]]
        conditions_by_speaker = {}
        for speaker in held:
            # The fold's other held-out actors, in neutral register: voices this fold's head never trained
            # on, not the talker's own (see honest_conditions' babble for why neutral).
            unseen = [features.audio(e) for e in scored if e.speaker != speaker and e.label == "NEU"]
            conditions_by_speaker[speaker] = [c for c in honest_conditions(unseen, rooms) if c.middle]
        families = [c.family for c in conditions_by_speaker[held[0]]]
        test_x: dict[str, np.ndarray] = {}
        for position, family in enumerate(families):
            parts = []
            for speaker in held:
                mine = [e for e in scored if e.speaker == speaker]
                condition = conditions_by_speaker[speaker][position]
                parts.append((mine, features.get(f"cv{fold}-{condition.name}-{speaker}", mine, _honest(condition))))
            test_x[family] = np.concatenate([p[1] for p in parts])
        test_y = np.concatenate([labels_of([e for e in scored if e.speaker == s]) for s in held])
        for recipe in RECIPES.values():
            heads: dict[str | None, Head] = {}
            for family in families:
                drop = recipe.held_out_for(family)
                if drop not in heads:
                    heads[drop] = fit(recipe, *training_set(features, recipe, everyone, train, train_pool, drop))
                predicted = heads[drop].probabilities(recipe.pick(test_x[family])).argmax(1)
                rows.append({"recipe": recipe.name, "fold": fold, "family": family, "held_out_training_family": drop,
                             "n": len(test_y), "accuracy": float(np.mean(predicted == test_y))})  # fmt: skip
                print(json.dumps(rows[-1]), flush=True)
    return {"protocol": "leave-one-family-out, 3 folds of RAVDESS actors 01-18, middle setting per family",
            "folds": FOLDS, "rows": rows, "summary": summarise(rows)}  # fmt: skip


def summarise(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for recipe in sorted({r["recipe"] for r in rows}):
        mine = [r for r in rows if r["recipe"] == recipe]
        families = sorted({r["family"] for r in mine})
        out[recipe] = {f: float(np.mean([r["accuracy"] for r in mine if r["family"] == f])) for f in families}
        out[recipe]["mean"] = float(np.mean([out[recipe][f] for f in families]))
    return out


def cv_table(summary: dict[str, dict[str, float]]) -> str:
    """The CV summary as a Markdown table: a row per recipe, a column per family, and the mean."""
    families = [f for f in next(iter(summary.values())) if f != "mean"]
    lines = ["| recipe | " + " | ".join(families) + " | mean |", "| --- " * (len(families) + 2) + "|"]
    for recipe, row in sorted(summary.items(), key=lambda item: -item[1]["mean"]):
        lines.append(f"| {recipe} | " + " | ".join(f"{100 * row[f]:.1f}" for f in families) + f" | {100 * row['mean']:.1f} |")
    return "\n".join(lines) + "\n"


def shift(features: Features, ravdess: Sequence[Example], emodb: Sequence[Example], layer: int = LAYERS) -> None:
    """Prints each diagnosis row: mean |z| of encoder layer ``layer``'s vectors under the training
    scaler, and the clean probe's accuracy (fitted on 01-18 for EmoDB; on 01-12 for actors 13-18)."""
    recipe = dataclasses.replace(RECIPES["probe-clean-c0.05"], layer=layer)
    train = [e for e in ravdess if e.speaker in TRAINING]
    first, rest = [e for e in train if int(e.speaker) <= 12], [e for e in train if int(e.speaker) > 12]
    whole = fit(recipe, *training_set(features, recipe, train, train, [], None))
    part = fit(recipe, *training_set(features, recipe, train, first, [], None))
    rows = [("EmoDB, clean", whole, recipe.pick(features.get("emodb-clean", emodb, lambda w, i: w)), labels_of(emodb))]
    for tag, apply in (("whole", lambda w, i: w), ("onset-2s", lambda w, i: onset_cut(w)),
                       ("onset-2s-0.1s-before", lambda w, i: onset_cut(w, before_s=0.1))):  # fmt: skip
        x = recipe.pick(features.get(f"shift-{tag}-13-18", rest, apply))
        rows.append((f"actors 13-18, {tag}", part, x, labels_of(rest)))
    for name, head, x, y in rows:
        z = (x - head.mean) / head.scale
        accuracy = float(np.mean(head.probabilities(x).argmax(1) == y))
        print(f"{name:32s} mean |z| {np.abs(z.mean(0)).mean():5.2f}   clean probe {100 * accuracy:5.1f} %")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m emotion_service.tuning.whisper_probe", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("command", choices=["cv", "bundle", "folds", "shift"],
                        help="cv: compare the recipes on 01-18; bundle: train and score once; folds: a model per "
                             "fold, for the alert calibration; shift: the EmoDB diagnosis")  # fmt: skip
    parser.add_argument("--data", type=Path, default=DATA, help="folder holding ravdess/ and emodb/")
    parser.add_argument("--output", type=Path, default=WHISPER_PROBE_MODEL,
                        help="the model folder (bundle), where cv.json is written (cv) [default: "
                             "models/emotion-whisper-probe]; folds: the recipe's cv.json is read there, the "
                             "fold models go to build/whisper-probe-folds")  # fmt: skip
    parser.add_argument("--recipe", choices=sorted(RECIPES),
                        help="bundle, folds: the recipe to train [default: the highest mean in OUTPUT/cv.json that can be served]")  # fmt: skip
    parser.add_argument("--layer", type=int, choices=range(LAYERS + 1), default=LAYERS,
                        help="shift: the encoder layer diagnosed (0: the input embedding, 6: the last)")  # fmt: skip
    args = parser.parse_args(argv)
    ravdess = load_ravdess(args.data / "ravdess")
    features = Features()
    args.output.mkdir(parents=True, exist_ok=True)
    if args.command == "cv":
        result = cross_validate(features, ravdess)
        (args.output / "cv.json").write_text(json.dumps(result, indent=2) + "\n")
        (args.output / "cv.md").write_text(cv_table(result["summary"]))
        print(cv_table(result["summary"]))
        return
    if args.command == "shift":
        shift(features, ravdess, load_emodb(args.data / "emodb"), args.layer)
        return
    from emotion_service.tuning.whisper_bundle import bundle, fold_models

    recipe = RECIPES[args.recipe] if args.recipe else cv_winner(args.output / "cv.json")
    if args.command == "folds":
        fold_models(features, recipe, ravdess, FOLD_MODELS)
        return
    print(f"bundle: recipe {recipe.name}", flush=True)
    bundle(features, recipe, ravdess, load_emodb(args.data / "emodb"), args.output)


def cv_winner(path: Path) -> Recipe:
    """The rule fixed before each CV run: the recipe of the highest mean that can be served."""
    if not path.exists():
        raise SystemExit(f"{path} is missing: run the cv command first, or name --recipe")
    summary = json.loads(path.read_text())["summary"]
    servable = {name: row["mean"] for name, row in summary.items() if name in RECIPES and RECIPES[name].layer is not None}
    return RECIPES[max(servable, key=servable.__getitem__)]


if __name__ == "__main__":
    main()
