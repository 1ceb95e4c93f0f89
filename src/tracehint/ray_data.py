"""Run the same annotation on a Ray cluster with Ray Data (``pip install 'tracehint[ray]'``).

```python
import ray
from tracehint import AnnotatorConfig
from tracehint.ray_data import annotate_dataset, read_sessions, write_jsonl

ds = read_sessions(["/data/sessions"])          # binary rows: bytes, path
out = annotate_dataset(ds, AnnotatorConfig())   # rows: kind, path, trace_id, line
stats = write_jsonl(out, "/data/out")           # traces-*.jsonl, errors-*.jsonl, a RunStats
```

Session files are read as binary (Ray's JSON reader rejects real Claude Code lines) and
parsed by tracehint's own ingester, batch by batch, in a pool of actors whose ``__call__`` is
``async``: each batch opens its own ``Annotator`` (HTTP client and SQLite cache) on the
actor's event loop and closes it when the batch is done, so nothing outlives the loop it was
made on; one ``CapacityLimiter`` per actor bounds that actor's judge requests in flight
across all its concurrent batches.

Each worker uses a local SQLite cache (``AnnotatorConfig.cache_path``, or the user cache
directory of the node). ``RayOptions.seed_cache`` merges a cache file into it before the
first batch; afterwards, ``tracehint cache merge`` collects the nodes' files into one.

The core package never imports this module; it needs ``ray[data]``.
"""

from __future__ import annotations

import os
import re
import uuid
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import anyio
import orjson

from tracehint import _exceptions
from tracehint._annotator import Annotator, AnnotatorConfig
from tracehint._cache import HintCache, default_cache_path
from tracehint._exceptions import ConfigError, OutputError, TracehintError
from tracehint._ingest._discover import _is_event_folder, skip_reason
from tracehint._ingest.claude_code import read_agent_meta
from tracehint._ingest.openhands import read_event_folder
from tracehint._judge import API_KEY_ENV, api_key_from_env
from tracehint._output import MemorySink
from tracehint._pipeline import SessionBlob, annotate_files
from tracehint._stats import RunStats
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
    from collections.abc import Iterable, Sequence

__all__ = ["OUTPUT_COLUMNS", "RayOptions", "annotate_dataset", "read_sessions", "write_jsonl"]

OUTPUT_COLUMNS = ("kind", "path", "trace_id", "line")
"""Columns of ``annotate_dataset``'s rows. ``kind`` is ``trace`` (``line`` is the trace's
JSON, as ``tracehint annotate`` writes it), ``issue`` (an input issue's JSON) or ``stats``
(one batch's ``RunStats.to_dict()`` JSON)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RayOptions:
    """How the annotation is spread over the cluster."""

    batch_size: int = 8
    """Session files per batch (one ``Annotator`` per batch)."""
    actors: int | None = None
    """Annotating actors at most; default: the cluster's CPUs minus one (at least one)."""
    actor_cpus: float = 1.0
    """CPUs reserved per actor (parsing is CPU work; judging is waiting)."""
    per_actor_concurrency: int = 64
    """Judge requests in flight per actor, over all its concurrent batches."""
    hint_workers: int = 4
    """Traces hinted at once within one batch."""
    seed_cache: str | None = None
    """A cache file merged into each worker's local cache before its first batch."""

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.per_actor_concurrency < 1 or self.hint_workers < 1:
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


class _AnnotateBatch:
    """The Ray Data actor: ``async __call__`` annotates one batch of session files."""

    def __init__(self, config: AnnotatorConfig, options: RayOptions) -> None:
        judge = config.judge
        if judge is not None and judge.api_key is None:
            # The key travels as an environment variable of the worker, never in the config.
            config = replace(config, judge=replace(judge, api_key=api_key_from_env()))
        self._config = config
        self._options = options
        self._limiter = anyio.CapacityLimiter(options.per_actor_concurrency)
        self._seeded: anyio.Event | None = None

    async def _seed_once(self) -> None:
        """Seed the worker's cache before any batch of this actor asks it anything."""
        if self._seeded is not None:
            await self._seeded.wait()
            return
        self._seeded = anyio.Event()
        try:
            await self._seed()
        finally:
            self._seeded.set()

    async def _seed(self) -> None:
        config = self._config
        if self._options.seed_cache is None or not config.use_cache or config.judge is None:
            return
        async with HintCache(config.cache_path or default_cache_path()) as cache:
            await cache.merge_from(self._options.seed_cache)

    async def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        await self._seed_once()
        blobs = []
        skipped: list[str] = []
        sink, issues, stats = MemorySink(), MemorySink(), RunStats()
        for data, path in zip(batch["bytes"], batch["path"], strict=True):
            name = str(path)
            if not data and await anyio.Path(name).is_dir():  # an OpenHands session folder
                events, problems = await anyio.to_thread.run_sync(read_event_folder, name)
                for problem in problems:
                    await issues.write(dump_issue(problem))
                blobs.append(SessionBlob(name, events, None))
                continue
            reason = _ray_skip_reason(name)
            if reason == "":
                continue  # an event file: read with its session folder
            if reason is not None:
                skipped.append(reason)
                continue
            meta = await anyio.to_thread.run_sync(read_agent_meta, name)
            blobs.append(SessionBlob(name, bytes(data), meta))
        config = self._config
        for reason in skipped:
            stats.record_skipped_file(reason)
        async with Annotator(config, judge_limiter=self._limiter) as annotator:
            await annotate_files(
                blobs,
                chain=annotator.chain,
                sink=sink,
                stats=stats,
                issue_sink=issues,
                config=config.pipeline(hint_workers=self._options.hint_workers),
            )
            stats.judge = annotator.stats()
        columns: dict[str, list[str]] = {name: [] for name in OUTPUT_COLUMNS}
        for line in sink.lines:
            record = orjson.loads(line)
            _row(columns, "trace", record["source"]["path"], record["trace_id"], line)
        for line in issues.lines:
            _row(columns, "issue", orjson.loads(line)["path"], "", line)
        _row(columns, "stats", "", "", orjson.dumps(stats.to_dict()))
        return {name: np.array(values, dtype=object) for name, values in columns.items()}


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


def annotate_dataset(
    sessions: ray.data.Dataset,
    config: AnnotatorConfig | None = None,
    options: RayOptions | None = None,
) -> ray.data.Dataset:
    """Annotate a dataset of session files (``bytes``, ``path``; see ``read_sessions``).

    Returns a lazy dataset of ``OUTPUT_COLUMNS`` rows; plug it into your own Ray Data job or
    write it with ``write_jsonl``.
    """
    config = config or AnnotatorConfig()
    options = options or RayOptions()
    remote_args: dict[str, Any] = {}
    judge = config.judge
    if judge is not None and judge.api_key is not None:
        remote_args["runtime_env"] = {"env_vars": {API_KEY_ENV[0]: judge.api_key}}
        config = replace(config, judge=replace(judge, api_key=None))
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


@dataclass
class _JsonlDatasink(Datasink[dict[str, Any]]):
    """Writes trace rows to ``traces-*.jsonl`` and issue rows to ``errors-*.jsonl``.

    Each write task writes its own files under temporary names and renames them when done, so
    a file in the folder is always complete. Batch stats are summed on the driver.
    """

    folder: str
    stats: RunStats = field(default_factory=RunStats)

    def write(self, blocks: Iterable[Any], ctx: Any) -> dict[str, Any]:  # noqa: ANN401 -- Ray's TaskContext
        from ray.data.block import BlockAccessor  # noqa: PLC0415 -- Ray internals, lazily

        token = f"{getattr(ctx, 'task_idx', 0):05d}-{uuid.uuid4().hex[:8]}"
        totals = RunStats()
        handles: dict[str, Any] = {}
        try:
            for block in blocks:
                table = BlockAccessor.for_block(block).to_arrow()
                kinds = table.column("kind").to_pylist()
                lines = table.column("line").to_pylist()
                for kind, line in zip(kinds, lines, strict=True):
                    if kind == "stats":
                        totals.merge(orjson.loads(line))
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
            self.stats.merge(returned)


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
    try:
        annotated.write_datasink(sink)
    except Exception as exc:
        error = remote_tracehint_error(exc)
        if error is not None:
            raise error from exc
        raise
    return sink.stats


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
