"""`emotion train --num_workers N` on a real two-node Ray cluster started on this machine.

The fixture runs `ray start --head` and a second node with `ray start --address` (separate
processes, one CPU each), so two workers land on two nodes and train over gloo. Checked: two
workers at per-device batch 2 give the weights of one process without Ray at batch 4 (same global
batch, same clips per step); a worker killed mid-run makes Ray restart the group from the last
checkpoint.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from emotion_service.tuning.distributed import ATTEMPT_LOG_ENV
from tests.server_process import free_port
from tests.tuning_helpers import TINY_HUBERT, write_manifest

# Starts Ray: `make test` runs this module after the rest, in one process (Makefile TEST_WORKERS).
pytestmark = pytest.mark.ray

RAY = str(Path(sys.executable).with_name("ray"))
EMOTION = str(Path(sys.executable).with_name("emotion"))
# A tiny HuBERT without any randomness in its forward pass (no dropout, no time masking) and with
# per-clip layer norms only: the two set-ups must differ by float summation order alone.
DETERMINISTIC_HUBERT = json.dumps(
    {
        **json.loads(TINY_HUBERT),
        "hidden_dropout": 0.0,
        "attention_dropout": 0.0,
        "activation_dropout": 0.0,
        "feat_proj_dropout": 0.0,
        "final_dropout": 0.0,
        "layerdrop": 0.0,
        "mask_time_prob": 0.0,
    }
)
# Float sums in another order (a gloo all-reduce of two halves against one batch) after 3 AdamW steps.
WEIGHT_TOLERANCE = 1e-4
# A cluster of this machine's own processes, on loopback: no token to hand around.
RAY_ENV = {"RAY_AUTH_MODE": "disabled"}


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[str]:
    """A head node and a second node, one CPU each, as separate `ray start` processes."""
    port = free_port()
    address = f"127.0.0.1:{port}"
    common = ["--num-cpus=1", "--num-gpus=0", "--disable-usage-stats"]
    env = {**os.environ, **RAY_ENV}
    subprocess.run(
        [RAY, "start", "--head", f"--port={port}", "--include-dashboard=false", *common], check=True, env=env
    )
    try:
        subprocess.run([RAY, "start", f"--address={address}", *common], check=True, env=env)
        yield address
    finally:
        subprocess.run([RAY, "stop", "--force"], check=False, env=env)


def train(address: str, output: Path, manifest: Path, workers: int, batch: int, epochs: int, **env: str) -> str:
    argv = [
        EMOTION, "train", "--data", str(manifest), "--dataset", "csv", "--from_scratch",
        "--architecture", "hubert-small", "--config_overrides", DETERMINISTIC_HUBERT,
        "--output_dir", str(output), "--num_train_epochs", str(epochs), "--val_fraction", "0",
        "--per_device_train_batch_size", str(batch), "--max_seconds", "1.0", "--augment_probability", "0",
        "--class_weights", "none", "--train_sampling_strategy", "sequential", "--seed", "3",
        "--learning_rate", "1e-3", "--warmup_steps", "0", "--report_to", "none", "--disable_tqdm", "true",
        "--num_workers", str(workers), *(("--address", address) if workers else ()),
    ]  # fmt: skip
    log = output.parent / f"{output.name}.log"
    with log.open("w") as handle:
        try:
            code = subprocess.run(
                argv, stdout=handle, stderr=subprocess.STDOUT, timeout=240, env={**os.environ, **RAY_ENV, **env}
            ).returncode
        except subprocess.TimeoutExpired:
            code = None
    text = log.read_text()
    assert code == 0, f"emotion train exited {code}:\n{text[-4000:]}"
    return text


def test_two_workers_on_two_nodes_match_one_process_with_the_same_global_batch(ray_cluster: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    manifest = write_manifest(tmp_path)
    log = train(ray_cluster, tmp_path / "two", manifest, workers=2, batch=2, epochs=1)
    assert "Started training worker group of size 2" in log
    # The reference: one process without Ray (--num_workers 0) at twice the per-device batch.
    train(ray_cluster, tmp_path / "one", manifest, workers=0, batch=4, epochs=1)
    two, one = load_file(tmp_path / "two" / "model.safetensors"), load_file(tmp_path / "one" / "model.safetensors")
    assert two.keys() == one.keys()
    for name in one:
        assert np.abs(two[name] - one[name]).max() < WEIGHT_TOLERANCE, name
    # The exported folder is a servable model, with its card, like a single-process run's.
    assert {"config.json", "preprocessor_config.json", "README.md"} <= {p.name for p in (tmp_path / "two").iterdir()}


def test_a_worker_killed_mid_run_resumes_from_the_last_checkpoint(ray_cluster: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    manifest = write_manifest(tmp_path)
    attempts = tmp_path / "attempts.log"
    output = tmp_path / "model"
    epochs, steps_per_epoch = KILL_EPOCHS, 12 // (2 * 2)  # 12 clips, 2 workers at batch 2
    killer = subprocess.Popen(
        [sys.executable, "-c", _KILLER, str(attempts), str(output / "ray")],
        stdout=subprocess.PIPE,
        text=True,
    )
    train(ray_cluster, output, manifest, workers=2, batch=2, epochs=epochs, **{ATTEMPT_LOG_ENV: str(attempts)})
    killed = killer.communicate(timeout=30)[0].strip()
    assert killed.startswith("killed"), killed
    lines = attempts.read_text().splitlines()
    first, later = lines[:2], lines[2:]
    assert all("resume=None" in line for line in first)
    assert later and all("resume=" in line and "resume=None" not in line for line in later), lines
    # Killed after Ray registered a checkpoint at some global step, before the last one.
    reports_then, step_then = (int(word.split("=")[1]) for word in killed.split()[2:4])
    assert 1 <= reports_then and step_then == reports_then * steps_per_epoch < epochs * steps_per_epoch, killed
    # Ray's record of every checkpoint the run reported, over both attempts: one per epoch, each at
    # the global step that follows the one before. A restarted group that trained from step 0 again
    # would have reported its first epochs twice (more reports than epochs, steps counted from 3 again).
    snapshot = json.loads((output / "ray" / output.name / "checkpoint_manager_snapshot.json").read_text())
    kept = [(index, result["metrics"]["step"]) for index, result in
            zip(snapshot["checkpoint_report_indices"], snapshot["checkpoint_results"])]  # fmt: skip
    assert all(step == (index + 1) * steps_per_epoch for index, step in kept), (
        f"after the restart the global step did not continue from the checkpoint: (report, step) {kept}"
    )
    assert snapshot["current_report_index"] == epochs, (
        f"{snapshot['current_report_index']} checkpoints reported for {epochs} epochs: epochs were trained twice"
    )
    assert snapshot["latest_checkpoint_result"]["metrics"]["step"] == epochs * steps_per_epoch
    # The exported weights are the last checkpoint's, trained through to the last step.
    last = json.loads((output / f"checkpoint-{epochs * steps_per_epoch}" / "trainer_state.json").read_text())
    assert last["global_step"] == epochs * steps_per_epoch
    assert (output / "model.safetensors").is_file()
    shutil.rmtree(output / "ray", ignore_errors=True)


# Epochs of the kill test: enough that the run is still training when the killer strikes after the
# first checkpoint, few enough to keep the restarted attempt short.
KILL_EPOCHS = 8

# Waits until Ray has registered a checkpoint, then SIGKILLs one worker of the first attempt and
# prints the reports Ray had registered by then and the global step of the latest one.
_KILLER = """
import json, os, signal, sys, time
from pathlib import Path
attempts, storage = Path(sys.argv[1]), Path(sys.argv[2])
deadline = time.time() + 400
while time.time() < deadline:
    # The controller's snapshot lists the checkpoints it has registered (a folder appears while it uploads).
    snapshots = list(storage.rglob("checkpoint_manager_snapshot.json")) if storage.is_dir() else []
    if attempts.is_file() and snapshots:
        try:
            snapshot = json.loads(snapshots[0].read_text())
        except ValueError:  # caught while Ray rewrites it
            continue
        step = snapshot["latest_checkpoint_result"]["metrics"]["step"]
        pid = int(attempts.read_text().splitlines()[0].split("pid=")[1].split()[0])
        os.kill(pid, signal.SIGKILL)
        print(f"killed {pid} reports={snapshot['current_report_index']} step={step}")
        break
    time.sleep(0.2)
else:
    print("no checkpoint appeared")
"""
