"""Alerts on real speech of the test actors: false alarms on steady speech, real changes caught in time.

Sessions of the RAVDESS test actors 19-24 (never used to calibrate): 36 steady ones (each actor
saying one emotion, ANG DIS FEA HAP NEU SAD, strong intensity, neutral at its normal one, clips
looped to 90 s: 54 minutes) and 24 changes (45 s neutral, then 45 s of ANG, FEA, HAP or SAD,
same actor). Each session is cut into stream windows as the server cuts them (its default
``window_s``/``hop_s``; windows it would answer silent are skipped), scored by the server's
backend after the ``preprocess`` plugins, and replayed through the ``anomaly`` and
``threshold_alerts`` plugins at their defaults (for ``anomaly``, those the server takes for
``--model``: the calibration in its folder); the same pipeline
``python -m emotion_service.tuning.alert_calibration`` calibrates on actors 01-18.

Prints, for ``anomaly``: alerts per 10 minutes and per hour of steady speech, and the changes
that raised one within 6 s. For ``threshold_alerts``: alerts naming an emotion other than the one
spoken, per 10 minutes and per hour of steady speech, and the changes to a thresholded emotion
(ANG, FEA, SAD) that raised an alert for it within 6 s.

    python bench/alerts.py                      # ../shared/data/ravdess beside the repo
    python bench/alerts.py --data /path/to/ravdess --within-s 6
    python bench/alerts.py --model models/emotion-whisper-probe
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("EMOTION_PLUGINS", "all")

from _flags import phase_seconds  # noqa: E402  (bench/ is on sys.path when a bench runs)

from emotion_service.paths import BUNDLED_MODEL, REPO_ROOT  # noqa: E402
from emotion_service.plugins.builtin.anomaly import calibrated_defaults  # noqa: E402
from emotion_service.tuning.alert_calibration import (  # noqa: E402
    DEFAULT_CACHE,
    FALLBACK_LEGACY,
    WITHIN_S,
    WindowScorer,
    bench_figures,
)

DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "ravdess"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help="RAVDESS folder [default: ../shared/data/ravdess]"
    )
    parser.add_argument("--model", type=Path, default=BUNDLED_MODEL, help="model folder [default: the bundled model]")
    parser.add_argument(
        "--within-s", type=phase_seconds, default=WITHIN_S, help=f"catch window in seconds [default: {WITHIN_S:g}]"
    )
    parser.add_argument(
        "--cache", type=Path, default=DEFAULT_CACHE, help="window-score cache [default: build/alert-cache]"
    )
    parser.add_argument(
        "--legacy", action="store_true", help="also print the anomaly plugin's pre-calibration settings"
    )
    args = parser.parse_args(argv)
    if not (args.data / "manifest.csv").is_file():
        print(
            f"bench/alerts.py: no RAVDESS data at {args.data} (manifest.csv missing). It needs the RAVDESS "
            "folder described in ../shared/data/README.md: put it at ../shared/data/ravdess beside the "
            "repository or pass --data PATH.",
            file=sys.stderr,
        )
        return 2
    scorer = WindowScorer(args.model, args.data, args.cache)
    print(
        f"model {Path(args.model).name}; test actors 19-24: 36 steady sessions (6 actors x 6 emotions, 90 s: "
        f"54 min), 24 neutral-to-emotion changes (45 s + 45 s); windows {scorer.window_s:g} s every "
        f"{scorer.hop_s:g} s, silent ones skipped"
    )
    # The defaults the server gives the plugin when it serves this model (the on_model_loaded hook):
    # the folder's own calibration, the bundled model's for whatever that lacks.
    runs = {"anomaly (defaults)": calibrated_defaults(args.model, calibrated_defaults())}
    if args.legacy:
        runs["anomaly (pre-calibration settings)"] = FALLBACK_LEGACY
    for name, settings in runs.items():
        figures = bench_figures(scorer, args.within_s, settings)
        f = figures["anomaly"]
        print(
            f"{name}: {f.false_alarms} alerts on steady speech = {f.per_10_minutes:.2f} per 10 min "
            f"({f.per_hour:.1f} per hour); changes caught within {args.within_s:g} s: {f.caught}/{f.changes} "
            f"(median delay {f.as_dict()['median_delay_s']} s; {f.early} alerts before a change)"
        )
    f = figures["threshold_alerts"]
    print(
        f"threshold_alerts (defaults, ANG FEA SAD at 0.6): {f.false_alarms} alerts naming an emotion not spoken = "
        f"{f.per_10_minutes:.2f} per 10 min ({f.per_hour:.1f} per hour); changes to ANG, FEA, SAD caught within "
        f"{args.within_s:g} s: {f.caught}/{f.changes} (median delay {f.as_dict()['median_delay_s']} s)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
