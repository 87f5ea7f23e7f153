"""The store's spool: durable, in order, and replayed without duplicates after an interruption."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from emotion_service.plugins.store import ResultStore
from emotion_service.plugins.store.schema import AlertRow, ResultRow
from emotion_service.plugins.store.spool import Spool
from emotion_service.plugins.types import Alert, Result


def window(session: str, index: int) -> Result:
    return Result(session, session, "window", "ANG", {"ANG": 0.9, "SAD": 0.1}, index * 1.0, index + 2.0, index)


def test_an_interrupted_replay_run_again_stores_each_write_once(tmp_path: Path) -> None:
    store = ResultStore(f"sqlite:///{tmp_path / 'r.db'}")
    spool = Spool(tmp_path / "spool")
    entries = [store.result_entry(window("s", i)) for i in range(10)]
    # Alerts in the first two batches: both are written, unconfirmed, then written again.
    entries.insert(1, store.alert_entry("s", Alert(kind="threshold", message="m", label="ANG", time_s=2.0)))
    entries.insert(6, store.alert_entry("s", Alert(kind="threshold", message="m", label="SAD", time_s=6.0)))
    spool.append(entries)
    assert spool.count() == 12

    def database_away(batch: list[dict]) -> None:
        raise ConnectionError("database is away")

    with pytest.raises(ConnectionError):
        spool.replay(database_away, batch_size=4)
    assert spool.count() == 12, "a write the database did not take stays in the spool"

    calls = 0

    def fails_on_the_second_batch(batch: list[dict]) -> None:
        nonlocal calls
        calls += 1
        store.write(batch)
        if calls == 2:  # written, then the connection died before the spool heard back
            raise ConnectionError("database went away")

    with pytest.raises(ConnectionError):
        spool.replay(fails_on_the_second_batch, batch_size=4)
    assert spool.has_pending(), "what was not confirmed stays"
    spool.replay(store.write, batch_size=4)
    assert not spool.has_pending()
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(ResultRow)).scalar_one() == 10
        assert conn.execute(select(func.count()).select_from(AlertRow)).scalar_one() == 2
    record = store.session("s")
    assert [r.index for r in record.summary.results] == list(range(10))
    assert sorted(a.label for a in record.summary.alerts) == ["ANG", "SAD"]


def test_the_same_alert_handed_to_the_store_twice_is_stored_once(tmp_path: Path) -> None:
    """A job retried after its worker lost its lease raises its alerts again: they are stored once."""
    store = ResultStore(f"sqlite:///{tmp_path / 'r.db'}")
    angry = Alert(kind="threshold", message="angry", label="ANG", value=0.8, time_s=6.0, details={"k": "v"})
    store.add_alert("s", angry)
    store.add_alert("s", Alert(**dataclasses.asdict(angry)))  # an equal alert, made anew
    assert [a.label for a in store.session("s").summary.alerts] == ["ANG"]
    # Another alert (another time, or another session) is another event.
    store.add_alert("s", dataclasses.replace(angry, time_s=9.0))
    store.add_alert("t", angry)
    assert [a.time_s for a in store.session("s").summary.alerts] == [6.0, 9.0]
    assert [a.time_s for a in store.session("t").summary.alerts] == [6.0]


def test_appends_during_a_replay_wait_for_the_next_one(tmp_path: Path) -> None:
    store = ResultStore(f"sqlite:///{tmp_path / 'r.db'}")
    spool = Spool(tmp_path / "spool")
    spool.append([store.result_entry(window("s", 0))])

    def write_and_meanwhile_append(batch: list[dict]) -> None:
        store.write(batch)
        spool.append([store.result_entry(window("s", 1))])

    assert spool.replay(write_and_meanwhile_append) == 1
    assert spool.count() == 1
    assert spool.replay(store.write) == 1
    assert len(store.session("s").summary.results) == 2


# A child that appends writes one by one and says which returned, until it is killed.
_APPENDER = """
import sys
from pathlib import Path
from emotion_service.plugins.store.spool import Spool
spool = Spool(Path(sys.argv[1]))
big = "x" * 20000  # large entries: the kill lands in the middle of a write more often
for i in range(100000):
    spool.append([{"op": "result", "session_id": "s", "index": i, "pad": big}])
    print(i, flush=True)
"""


def test_a_process_killed_mid_write_loses_no_returned_append_and_the_next_one_counts(tmp_path: Path) -> None:
    """SIGKILL while appending, then restart: every append that returned is there, once, and the
    spool goes on taking writes (a torn write neither corrupts it nor swallows the next one)."""
    folder = tmp_path / "spool"
    for _ in range(3):  # killed at three different moments, one restart after another
        child = subprocess.Popen([sys.executable, "-c", _APPENDER, str(folder)], stdout=subprocess.PIPE, text=True)
        assert child.stdout is not None
        returned = [int(child.stdout.readline()) for _ in range(40)]  # 40 appends have returned...
        child.kill()  # ...and it dies wherever it is, most likely inside the next one
        returned += [int(line) for line in child.stdout.read().split()]
        child.wait()
        spool = Spool(folder)
        spool.append([{"op": "result", "session_id": "s", "index": -1}])  # the write after the crash
        seen: list[int] = []
        assert spool.replay(lambda batch: seen.extend(e["index"] for e in batch)) == len(seen)
        assert seen[-1] == -1, "the first write after the crash is kept"
        kept = seen[:-1]
        assert kept[: len(returned)] == returned, "every append that returned, in order"
        assert len(kept) <= len(returned) + 1 and len(set(kept)) == len(kept)  # at most the one in flight, once
        assert not spool.has_pending()
        spool.close()


def test_an_earlier_versions_json_lines_are_imported_once(tmp_path: Path) -> None:
    store = ResultStore(f"sqlite:///{tmp_path / 'r.db'}")
    folder = tmp_path / "spool"
    folder.mkdir()
    line = json.dumps(store.result_entry(window("s", 0)))
    (folder / "pending.jsonl").write_text(line + "\n" + '{"op": "result", "session_id": "s", "ind')  # torn
    (folder / "rejected.jsonl").write_text(json.dumps({"reason": "IntegrityError", "entry": {"session_id": "s"}}) + "\n")
    spool = Spool(folder)
    assert not (folder / "pending.jsonl").exists() and not (folder / "rejected.jsonl").exists()
    assert spool.replay(store.write) == 1 and len(store.session("s").summary.results) == 1
    assert spool.rejected() == [("IntegrityError", {"session_id": "s"})]


def test_erasing_a_session_leaves_no_byte_of_it_in_the_spool_files(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    secret = "session-4f7d2a-jane-doe"
    spool.append([{"op": "result", "session_id": secret, "index": i, "metadata": {"candidate": secret}} for i in range(50)])
    spool.append([{"op": "result", "session_id": "other", "index": 0}])
    spool.reject([{"op": "alert", "session_id": secret, "message": secret}], "IntegrityError: refused")
    assert spool.erase(secret) == 51
    assert spool.count() == 1 and spool.rejected() == []
    for path in (tmp_path / "spool").iterdir():
        assert secret.encode() not in path.read_bytes(), path.name
