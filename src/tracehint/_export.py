"""``tracehint export``: one training row per hinted site, as JSONL or Parquet.

Rows are ``site_rows`` of every trace of ``tracehint annotate``'s output, in the
conversational prompt/completion layout Hugging Face ``datasets`` and TRL read. The output is
written to a temporary file beside the target and renamed into place at the end, so a failed
export leaves nothing behind.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from tracehint._exceptions import ConfigError, InputError, OutputError
from tracehint._output import OutputPath, check_outputs
from tracehint._teacher import HintPlacement, SiteOutcome, site_outcomes
from tracehint._wire import read_traces

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence

__all__ = ["ExportOptions", "ExportStats", "export_sites", "trace_files"]

_PARQUET_BATCH = 256
"""Rows per Parquet row group (rows hold whole conversations: keep groups small)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ExportOptions:
    """What ``export_sites`` writes."""

    at: HintPlacement = HintPlacement.RECOVERY
    hint_role: str = "user"
    reasoning: bool = True
    """Keep the assistants' thinking (``reasoning_content``)."""
    sources: frozenset[str] | None = None
    """Only sites whose hint came from these layers (``template``, ``judge``, ``raw``)."""
    overwrite: bool = False


@dataclass(slots=True)
class ExportStats:
    """What an export wrote and left out."""

    traces: int = 0
    sites: int = 0
    outcomes: dict[SiteOutcome, int] = field(default_factory=dict)
    """Sites by what became of them (a row, or why not)."""
    by_kind: dict[str, int] = field(default_factory=dict)
    """Rows by error kind."""

    @property
    def rows(self) -> int:
        """Rows written."""
        return self.outcomes.get(SiteOutcome.ROW, 0)

    def summary(self) -> str:
        """One line for stderr."""
        parts = [f"{self.rows} rows from {self.sites} sites in {self.traces} traces"]
        for outcome, name in (
            (SiteOutcome.NO_HINT, "without a hint"),
            (SiteOutcome.OTHER_SOURCE, "hinted by other layers"),
            (SiteOutcome.UNPLACED, "with no message to place the hint at"),
        ):
            count = self.outcomes.get(outcome, 0)
            if count:
                parts.append(f"{count} {name}")
        return "; ".join(parts)


def trace_files(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """The output files to read: files as given, folders' ``*.jsonl`` (``errors-*`` left out).

    A folder is what ``annotate --engine ray`` writes (``traces-*.jsonl``).
    """
    files: list[Path] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            found = sorted(
                p for p in path.rglob("*.jsonl") if p.is_file() and not p.name.startswith("errors-")
            )
            if not found:
                raise InputError(f"{path} holds no *.jsonl trace file")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise InputError(f"{path} does not exist (or is not a file or folder)")
    return files


def _rows(
    files: Iterable[Path], options: ExportOptions, stats: ExportStats
) -> Iterator[dict[str, Any]]:
    for file in files:
        for trace in read_traces(file):
            stats.traces += 1
            outcomes = site_outcomes(
                trace,
                at=options.at,
                hint_role=options.hint_role,
                reasoning=options.reasoning,
                sources=options.sources,
            )
            try:
                for outcome, row in outcomes:
                    stats.sites += 1
                    stats.outcomes[outcome] = stats.outcomes.get(outcome, 0) + 1
                    if row is not None:
                        stats.by_kind[row["kind"]] = stats.by_kind.get(row["kind"], 0) + 1
                        yield row
            except ConfigError as exc:
                raise InputError(f"{file}: trace {trace.trace_id}: {exc}") from exc


def export_sites(
    paths: Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    options: ExportOptions | None = None,
) -> ExportStats:
    """Write one row per hinted site of the traces in ``paths`` to ``output``.

    Parquet when ``output`` ends in ``.parquet`` (needs ``pip install 'tracehint[parquet]'``),
    JSONL otherwise. ``output`` is checked first as ``annotate`` checks its outputs
    (``check_outputs``: ``ConfigError`` when it exists without ``overwrite`` or is one of the
    inputs, ``OutputError`` when it cannot be written); ``InputError`` names the file and line of
    a line that is not a trace.
    """
    options = options or ExportOptions()
    target = Path(output)
    files = trace_files(paths)
    check_outputs([OutputPath(option="-o", path=str(target), replace=options.overwrite)], files)
    parquet = target.suffix == ".parquet"
    writer = _write_parquet if parquet else _write_jsonl
    if parquet:
        _require_pyarrow()
    stats = ExportStats()
    partial = target.with_name(f".{target.name}.partial")
    try:
        writer(_rows(files, options, stats), partial)
        partial.replace(target)
    except OSError as exc:
        raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from exc
    finally:
        partial.unlink(missing_ok=True)
    return stats


def _write_jsonl(rows: Iterable[dict[str, Any]], path: Path) -> None:
    with path.open("wb") as handle:
        for row in rows:
            handle.write(orjson.dumps(row) + b"\n")


# -- Parquet ------------------------------------------------------------------------------------


def _require_pyarrow() -> None:
    if importlib.util.find_spec("pyarrow") is None:
        raise ConfigError(
            "writing Parquet needs pyarrow: pip install 'tracehint[parquet]' (or write .jsonl)"
        )


def _schema() -> Any:  # noqa: ANN401 -- pyarrow is optional and untyped here
    import pyarrow as pa  # noqa: PLC0415 -- optional extra

    function = pa.struct([("name", pa.string()), ("arguments", pa.string())])
    call = pa.struct([("id", pa.string()), ("type", pa.string()), ("function", function)])
    message = pa.struct(
        [
            ("role", pa.string()),
            ("content", pa.string()),
            ("reasoning_content", pa.string()),
            ("tool_calls", pa.list_(call)),
            ("tool_call_id", pa.string()),
            ("name", pa.string()),
        ]
    )
    conversation = pa.list_(message)
    return pa.schema(
        [
            ("trace_id", pa.string()),
            ("turn_index", pa.int64()),
            ("at", pa.string()),
            ("message_index", pa.int64()),
            ("mistake_message_index", pa.int64()),
            ("recovery_message_index", pa.int64()),
            ("kind", pa.string()),
            ("detected_by", pa.string()),
            ("tool_name", pa.string()),
            ("hint", pa.string()),
            ("hint_source", pa.string()),
            ("hint_model", pa.string()),
            ("prompt", conversation),
            ("completion", conversation),
            ("teacher_prompt", conversation),
            ("source_path", pa.string()),
            ("source_format", pa.string()),
            ("tools", pa.string()),
        ]
    )


def _text(value: object) -> str | None:
    """A string column's value: strings as they are, anything else as its JSON."""
    if value is None or isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


def _parquet_message(message: dict[str, Any]) -> dict[str, Any]:
    calls = message.get("tool_calls")
    out: dict[str, Any] = {
        "role": _text(message.get("role")),
        "content": _text(message.get("content")),
        "reasoning_content": _text(message.get("reasoning_content")),
        "tool_call_id": _text(message.get("tool_call_id")),
        "name": _text(message.get("name")),
        "tool_calls": None,
    }
    if isinstance(calls, list):
        out["tool_calls"] = [_parquet_call(call) for call in calls if isinstance(call, dict)]
    return out


def _parquet_call(call: dict[str, Any]) -> dict[str, Any]:
    spec = call.get("function")
    spec = spec if isinstance(spec, dict) else {}
    return {
        "id": _text(call.get("id")),
        "type": _text(call.get("type")),
        "function": {"name": _text(spec.get("name")), "arguments": _text(spec.get("arguments"))},
    }


def _parquet_row(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    for key in ("prompt", "completion", "teacher_prompt"):
        out[key] = [_parquet_message(m) for m in row[key]]
    out["tools"] = _text(row["tools"]) if "tools" in row else None  # a JSON list, as text
    return out


def _write_parquet(rows: Iterable[dict[str, Any]], path: Path) -> None:
    import pyarrow as pa  # noqa: PLC0415 -- optional extra
    import pyarrow.parquet as pq  # noqa: PLC0415 -- optional extra

    schema = _schema()
    with pq.ParquetWriter(os.fspath(path), schema) as writer:
        batch: list[dict[str, Any]] = []
        for row in rows:
            batch.append(_parquet_row(row))
            if len(batch) >= _PARQUET_BATCH:
                writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                batch = []
        if batch:
            writer.write_table(pa.Table.from_pylist(batch, schema=schema))
