"""The judge-hint cache against real SQLite files in tmp_path."""

from __future__ import annotations

import sqlite3
import sys
from contextlib import closing
from pathlib import Path

import anyio
import pytest

from conftest import read_only
from tracehint._cache import CachedHint, CacheMode, HintCache, default_cache_path
from tracehint._exceptions import CacheError, ConfigError

# Long enough that nothing is flushed by the timer while a test looks.
NEVER = 3600.0

WRITER_SCRIPT = """
import sys

import anyio

from tracehint._cache import CachedHint, HintCache


async def main(path: str, prefix: str, count: int) -> None:
    async with HintCache(path, batch_size=7, flush_interval=0.01, busy_timeout=10) as cache:
        for i in range(count):
            await cache.put(f"{prefix}-{i}", CachedHint(f"{prefix} {i}", prefix, 1.0, 1, 2))
            await cache.put(f"shared-{i}", CachedHint(f"shared {i}", "shared", 1.0, None, None))
            if i % 10 == 0:
                await cache.get(f"shared-{i}")


anyio.run(main, sys.argv[1], sys.argv[2], int(sys.argv[3]))
"""


def hint(text: str = "read the file before editing it", **changes: object) -> CachedHint:
    fields: dict[str, object] = {
        "text": text,
        "model": "judge-1",
        "created": 1_700_000_000.0,
        "prompt_tokens": 100,
        "completion_tokens": 20,
    }
    fields.update(changes)
    return CachedHint(**fields)  # type: ignore[arg-type]


def sql(path: Path, statement: str, *params: object) -> list[tuple[object, ...]]:
    """Run one statement on the file with plain sqlite3, as another program would."""
    with closing(sqlite3.connect(path, isolation_level=None)) as db:
        return db.execute(statement, params).fetchall()


async def wait_for_rows(path: Path, count: int) -> None:
    """Poll the file (as another process would) until it holds ``count`` hints."""
    for _ in range(500):
        if sql(path, "SELECT count(*) FROM hints") == [(count,)]:
            return
        await anyio.sleep(0.01)
    pytest.fail(f"{path} never held {count} hint(s)")


GARBAGE = b"\x00garbage bytes, not SQLite\xff" * 200


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "hints.sqlite3"


# -- round trips -------------------------------------------------------------------------


async def test_round_trip_survives_reopen(db: Path) -> None:
    stored = hint()
    async with HintCache(db) as cache:
        await cache.put("k1", stored)
        assert await cache.get("k1") == stored
    async with HintCache(db) as cache:
        assert await cache.get("k1") == stored
        assert await cache.get("k2") is None
        assert (cache.hits, cache.misses, cache.writes) == (1, 1, 0)


async def test_put_replaces_older_hint(db: Path) -> None:
    async with HintCache(db) as cache:
        await cache.put("k", hint("old"))
        await cache.flush()
        await cache.put("k", hint("new"))
    async with HintCache(db) as cache:
        found = await cache.get("k")
    assert found is not None
    assert found.text == "new"


async def test_unflushed_put_is_visible_to_get(db: Path) -> None:
    async with HintCache(db, batch_size=1000, flush_interval=NEVER) as cache:
        await cache.put("k", hint())
        assert await cache.get("k") == hint()
        assert await cache.get_many(["k"]) == {"k": hint()}
        assert cache.writes == 0
        assert cache.hits == 2


async def test_get_many_mixes_pending_stored_and_missing(db: Path) -> None:
    async with HintCache(db, batch_size=1000, flush_interval=NEVER) as cache:
        await cache.put("stored", hint("a"))
        await cache.flush()
        await cache.put("pending", hint("b"))
        found = await cache.get_many(["stored", "pending", "missing", "stored"])
        assert found == {"stored": hint("a"), "pending": hint("b")}
        assert (cache.hits, cache.misses) == (2, 1)
        assert await cache.get_many([]) == {}


async def test_get_many_queries_in_chunks(db: Path) -> None:
    keys = [f"k{i}" for i in range(1200)]
    async with HintCache(db, batch_size=10_000) as cache:
        for key in keys:
            await cache.put(key, hint(key))
        await cache.flush()
        found = await cache.get_many([*keys, "absent"])
    assert len(found) == 1200
    assert found["k1199"].text == "k1199"


# -- batching ----------------------------------------------------------------------------


async def test_puts_reach_the_file_only_when_flushed(db: Path) -> None:
    async with HintCache(db, batch_size=1000, flush_interval=NEVER) as writer:
        for key in ("a", "b", "c"):
            await writer.put(key, hint(key))
        async with HintCache(db) as reader:
            assert await reader.get_many(["a", "b", "c"]) == {}
            await writer.flush()
            assert len(await reader.get_many(["a", "b", "c"])) == 3
        assert writer.writes == 3


async def test_full_batch_is_flushed_by_put(db: Path) -> None:
    async with HintCache(db, batch_size=3, flush_interval=NEVER) as writer:
        for key in ("a", "b"):
            await writer.put(key, hint(key))
        assert sql(db, "SELECT count(*) FROM hints") == [(0,)]
        await writer.put("c", hint("c"))
        assert sql(db, "SELECT count(*) FROM hints") == [(3,)]


async def test_pending_puts_are_flushed_after_the_interval(db: Path) -> None:
    async with HintCache(db, batch_size=1000, flush_interval=0.05) as writer:
        await writer.put("a", hint())
        await wait_for_rows(db, 1)
        # The timer restarts with the next put.
        await writer.put("b", hint())
        await wait_for_rows(db, 2)
    assert writer.writes == 2


# -- stats, clear, merge -----------------------------------------------------------------


async def test_stats(db: Path) -> None:
    async with HintCache(db, batch_size=1000, flush_interval=NEVER) as cache:
        empty = await cache.stats()
        assert (empty.entries, empty.by_model, empty.oldest, empty.newest) == (0, {}, None, None)
        await cache.put("a", hint(model="m1", created=10.0, prompt_tokens=5, completion_tokens=1))
        await cache.put("b", hint(model="m1", created=30.0, prompt_tokens=None))
        await cache.put("c", hint(model="m2", created=20.0, completion_tokens=None))
        found = await cache.stats()
    assert found.path == str(db)
    assert found.entries == 3
    assert found.by_model == {"m1": 2, "m2": 1}
    assert (found.oldest, found.newest) == (10.0, 30.0)
    assert found.prompt_tokens == 5 + 100
    assert found.completion_tokens == 1 + 20
    assert found.size_bytes > 0


async def test_clear(db: Path) -> None:
    async with HintCache(db, batch_size=1000, flush_interval=NEVER) as cache:
        await cache.put("a", hint())
        await cache.flush()
        await cache.put("b", hint())
        assert await cache.clear() == 2
        assert await cache.get("a") is None
        assert await cache.get("b") is None
        assert (await cache.stats()).entries == 0
        assert await cache.clear() == 0
    async with HintCache(db) as cache:
        assert await cache.get("a") is None


async def test_merge_from_adds_only_missing_rows(tmp_path: Path, db: Path) -> None:
    other = tmp_path / "other" / "hints.sqlite3"
    async with HintCache(other) as cache:
        await cache.put("shared", hint("theirs"))
        await cache.put("only-theirs", hint("theirs"))
    sql(other, "INSERT INTO hints VALUES ('blank', '  ', 'm', 1.0, NULL, NULL)")
    async with HintCache(db, batch_size=1000, flush_interval=NEVER) as cache:
        await cache.put("shared", hint("ours"))  # pending: must still win
        assert await cache.merge_from(other) == 1
        assert await cache.merge_from(other) == 0
        assert await cache.merge_from(db) == 0
        found = await cache.get_many(["shared", "only-theirs", "blank"])
    assert {key: value.text for key, value in found.items()} == {
        "shared": "ours",
        "only-theirs": "theirs",
    }
    assert sql(other, "SELECT count(*) FROM hints") == [(3,)]  # the source is only read


async def test_merge_from_bad_sources(tmp_path: Path, db: Path) -> None:
    garbage = tmp_path / "garbage.sqlite3"
    await anyio.Path(garbage).write_bytes(GARBAGE)
    foreign = tmp_path / "foreign.sqlite3"
    sql(foreign, "CREATE TABLE notes (body TEXT)")
    empty = tmp_path / "empty.sqlite3"
    await anyio.Path(empty).touch()
    async with HintCache(db) as cache:
        with pytest.raises(CacheError, match="no such file") as missing:
            await cache.merge_from(tmp_path / "missing.sqlite3")
        assert str(tmp_path / "missing.sqlite3") in str(missing.value)
        with pytest.raises(CacheError, match="not a database") as bad:
            await cache.merge_from(garbage)
        assert str(garbage) in str(bad.value)
        with pytest.raises(CacheError, match="not a tracehint cache") as other:
            await cache.merge_from(foreign)
        assert str(foreign) in str(other.value)
        assert await cache.merge_from(empty) == 0
        # The connection is still usable after the failed merges.
        await cache.put("k", hint())
        await cache.flush()
        assert await cache.get("k") == hint()
    assert not (tmp_path / "missing.sqlite3").exists()


# -- the file ----------------------------------------------------------------------------


async def test_file_is_created_with_parents_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "hints.sqlite3"
    async with HintCache(path):
        pass
    assert sql(path, "PRAGMA journal_mode") == [("wal",)]
    assert sql(path, "SELECT key, value FROM meta ORDER BY key") == [
        ("application", "tracehint"),
        ("schema_version", "1"),
    ]


async def test_corrupt_file(db: Path) -> None:
    await anyio.Path(db).write_bytes(GARBAGE)
    with pytest.raises(CacheError, match="not a database") as info:
        async with HintCache(db):
            pass
    message = str(info.value)
    assert str(db) in message
    assert "--no-cache" in message


async def test_other_sqlite_database_is_left_alone(db: Path) -> None:
    sql(db, "CREATE TABLE notes (body TEXT)")
    with pytest.raises(CacheError, match="not a tracehint cache") as info:
        async with HintCache(db):
            pass
    assert str(db) in str(info.value)
    assert sql(db, "PRAGMA journal_mode") == [("delete",)]


async def test_newer_schema_version(db: Path) -> None:
    async with HintCache(db):
        pass
    sql(db, "UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(CacheError, match="newer tracehint") as info:
        async with HintCache(db):
            pass
    assert str(db) in str(info.value)


async def test_unreadable_folder(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    await anyio.Path(blocker).write_text("not a folder")
    with pytest.raises(CacheError) as info:
        async with HintCache(blocker / "hints.sqlite3"):
            pass
    assert str(blocker / "hints.sqlite3") in str(info.value)


async def test_folder_as_cache_file(tmp_path: Path) -> None:
    with pytest.raises(CacheError, match="cannot open the cache") as info:
        async with HintCache(tmp_path):
            pass
    assert str(tmp_path) in str(info.value)


async def test_empty_text_is_never_returned(db: Path) -> None:
    async with HintCache(db):
        pass
    sql(db, "INSERT INTO hints VALUES ('empty', '', 'm', 1.0, 1, 1)")
    sql(db, "INSERT INTO hints VALUES ('blank', ' \n\t', 'm', 1.0, 1, 1)")
    async with HintCache(db) as cache:
        assert await cache.get("empty") is None
        assert await cache.get("blank") is None
        assert await cache.get_many(["empty", "blank"]) == {}
        assert (await cache.stats()).entries == 0
        with pytest.raises(ValueError, match="empty hint"):
            await cache.put("k", hint("   "))
        assert cache.misses == 4


# -- locking and concurrency -------------------------------------------------------------


async def test_locked_file_on_open(db: Path) -> None:
    async with HintCache(db):
        pass
    with closing(sqlite3.connect(db, isolation_level=None)) as holder:
        holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(CacheError, match="another process holds it") as info:
            async with HintCache(db, busy_timeout=0.05):
                pass
        holder.execute("ROLLBACK")
    assert str(db) in str(info.value)


async def test_writer_waits_for_a_lock_released_in_time(db: Path) -> None:
    async with HintCache(db, batch_size=1000, flush_interval=NEVER, busy_timeout=10) as cache:
        await cache.put("k", hint())
        with closing(sqlite3.connect(db, isolation_level=None)) as holder:
            holder.execute("BEGIN IMMEDIATE")
            async with anyio.create_task_group() as group:
                group.start_soon(cache.flush)
                await anyio.sleep(0.1)
                assert cache.writes == 0
                holder.execute("ROLLBACK")
        assert cache.writes == 1
    assert sql(db, "SELECT count(*) FROM hints") == [(1,)]


async def test_failed_flush_keeps_hints_pending(db: Path) -> None:
    async with HintCache(db, batch_size=1000, flush_interval=NEVER, busy_timeout=0.05) as cache:
        await cache.put("k", hint())
        with closing(sqlite3.connect(db, isolation_level=None)) as holder:
            holder.execute("BEGIN IMMEDIATE")
            with pytest.raises(CacheError, match="another process holds it"):
                await cache.flush()
            holder.execute("ROLLBACK")
        assert await cache.get("k") == hint()
        assert cache.writes == 0
    async with HintCache(db) as cache:
        assert await cache.get("k") == hint()


async def test_two_caches_in_one_process_write_concurrently(db: Path) -> None:
    async def write(cache: HintCache, prefix: str) -> None:
        for i in range(200):
            await cache.put(f"{prefix}-{i}", hint(f"{prefix} {i}", model=prefix))
            await cache.put(f"shared-{i}", hint(f"shared {i}"))

    async with (
        HintCache(db, batch_size=5, flush_interval=0.01) as first,
        HintCache(db, batch_size=5, flush_interval=0.01) as second,
        anyio.create_task_group() as group,
    ):
        group.start_soon(write, first, "a")
        group.start_soon(write, second, "b")
    async with HintCache(db) as cache:
        found = await cache.stats()
    assert found.by_model == {"a": 200, "b": 200, "judge-1": 200}


async def test_two_processes_write_concurrently(db: Path) -> None:
    count = 300
    errors: dict[str, str] = {}

    async def writer(prefix: str) -> None:
        command = [sys.executable, "-c", WRITER_SCRIPT, str(db), prefix, str(count)]
        done = await anyio.run_process(command, check=False)
        if done.returncode:
            errors[prefix] = done.stderr.decode(errors="replace")

    with anyio.fail_after(60):
        async with anyio.create_task_group() as group:
            for prefix in ("a", "b"):
                group.start_soon(writer, prefix)
    assert not errors, "\n".join(errors.values())
    async with HintCache(db) as cache:
        found = await cache.stats()
        keys = [f"{prefix}-{i}" for prefix in ("a", "b", "shared") for i in range(count)]
        assert len(await cache.get_many(keys)) == 3 * count
    assert found.by_model == {"a": count, "b": count, "shared": count}


# -- cancellation and exits --------------------------------------------------------------


async def test_cancellation_inside_the_block_still_flushes(db: Path) -> None:
    with anyio.CancelScope() as scope:
        async with HintCache(db, batch_size=1000, flush_interval=NEVER) as cache:
            await cache.put("k", hint())
            scope.cancel()
            await anyio.sleep_forever()
    assert scope.cancelled_caught
    async with HintCache(db) as cache:
        assert await cache.get("k") == hint()


async def test_cancellation_from_outside_still_flushes(db: Path) -> None:
    async def work(task_status: anyio.abc.TaskStatus[None]) -> None:
        async with HintCache(db, batch_size=1000, flush_interval=NEVER) as cache:
            await cache.put("k", hint())
            task_status.started()
            await anyio.sleep_forever()

    async with anyio.create_task_group() as group:
        await group.start(work)
        group.cancel_scope.cancel()
    async with HintCache(db) as cache:
        assert await cache.get("k") == hint()


async def put_then_fail(db: Path, holder: sqlite3.Connection | None = None) -> None:
    """Put a hint, let ``holder`` take the write lock, and leave the block with an error."""
    async with HintCache(db, batch_size=1000, flush_interval=NEVER, busy_timeout=0.05) as cache:
        await cache.put("k", hint())
        if holder is not None:
            holder.execute("BEGIN IMMEDIATE")
        raise LookupError


async def test_exception_inside_the_block_still_flushes(db: Path) -> None:
    with pytest.raises(LookupError):
        await put_then_fail(db)
    async with HintCache(db) as cache:
        assert await cache.get("k") == hint()


async def test_failed_final_flush_does_not_hide_the_blocks_exception(db: Path) -> None:
    async with HintCache(db):
        pass
    with closing(sqlite3.connect(db, isolation_level=None)) as holder:
        with pytest.raises(LookupError) as info:
            await put_then_fail(db, holder)
        holder.execute("ROLLBACK")
    assert "1 cached hint(s) were not saved" in "\n".join(info.value.__notes__)


async def test_failed_final_flush_raises(db: Path) -> None:
    async def put_and_leave(holder: sqlite3.Connection) -> None:
        async with HintCache(db, batch_size=1000, flush_interval=NEVER, busy_timeout=0.05) as cache:
            await cache.put("k", hint())
            holder.execute("BEGIN IMMEDIATE")

    async with HintCache(db):
        pass
    with closing(sqlite3.connect(db, isolation_level=None)) as holder:
        with pytest.raises(CacheError, match="another process holds it") as info:
            await put_and_leave(holder)
        holder.execute("ROLLBACK")
    assert str(db) in str(info.value)


async def test_cancelled_put_stores_nothing(db: Path) -> None:
    async with HintCache(db) as cache:
        with anyio.CancelScope() as scope:
            scope.cancel()
            await cache.put("k", hint())
        assert await cache.get("k") is None
    assert sql(db, "SELECT count(*) FROM hints") == [(0,)]


async def test_use_outside_the_block_is_an_error(db: Path) -> None:
    cache = HintCache(db)
    with pytest.raises(RuntimeError, match="not open"):
        await cache.get("k")
    async with cache:
        pass
    with pytest.raises(RuntimeError, match="not open"):
        await cache.put("k", hint())
    with pytest.raises(RuntimeError, match="only once"):
        async with cache:
            pass


# -- configuration -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [{"batch_size": 0}, {"flush_interval": 0.0}, {"busy_timeout": -1.0}],
)
def test_bad_options(db: Path, options: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        HintCache(db, **options)  # type: ignore[arg-type]


def test_default_cache_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("TRACEHINT_CACHE", raising=False)
    default = default_cache_path()
    assert default.name == "hints.sqlite3"
    assert "tracehint" in default.parts
    monkeypatch.setenv("TRACEHINT_CACHE", str(tmp_path / "mine.sqlite3"))
    assert default_cache_path() == tmp_path / "mine.sqlite3"


# -- a cache that cannot be written -----------------------------------------------------------


@pytest.mark.parametrize("locked", ["file", "folder", "both"])
async def test_read_only_cache_still_answers(tmp_path: Path, locked: str) -> None:
    folder = tmp_path / "shared"
    db = folder / "hints.sqlite3"
    async with HintCache(db) as cache:
        await cache.put("k", hint())
    data = db.read_bytes()
    paths = {"file": [db], "folder": [folder], "both": [db, folder]}[locked]
    with read_only(*paths):
        async with HintCache(db, batch_size=1) as cache:
            assert cache.mode is CacheMode.READ_ONLY
            assert cache.read_only_reason
            assert await cache.get("k") == hint()
            assert await cache.get_many(["k", "other"]) == {"k": hint()}
            await cache.put("new", hint("a new hint that cannot be kept"))  # no error
            await cache.flush()
            assert cache.unsaved == 1
            assert cache.writes == 0
            assert (await cache.stats()).entries == 1
            with pytest.raises(CacheError, match="it is read-only"):
                await cache.clear()
    assert db.read_bytes() == data
    async with HintCache(db) as cache:
        assert cache.mode is CacheMode.READ_WRITE
        assert await cache.get("new") is None


async def test_read_only_empty_file_answers_nothing(tmp_path: Path) -> None:
    db = tmp_path / "hints.sqlite3"
    db.write_bytes(b"")
    with read_only(db, tmp_path):
        async with HintCache(db) as cache:
            assert cache.mode is CacheMode.READ_ONLY
            assert await cache.get("k") is None


async def test_missing_cache_in_a_read_only_folder_is_an_error(tmp_path: Path) -> None:
    folder = tmp_path / "locked"
    folder.mkdir()
    with read_only(folder), pytest.raises(CacheError, match="check that its folder is writable"):
        async with HintCache(folder / "hints.sqlite3"):
            pass


async def test_damaged_read_only_cache_is_still_an_error(db: Path) -> None:
    await anyio.Path(db).write_bytes(GARBAGE)
    with read_only(db), pytest.raises(CacheError, match="not a tracehint cache"):
        async with HintCache(db):
            pass
