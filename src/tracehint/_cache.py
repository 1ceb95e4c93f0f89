"""The judge-hint cache: one SQLite file that remembers judge answers across runs.

This module owns the cache file and nothing else: its schema (a ``hints`` table keyed by the
judge's cache key, and a ``meta`` table holding the schema version), how it is opened (WAL
journal, so two processes can share one file safely; read-only when the file or its folder is
not writable, so a shared read-only cache still answers), how writes are batched (one transaction
per batch), and how every SQLite or file-system failure becomes a ``CacheError`` that names the
file and says what to do about it.

It needs the asyncio backend of anyio, because ``aiosqlite`` runs on asyncio.
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Final, Self

import aiosqlite
import anyio
import platformdirs
from anyio.lowlevel import cancel_shielded_checkpoint, checkpoint_if_cancelled

from tracehint._exceptions import CacheError, ConfigError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
    from types import TracebackType

    from anyio.abc import TaskGroup

__all__ = [
    "CACHE_ENV",
    "SCHEMA_VERSION",
    "CacheMode",
    "CacheStats",
    "CachedHint",
    "HintCache",
    "default_cache_path",
]

CACHE_ENV: Final = "TRACEHINT_CACHE"
"""Environment variable that overrides the default cache file."""

SCHEMA_VERSION: Final = 1
"""Version of the cache file layout this tracehint reads and writes."""

_APPLICATION: Final = "tracehint"
_COLUMNS: Final = ("key", "text", "model", "created", "prompt_tokens", "completion_tokens")
_CREATE: Final = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    (
        "CREATE TABLE IF NOT EXISTS hints ("
        " key TEXT PRIMARY KEY,"
        " text TEXT NOT NULL,"
        " model TEXT NOT NULL,"
        " created REAL NOT NULL,"
        " prompt_tokens INTEGER,"
        " completion_tokens INTEGER)"
    ),
)
_MERGE_SCHEMA: Final = "merge_source"
_SELECT: Final = "SELECT key, text, model, created, prompt_tokens, completion_tokens FROM hints"
_SELECT_ONE: Final = f"{_SELECT} WHERE key = ?"
_INSERT: Final = (
    "INSERT OR REPLACE INTO hints"
    " (key, text, model, created, prompt_tokens, completion_tokens) VALUES (?, ?, ?, ?, ?, ?)"
)
# Rows whose text is empty or blank are never hints, whoever wrote them.
_STATS: Final = (
    "SELECT model, count(*), min(created), max(created),"
    " coalesce(sum(prompt_tokens), 0), coalesce(sum(completion_tokens), 0)"
    " FROM hints WHERE length(trim(text, char(32, 9, 10, 11, 12, 13))) > 0"
    " GROUP BY model ORDER BY model"
)
# ``merge_source`` is _MERGE_SCHEMA, spelled out so the statement is one plain literal.
_MERGE: Final = (
    "INSERT OR IGNORE INTO main.hints"
    " (key, text, model, created, prompt_tokens, completion_tokens)"
    " SELECT key, text, model, created, prompt_tokens, completion_tokens"
    " FROM merge_source.hints WHERE length(trim(text, char(32, 9, 10, 11, 12, 13))) > 0"
)
# Stay well below SQLite's limit on bound parameters in one statement.
_KEYS_PER_QUERY: Final = 500

_OWN_ADVICE: Final = "pass --cache PATH / --no-cache"
_MERGE_ADVICE: Final = "check the path of the cache file to merge"


@dataclass(frozen=True, slots=True)
class CachedHint:
    """One judge answer as stored in the cache."""

    text: str
    """The hint text; never empty."""
    model: str
    """The model that wrote the hint."""
    created: float
    """When the hint was written (unix time)."""
    prompt_tokens: int | None
    """Prompt tokens the judge reported for the request, if it did."""
    completion_tokens: int | None
    """Completion tokens the judge reported for the request, if it did."""


@dataclass(frozen=True, slots=True)
class CacheStats:
    """What a cache file holds (``tracehint cache stats``)."""

    path: str
    """The cache file."""
    entries: int
    """Usable hints in the file."""
    size_bytes: int
    """Size of the file plus its ``-wal`` journal."""
    by_model: dict[str, int]
    """Usable hints per model."""
    oldest: float | None
    """Creation time of the oldest hint (unix time), ``None`` when empty."""
    newest: float | None
    """Creation time of the newest hint (unix time), ``None`` when empty."""
    prompt_tokens: int
    """Prompt tokens spent on the cached hints (as reported by the judge)."""
    completion_tokens: int
    """Completion tokens spent on the cached hints (as reported by the judge)."""


def default_cache_path() -> Path:
    """The cache file used when none is given.

    ``$TRACEHINT_CACHE`` when it is set and not empty, else ``hints.sqlite3`` in the user's cache
    folder for tracehint (``~/.cache/tracehint`` on Linux).
    """
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser()
    return platformdirs.user_cache_path("tracehint") / "hints.sqlite3"


class CacheMode(Enum):
    """Whether a ``HintCache`` keeps what is put in it."""

    READ_WRITE = "read_write"
    READ_ONLY = "read_only"
    """The file or its folder is not writable: lookups still hit, new hints are not kept."""


# SQLite's words for "you may not write here" (a read-only file, folder or file system).
_READ_ONLY_ERRORS: Final = ("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM", "SQLITE_AUTH")
# How a read-only file is opened, in order: read-only with the usual locking, then, when even
# that needs a file it cannot create (the WAL's shared-memory file in a read-only folder), as
# an immutable file (no locking: read as it is).
_READ_ONLY_URIS: Final = ("mode=ro", "immutable=1")


class _State(Enum):
    NEW = "new"
    OPEN = "open"
    CLOSED = "closed"


class HintCache:
    """The judge-hint cache in one SQLite file, as an async context manager.

    ``async with HintCache(path) as cache:`` opens (and if needed creates) the file on the
    caller's event loop; leaving the block writes every pending hint, even when the block is
    cancelled, and closes the file. Enter and leave it in the same task, as any anyio task group.

    Writes are buffered: ``put`` keeps the hint in memory (``get`` sees it at once) and the
    buffer is written as one transaction when ``batch_size`` hints are pending (by the ``put``
    that fills it, so a fast writer waits for the disk) or ``flush_interval`` seconds after the
    oldest pending ``put`` (by a background task the cache owns and stops on exit).

    Several caches, in this process or in others, may share one file: the file uses a WAL
    journal, writes take the write lock up front and wait up to ``busy_timeout`` seconds for
    it. A write transaction, once begun, finishes even if the caller is cancelled meanwhile, so
    cancellation can be delayed by up to ``busy_timeout``.

    An existing file that cannot be written (a read-only file, or a folder where the journal
    files cannot be created) is opened read-only instead: ``mode`` is then
    ``CacheMode.READ_ONLY`` (``read_only_reason`` says why), lookups still hit, and ``put``
    keeps nothing (``unsaved`` counts what was not kept).

    Every other failure to open or use the file raises ``CacheError``, naming the file.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        batch_size: int = 256,
        flush_interval: float = 0.5,
        busy_timeout: float = 30.0,
    ) -> None:
        if batch_size < 1:
            raise ConfigError(f"cache batch_size must be at least 1, not {batch_size}")
        if not flush_interval > 0:
            raise ConfigError(f"cache flush_interval must be positive, not {flush_interval}")
        if not busy_timeout >= 0:
            raise ConfigError(f"cache busy_timeout must not be negative, not {busy_timeout}")
        self._path = Path(os.fspath(path))
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._busy_timeout = busy_timeout
        self._state = _State.NEW
        self._db: aiosqlite.Connection | None = None
        self._group: TaskGroup | None = None
        # Serialises write transactions and multi-statement operations on the one connection.
        self._lock = anyio.Lock()
        self._pending: dict[str, CachedHint] = {}
        self._first_pending: float | None = None  # anyio clock time of the oldest pending put
        self._wakeup = anyio.Event()
        self._writes = 0
        self._hits = 0
        self._misses = 0
        self._mode = CacheMode.READ_WRITE
        self._read_only_reason: str | None = None
        self._unsaved = 0

    # -- properties -----------------------------------------------------------------------

    @property
    def path(self) -> Path:
        """The cache file."""
        return self._path

    @property
    def mode(self) -> CacheMode:
        """Whether new hints are kept (``READ_ONLY``: the file cannot be written)."""
        return self._mode

    @property
    def read_only_reason(self) -> str | None:
        """Why the cache is read-only (SQLite's words), ``None`` when it is not."""
        return self._read_only_reason

    @property
    def unsaved(self) -> int:
        """Hints put into a read-only cache, and so not kept."""
        return self._unsaved

    @property
    def writes(self) -> int:
        """Hints written to the file by this cache (a key put twice before a flush counts once)."""
        return self._writes

    @property
    def hits(self) -> int:
        """Lookups (``get`` calls and keys asked of ``get_many``) that found a hint."""
        return self._hits

    @property
    def misses(self) -> int:
        """Lookups (``get`` calls and keys asked of ``get_many``) that found nothing."""
        return self._misses

    # -- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._state is not _State.NEW:
            raise RuntimeError("a HintCache can be entered only once; create a new one")
        self._db = await self._open()
        group = anyio.create_task_group()
        try:
            await group.__aenter__()
        except BaseException:
            await self._close_connection(None)
            raise
        group.start_soon(self._flush_when_due)
        self._group = group
        self._state = _State.OPEN
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        group, self._group = self._group, None
        self._state = _State.CLOSED
        if group is None:
            return
        group.cancel_scope.cancel()
        try:
            # Not handing the block's exception to the task group: it would come out wrapped in
            # an ExceptionGroup. The flusher never fails on purpose, so the group only raises
            # (a bug in the flusher) or re-raises a cancellation from outside.
            await group.__aexit__(None, None, None)
        finally:
            with anyio.CancelScope(shield=True):
                await self._close(exc)

    async def _open(self) -> aiosqlite.Connection:
        try:
            await anyio.Path(self._path).parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise CacheError(
                f"cannot create the folder of the cache {self._path} ({error.strerror});"
                f" {_OWN_ADVICE}"
            ) from error
        exists = await anyio.Path(self._path).is_file()
        reason = "the file is not writable"
        failure: CacheError | None = None
        # ``access`` sees modes, immutable files and read-only file systems; SQLite would open
        # such a file for reading without a word and fail only at the first write.
        if not exists or await anyio.to_thread.run_sync(os.access, self._path, os.W_OK):
            try:
                return await self._connect(None)
            except CacheError as error:
                if not exists or not _read_only_error(error):
                    raise
                reason, failure = str(error.__cause__), error
        for parameter in _READ_ONLY_URIS:
            try:
                db = await self._connect(parameter)
            except CacheError as error:
                if not _read_only_error(error):
                    raise  # the file is readable and wrong (damaged, not ours): say that
                failure = failure or error
                continue
            self._mode = CacheMode.READ_ONLY
            self._read_only_reason = reason
            return db
        assert failure is not None  # noqa: S101 -- every attempt above failed
        raise failure

    async def _connect(self, read_only: str | None) -> aiosqlite.Connection:
        """Open the file (read-only with the URI parameter ``read_only``) and prepare it."""
        failed: list[sqlite3.Error] = []
        target = self._path if read_only is None else f"{self._path.resolve().as_uri()}?{read_only}"

        def connect() -> sqlite3.Connection:
            # Runs on aiosqlite's worker thread. A connector that raises makes aiosqlite stop
            # its thread without waiting for it, and the thread may then report to a closed
            # event loop; so a failure is handed back beside a stand-in connection instead,
            # and the connection is closed the ordinary way.
            try:
                return sqlite3.connect(
                    target,
                    timeout=self._busy_timeout,
                    isolation_level=None,
                    uri=read_only is not None,
                )
            except sqlite3.Error as error:
                failed.append(error)
                return sqlite3.connect(":memory:")

        db = await aiosqlite.Connection(connect, iter_chunk_size=64)
        try:
            with self._translating("open"):
                if read_only is None:
                    await self._prepare(db, failed)
                else:
                    await self._prepare_read_only(db, failed)
        except BaseException:
            with anyio.CancelScope(shield=True), suppress(sqlite3.Error, ValueError):
                await db.close()
            raise
        return db

    async def _prepare_read_only(
        self, db: aiosqlite.Connection, failed: Sequence[sqlite3.Error]
    ) -> None:
        """Check the schema of a file opened read-only (nothing is created in it)."""
        if failed:
            raise failed[0]
        await db.execute(f"PRAGMA busy_timeout = {round(self._busy_timeout * 1000)}")
        if await _check_schema(db, "main", self._path, _OWN_ADVICE):
            # An empty database holds no hints: an empty table in the connection's own
            # temporary schema answers every lookup with nothing.
            await db.execute(_CREATE[1].replace("CREATE TABLE", "CREATE TEMP TABLE", 1))

    async def _prepare(self, db: aiosqlite.Connection, failed: Sequence[sqlite3.Error]) -> None:
        """Check (or create) the schema and set the connection up."""
        if failed:
            raise failed[0]
        await db.execute(f"PRAGMA busy_timeout = {round(self._busy_timeout * 1000)}")
        async with self._transaction(db, "open"):
            if await _check_schema(db, "main", self._path, _OWN_ADVICE):
                for statement in _CREATE:
                    await db.execute(statement)
                await db.executemany(
                    "INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)",
                    [("application", _APPLICATION), ("schema_version", str(SCHEMA_VERSION))],
                )
        # Only now that the file is known to be ours: changing the journal mode of someone
        # else's database would change their file.
        await self._use_wal(db)
        await db.execute("PRAGMA synchronous = NORMAL")

    async def _use_wal(self, db: aiosqlite.Connection) -> None:
        """Switch the file to the WAL journal (once per file; it is persistent)."""
        rows = list(await db.execute_fetchall("PRAGMA journal_mode"))
        if rows and rows[0][0] == "wal":
            return
        # The switch needs the file to itself and fails at once, without the busy handler,
        # while another connection uses it (two processes creating one new cache): retry.
        deadline = anyio.current_time() + self._busy_timeout
        while True:
            try:
                await db.execute("PRAGMA journal_mode = WAL")
            except sqlite3.OperationalError as error:
                busy = str(getattr(error, "sqlite_errorname", "")).startswith("SQLITE_BUSY")
                if not busy or anyio.current_time() >= deadline:
                    raise
            else:
                return
            await anyio.sleep(0.01)

    async def _close(self, exc: BaseException | None) -> None:
        """Write what is pending and close the file; the caller shields this from cancellation."""
        try:
            async with self._lock:
                await self._flush_locked()
        except CacheError as error:
            if exc is None:
                raise
            # Do not hide the exception that ended the block; say what was lost beside it.
            exc.add_note(f"tracehint: {len(self._pending)} cached hint(s) were not saved: {error}")
        finally:
            await self._close_connection(exc)

    async def _close_connection(self, exc: BaseException | None) -> None:
        db, self._db = self._db, None
        if db is None:
            return
        try:
            with self._translating("close"):
                await db.close()
        except CacheError as error:
            if exc is None:
                raise
            exc.add_note(f"tracehint: {error}")

    def _require_open(self) -> aiosqlite.Connection:
        if self._state is not _State.OPEN or self._db is None:
            raise RuntimeError("HintCache is not open: use `async with HintCache(path) as cache`")
        return self._db

    # -- reading --------------------------------------------------------------------------

    async def get(self, key: str) -> CachedHint | None:
        """The hint stored under ``key`` (including puts not yet flushed), or ``None``."""
        db = self._require_open()
        hint = self._pending.get(key)
        if hint is None:
            with self._translating("read"):
                rows = await db.execute_fetchall(_SELECT_ONE, (key,))
            hint = next((found for row in rows if (found := _decode(row)[1]) is not None), None)
        if hint is None:
            self._misses += 1
        else:
            self._hits += 1
        return hint

    async def get_many(self, keys: Sequence[str]) -> dict[str, CachedHint]:
        """The hints stored under any of ``keys``, by key; keys without a hint are left out."""
        db = self._require_open()
        wanted = list(dict.fromkeys(keys))
        found = {key: self._pending[key] for key in wanted if key in self._pending}
        missing = [key for key in wanted if key not in found]
        for start in range(0, len(missing), _KEYS_PER_QUERY):
            chunk = missing[start : start + _KEYS_PER_QUERY]
            marks = ", ".join("?" * len(chunk))
            with self._translating("read"):
                rows = await db.execute_fetchall(f"{_SELECT} WHERE key IN ({marks})", chunk)
            for row in rows:
                key, hint = _decode(row)
                # A put that arrived while we were reading wins over the older row.
                if hint is not None and key not in found:
                    found[key] = self._pending.get(key, hint)
        self._hits += len(found)
        self._misses += len(wanted) - len(found)
        return found

    async def written_since(self, created: float) -> list[tuple[str, CachedHint]]:
        """The hints stored with a creation time of ``created`` (unix time) or later.

        Pending puts are written first. For collecting what a worker learnt during a run.
        """
        db = self._require_open()
        async with self._lock:
            await self._flush_locked()
        with self._translating("read"):
            rows = await db.execute_fetchall(f"{_SELECT} WHERE created >= ?", (created,))
        found: list[tuple[str, CachedHint]] = []
        for row in rows:
            key, hint = _decode(row)
            if hint is not None:
                found.append((key, hint))
        return found

    async def stats(self) -> CacheStats:
        """What the file holds, after writing what is pending."""
        db = self._require_open()
        async with self._lock:
            await self._flush_locked()
        with self._translating("read"):
            rows = await db.execute_fetchall(_STATS)
        by_model: dict[str, int] = {}
        oldest: float | None = None
        newest: float | None = None
        prompt_tokens = completion_tokens = 0
        for model, count, first, last, prompt, completion in rows:
            by_model[str(model)] = int(count)
            oldest = float(first) if oldest is None else min(oldest, float(first))
            newest = float(last) if newest is None else max(newest, float(last))
            prompt_tokens += int(prompt)
            completion_tokens += int(completion)
        size = 0
        for file in (self._path, self._path.with_name(self._path.name + "-wal")):
            with suppress(FileNotFoundError):
                size += (await anyio.Path(file).stat()).st_size
        return CacheStats(
            path=str(self._path),
            entries=sum(by_model.values()),
            size_bytes=size,
            by_model=by_model,
            oldest=oldest,
            newest=newest,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
        )

    # -- writing --------------------------------------------------------------------------

    async def put(self, key: str, hint: CachedHint) -> None:
        """Store ``hint`` under ``key``, replacing any older hint; buffered (see the class).

        A put cancelled before it starts stores nothing; once stored, the hint is written even
        if the caller is cancelled while waiting for its full batch to be written. Raises
        ``ValueError`` for a hint with empty text, which could never be returned.
        """
        self._require_open()
        if not hint.text.strip():
            raise ValueError(f"refusing to cache an empty hint for key {key!r}")
        await checkpoint_if_cancelled()
        if self._mode is CacheMode.READ_ONLY:
            self._unsaved += 1
            await cancel_shielded_checkpoint()
            return
        if not self._pending:
            self._first_pending = anyio.current_time()
            self._wakeup.set()
        self._pending[key] = hint
        if len(self._pending) >= self._batch_size:
            await self.flush()
        else:
            await cancel_shielded_checkpoint()  # let other tasks run; the put has happened

    async def flush(self) -> None:
        """Write every pending hint to the file now, as one transaction."""
        self._require_open()
        async with self._lock:
            await self._flush_locked()

    async def clear(self) -> int:
        """Delete every hint (pending ones included); returns how many rows were deleted."""
        db = self._require_open()
        self._refuse_if_read_only("clear")
        async with self._lock:
            await self._flush_locked()
            async with self._transaction(db, "clear"), db.execute("DELETE FROM hints") as cursor:
                return cursor.rowcount

    async def merge_from(self, other: str | os.PathLike[str]) -> int:
        """Copy the hints of another cache file that this one lacks; returns how many were added.

        Hints already here win over the other file's; the other file is only read.
        """
        db = self._require_open()
        self._refuse_if_read_only("merge into")
        source = Path(os.fspath(other))
        if not await anyio.Path(source).is_file():
            raise CacheError(f"cannot merge {source}: there is no such file; {_MERGE_ADVICE}")
        with suppress(OSError):
            if await anyio.Path(source).samefile(self._path):
                return 0
        added = 0
        async with self._lock:
            await self._flush_locked()
            # ATTACH and DETACH must pair up on this connection whatever happens to the caller.
            with anyio.CancelScope(shield=True):
                with self._translating("read", source, _MERGE_ADVICE):
                    await db.execute(f"ATTACH DATABASE ? AS {_MERGE_SCHEMA}", (str(source),))
                try:
                    added = await self._merge_attached(db, source)
                finally:
                    with suppress(sqlite3.Error):
                        await db.execute(f"DETACH DATABASE {_MERGE_SCHEMA}")
        return added

    async def _merge_attached(self, db: aiosqlite.Connection, source: Path) -> int:
        with self._translating("read", source, _MERGE_ADVICE):
            if await _check_schema(db, _MERGE_SCHEMA, source, _MERGE_ADVICE):
                return 0  # an empty SQLite file: nothing to merge
        async with self._transaction(db, f"merge {source} into"), db.execute(_MERGE) as cursor:
            return cursor.rowcount

    def _refuse_if_read_only(self, doing: str) -> None:
        if self._mode is CacheMode.READ_ONLY:
            raise CacheError(
                f"cannot {doing} the cache {self._path}: it is read-only "
                f"({self._read_only_reason}); make it writable, or {_OWN_ADVICE}"
            )

    async def _flush_locked(self) -> None:
        """Write the pending hints; the caller holds ``_lock``."""
        if not self._pending or self._db is None:
            return
        batch = dict(self._pending)
        rows = [
            (key, hint.text, hint.model, hint.created, hint.prompt_tokens, hint.completion_tokens)
            for key, hint in batch.items()
        ]
        # Shielded: a batch half sent to the connection would leave its transaction open.
        with anyio.CancelScope(shield=True):
            async with self._transaction(self._db, "write"):
                await self._db.executemany(_INSERT, rows)
            for key, hint in batch.items():
                # A put of the same key during the write is newer: keep it pending.
                if self._pending.get(key) is hint:
                    del self._pending[key]
            self._writes += len(batch)
            self._first_pending = anyio.current_time() if self._pending else None

    async def _flush_when_due(self) -> None:
        """Background task: flush once ``flush_interval`` has passed since the oldest put."""
        while True:
            if self._first_pending is None:
                await self._wakeup.wait()
                self._wakeup = anyio.Event()
                continue
            await anyio.sleep_until(self._first_pending + self._flush_interval)
            due = self._first_pending
            if due is None or anyio.current_time() < due + self._flush_interval:
                continue  # flushed meanwhile, or newer puts only
            try:
                async with self._lock:
                    await self._flush_locked()
            except CacheError:
                # The hints stay pending: try again later; the next flush that a caller waits
                # for (a full batch, ``flush()``, leaving the block) reports the error.
                self._first_pending = anyio.current_time()

    # -- SQLite plumbing ------------------------------------------------------------------

    @asynccontextmanager
    async def _transaction(self, db: aiosqlite.Connection, doing: str) -> AsyncIterator[None]:
        """One write transaction, taking the write lock up front so ``busy_timeout`` applies."""
        with self._translating(doing):
            await db.execute("BEGIN IMMEDIATE")
            try:
                yield
                await db.execute("COMMIT")
            except BaseException:
                with anyio.CancelScope(shield=True), suppress(sqlite3.Error):
                    await db.execute("ROLLBACK")
                raise

    @contextmanager
    def _translating(
        self, doing: str, path: Path | None = None, advice: str = _OWN_ADVICE
    ) -> Iterator[None]:
        """Turn SQLite failures into a ``CacheError`` naming the file and what to do."""
        try:
            yield
        except sqlite3.Error as error:
            raise _cache_error(
                error, path or self._path, doing, advice, self._busy_timeout
            ) from error


async def _check_schema(db: aiosqlite.Connection, schema: str, path: Path, advice: str) -> bool:
    """Check the database ``schema`` is a cache this version reads; ``True`` if it is empty."""
    rows = await db.execute_fetchall(
        f"SELECT name FROM {schema}.sqlite_master WHERE type = 'table'",  # noqa: S608 -- constant
    )
    tables = {str(row[0]) for row in rows}
    if not tables:
        return True
    not_ours = f"{path} is an SQLite database but not a tracehint cache"
    if not {"meta", "hints"} <= tables:
        listed = ", ".join(sorted(tables))
        raise CacheError(f"{not_ours} (it has the tables {listed}); {advice}")
    meta = {
        str(key): str(value)
        for key, value in await db.execute_fetchall(f"SELECT key, value FROM {schema}.meta")  # noqa: S608 -- constant
    }
    version = meta.get("schema_version", "")
    if meta.get("application") != _APPLICATION or not version.isdigit():
        raise CacheError(f"{not_ours} (its meta table is not tracehint's); {advice}")
    if int(version) > SCHEMA_VERSION:
        raise CacheError(
            f"{path} was written by a newer tracehint (cache schema version {version}, this"
            f" tracehint reads version {SCHEMA_VERSION}); upgrade tracehint, or {advice}"
        )
    if int(version) < SCHEMA_VERSION:
        raise CacheError(
            f"{path} is a cache of an older tracehint (schema version {version}), which this"
            f" tracehint cannot read; delete it, or {advice}"
        )
    columns = tuple(
        str(row[1]) for row in await db.execute_fetchall(f"PRAGMA {schema}.table_info(hints)")
    )
    if columns != _COLUMNS:
        raise CacheError(
            f"{path} has a damaged hints table (columns {columns}); delete it, or {advice}"
        )
    return False


def _read_only_error(error: CacheError) -> bool:
    """Whether ``error`` comes from SQLite refusing to write (or create) the file."""
    name = str(getattr(error.__cause__, "sqlite_errorname", ""))
    return name.startswith(_READ_ONLY_ERRORS)


def _decode(row: Iterable[object]) -> tuple[str, CachedHint | None]:
    """A ``hints`` row as (key, hint); the hint is ``None`` for a row that is not usable."""
    key, text, model, created, prompt, completion = row
    if (
        isinstance(text, str)
        and text.strip()
        and isinstance(model, str)
        and isinstance(created, int | float)
        and isinstance(prompt, int | None)
        and isinstance(completion, int | None)
    ):
        return str(key), CachedHint(text, model, float(created), prompt, completion)
    return str(key), None


def _cache_error(
    error: sqlite3.Error, path: Path, doing: str, advice: str, busy_timeout: float
) -> CacheError:
    """The ``CacheError`` for an SQLite failure while ``doing`` something with ``path``."""
    name = getattr(error, "sqlite_errorname", "") or ""
    cannot = f"cannot {doing} the cache {path}"
    if name == "SQLITE_NOTADB":
        message = f"{path} is not a tracehint cache (file is not a database); delete it or {advice}"
    elif name.startswith("SQLITE_CORRUPT"):
        message = f"{path} is a damaged tracehint cache ({error}); delete it or {advice}"
    elif name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        message = (
            f"{cannot}: another process holds it and did not let go within {busy_timeout:g} s;"
            f" wait for that process to finish, or {advice}"
        )
    elif name.startswith("SQLITE_CANTOPEN"):
        message = f"{cannot} ({error}); check that its folder is writable, or {advice}"
    elif name.startswith(("SQLITE_READONLY", "SQLITE_PERM", "SQLITE_AUTH")):
        message = f"{cannot} ({error}); make it writable, or {advice}"
    elif name.startswith("SQLITE_FULL"):
        message = f"{cannot}: the disk is full; free some space, or {advice}"
    else:
        message = f"{cannot} ({error}); {advice}"
    return CacheError(message)
