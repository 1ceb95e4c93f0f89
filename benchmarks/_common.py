"""Helpers shared by the benchmark scripts.

Machine information, result files, markdown tables, corpus replication, the mock judge in a
separate process, and peak-RSS measurement of a child process.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib.metadata
import os
import platform
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import orjson
import psutil

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from types import TracebackType

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
DEFAULT_CORPUS = Path(os.environ.get("TRACEHINT_BENCH_CORPUS", "/work/shared/corpus"))

PACKAGES = (
    "tracehint",
    "aiohttp",
    "httpx",
    "httpcore",
    "httpx-aiohttp",
    "orjson",
    "anyio",
    "ray",
    "aiosqlite",
    "matplotlib",
    "psutil",
)

# The CLI as a command line, run with the same interpreter (no reliance on PATH).
TRACEHINT_CLI = (
    sys.executable,
    "-c",
    "import sys; from tracehint._main import main; sys.exit(main())",
)


def base_parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the options every benchmark takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument(
        "--corpus",
        type=Path,
        default=DEFAULT_CORPUS,
        help=f"folder of session JSONL files (default {DEFAULT_CORPUS})",
    )
    return parser


def cpu_model() -> str:
    """The CPU model name (from /proc/cpuinfo on Linux, else the platform's answer)."""
    with contextlib.suppress(OSError):
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        found = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
        if found:
            return found.group(1).strip()
    return platform.processor() or platform.machine()


def package_versions(names: Iterable[str] = PACKAGES) -> dict[str, str | None]:
    """Installed versions of ``names`` (``None`` when not installed)."""
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def source_revision() -> str | None:
    """``git describe --always --dirty`` of the checkout measured (``None`` outside git)."""
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=BENCH_DIR,
            capture_output=True,
            check=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.decode().strip() or None


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on (and which source revision)."""
    memory = psutil.virtual_memory()
    return {
        "tracehint_revision": source_revision(),
        "cpu_model": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "ram_gb": round(memory.total / 2**30, 1),
        "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "packages": package_versions(),
    }


def target(
    name: str, measured: float | None, goal: float, *, at_least: bool = True
) -> dict[str, Any]:
    """A target line: ``measured >= goal`` (or ``<=`` with ``at_least=False``)."""
    passed = measured is not None and (measured >= goal if at_least else measured <= goal)
    return {
        "name": name,
        "measured": None if measured is None else round(measured, 3),
        "goal": goal,
        "op": ">=" if at_least else "<=",
        "pass": passed,
    }


def table(
    title: str, columns: Mapping[str, str], rows: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """A table for RESULTS.md: ``columns`` maps row keys to headers."""
    return {"title": title, "columns": dict(columns), "rows": [dict(row) for row in rows]}


def write_result(name: str, data: Mapping[str, Any], *, quick: bool) -> Path:
    """Write ``results/NAME.json`` with the machine info and a timestamp; return its path."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    document = {
        "benchmark": name,
        "quick": quick,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        **data,
    }
    path.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n")
    return path


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in value.items()) or "0"
    return str(value).replace("|", "\\|")


def markdown_table(columns: Mapping[str, str], rows: Iterable[Mapping[str, Any]]) -> str:
    """A GitHub markdown table of ``rows`` (``columns`` maps row keys to headers)."""
    lines = [
        "| " + " | ".join(columns.values()) + " |",
        "|" + "|".join("---:" for _ in columns) + "|",
    ]
    lines.extend("| " + " | ".join(_cell(row.get(k)) for k in columns) + " |" for row in rows)
    return "\n".join(lines)


def print_tables(data: Mapping[str, Any]) -> None:
    """Print the tables and targets of a result document."""
    for found in data.get("tables", []):
        print(f"\n### {found['title']}\n")
        print(markdown_table(found["columns"], found["rows"]))
    print()
    for name, value in data.get("ratios", {}).items():
        print(f"- {name}: {value}")
    for goal in data.get("targets", []):
        print(target_line(goal))


def target_line(goal: Mapping[str, Any]) -> str:
    """``PASS  name: measured 0.97 (target >= 0.95)``."""
    verdict = "PASS" if goal["pass"] else "MISS"
    measured, op, goal_value = goal["measured"], goal["op"], goal["goal"]
    return f"- **{verdict}** {goal['name']}: measured {measured} (target {op} {goal_value})"


# -- corpus ----------------------------------------------------------------------------------


def corpus_files(root: Path) -> list[Path]:
    """The ``*.jsonl`` files under ``root``, sorted."""
    return sorted(p for p in root.rglob("*.jsonl") if p.is_file())


def replicate_corpus(source: Path, dest: Path, copies: int) -> list[Path]:
    """Put ``copies`` copies of ``source``'s tree under ``dest/copy_NNN`` (new names).

    The first copy is a real copy (the shared corpus is read-only and owned by someone else,
    which forbids hard links to it); the others are hard links to the first, so x20 costs
    no disk. Returns every ``*.jsonl`` file made. ``.meta.json`` files come along.
    """
    dest.mkdir(parents=True, exist_ok=True)
    first = dest / "copy_000"
    shutil.copytree(source, first, ignore=shutil.ignore_patterns("*.md"))
    for path in first.rglob("*"):
        if path.is_file():
            path.chmod(0o644)
    for index in range(1, copies):
        try:
            shutil.copytree(first, dest / f"copy_{index:03d}", copy_function=os.link)
        except OSError:
            shutil.copytree(first, dest / f"copy_{index:03d}", dirs_exist_ok=True)
    return corpus_files(dest)


def total_bytes(paths: Iterable[Path]) -> int:
    """Sum of file sizes."""
    return sum(p.stat().st_size for p in paths)


def warm_page_cache(paths: Iterable[Path]) -> None:
    """Read every file once so all approaches start from the page cache."""
    for path in paths:
        with path.open("rb") as handle:
            while handle.read(1 << 20):
                pass


# -- the mock judge in its own process -------------------------------------------------------


class MockJudgeProcess:
    """``tracehint mock-judge --port 0`` as a child process, so its CPU is not the client's.

    ``url`` is read from the line the server writes to stderr once it listens.
    ``cpu_seconds()`` is the server's CPU time so far (user + system).
    """

    def __init__(self, *, latency: float, jitter: float = 0.0) -> None:
        self.latency = latency
        self.jitter = jitter
        self.url = ""
        self._process: subprocess.Popen[bytes] | None = None
        self._ps: psutil.Process | None = None

    def __enter__(self) -> Self:
        command = [
            *TRACEHINT_CLI,
            "mock-judge",
            "--port",
            "0",
            "--latency",
            str(self.latency),
            "--jitter",
            str(self.jitter),
        ]
        self._process = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
        assert self._process.stderr is not None  # noqa: S101 -- PIPE was asked for
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = self._process.stderr.readline().decode("utf-8", "replace")
            if not line:
                break
            found = re.search(r"listening on (http://\S+)", line)
            if found:
                self.url = found.group(1)
                break
        if not self.url:
            self.__exit__(None, None, None)
            raise RuntimeError("the mock judge did not start")
        self._ps = psutil.Process(self._process.pid)
        health = self.url.removesuffix("/v1") + "/health"
        with urllib.request.urlopen(health, timeout=10) as answer:  # noqa: S310 -- our loopback URL
            answer.read()
        return self

    def cpu_seconds(self) -> float:
        """CPU seconds the server has used."""
        if self._ps is None:
            return 0.0
        times = self._ps.cpu_times()
        return float(times.user + times.system)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()


# -- child processes -------------------------------------------------------------------------

_RSS_WRAPPER = """
import json, resource, subprocess, sys, time
started = time.perf_counter()
code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
wall = time.perf_counter() - started
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({
    "returncode": code.returncode,
    "wall_seconds": wall,
    "maxrss_kib": usage.ru_maxrss,
    "cpu_seconds": usage.ru_utime + usage.ru_stime,
    "stderr": code.stderr.decode("utf-8", "replace")[-2000:],
}))
"""


def run_measured(command: Sequence[str]) -> dict[str, Any]:
    """Run ``command`` under a fresh wrapper process; its peak RSS, wall and CPU time.

    The wrapper's ``RUSAGE_CHILDREN`` covers only this one command, so the peak is per run.
    ``ru_maxrss`` is in KiB on Linux.
    """
    out = subprocess.run(
        [sys.executable, "-c", _RSS_WRAPPER, *command],
        check=True,
        capture_output=True,
    )
    result: dict[str, Any] = orjson.loads(out.stdout)
    result["peak_rss_mb"] = round(result["maxrss_kib"] / 1024, 1)
    return result


def annotate_command(paths: Sequence[str | Path], output: Path, *extra: str) -> list[str]:
    """The ``tracehint annotate`` command line (quiet, no progress bar, overwrite)."""
    return [
        *TRACEHINT_CLI,
        "annotate",
        *(str(p) for p in paths),
        "-o",
        str(output),
        "--overwrite",
        "--no-progress",
        "-q",
        *extra,
    ]
