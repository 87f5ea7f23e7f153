"""The store's spool: durable, in order, and replayed without duplicates after an interruption."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from emotion_service.plugins.store import ResultStore
from emotion_service.plugins.store.schema import AlertRow, ResultRow
from emotion_service.plugins.store.spool import PENDING, Spool
from emotion_service.plugins.types import Alert, Result


def window(session: str, index: int) -> Result:
    return Result(session, session, "window", "ANG", {"ANG": 0.9, "SAD": 0.1}, index * 1.0, index + 2.0, index)


def test_an_interrupted_replay_run_again_stores_each_write_once(tmp_path: Path) -> None:
    store = ResultStore(f"sqlite:///{tmp_path / 'r.db'}")
    spool = Spool(tmp_path / "spool")
    entries = [store.result_entry(window("s", i)) for i in range(10)]
    entries.append(store.alert_entry("s", Alert(kind="threshold", message="m", label="ANG")))
    spool.append(entries)
    assert spool.count() == 11

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
        assert conn.execute(select(func.count()).select_from(AlertRow)).scalar_one() == 1
    assert [r.index for r in store.session("s").summary.results] == list(range(10))


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


def test_a_torn_last_line_is_skipped_not_fatal(tmp_path: Path) -> None:
    store = ResultStore(f"sqlite:///{tmp_path / 'r.db'}")
    spool = Spool(tmp_path / "spool")
    spool.append([store.result_entry(window("s", 0))])
    with open(tmp_path / "spool" / PENDING, "a") as handle:
        handle.write('{"op": "result", "session_id": "s", "ind')  # a crash in the middle of an append
    assert spool.replay(store.write) == 1
    assert not spool.has_pending()
