"""The ``emotion`` command: serve, tokens, plugins, reports, training, evaluation and sweeps."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from emotion_service.server.config import ConfigError, add_arguments, from_arguments


def _serve(args: argparse.Namespace) -> int:
    from emotion_service.logging import configure_logging
    from emotion_service.server.app import serve
    from emotion_service.server.model import ModelNotFoundError
    from emotion_service.server.web_process import WebUIError

    settings = from_arguments(args)
    configure_logging(settings.log_level, settings.log_format)
    _use_config_file(args)
    try:
        asyncio.run(serve(settings))
    except ModelNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ConfigError as exc:  # found while starting, e.g. an unreadable certificate
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # e.g. the port is taken
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except WebUIError as exc:  # the web UI's process could not start
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def _token(args: argparse.Namespace) -> int:
    from emotion_service.server.auth import SCOPES, hash_token, new_token

    if args.token_command == "hash":
        print(hash_token(args.token))
        return 0
    unknown = sorted(set(args.scopes) - set(SCOPES))
    if unknown:
        print(f"error: --scopes: unknown scope(s) {', '.join(unknown)}; known: {', '.join(SCOPES)}", file=sys.stderr)
        return 2
    token = new_token()
    print(f"# token for {args.name} (give it to the client; it is not stored anywhere):\n# {token}")
    print(
        f'[[keys]]\nname = "{args.name}"\nsha256 = "{hash_token(token)}"\nscopes = {list(args.scopes)!r}'.replace(
            "'", '"'
        )
    )
    return 0


def _use_config_file(args: argparse.Namespace) -> None:
    """Plugins read their [plugins.*] tables from $EMOTION_CONFIG: point it at --config."""
    if args.config is not None:
        os.environ["EMOTION_CONFIG"] = str(args.config)


def _plugins(args: argparse.Namespace) -> int:
    import json
    from dataclasses import asdict

    from emotion_service.logging import configure_logging
    from emotion_service.plugins.manager import HOOKS, load_plugins

    configure_logging("warning", "console")
    _use_config_file(args)
    host = load_plugins(args.select)
    infos = host.describe()
    if args.json:
        print(json.dumps([asdict(info) for info in infos], indent=2))
        return 0
    if not infos:
        print("no plugins loaded (see EMOTION_PLUGINS / --select)")
        return 0
    width = max(len(info.name) for info in infos) + 2
    for info in infos:
        print(f"{info.name:<{width}}{', '.join(info.hooks) or '-'}")
        print(f"{'':<{width}}{info.source}" + (f"  ({info.distribution})" if info.distribution else ""))
    print("\ncall order:")
    for hook in HOOKS:
        print(f"  {hook}: {' -> '.join(host.call_order(hook)) or '-'}")
    return 0


def _moment(text: str) -> datetime:
    """An ISO date or time (UTC unless it names a zone), or an age such as 30m, 12h, 7d, 2w."""
    ages = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
    if text[:-1].isdigit() and text[-1:] in ages:
        return datetime.now(UTC) - timedelta(**{ages[text[-1]]: int(text[:-1])})
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither an ISO date/time (2026-11-01, 2026-11-01T08:00) nor an age (7d)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _erase(args: argparse.Namespace) -> int:
    import getpass

    from emotion_service.logging import configure_logging
    from emotion_service.plugins.manager import PluginError, load_plugins
    from emotion_service.plugins.store import ResultStore
    from emotion_service.server.config import Settings, results_database_url, store_database_url
    from emotion_service.server.erasure import Erasures
    from emotion_service.server.job_queue import JobQueue

    configure_logging("warning", "console")
    _use_config_file(args)
    host = load_plugins(args.select)
    # The job queue's database (the store's unless jobs_database_url says otherwise) holds jobs
    # in every state, also those that made no session (cancelled or failed early).
    jobs = JobQueue(results_database_url(Settings.load(config_file=args.config)))
    erasures = Erasures(host, jobs)
    if args.session:
        sessions = [args.session]
    else:
        store = ResultStore(store_database_url())
        try:
            sessions = erasures.session_ids_before(store.session_ids_before(args.before), args.before)
        finally:
            store.close()
    who = f"cli:{getpass.getuser()}"
    erased_any = False
    try:
        for session_id in sessions:
            erased = erasures.erase(session_id, who)
            if erased:
                erased_any = True
                print(f"erased session {session_id}: " + "; ".join(erased))
    except PluginError as exc:
        print(f"error: erasure incomplete: {exc}; fix it and run the command again", file=sys.stderr)
        return 1
    finally:
        host.on_shutdown()
        jobs.close()
    if not erased_any:
        what = f"session {args.session!r}" if args.session else f"session started before {args.before.isoformat()}"
        print(f"no {what} found (plugins: {', '.join(host.names()) or 'none'})", file=sys.stderr)
        return 1
    return 0


def _export(args: argparse.Namespace) -> int:
    from emotion_service.audio import load_audio
    from emotion_service.logging import configure_logging
    from emotion_service.paths import REPO_ROOT
    from emotion_service.tuning.export import export_onnx

    configure_logging("warning", "console")
    if not (args.model_dir / "config.json").is_file():
        print(f"error: MODEL_DIR {args.model_dir} holds no config.json: pass a model folder", file=sys.stderr)
        return 2
    if json.loads((args.model_dir / "config.json").read_text()).get("model_type") == "whisper-probe":
        # Its encoder runs on CTranslate2, outside torch: there is no graph to trace.
        print(
            f"error: {args.model_dir} is a whisper-probe model, whose frozen encoder runs on CTranslate2 and cannot "
            "be exported to ONNX; serve the folder as it is (emotion serve --model), or export the log-mel CNN",
            file=sys.stderr,
        )
        return 2
    paths = args.audio or sorted((REPO_ROOT / "tests" / "data").glob("*.flac"))[:6]
    if not paths:
        print("error: no clips to check the export on: pass --audio FILE...", file=sys.stderr)
        return 2
    rate = json.loads((args.model_dir / "preprocessor_config.json").read_text()).get("sampling_rate", 16000)
    clips = [load_audio(path, rate) for path in paths]
    report = export_onnx(args.model_dir, args.out_dir, clips, opset=args.opset)
    print(f"wrote {report.path} (inputs: {', '.join(report.inputs)}; dynamic batch and length)")
    print(
        f"largest logit difference, ONNX Runtime against PyTorch, on {report.clips_checked} clips alone and "
        f"batched: {report.max_logit_difference:.2e}"
    )
    return 0


def _report(args: argparse.Namespace) -> int:
    from emotion_service.logging import configure_logging
    from emotion_service.plugins.builtin.reports import NAME as REPORTS
    from emotion_service.plugins.builtin.reports import ReportsConfig
    from emotion_service.plugins.builtin.store import NAME as STORE
    from emotion_service.plugins.builtin.store import StoreConfig
    from emotion_service.plugins.reports import write_period_report, write_session_report
    from emotion_service.plugins.store import ResultStore, StoreError
    from emotion_service.settings import load_plugin_config

    configure_logging("warning", "console")
    _use_config_file(args)
    url = args.database_url or load_plugin_config(STORE, StoreConfig).database_url
    reports = load_plugin_config(REPORTS, ReportsConfig)
    output = args.output or Path(reports.output_dir)
    try:
        store = ResultStore(url, must_exist=True)
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        if args.session is not None:
            record = store.session(args.session)
            if record is None:
                print(f"error: no session {args.session!r} in {store.url}", file=sys.stderr)
                return 1
            paths = write_session_report(record, output, reports.html)
        else:
            until = args.until or datetime.now(UTC)
            paths = write_period_report(
                store.sessions_since(args.since, until), args.since, until, output, reports.html
            )
    finally:
        store.close()
    for path in paths:
        print(path)
    return 0


def _train(args: argparse.Namespace) -> int:
    from emotion_service.logging import configure_logging
    from emotion_service.tuning.finetune import command_line, parse_args, run_training

    configure_logging("info", "console")
    arguments = parse_args(args.train_args)  # exits naming any unknown flag
    training = arguments[2]
    if training.num_workers < 0:
        print(f"error: --num_workers must be at least 0, not {training.num_workers}", file=sys.stderr)
        return 2
    if training.use_gpu and not training.num_workers:
        print("error: --use_gpu needs --num_workers (one process trains on the GPU it finds)", file=sys.stderr)
        return 2
    try:
        if training.num_workers:
            from emotion_service.tuning.distributed import run_distributed
            from emotion_service.tuning.sweep import default_address

            run_distributed(list(args.train_args), command_line(args.train_args), default_address(training.address))
        else:
            run_training(arguments, command_line(args.train_args))
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    import json

    from transformers import AutoConfig

    from emotion_service.logging import configure_logging
    from emotion_service.server.model import ModelNotFoundError
    from emotion_service.tuning.datasets import (
        load_dataset,
        map_labels,
        parse_label_map,
        parse_speakers,
        split_by_speaker,
    )
    from emotion_service.tuning.evaluate import evaluate

    configure_logging("warning", "console")
    try:
        config = AutoConfig.from_pretrained(args.model)
        labels = [config.id2label[i] for i in range(config.num_labels)]
        examples, skipped = map_labels(load_dataset(args.dataset, args.data), labels, parse_label_map(args.label_map))
        others: list = []
        if args.speakers:
            examples, others = split_by_speaker(examples, parse_speakers(args.speakers))
        if args.conditions:
            return _evaluate_conditions(args, examples, others)
        metrics = evaluate(
            args.model, examples, args.output, device=args.device, torch_threads=args.torch_threads, dtype=args.dtype
        )
    except (ValueError, OSError, ModelNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    summary = {key: metrics[key] for key in ("n", "accuracy", "uar", "macro_f1", "dtype")}
    print(
        json.dumps(
            {**summary, "skipped": skipped, "roc_auc_macro": metrics["roc_auc"]["macro"], "output": str(args.output)}
        )
    )
    return 0


def _evaluate_conditions(args: argparse.Namespace, examples: list, others: list) -> int:
    """``emotion evaluate --conditions``: the same metrics under recording conditions."""
    from emotion_service.audio import load_audio
    from emotion_service.tuning.conditions import select
    from emotion_service.tuning.evaluate import conditions_table, evaluate_conditions

    # Babble is made of speakers outside the evaluated ones (with --speakers 19-24, the training actors).
    pool = [load_audio(example.path) for example in others[: args.babble_clips]] if others else []
    conditions = select(args.conditions, pool)
    rows = evaluate_conditions(
        args.model,
        examples,
        args.output,
        conditions,
        device=args.device,
        torch_threads=args.torch_threads,
        dtype=args.dtype,
    )
    print(conditions_table(rows), end="")
    print(f"wrote {args.output}/conditions.json, conditions.md, accuracy_vs_snr.png and conditions/<name>/metrics.json")
    return 0


def _tune(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from emotion_service.logging import configure_logging
    from emotion_service.tuning.sweep import default_address, load_sweep_file, run_sweep

    configure_logging("info", "console")
    try:
        sweep = load_sweep_file(args.search_space)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    flags = {
        "num_samples": args.num_samples,
        "gpus_per_trial": args.gpus_per_trial,
        "cpus_per_trial": args.cpus_per_trial,
        "output_dir": args.output_dir,
    }
    sweep.settings = replace(sweep.settings, **{k: v for k, v in flags.items() if v is not None})
    best = run_sweep(sweep, default_address(args.address), args.num_cpus, "emotion tune " + " ".join(sys.argv[2:]))
    print(f"best model: {best}")
    return 0


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, Callable[[argparse.Namespace], int]]]:
    parser = argparse.ArgumentParser(
        prog="emotion",
        description="Speech emotion recognition service: serve a HuBERT classifier over gRPC, train and sweep it.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="run the gRPC service (emotion.v1.EmotionService)",
        description=(
            "Run the gRPC service. Every flag can also be set by an EMOTION_* environment variable "
            "or a key in a TOML file (--config); flags win over the environment, which wins over the file."
        ),
    )
    add_arguments(serve)

    token = commands.add_parser(
        "token",
        help="make API keys for token auth",
        description="Make API keys for --auth-tokens-file. Only the SHA-256 of a token goes into the file.",
    )
    token_commands = token.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    new = token_commands.add_parser("new", help="print a new random token and its [[keys]] entry")
    new.add_argument("--name", required=True, help="client name, shown in logs (never the token)")
    new.add_argument("--scopes", nargs="+", default=["classify"], help="read (the web UI's pages), classify and/or admin (default: classify)")
    hashed = token_commands.add_parser("hash", help="print the SHA-256 of an existing token")
    hashed.add_argument("token", help="the token to hash")

    plugins = commands.add_parser(
        "plugins",
        help="list the loaded plugins and their hooks",
        description="List the plugins EMOTION_PLUGINS selects (entry-point group emotion.plugins), "
        "their hooks and the order each hook calls them in.",
    )
    plugins.add_argument(
        "--select", metavar="NAMES", help="all, none or a comma-separated list [default: $EMOTION_PLUGINS or all]"
    )
    plugins.add_argument(
        "--config", type=Path, default=None, help="TOML file with [plugins.NAME] tables (also $EMOTION_CONFIG)."
    )
    plugins.add_argument("--json", action="store_true", help="print JSON instead of a table")

    erase = commands.add_parser(
        "erase",
        help="erase a session (or every session before a date) everywhere the service wrote it, and record it",
        description="Removes a session's results, windows, utterances, alerts, metadata, jobs, retained audio and "
        "report files through every plugin's on_erase hook, and writes an erasure record (when, who, which "
        "session; no content). The running service does the same with the DeleteSession call (admin scope), "
        "and on a schedule with retention_days.",
    )
    which = erase.add_mutually_exclusive_group(required=True)
    which.add_argument("--session", metavar="ID", help="the session id to erase")
    which.add_argument(
        "--before",
        metavar="DATE",
        type=_moment,
        help="erase every session started before DATE (ISO date/time, UTC unless zoned; or an age: 90d)",
    )
    erase.add_argument("--config", type=Path, default=None, help="TOML file of settings (also $EMOTION_CONFIG)")
    erase.add_argument(
        "--select", default=None, metavar="NAMES", help="plugins to load (default: $EMOTION_PLUGINS, else all)"
    )
    export = commands.add_parser(
        "export",
        help="export a model folder to ONNX (dynamic batch and length) and check it with ONNX Runtime",
        description="Writes OUT_DIR/model.onnx (inputs as the model's feature extractor makes them, output "
        "logits) plus the model's config and preprocessor config, then runs it with ONNX Runtime on real "
        "clips and prints the largest logit difference against PyTorch. Needs the 'export' extra "
        "(pip install 'emotion-service[export]').",
    )
    export.add_argument("--format", choices=["onnx"], required=True, help="the output format (onnx)")
    export.add_argument("model_dir", type=Path, metavar="MODEL_DIR", help="a model folder (save_pretrained)")
    export.add_argument("out_dir", type=Path, metavar="OUT_DIR", help="folder to write (created when missing)")
    export.add_argument(
        "--audio", type=Path, nargs="+", metavar="FILE", help="clips to check on [default: the tests' recordings]"
    )
    export.add_argument("--opset", type=int, default=18, help="ONNX opset [default: 18]")
    report = commands.add_parser(
        "report",
        help="write a JSON + HTML report of a session, or of every session in a period",
        description=(
            "Read the results store (the store plugin's database) and write JSON and a self-contained HTML page: "
            "for one session its timeline, distribution and alerts; for a period the trends across sessions."
        ),
    )
    chosen = report.add_mutually_exclusive_group(required=True)
    chosen.add_argument("--session", metavar="ID", help="the session (stream session id, or Classify request id)")
    chosen.add_argument(
        "--since",
        metavar="DATE",
        type=_moment,
        help="sessions started since DATE: ISO date/time (UTC) or an age like 7d, 12h",
    )
    report.add_argument(
        "--until", metavar="DATE", type=_moment, help="with --since: sessions started before DATE [default: now]"
    )
    report.add_argument(
        "--database-url",
        metavar="URL",
        help="SQLAlchemy URL of the results store [env EMOTION_DATABASE_URL; default: sqlite:///emotion-results.db]",
    )
    report.add_argument(
        "--output",
        type=Path,
        metavar="DIR",
        help="folder to write to [env EMOTION_REPORTS_OUTPUT_DIR; default: emotion-reports]",
    )
    report.add_argument(
        "--config", type=Path, default=None, help="TOML file with [plugins.NAME] tables (also $EMOTION_CONFIG)."
    )

    commands.add_parser(
        "train",
        add_help=False,  # `emotion train --help` is answered by its own HfArgumentParser
        help="fine-tune a model with the Hugging Face Trainer and export a servable folder (see emotion train --help)",
    )

    evaluate = commands.add_parser(
        "evaluate",
        help="score a model on a labelled corpus: metrics.json, confusion.png, roc.png",
        description="Score MODEL on the clips of DATA whose labels are the model's (others are skipped and counted), "
        "exactly as the server does (ModelBackend, preprocess plugins), and write accuracy, UAR, macro-F1, "
        "per-class precision/recall/F1, the confusion matrix and one-vs-rest ROC/AUC.",
    )
    evaluate.add_argument("model", help="model folder or hub id")
    evaluate.add_argument("data", type=Path, help="corpus folder (or CSV manifest with --dataset csv)")
    evaluate.add_argument(
        "--dataset",
        choices=("ravdess", "emodb", "cremad", "csv"),
        default="ravdess",
        help="corpus loader [default: ravdess]",
    )
    evaluate.add_argument(
        "--label-map", help="corpus-to-model labels, e.g. 'angry=ANG,sad=SAD' (others outside are skipped)"
    )
    evaluate.add_argument("--speakers", help="only these speakers, e.g. 19-24 (the RAVDESS test actors) [default: all]")
    evaluate.add_argument(
        "--output", type=Path, default=Path("evaluation"), help="folder for the results [default: evaluation]"
    )
    evaluate.add_argument("--device", default="auto", help="auto, cpu or cuda:N [default: auto]")
    evaluate.add_argument(
        "--dtype",
        choices=("auto", "float32", "float16", "bfloat16"),
        default="auto",
        help="the weights' type, as `emotion serve --dtype`: auto picks bfloat16 on CPUs with AMX / AVX-512 BF16, "
        "so figures can differ between machines; metrics.json records the dtype scored in [default: auto]",
    )
    evaluate.add_argument(
        "--conditions",
        metavar="LIST",
        help="also score under recording conditions: 'all', or names / families (level, noise-white, "
        "noise-pink, noise-brown, babble, silence, telephone, codec, reverb), seeded; writes "
        "conditions/<name>/metrics.json, conditions.md and accuracy_vs_snr.png [default: clean only]",
    )
    evaluate.add_argument(
        "--babble-clips",
        type=int,
        default=200,
        metavar="N",
        help="clips of the speakers outside --speakers that babble is made from [default: 200]",
    )
    evaluate.add_argument(
        "--torch-threads", type=int, default=0, help="CPU threads for inference; 0: torch's default [default: 0]"
    )

    tune = commands.add_parser(
        "tune",
        help="sweep hyper-parameters with Ray Tune (ASHA) and export the best trial as a model folder",
        description="Run a Ray Tune sweep of `emotion train` described by a TOML search-space file (see "
        "tuning/search_spaces/small.toml): on a local Ray by default, on a cluster with --address or $RAY_ADDRESS.",
    )
    tune.add_argument(
        "--search-space",
        "--config",
        dest="search_space",
        type=Path,
        required=True,
        metavar="FILE",
        help="search-space TOML file",
    )
    tune.add_argument(
        "--address", help="Ray cluster: auto or ray://HOST:10001 [default: $RAY_ADDRESS, else a local Ray]"
    )
    tune.add_argument("--num-samples", type=int, help="trials to run [default: the file's [tune] num_samples]")
    tune.add_argument("--gpus-per-trial", type=float, help="GPUs each trial reserves [default: the file's, else 0]")
    tune.add_argument("--cpus-per-trial", type=float, help="CPUs each trial reserves [default: the file's, else 1]")
    tune.add_argument("--num-cpus", type=int, help="CPUs of the local Ray [default: all]")
    tune.add_argument("--output-dir", help="folder for trials and best-model/ [default: the file's]")
    return parser, {
        "serve": _serve,
        "token": _token,
        "plugins": _plugins,
        "report": _report,
        "erase": _erase,
        "export": _export,
        "train": _train,
        "evaluate": _evaluate,
        "tune": _tune,
    }


def main(argv: list[str] | None = None) -> int:
    parser, handlers = build_parser()
    # `emotion train` hands its flags to its own HfArgumentParser; every other command parses strictly.
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "train":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.train_args = extra
    try:
        return handlers[args.command](args)
    except ConfigError as exc:
        parser.error(str(exc))
    return 2
