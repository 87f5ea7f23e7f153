"""The README's screenshots of the web UI: a real two-party diarized session, as a person sees it.

Builds a conversation in one channel from the test clips (actor 21, a man, and actor 20, a woman,
taking turns 1-1.5 s apart), starts ``emotion serve --http-port`` on the bundled model with the
``store`` plugin in a temporary folder, submits the recording as a job with ``--diarize`` (two
speakers), waits for it, and photographs its page in the system's Chromium (Playwright): the whole
page down to the per-speaker summary at 1440 px, the same filtered to one speaker, and the top of
it on a 390 px phone. Writes docs/screenshots/*.png (cropped to the page; each under 300 KB).

    make screenshots          # or: .venv/bin/python scripts/screenshots.py [--out DIR]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # tests.server_process: `emotion serve` started as the tests start it

from emotion_client import EmotionClient  # noqa: E402
from emotion_service.audio import load_audio  # noqa: E402
from emotion_service.paths import BUNDLED_MODEL  # noqa: E402
from tests.server_process import free_port, serving  # noqa: E402

DATA = REPO / "tests" / "data"
RATE = 16_000
MAX_BYTES = 300 * 1024


def conversation(path: Path) -> float:
    """Twelve turns: the man in six emotions (strongly said), the woman's one clip each time; its seconds."""
    man = [DATA / f"03-01-{e}-21.flac" for e in ("01-01-01-01", "05-02-01-01", "04-02-01-01", "03-02-01-01",
                                                 "06-02-01-01", "07-02-01-01")]  # fmt: skip
    woman = sorted(DATA.glob("*-20.flac"))
    rng = np.random.default_rng(7)
    pieces = [np.zeros(RATE // 2, np.float32)]
    for turn in range(12):
        clip = man[turn // 2] if turn % 2 == 0 else woman[0]
        speech, _ = librosa.effects.trim(load_audio(clip, RATE), top_db=30)
        speech = 0.3 * speech / max(1e-6, float(np.abs(speech).max()))  # one level for every turn
        pieces += [speech, np.zeros(int(rng.uniform(1.0, 1.5) * RATE), np.float32)]
    wave = np.concatenate(pieces)
    wave = wave + rng.normal(0, 1e-3, len(wave)).astype(np.float32)
    sf.write(path, wave, RATE, subtype="PCM_16")
    return len(wave) / RATE


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots", help="where the PNGs go")
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("no system Chromium: install it (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        recording = folder / "two-speakers.wav"
        seconds = conversation(recording)
        http = free_port()
        env = {
            "EMOTION_PLUGINS": "store,threshold_alerts",
            "EMOTION_DATABASE_URL": f"sqlite:///{folder / 'results.db'}",
            "EMOTION_STORE_SPOOL_DIR": str(folder / "spool"),
        }
        with serving(BUNDLED_MODEL, "--http-port", str(http), env=env) as (port, _, _):
            with EmotionClient(f"127.0.0.1:{port}") as client:
                job = client.submit_job(
                    [recording], diarize=True, num_speakers=2, metadata={"interview": "two speakers, one channel"}
                )
                job = client.wait_job(job.job_id, timeout=300)
            if job.state != "succeeded":
                sys.exit(f"the job {job.state}: {job.error}")
            speakers = sorted({u.speaker for u in job.utterances})
            print(f"{seconds:.0f} s, {len(job.utterances)} utterances, speakers {speakers}")
            for u in job.utterances:
                print(f"  {u.start_s:5.1f}-{u.end_s:5.1f} s  {u.speaker}  {u.label or 'no speech'}")
            if len(speakers) != 2:
                sys.exit(f"diarization found {speakers}, not two speakers: no screenshots")
            page_url = f"http://127.0.0.1:{http}/sessions/{job.session_id}"
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
                shots = [
                    ("session-two-speakers.png", 1440, "", "#parties"),
                    ("session-one-speaker.png", 1440, speakers[1], "#distribution"),
                    ("session-phone.png", 390, "", "#distribution"),
                ]
                for name, width, party, last in shots:
                    context = browser.new_context(viewport={"width": width, "height": 900}, timezone_id="Europe/Paris")
                    page = context.new_page()
                    page.goto(page_url + (f"?party={party}" if party else ""))
                    page.locator("#lanes svg").wait_for()
                    page.locator("#timeline canvas").first.wait_for()
                    # Down to the end of `last` (the per-speaker summary, or the distribution): not the long table.
                    bottom = page.evaluate(
                        "(s) => { const r = document.querySelector(s).getBoundingClientRect(); return r.bottom + scrollY; }",
                        last,
                    )
                    target = args.out / name
                    page.screenshot(
                        path=str(target), full_page=True, clip={"x": 0, "y": 0, "width": width, "height": bottom + 16}
                    )
                    context.close()
                    size = target.stat().st_size
                    # --out may lie outside the repository.
                    print(f"{target.relative_to(REPO) if target.is_relative_to(REPO) else target}: {size // 1024} KB")
                    if size > MAX_BYTES:
                        sys.exit(f"{target} is {size // 1024} KB, over {MAX_BYTES // 1024} KB")
                browser.close()


if __name__ == "__main__":
    main()
