"""One servable folder from several trained ``logmel-cnn`` folders: the seeds of one recipe, averaged.

``python -m emotion_service.tuning.ensemble build/seeds/seed-0 build/seeds/seed-1 --output FOLDER``
checks that the folders share shape, labels and front end, and writes a ``logmel-cnn-ensemble``
folder whose logits are the mean of theirs (:mod:`emotion_service.architectures`). Its model card
lists every member's training command.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from transformers import AutoConfig, AutoFeatureExtractor, AutoModelForAudioClassification

from emotion_service.architectures import (
    LogMelCNNConfig,
    LogMelCNNEnsembleConfig,
    LogMelCNNEnsembleForAudioClassification,
)

# Config keys that may differ between members without changing what they compute.
_INCIDENTAL = {"_name_or_path", "transformers_version", "architectures", "dtype", "torch_dtype"}


def build_ensemble(folders: Sequence[Path], output: Path) -> Path:
    """Writes the ensemble of ``folders`` to ``output``; ValueError names the first mismatch."""
    if len(folders) < 2:
        raise ValueError("an ensemble needs at least two model folders")
    configs = [AutoConfig.from_pretrained(folder) for folder in folders]
    for folder, config in zip(folders, configs):
        if type(config) is not LogMelCNNConfig:
            raise ValueError(f"{folder} is a {config.model_type!r} model; only logmel-cnn folders combine")
    shape = {k: v for k, v in configs[0].to_dict().items() if k not in _INCIDENTAL}
    extractor = AutoFeatureExtractor.from_pretrained(folders[0])
    front_end = extractor.to_dict()
    for folder, config in zip(folders[1:], configs[1:]):
        if {k: v for k, v in config.to_dict().items() if k not in _INCIDENTAL} != shape:
            raise ValueError(f"{folder} differs from {folders[0]} in shape or labels")
        if AutoFeatureExtractor.from_pretrained(folder).to_dict() != front_end:
            raise ValueError(f"{folder} computes other features than {folders[0]} (preprocessor_config.json)")
    shape.pop("model_type", None)
    ensemble = LogMelCNNEnsembleForAudioClassification(LogMelCNNEnsembleConfig(members=len(folders), **shape))
    for member, folder in zip(ensemble.members, folders):
        member.load_state_dict(AutoModelForAudioClassification.from_pretrained(folder).state_dict())
    ensemble.save_pretrained(output)
    extractor.save_pretrained(output)
    commands = "\n\n".join(
        f"Member {i}, `{folder}`:\n\n```\n{_command(folder)}\n```" for i, folder in enumerate(folders)
    )
    (output / "README.md").write_text(
        f"# Speech emotion classifier: ensemble of {len(folders)} log-mel CNNs\n\n"
        f"Logits averaged over the members (one front end, computed once). Built with\n"
        f"`python -m emotion_service.tuning.ensemble {' '.join(map(str, folders))} --output {output}`.\n\n"
        f"## Members\n\n{commands}\n\nServe it with `emotion serve --model {output}`.\n"
    )
    return output


def _command(folder: Path) -> str:
    """The training command in a member's model card, or a note that there is none."""
    card = folder / "README.md"
    text = card.read_text() if card.is_file() else ""
    if "## Command" not in text:
        return "(no model card)"
    return text.split("## Command", 1)[1].split("```")[1].strip()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m emotion_service.tuning.ensemble", description=__doc__.splitlines()[0]
    )
    parser.add_argument("folders", nargs="+", type=Path, help="trained logmel-cnn model folders (two or more)")
    parser.add_argument("--output", type=Path, required=True, help="ensemble folder to write")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        print(f"wrote {build_ensemble(args.folders, args.output)}")
    except (ValueError, OSError) as exc:
        sys.exit(f"error: {exc}")


if __name__ == "__main__":
    main()
