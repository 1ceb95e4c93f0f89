"""Peak RSS of ``tracehint annotate``: offline on the corpus x2 and x20, and with a judge.

Each run is a ``tracehint annotate`` child of a fresh wrapper process whose
``RUSAGE_CHILDREN.ru_maxrss`` is that child's peak RSS. An empty folder gives the start-up
baseline. Streaming means the peak should not grow with the amount of input: the target is
peak(x20) / peak(x2) <= 1.2.

With a judge (the mock in its own process, latency 0.5 s, ``--layers judge --no-cache``) on 40
generated sessions of about 4 MB, each with a few sites, at ``--concurrency`` 8 and 256: the
traces held at once are bounded by ``--max-traces-in-flight`` (and its byte budget), not by
the requests in flight, so the target is peak(256) / peak(8) <= 1.2.

    python benchmarks/bench_memory.py [--quick]
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import orjson
from _common import (
    MockJudgeProcess,
    annotate_command,
    base_parser,
    print_tables,
    replicate_corpus,
    run_measured,
    table,
    target,
    total_bytes,
    write_result,
)

JUDGE_LATENCY = 0.5
JUDGE_LEVELS = (8, 256)


def _line(kind: str, uuid: str, parent: str | None, content: object) -> bytes:
    message: dict[str, Any] = {"role": kind, "content": content}
    if kind == "assistant":
        message["id"] = f"m-{uuid}"
    entry = {"type": kind, "uuid": uuid, "parentUuid": parent, "sessionId": "memory"}
    return orjson.dumps({**entry, "message": message})


def write_big_sessions(folder: Path, sessions: int, megabytes: float, sites: int) -> list[Path]:
    """``sessions`` Claude Code sessions of about ``megabytes`` each.

    Large file reads make the bulk; ``sites`` failed commands follow.
    """
    folder.mkdir(parents=True)
    reads = 40
    chunk = "x = 1  # padding line of a large source file\n" * int(megabytes * 1e6 / reads / 46)
    paths = []
    for number in range(sessions):
        lines = [_line("user", f"u{number}", None, "Refactor the module and run the build.")]
        parent = f"u{number}"
        for step in range(reads + sites):
            call, result = f"a{number}-{step}", f"r{number}-{step}"
            failed = step >= reads
            name, argument = ("Bash", "command") if failed else ("Read", "file_path")
            value = f"make build{step}" if failed else f"/src/file{step}.py"
            use = {"type": "tool_use", "id": f"t{number}-{step}", "name": name}
            lines.append(_line("assistant", call, parent, [{**use, "input": {argument: value}}]))
            block: dict[str, Any] = {"type": "tool_result", "tool_use_id": f"t{number}-{step}"}
            block["content"] = f"Exit code 2\nbuild{step} of session {number} failed"
            if failed:
                block["is_error"] = True
            else:
                block["content"] = chunk
            lines.append(_line("user", result, call, [block]))
            parent = result
        lines.append(_line("assistant", f"z{number}", parent, [{"type": "text", "text": "Done."}]))
        path = folder / f"session-{number:03}.jsonl"
        path.write_bytes(b"\n".join(lines) + b"\n")
        paths.append(path)
    return paths


def judged_rows(base: Path, *, quick: bool, repeats: int) -> list[dict[str, Any]]:
    """Peak RSS with a judge at each of ``JUDGE_LEVELS``, on the same generated sessions."""
    sessions = 12 if quick else 40
    root = base / "big"
    files = write_big_sessions(root, sessions, 4.0, 5)
    rows: list[dict[str, Any]] = []
    with MockJudgeProcess(latency=JUDGE_LATENCY) as server:
        for level in JUDGE_LEVELS:
            command = annotate_command(
                [root],
                base / "judged.jsonl",
                "--layers",
                "judge",
                "--no-cache",
                "--judge-url",
                server.url,
                "--judge-model",
                "mock-judge",
                "--concurrency",
                str(level),
            )
            runs = [run_measured(command) for _ in range(repeats)]
            for run in runs:
                if run["returncode"] != 0:
                    raise SystemExit(f"tracehint annotate failed: {run['stderr']}")
            peak = max(run["peak_rss_mb"] for run in runs)
            print(f"judge C={level:<4} peak RSS {peak:7.1f} MB", flush=True)
            rows.append(
                {
                    "concurrency": level,
                    "files": len(files),
                    "input_mb": round(total_bytes(files) / 1e6, 1),
                    "peak_rss_mb": peak,
                    "peak_rss_runs_mb": [r["peak_rss_mb"] for r in runs],
                    "wall_seconds": round(min(r["wall_seconds"] for r in runs), 2),
                },
            )
    return rows


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument(
        "--repeats", type=int, help="runs per size, the highest peak kept (default 2)"
    )
    args = parser.parse_args()
    small, large = (2, 20)
    repeats = args.repeats or (1 if args.quick else 2)
    if args.quick:
        large = 6

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="tracehint-bench-memory-") as folder:
        base = Path(folder)
        empty = base / "empty"
        empty.mkdir()
        output = base / "out.jsonl"
        for label, copies in (
            ("empty folder", 0),
            (f"corpus x{small}", small),
            (f"corpus x{large}", large),
        ):
            root = empty
            files: list[Path] = []
            if copies:
                root = base / f"x{copies}"
                files = replicate_corpus(args.corpus, root, copies)
            runs = [
                run_measured(annotate_command([root], output, "--layers", "template,raw"))
                for _ in range(repeats)
            ]
            # An empty folder holds no transcript: exit 2, by design (the start-up baseline).
            allowed = {0, 2} if copies == 0 else {0}
            for run in runs:
                if run["returncode"] not in allowed:
                    raise SystemExit(f"tracehint annotate failed: {run['stderr']}")
            peak = max(run["peak_rss_mb"] for run in runs)
            print(
                f"{label:14} peak RSS {peak:7.1f} MB  ({[r['peak_rss_mb'] for r in runs]})",
                flush=True,
            )
            rows.append(
                {
                    "input": label,
                    "copies": copies,
                    "files": len(files),
                    "input_mb": round(total_bytes(files) / 1e6, 1),
                    "output_mb": round(output.stat().st_size / 1e6, 1),
                    "peak_rss_mb": peak,
                    "peak_rss_runs_mb": [r["peak_rss_mb"] for r in runs],
                    "wall_seconds": round(min(r["wall_seconds"] for r in runs), 2),
                },
            )
        judged = judged_rows(base, quick=args.quick, repeats=repeats)
    startup = rows[0]["peak_rss_mb"]
    for row in rows:
        row["above_startup_mb"] = round(row["peak_rss_mb"] - startup, 1)
    ratio = rows[2]["peak_rss_mb"] / rows[1]["peak_rss_mb"]
    for row in judged:
        row["above_startup_mb"] = round(row["peak_rss_mb"] - startup, 1)
    judged_ratio = judged[-1]["peak_rss_mb"] / judged[0]["peak_rss_mb"]
    data = {
        "settings": {
            "small": small,
            "large": large,
            "repeats": repeats,
            "layers": "template,raw",
            "judged": {"layers": "judge", "latency": JUDGE_LATENCY, "levels": JUDGE_LEVELS},
        },
        "rows": rows,
        "judged_rows": judged,
        "ratio_large_small": round(ratio, 3),
        "ratio_judged": round(judged_ratio, 3),
        "tables": [
            table(
                "Peak RSS of `tracehint annotate --layers template,raw` (highest of the repeats)",
                {
                    "input": "input",
                    "files": "files",
                    "input_mb": "input MB",
                    "output_mb": "output MB",
                    "peak_rss_mb": "peak RSS MB",
                    "above_startup_mb": "above start-up MB",
                    "wall_seconds": "wall s",
                },
                rows,
            ),
            table(
                f"Peak RSS of `tracehint annotate --layers judge` (mock judge, latency "
                f"{JUDGE_LATENCY} s) on {judged[0]['files']} sessions of about 4 MB, by "
                "--concurrency (default --max-traces-in-flight)",
                {
                    "concurrency": "concurrency",
                    "files": "files",
                    "input_mb": "input MB",
                    "peak_rss_mb": "peak RSS MB",
                    "above_startup_mb": "above start-up MB",
                    "wall_seconds": "wall s",
                },
                judged,
            ),
        ],
        "targets": [
            target(f"memory: peak RSS x{large} / x{small}", ratio, 1.2, at_least=False),
            target(
                f"memory with a judge: peak RSS at concurrency {JUDGE_LEVELS[-1]} / "
                f"{JUDGE_LEVELS[0]}",
                judged_ratio,
                1.2,
                at_least=False,
            ),
        ],
    }
    path = write_result("bench_memory", data, quick=args.quick)
    print_tables(data)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
