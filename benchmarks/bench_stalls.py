"""Event-loop stalls while tracehint reads a session with a 50 MB line.

A probe task shares the pipeline's event loop: it sleeps 1 ms at a time and records how late
it wakes. A late wake-up is a stall: every other task (judge requests, the writer) waited as
long. The input is the corpus x2 plus one generated Claude Code session whose failed ``Bash``
result is a single line of about 50 MB (a command that printed a huge log), annotated with
the offline layers into a real output file. The same run without the big session shows the
stalls of ordinary reading; the big session once more with the output redacted, as
``tracehint annotate`` does by default. Other formats alone: the corpus's largest Codex
rollout, SWE-agent ``.traj`` document and ATIF trajectory (read whole) with a tool output
grown by the same size, and its Gemini CLI session (one JSON document on one line) with its
longest text grown.
Best of the repeats (the longest stall of the best run): the machine is shared, and the OS
may pause the process for reasons of its own.

The process first freezes its start-up objects out of garbage collection (``gc.freeze()``), as
the ``tracehint`` command does: otherwise a full collection walks the imported modules'
objects, about 30 ms with the GIL held. One more row runs without it (what a program that
embeds the library sees unless it does the same); the target is read from the other rows.

    python benchmarks/bench_stalls.py [--quick] [--line-mb N]
"""

from __future__ import annotations

import functools
import gc
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import orjson
from _common import base_parser, print_tables, replicate_corpus, table, target, write_result

from tracehint import (
    Annotator,
    AnnotatorConfig,
    JsonlSink,
    PipelineConfig,
    RunStats,
    annotate_files,
)

PROBE_SECONDS = 0.001
LOG_LINE = "2025-01-01T00:00:00Z worker[17] step 12345 done, checking the next shard...\n"
TARGET_MS = 20.0


def _grow_longest_string(value: Any, size: int) -> None:
    """Put about ``size`` bytes of log before the longest string in ``value`` (in place)."""
    found: list[tuple[int, Any, Any]] = []

    def walk(item: Any, parent: Any, key: Any) -> None:
        if isinstance(item, str):
            found.append((len(item), parent, key))
        elif isinstance(item, dict):
            for name, inner in item.items():
                walk(inner, item, name)
        elif isinstance(item, list):
            for index, inner in enumerate(item):
                walk(inner, item, index)

    walk(value, None, None)
    _, parent, key = max(found, key=lambda entry: entry[0])
    parent[key] = LOG_LINE * (size // len(LOG_LINE)) + parent[key]


def grown_lines(source: Path, path: Path, size: int, marker: bytes) -> None:
    """``source`` (JSONL), the longest string of its longest line with ``marker`` grown."""
    lines = source.read_bytes().splitlines()
    index = max(range(len(lines)), key=lambda i: (marker in lines[i], len(lines[i])))
    entry = orjson.loads(lines[index])
    _grow_longest_string(entry, size)
    lines[index] = orjson.dumps(entry)
    path.write_bytes(b"\n".join(lines) + b"\n")


def grown_document(source: Path, path: Path, size: int, key: str) -> None:
    """``source`` (one JSON document), the longest string under ``key`` grown, indented."""
    document = orjson.loads(source.read_bytes())
    _grow_longest_string(document.get(key, document), size)
    path.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))


def _largest(corpus: Path, pattern: str) -> Path | None:
    found = sorted(corpus.rglob(pattern), key=lambda p: (-p.stat().st_size, str(p)))
    return found[0] if found else None


def big_session(path: Path, line_bytes: int) -> int:
    """A Claude Code session whose failed tool result is one line of about ``line_bytes``."""
    session = "bench-stalls"
    output = LOG_LINE * (line_bytes // len(LOG_LINE)) + "Error: shard 99 failed to load"
    entries: list[dict[str, Any]] = [
        {
            "type": "user",
            "uuid": "u1",
            "sessionId": session,
            "message": {"role": "user", "content": "Run the pipeline and fix what fails."},
        },
        {
            "type": "assistant",
            "uuid": "a1",
            "sessionId": session,
            "message": {
                "id": "msg-1",
                "role": "assistant",
                "content": [
                    {
                        "type": "tool_use",
                        "id": "call-1",
                        "name": "Bash",
                        "input": {"command": "python run_pipeline.py --all"},
                    }
                ],
            },
        },
        {
            "type": "user",
            "uuid": "u2",
            "sessionId": session,
            "message": {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "call-1",
                        "content": f"Exit code 1\n{output}",
                        "is_error": True,
                    }
                ],
            },
        },
        {
            "type": "assistant",
            "uuid": "a2",
            "sessionId": session,
            "message": {
                "id": "msg-2",
                "role": "assistant",
                "content": [{"type": "text", "text": "Shard 99 failed; let me look at it."}],
            },
        },
    ]
    data = b"\n".join(orjson.dumps(entry) for entry in entries) + b"\n"
    path.write_bytes(data)
    return max(len(line) for line in data.splitlines())


def other_formats(corpus: Path, folder: Path, size: int, line_mb: float) -> dict[str, list[Path]]:
    """Each other format's big input, made in ``folder`` from the corpus's largest file."""
    found: dict[str, list[Path]] = {}
    rollout = _largest(corpus / "codex", "rollout-*.jsonl")
    if rollout is not None:
        grown_lines(rollout, folder / "rollout-big.jsonl", size, b"_call_output")
        found[f"Codex, {line_mb:g} MB line"] = [folder / "rollout-big.jsonl"]
    traj = _largest(corpus / "swe_agent", "*.traj")
    if traj is not None:
        grown_document(traj, folder / "big.traj", size, "trajectory")
        found[f"SWE-agent .traj, {line_mb:g} MB"] = [folder / "big.traj"]
    atif = _largest(corpus / "atif", "*.trajectory.json")
    if atif is not None:
        grown_document(atif, folder / "big.trajectory.json", size, "steps")
        found[f"ATIF trajectory, {line_mb:g} MB"] = [folder / "big.trajectory.json"]
    gemini = _largest(corpus / "gemini_cli", "*.jsonl")
    if gemini is not None:  # a saved session: one JSON document on one line
        grown_lines(gemini, folder / "gemini-big.jsonl", size, b"{")
        found[f"Gemini CLI session, {line_mb:g} MB line"] = [folder / "gemini-big.jsonl"]
    return found


async def _run(inputs: list[Path], output: Path, *, redact: bool) -> dict[str, Any]:
    lags: list[float] = []
    done = anyio.Event()

    async def probe() -> None:
        while not done.is_set():
            started = time.perf_counter()
            await anyio.sleep(PROBE_SECONDS)
            lags.append(time.perf_counter() - started - PROBE_SECONDS)

    stats = RunStats()
    started = time.perf_counter()
    async with anyio.create_task_group() as group:
        group.start_soon(probe)
        await anyio.sleep(0.05)  # the probe is running before the pipeline starts
        async with (
            Annotator(
                AnnotatorConfig(layers=("template", "raw"), redact_output=redact)
            ) as annotator,
            JsonlSink(str(output), overwrite=True) as sink,
        ):
            await annotate_files(
                [str(p) for p in inputs],
                chain=annotator.chain,
                sink=sink,
                stats=stats,
                config=PipelineConfig(),
            )
        done.set()
    lags.sort()
    return {
        "seconds": round(time.perf_counter() - started, 3),
        "max_ms": round(lags[-1] * 1000, 1),
        "p99_ms": round(lags[int(len(lags) * 0.99)] * 1000, 2),
        "median_ms": round(statistics.median(lags) * 1000, 2),
        "over_target": sum(lag * 1000 > TARGET_MS for lag in lags),
        "traces": stats.traces,
        "sites": stats.sites,
        "output_mb": round((await anyio.Path(output).stat()).st_size / 1e6, 1),
    }


def main() -> None:
    gc.freeze()  # as `tracehint` does once its imports are done (see the module's docstring)
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--line-mb", type=float, default=50.0, help="size of the big line (MB)")
    parser.add_argument("--repeats", type=int, help="runs per input (default 3, quick 1)")
    args = parser.parse_args()
    repeats = args.repeats or (1 if args.quick else 3)
    copies = 1 if args.quick else 2

    with tempfile.TemporaryDirectory(prefix="tracehint-bench-stalls-") as folder:
        root = Path(folder)
        corpus = root / "corpus"
        replicate_corpus(args.corpus, corpus, copies)
        big = root / "big" / "session-big.jsonl"
        big.parent.mkdir()
        line_bytes = big_session(big, int(args.line_mb * 1e6))
        print(f"big line: {line_bytes / 1e6:.1f} MB", flush=True)
        inputs = {
            f"corpus x{copies}": [corpus],
            f"corpus x{copies} + {args.line_mb:g} MB line": [corpus, big],
        }
        # What `tracehint annotate` does by default: the output redacted too.
        redacted = f"corpus x{copies} + {args.line_mb:g} MB line, --redact-output"
        inputs[redacted] = [corpus, big]
        unfrozen = f"corpus x{copies} + {args.line_mb:g} MB line, no gc.freeze()"
        inputs[unfrozen] = [corpus, big]
        size = int(args.line_mb * 1e6)
        inputs.update(other_formats(args.corpus, big.parent, size, args.line_mb))
        best: dict[str, dict[str, Any]] = {}
        for _ in range(repeats):
            for name, paths in inputs.items():
                if name == unfrozen:
                    gc.unfreeze()
                found = anyio.run(
                    functools.partial(_run, paths, root / "out.jsonl", redact=name == redacted),
                    backend="asyncio",
                )
                gc.collect()  # what this run left, so that it is not collected during the next
                gc.freeze()
                print(f"{name:32} longest stall {found['max_ms']:7.1f} ms", flush=True)
                if name not in best or found["max_ms"] < best[name]["max_ms"]:
                    best[name] = found

    rows = [{"input": name, **found} for name, found in best.items()]
    worst = max(row["max_ms"] for row in rows if row["input"] != unfrozen)
    data = {
        "settings": {
            "copies": copies,
            "line_bytes": line_bytes,
            "repeats": repeats,
            "probe_seconds": PROBE_SECONDS,
        },
        "rows": rows,
        "tables": [
            table(
                f"Event-loop stalls, offline layers, output to a file (best of {repeats})",
                {
                    "input": "input",
                    "max_ms": "longest stall ms",
                    "p99_ms": "p99 ms",
                    "median_ms": "median ms",
                    "over_target": f"stalls > {TARGET_MS:g} ms",
                    "seconds": "s",
                    "traces": "traces",
                    "sites": "sites",
                    "output_mb": "output MB",
                },
                rows,
            ),
        ],
        "targets": [
            target("stalls: longest event-loop stall (ms)", worst, TARGET_MS, at_least=False),
        ],
        "ratios": {"longest stall / target": round(worst / TARGET_MS, 3)},
    }
    path = write_result("bench_stalls", data, quick=args.quick)
    print_tables(data)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
