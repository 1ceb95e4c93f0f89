"""Run the same annotation on a Ray cluster with Ray Data (``pip install 'tracehint[ray]'``).

```python
import ray
from tracehint import AnnotatorConfig
from tracehint.ray_data import annotate_folder

stats = annotate_folder(["/data/sessions"], "/data/out", AnnotatorConfig())  # a RunStats
```

``annotate_folder`` (what ``tracehint annotate --engine ray`` runs) lists the session files on
the driver and hands their *paths* to a pool of actors, many files per call: each call runs
tracehint's own streaming pipeline on its files (the local engine, reading the files itself)
and writes its traces, input issues and a journal of finished files straight into the output
folder, under temporary names renamed when the call is done, so a file in the folder is always
complete and a retried call never duplicates a trace. Only a small stats row per call travels
back through Ray. ``resume=True`` skips the files whose traces are all in the folder already
(and, in files read again, the traces already written), as ``--resume`` does locally.

For your own Ray Data jobs, ``read_sessions`` + ``annotate_dataset`` give a dataset of trace
rows (``kind``, ``path``, ``trace_id``, ``line``) and ``write_jsonl`` writes it:

```python
ds = read_sessions(["/data/sessions"])          # binary rows: bytes, path
out = annotate_dataset(ds, AnnotatorConfig())   # rows: kind, path, trace_id, line
stats = write_jsonl(out, "/data/out")           # traces-*.jsonl, errors-*.jsonl, a RunStats
```

Each actor's ``__call__`` is ``async``. An actor opens one ``Annotator`` (one judge client and
one SQLite cache connection) on its event loop at its first call and keeps it for its whole
life, closing it when Ray Data lets the actor go; every call ends by writing the hints it
learnt to the cache. One judge client per actor bounds that actor's requests in flight across
all its concurrent calls.

Each worker uses a local SQLite cache (``AnnotatorConfig.cache_path``, or the user cache
directory of the node). ``RayOptions.seed_cache`` merges a cache file into it before the
first call; with ``RayOptions.export_hints`` each call also writes the hints it learnt to
``hints-*.jsonl`` in the output folder, and ``merge_hints`` (``--merge-caches``) merges them
into one cache file at the end.

The core package never imports this module; it needs ``ray[data]``.
"""

from __future__ import annotations

import asyncio
import math
import os
import re
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import orjson

from tracehint import _exceptions
from tracehint._annotator import Annotator, AnnotatorConfig
from tracehint._cache import CachedHint, HintCache, default_cache_path
from tracehint._exceptions import ConfigError, OutputError, TracehintError
from tracehint._ingest._discover import (
    Found,
    FoundKind,
    Skipped,
    _is_event_folder,
    discover,
    skip_reason,
)
from tracehint._ingest.claude_code import read_agent_meta
from tracehint._ingest.openhands import read_event_folder
from tracehint._judge import API_KEY_ENV, api_key_from_env
from tracehint._output import JsonlSink, MemorySink
from tracehint._pipeline import SessionBlob, annotate_files
from tracehint._resume import (
    ResumeState,
    RunConfig,
    _resolved,
    _scan_journal,
    trace_digest,
)
from tracehint._stats import JudgeTotals, RunStats
from tracehint._wire import dump_issue

try:
    import numpy as np
    import ray
    import ray.data
    from ray.data import Datasink
except ImportError as exc:  # pragma: no cover -- exercised only without the extra
    raise ConfigError(
        "tracehint.ray_data needs Ray Data: pip install 'tracehint[ray]'",
    ) from exc

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence

    from tracehint._records import InputIssue

__all__ = [
    "OUTPUT_COLUMNS",
    "RayOptions",
    "annotate_dataset",
    "annotate_folder",
    "merge_hints",
    "prepare_folder",
    "read_sessions",
    "write_jsonl",
]

OUTPUT_COLUMNS = ("kind", "path", "trace_id", "line")
"""Columns of ``annotate_dataset``'s rows. ``kind`` is ``trace`` (``line`` is the trace's
JSON, as ``tracehint annotate`` writes it), ``issue`` (an input issue's JSON) or ``stats``
(one batch's ``RunStats`` JSON, see ``_stats_line``)."""

RUN_FILE = "run.json"
"""The run's configuration in an ``annotate_folder`` output folder (a resume must match it)."""

_PARTS = ("traces", "errors", "done", "hints")
"""What an ``annotate_folder`` call writes: ``<part>-<call>.jsonl``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RayOptions:
    """How the annotation is spread over the cluster."""

    batch_size: int = 32
    """Session files per actor call."""
    actors: int | None = None
    """Annotating actors at most; default: the cluster's CPUs minus one (at least one)."""
    actor_cpus: float = 1.0
    """CPUs reserved per actor (parsing is CPU work; judging is waiting)."""
    per_actor_concurrency: int = 64
    """Judge requests in flight per actor, over all its concurrent calls (its one judge
    client's bound)."""
    seed_cache: str | None = None
    """A cache file merged into each worker's local cache before its first call."""
    export_hints: bool = False
    """``annotate_folder``: also write the hints each call learnt to ``hints-*.jsonl`` in the
    output folder, for ``merge_hints`` (``--merge-caches``)."""

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.per_actor_concurrency < 1:
            raise ConfigError("RayOptions sizes must be at least 1")
        if self.actors is not None and self.actors < 1:
            raise ConfigError("RayOptions.actors must be at least 1")


def read_sessions(paths: Sequence[str | os.PathLike[str]]) -> ray.data.Dataset:
    """A dataset of session files (rows ``bytes`` and ``path``), read as binary.

    Folders are searched recursively for ``*.jsonl``, ``*.json`` and ``*.traj``; the content
    of each decides its format. An OpenHands session folder (``events/<n>.json``, one event
    per file) is one row with its folder as ``path`` and no bytes: the actor reads it whole.
    """
    files = [os.fspath(path) for path in paths]
    if not files:
        raise ConfigError("no input paths given")
    dataset = ray.data.read_binary_files(
        files, include_paths=True, file_extensions=["jsonl", "json", "traj"]
    )
    folders = event_folders(files)
    if folders:
        rows = [{"bytes": b"", "path": folder} for folder in folders]
        dataset = dataset.union(ray.data.from_items(rows))
    return dataset


def event_folders(paths: Sequence[str]) -> list[str]:
    """The OpenHands ``events/`` folders under ``paths`` (symlinked folders are not followed)."""
    found: list[str] = []
    for path in paths:
        for directory, dirs, names in os.walk(os.path.expanduser(path)):  # noqa: PTH111
            candidates = [n for n in names if n.endswith((".jsonl", ".json", ".traj"))]
            if _is_event_folder(directory, dirs, candidates):
                found.append(directory)
                dirs.clear()
    return sorted(found)


# -- the actor's annotator, open for the actor's life ------------------------------------------


class _Host:
    """The actor's ``Annotator``, open from its first call until Ray Data lets it go.

    An ``Annotator`` (its task group, the cache's flusher) must be entered and left by one
    task, and Ray Data gives an async actor no hook for its end but ``__del__``: so one task,
    owned by the actor, holds it open on the actor's event loop, and ``close`` (from
    ``__del__``, on another thread) tells that task to leave it and waits until it has.
    """

    def __init__(self, config: AnnotatorConfig, seed_cache: str | None) -> None:
        self._config = config
        self._seed_cache = seed_cache
        self._annotator: Annotator | None = None
        self._failed: BaseException | None = None
        self._ready: anyio.Event | None = None
        self._stop: anyio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = threading.Event()

    async def get(self) -> Annotator:
        """The open annotator (opened by the first call, on this event loop)."""
        if self._ready is None:
            self._ready, self._stop = anyio.Event(), anyio.Event()
            self._loop, self._thread = asyncio.get_running_loop(), threading.get_ident()
            # The task is the actor's: it lives until ``close``.
            self._task = self._loop.create_task(self._hold())
        await self._ready.wait()
        if self._failed is not None:
            raise self._failed
        assert self._annotator is not None  # noqa: S101 -- set before ready
        return self._annotator

    async def _hold(self) -> None:
        assert self._ready is not None  # noqa: S101 -- set by get
        assert self._stop is not None  # noqa: S101 -- set by get
        try:
            await self._seed()
            async with Annotator(self._config) as annotator:
                self._annotator = annotator
                self._ready.set()
                await self._stop.wait()
        except Exception as exc:  # noqa: BLE001 -- handed to every call, raised there
            self._failed = exc
        finally:
            self._annotator = None
            self._ready.set()
            self._closed.set()

    async def _seed(self) -> None:
        """Merge the seed cache into the worker's cache before anything reads it."""
        config = self._config
        if self._seed_cache is None or not config.use_cache or config.judge is None:
            return
        async with HintCache(config.cache_path or default_cache_path()) as cache:
            await cache.merge_from(self._seed_cache)

    def close(self, timeout: float = 30.0) -> None:
        """Leave the annotator (pending hints written, client closed); waits up to ``timeout``.

        From another thread than the event loop's (Ray calls ``__del__`` from the actor's
        main thread); on the loop's own thread it only asks, and a stopped loop cannot close
        anything any more.
        """
        stop, loop = self._stop, self._loop
        if stop is None or loop is None or self._closed.is_set():
            return
        if threading.get_ident() == self._thread:
            stop.set()
            return
        if loop.is_closed() or not loop.is_running():
            return
        try:
            loop.call_soon_threadsafe(stop.set)
        except RuntimeError:
            return  # closed meanwhile
        self._closed.wait(timeout)


class _Worker:
    """What both actors share: the config (API key from the worker's environment), the host."""

    def __init__(self, config: AnnotatorConfig, options: RayOptions) -> None:
        judge = config.judge
        if judge is not None:
            # One judge client per actor: its bound is the actor's requests in flight.
            judge = replace(judge, concurrency=options.per_actor_concurrency)
            if judge.api_key is None:
                # The key travels as an environment variable of the worker, never in the config.
                judge = replace(judge, api_key=api_key_from_env())
            config = replace(config, judge=judge)
        self._config = config
        self._options = options
        self._host = _Host(config, options.seed_cache)
        self._actor = uuid.uuid4().hex[:12]
        self._calls = 0

    def __del__(self) -> None:
        self._host.close()

    async def _stats_line(
        self, annotator: Annotator, stats: RunStats, hints: list[tuple[str, CachedHint]]
    ) -> bytes:
        """One call's stats; the judge's counters are the actor's so far (see ``_Totals``)."""
        if annotator.cache is not None:
            await annotator.cache.flush()  # the hints learnt are kept, whatever comes next
        self._calls += 1
        stats.finish()
        record = {
            "run": stats.to_dict(),
            "actor": self._actor,
            "call": self._calls,
            "judge": judge.to_dict() if (judge := annotator.stats()) is not None else None,
            "hints": len(hints),
        }
        return orjson.dumps(record)


async def _new_hints(annotator: Annotator, since: float) -> list[tuple[str, CachedHint]]:
    if annotator.cache is None:
        return []
    return await annotator.cache.written_since(since)


# -- rows: annotate_dataset ---------------------------------------------------------------------


class _AnnotateBatch(_Worker):
    """The Ray Data actor of ``annotate_dataset``: one batch of session files in, rows out."""

    async def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        annotator = await self._host.get()
        inputs: list[str | SessionBlob] = []
        skipped: list[str] = []
        sink, issues, stats = MemorySink(), MemorySink(), RunStats()
        for data, path in zip(batch["bytes"], batch["path"], strict=True):
            name = str(path)
            if not data and await anyio.Path(name).is_dir():  # an OpenHands session folder
                events, problems = await anyio.to_thread.run_sync(read_event_folder, name)
                for problem in problems:
                    await issues.write(dump_issue(problem))
                inputs.append(SessionBlob(name, events, None))
                continue
            reason = _ray_skip_reason(name)
            if reason == "":
                continue  # an event file: read with its session folder
            if reason is not None:
                skipped.append(reason)
                continue
            meta = await anyio.to_thread.run_sync(read_agent_meta, name)
            inputs.append(SessionBlob(name, bytes(data), meta))
        for reason in skipped:
            stats.record_skipped_file(reason)
        await annotate_files(
            inputs,
            chain=annotator.chain,
            sink=sink,
            stats=stats,
            issue_sink=issues,
            config=self._config.pipeline(),
        )
        columns: dict[str, list[str]] = {name: [] for name in OUTPUT_COLUMNS}
        for line in sink.lines:
            path, trace_id = path_and_trace_id(line)
            _row(columns, "trace", path, trace_id, line)
        for line in issues.lines:
            _row(columns, "issue", orjson.loads(line)["path"], "", line)
        _row(columns, "stats", "", "", await self._stats_line(annotator, stats, []))
        return {name: np.array(values, dtype=object) for name, values in columns.items()}


_TRACE_ID_AT = b'{"trace_id":'
_TRACE_ID_END = b',"turns":'
_SOURCE_AT = b',"source":'


def path_and_trace_id(line: bytes) -> tuple[str, str]:
    """The source path and trace id of an output line, without parsing the whole trace.

    ``dump_trace`` writes the trace id first and the source last, so both are read from the
    line's two ends (a quote inside a JSON string is escaped, so the markers cannot occur in
    a value); any other shape is parsed whole.
    """
    body = line.rstrip(b"\n")
    if body.startswith(_TRACE_ID_AT) and body.endswith(b"}"):
        end = body.find(_TRACE_ID_END)
        at = body.rfind(_SOURCE_AT)
        if 0 < end < at:
            try:
                trace_id = orjson.loads(body[len(_TRACE_ID_AT) : end])
                source = orjson.loads(body[at + len(_SOURCE_AT) : -1])
            except orjson.JSONDecodeError:
                pass
            else:
                if isinstance(trace_id, str) and isinstance(source, dict):
                    path = source.get("path")
                    if isinstance(path, str):
                        return path, trace_id
    record = orjson.loads(body)
    return str(record["source"]["path"]), str(record["trace_id"])


_EVENT_FILE = re.compile(r"(?:^|/)events/\d+\.json\Z")


def _ray_skip_reason(path: str) -> str | None:
    """Why a file listed by Ray is not read (as discovery says for the local engine).

    ``""`` for an OpenHands event file: it is read with its session folder, not on its own.
    """
    if _EVENT_FILE.search(path):
        return ""
    return skip_reason(os.path.basename(path))  # noqa: PTH119 -- str paths


def _row(columns: dict[str, list[str]], kind: str, path: str, trace_id: str, line: bytes) -> None:
    columns["kind"].append(kind)
    columns["path"].append(path)
    columns["trace_id"].append(trace_id)
    columns["line"].append(line.decode().rstrip("\n"))


def _default_actors() -> int:
    cpus = int(ray.cluster_resources().get("CPU", 1))  # type: ignore[no-untyped-call]
    return max(1, cpus - 1)


def _remote_args(config: AnnotatorConfig) -> tuple[AnnotatorConfig, dict[str, Any]]:
    """The config without its API key, and the worker environment that carries the key."""
    judge = config.judge
    if judge is None or judge.api_key is None:
        return config, {}
    remote = {"runtime_env": {"env_vars": {API_KEY_ENV[0]: judge.api_key}}}
    return replace(config, judge=replace(judge, api_key=None)), remote


def annotate_dataset(
    sessions: ray.data.Dataset,
    config: AnnotatorConfig | None = None,
    options: RayOptions | None = None,
) -> ray.data.Dataset:
    """Annotate a dataset of session files (``bytes``, ``path``; see ``read_sessions``).

    Returns a lazy dataset of ``OUTPUT_COLUMNS`` rows; plug it into your own Ray Data job or
    write it with ``write_jsonl``.
    """
    options = options or RayOptions()
    config, remote_args = _remote_args(config or AnnotatorConfig())
    actors = options.actors or _default_actors()
    return sessions.map_batches(
        _AnnotateBatch,
        fn_constructor_args=(config, options),
        batch_size=options.batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(min_size=1, max_size=actors),
        num_cpus=options.actor_cpus,
        udf_modifying_row_count=True,
        **remote_args,
    )


class _Totals:
    """Run stats summed over calls; the judge's counters summed over actors.

    Each call reports its own run counters and its actor's judge counters so far (one judge
    client per actor, for the actor's life), so the latest call of each actor counts.
    """

    def __init__(self) -> None:
        self.stats = RunStats()
        self._judge: dict[str, tuple[int, dict[str, Any]]] = {}

    def add(self, line: str | bytes) -> None:
        record = orjson.loads(line)
        self.stats.merge(record["run"])
        actor, call, judge = record["actor"], record["call"], record["judge"]
        if actor not in self._judge or self._judge[actor][0] < call:
            self._judge[actor] = (call, judge)

    def add_totals(self, other: dict[str, Any]) -> None:
        """Merge another ``_Totals.to_dict()`` (from a write task)."""
        self.stats.merge(other["run"])
        for actor, (call, judge) in other["judge"].items():
            if actor not in self._judge or self._judge[actor][0] < call:
                self._judge[actor] = (call, judge)

    def to_dict(self) -> dict[str, Any]:
        return {"run": self.stats.to_dict(), "judge": self._judge}

    def result(self) -> RunStats:
        """The summed stats (the judge's over every actor)."""
        for _, counters in self._judge.values():
            if counters:
                if self.stats.judge is None:
                    self.stats.judge = JudgeTotals()
                self.stats.judge.add(JudgeTotals.from_dict(counters))
        return self.stats


@dataclass
class _JsonlDatasink(Datasink[dict[str, Any]]):
    """Writes trace rows to ``traces-*.jsonl`` and issue rows to ``errors-*.jsonl``.

    Each write task writes its own files under temporary names and renames them when done, so
    a file in the folder is always complete. Batch stats are summed on the driver.
    """

    folder: str
    totals: _Totals = field(default_factory=_Totals)

    def write(self, blocks: Iterable[Any], ctx: Any) -> dict[str, Any]:  # noqa: ANN401 -- Ray's TaskContext
        from ray.data.block import BlockAccessor  # noqa: PLC0415 -- Ray internals, lazily

        token = f"{getattr(ctx, 'task_idx', 0):05d}-{uuid.uuid4().hex[:8]}"
        totals = _Totals()
        handles: dict[str, Any] = {}
        try:
            for block in blocks:
                table = BlockAccessor.for_block(block).to_arrow()
                kinds = table.column("kind").to_pylist()
                lines = table.column("line").to_pylist()
                for kind, line in zip(kinds, lines, strict=True):
                    if kind == "stats":
                        totals.add(line)
                        continue
                    name = "traces" if kind == "trace" else "errors"
                    handle = handles.get(name)
                    if handle is None:
                        path = os.path.join(self.folder, f"{name}-{token}.jsonl.part")  # noqa: PTH118 -- str paths
                        handle = handles[name] = open(path, "w", encoding="utf-8")  # noqa: PTH123, SIM115 -- closed below
                    handle.write(line + "\n")
        finally:
            for handle in handles.values():
                handle.close()
        for handle in handles.values():
            os.replace(handle.name, handle.name.removesuffix(".part"))  # noqa: PTH105 -- str paths
        return totals.to_dict()

    def on_write_complete(self, write_result: Any) -> None:  # noqa: ANN401 -- Ray's WriteResult
        for returned in write_result.write_returns:
            self.totals.add_totals(returned)


def write_jsonl(annotated: ray.data.Dataset, folder: str | os.PathLike[str]) -> RunStats:
    """Write ``annotate_dataset``'s rows to ``folder`` and return the summed run stats.

    Traces go to ``traces-*.jsonl`` (one trace per line, as ``tracehint annotate`` writes),
    input issues to ``errors-*.jsonl``. The folder must be empty or new.
    """
    target = os.fspath(folder)
    os.makedirs(target, exist_ok=True)  # noqa: PTH103 -- str paths
    if os.listdir(target):  # noqa: PTH208 -- str paths
        raise OutputError(f"{target} is not empty: choose a new output folder")
    sink = _JsonlDatasink(target)
    with _tracehint_errors():
        annotated.write_datasink(sink)
    return sink.totals.result()


@contextmanager
def _tracehint_errors() -> Iterator[None]:
    """A failed Ray job that a ``TracehintError`` caused raises that error instead."""
    try:
        yield
    except Exception as exc:
        error = remote_tracehint_error(exc)
        if error is not None:
            raise error from exc
        raise


# -- files: annotate_folder ---------------------------------------------------------------------


class _AnnotateToFolder(_Worker):
    """The Ray Data actor of ``annotate_folder``: paths in, files written, a stats row out."""

    def __init__(
        self,
        config: AnnotatorConfig,
        options: RayOptions,
        folder: str,
        resume: ResumeState | None,
    ) -> None:
        super().__init__(config, options)
        self._folder = folder
        self._resume = resume

    async def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        annotator = await self._host.get()
        # Found by the driver's discovery already: read as they are (hard links included).
        sessions = [
            Found(str(path), FoundKind(kind))
            for path, kind in zip(batch["path"], batch["kind"], strict=True)
        ]
        name = f"{self._actor}-{self._calls + 1:05d}-{uuid.uuid4().hex[:6]}"
        parts = {part: os.path.join(self._folder, f"{part}-{name}.jsonl") for part in _PARTS}  # noqa: PTH118 -- str paths
        stats = RunStats()
        since = time.time()
        async with (
            JsonlSink(parts["traces"] + ".part", overwrite=True) as sink,
            JsonlSink(parts["errors"] + ".part", overwrite=True) as issues,
            JsonlSink(parts["done"] + ".part", overwrite=True) as journal,
        ):
            await annotate_files(
                sessions,
                chain=annotator.chain,
                sink=sink,
                stats=stats,
                issue_sink=issues,
                config=self._config.pipeline(),
                resume=self._resume,
                journal=journal,
            )
        hints = await _new_hints(annotator, since) if self._options.export_hints else []
        if hints:
            async with JsonlSink(parts["hints"] + ".part", overwrite=True) as exported:
                for key, hint in hints:
                    await exported.write(_hint_line(key, hint))
        # The journal last: a file is listed as done only once its traces are in place.
        for part in _PARTS:
            await anyio.to_thread.run_sync(_commit, parts[part])
        return {"stats": np.array([await self._stats_line(annotator, stats, hints)], dtype=object)}


def _commit(path: str) -> None:
    """Give ``path.part`` its name, or remove it when it is empty."""
    part = path + ".part"
    try:
        empty = os.path.getsize(part) == 0  # noqa: PTH202 -- str paths
    except FileNotFoundError:
        return
    if empty:
        os.remove(part)  # noqa: PTH107 -- str paths
    else:
        os.replace(part, path)  # noqa: PTH105 -- str paths


def _hint_line(key: str, hint: CachedHint) -> bytes:
    return orjson.dumps({"key": key, **asdict(hint)}) + b"\n"


@dataclass(frozen=True, slots=True)
class _Listed:
    """The sessions ``annotate_folder`` hands out, and what listing them found."""

    sessions: list[Found]
    issues: list[InputIssue]
    skipped: list[str]
    """The reason of each file left unread because it is clearly not a transcript."""


async def _list_sessions(paths: Sequence[str | os.PathLike[str]]) -> _Listed:
    """The sessions under ``paths`` as the local engine finds them."""
    listed = _Listed([], [], [])
    async for batch in discover(paths):
        for found in batch:
            if isinstance(found, Found):
                listed.sessions.append(found)
            elif isinstance(found, Skipped):
                listed.skipped.append(found.reason)
            else:
                listed.issues.append(found)
    return listed


def prepare_folder(
    folder: str | os.PathLike[str], run: RunConfig, *, resume: bool
) -> ResumeState | None:
    """Make ``folder`` ready for ``annotate_folder``; with ``resume``, what it already holds.

    A new run needs an empty (or new) folder and records ``run`` there. A resume refuses a
    folder written with other settings, drops what an interrupted call left half written
    (``*.part``), and reads the journals (``done-*.jsonl``: finished files) and the traces
    (only their ids and source paths) of the calls that finished.
    """
    target = os.fspath(folder)
    os.makedirs(target, exist_ok=True)  # noqa: PTH103 -- str paths
    record = os.path.join(target, RUN_FILE)  # noqa: PTH118 -- str paths
    if not resume:
        if os.listdir(target):  # noqa: PTH208 -- str paths
            raise OutputError(f"{target} is not empty: choose a new output folder")
        Path(record).write_bytes(run.journal_line())
        return None
    state = ResumeState()
    _scan_journal(record, state)
    if state.run is not None:
        differences = run.differences(state.run)
        if differences:
            raise ConfigError(
                f"cannot resume {target}: it was written with other settings ("
                + "; ".join(differences)
                + "). Resume with the earlier settings, or start over in a new folder "
                "(finished judge answers are cached)",
            )
    else:
        Path(record).write_bytes(run.journal_line())
    for part in Path(target).glob("*.jsonl.part"):
        part.unlink()
    for journal in sorted(Path(target).glob("done-*.jsonl")):
        _scan_journal(str(journal), state)
    _scan_traces(target, state)
    return state


def _scan_traces(folder: str, state: ResumeState) -> None:
    """The traces already written of the files not finished (they are read again)."""
    cwd = state.run.cwd if state.run is not None else None
    done = {key.path for key in state.done_files}
    resolved = ("", "")
    for traces in sorted(Path(folder).glob("traces-*.jsonl")):
        with traces.open("rb") as handle:
            for line in handle:
                path, trace_id = path_and_trace_id(line)
                if path != resolved[0]:
                    resolved = (path, _resolved(path, cwd))
                if resolved[1] not in done:
                    state.done_traces.add(trace_digest(resolved[1], trace_id))


def annotate_folder(
    paths: Sequence[str | os.PathLike[str]],
    folder: str | os.PathLike[str],
    config: AnnotatorConfig | None = None,
    options: RayOptions | None = None,
    *,
    resume: ResumeState | None = None,
) -> RunStats:
    """Annotate every session under ``paths`` on the Ray cluster into ``folder``.

    The folder gets ``traces-*.jsonl`` (one trace per line, as ``tracehint annotate`` writes),
    ``errors-*.jsonl`` (input issues), ``done-*.jsonl`` (the files each call finished) and,
    with ``options.export_hints``, ``hints-*.jsonl``. Call ``prepare_folder`` first; pass its
    ``ResumeState`` as ``resume`` to skip what an earlier run into the folder finished.
    Returns the summed run stats. Paths must be readable where the actors run (a shared file
    system on a cluster of several nodes).
    """
    options = options or RayOptions()
    config, remote_args = _remote_args(config or AnnotatorConfig())
    target = os.fspath(folder)
    listed = anyio.run(_list_sessions, paths)
    inside = os.path.join(os.path.realpath(target), "")  # noqa: PTH118 -- str paths
    # The run's own files are never input, even in a folder that is.
    sessions = [s for s in listed.sessions if not os.path.realpath(s.path).startswith(inside)]
    totals = _Totals()
    stats = totals.stats
    for reason in listed.skipped:
        stats.record_skipped_file(reason)
    if listed.issues:
        with Path(target, "errors-listing.jsonl").open("wb") as handle:  # this run's listing
            for issue in listed.issues:
                stats.record_issue(issue)
                handle.write(dump_issue(issue))
    todo = sessions
    if resume is not None:
        todo = [found for found in sessions if not resume.file_done(found.path)]
        stats.files_resumed += len(sessions) - len(todo)
        resume = ResumeState(done_traces=resume.done_traces) if resume.done_traces else None
    if todo:
        batches = math.ceil(len(todo) / options.batch_size)
        rows = [{"path": found.path, "kind": found.kind.value} for found in todo]
        dataset = ray.data.from_items(rows, override_num_blocks=batches)
        annotated = dataset.map_batches(
            _AnnotateToFolder,
            fn_constructor_args=(config, options, target, resume),
            batch_size=options.batch_size,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(
                min_size=1, max_size=options.actors or _default_actors()
            ),
            num_cpus=options.actor_cpus,
            udf_modifying_row_count=True,
            **remote_args,
        )
        with _tracehint_errors():
            for batch in annotated.iter_batches(batch_format="numpy", batch_size=None):
                for line in batch["stats"]:
                    totals.add(line)
    started = stats.started
    result = totals.result()
    result.started = started
    return result


async def _merge_hint_files(folder: str, cache_path: str | os.PathLike[str]) -> int:
    count = 0
    found = sorted([path async for path in anyio.Path(folder).glob("hints-*.jsonl")])
    async with HintCache(cache_path) as cache:
        for exported in found:
            data = await exported.read_bytes()
            for line in data.splitlines():
                record = orjson.loads(line)
                key = record.pop("key")
                await cache.put(key, CachedHint(**record))
                count += 1
            await exported.unlink()
    return count


def merge_hints(folder: str | os.PathLike[str], cache_path: str | os.PathLike[str]) -> int:
    """Merge the hints an ``annotate_folder`` run exported (``hints-*.jsonl``) into a cache.

    The exported files are removed once merged. Returns how many hints were merged.
    """
    return anyio.run(_merge_hint_files, os.fspath(folder), cache_path)


_REMOTE_ERROR = re.compile(r"tracehint\._exceptions\.(\w+): ([^\n]+)")


def remote_tracehint_error(exc: BaseException) -> TracehintError | None:
    """The ``TracehintError`` (e.g. a judge auth failure) behind a failed Ray job, if any.

    Ray wraps a worker's exception in its own, and the original may come back only as text
    in the remote traceback; either way the user gets tracehint's own message back.
    """
    stack: list[BaseException] = [exc]
    seen: set[int] = set()
    while stack:
        found = stack.pop()
        if id(found) in seen:
            continue
        seen.add(id(found))
        if isinstance(found, TracehintError):
            return found
        if isinstance(found, BaseExceptionGroup):
            stack.extend(found.exceptions)
        linked = (found.__cause__, found.__context__, getattr(found, "cause", None))
        stack.extend(inner for inner in linked if isinstance(inner, BaseException))
    matches = _REMOTE_ERROR.findall(str(exc))
    if matches:
        name, message = matches[-1]
        kind = getattr(_exceptions, name, None)
        if isinstance(kind, type) and issubclass(kind, TracehintError):
            return kind(message)
    return None
