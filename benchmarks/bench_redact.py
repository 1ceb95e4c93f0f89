"""Secret redaction: throughput on real transcript text, per judge prompt, on hostile input.

The corpus is annotated once (offline layers, ``--no-redact-output``) and every text of the
written traces is collected: turns, ``error_meta``, native ``messages`` (content, thinking,
tool-call arguments). Then, best of 3 in CPU time (``time.thread_time``):

* ``Redactor().redact`` over every text (one Aho-Corasick keyword pass picks the patterns a
  text needs) vs the same patterns applied one pass each with their own ``in`` prefilter
  (what the keyword gate replaced);
* ``build_prompt`` per site (the judge prompt: the site redacted, then bounded);
* ``redact_trace`` (``--redact-output``) over the traces;
* 2 MB of hostile text (``a`` * 2e6, ``token`` repeated, ``://a:`` repeated, ...), the worst;
* ``tracehint annotate --layers template,raw`` on the corpus xN with and without
  ``--redact-output``: wall and CPU time.

    python benchmarks/bench_redact.py [--quick]
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from _common import (
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

from tracehint import Limits, Redactor, build_prompt, read_traces, requests_for
from tracehint._redact import DEFAULT_SECRET_PATTERNS, _lower
from tracehint._redact_records import redact_trace

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from tracehint import Trace

HOSTILE = {
    "a": "a" * 2_000_000,
    "@": "@" * 2_000_000,
    "names": "token" * 400_000,
    "urls": "://a:" * 400_000,
    "flags": " --token" * 250_000,
    "begins": "-----BEGIN RSA PRIVATE KEY-----\n" * 64_000,
    "assignments": "password = 'x" * 150_000,
}


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)


def texts_of(traces: list[Trace]) -> list[str]:
    """Every text a trace holds (turns, site fields, messages)."""
    found: list[str] = []
    for trace in traces:
        for turn in trace.turns:
            found.append(turn.content)
            site = turn.site
            if site is not None:
                found += [site.error_message, site.tool_input or "", site.command or ""]
        for message in trace.messages:
            found += [s for k, v in message.items() if k not in {"role", "id"} for s in _strings(v)]
    return [text for text in found if text]


def best_cpu(run: Callable[[], object], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.thread_time()
        run()
        best = min(best, time.thread_time() - started)
    return best


def one_pass_each(texts: list[str]) -> None:
    """The patterns one regex pass each, each behind its own ``in`` prefilter."""
    for text in texts:
        for secret in DEFAULT_SECRET_PATTERNS:
            text = secret.sub(text, _lower(text) if secret.lowercase else None)  # noqa: PLW2901


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, help="corpus copies for the CLI runs (default 10)")
    args = parser.parse_args()
    repeats = 1 if args.quick else 3
    copies = args.copies or (2 if args.quick else 10)
    redactor = Redactor()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="tracehint-bench-redact-") as folder:
        base = Path(folder)
        plain = base / "plain.jsonl"
        command = annotate_command([args.corpus], plain, "--layers", "template,raw")
        run_measured([*command, "--no-redact-output"])
        traces = list(read_traces(plain))
        texts = texts_of(traces)
        chars = sum(map(len, texts))
        print(f"{len(traces)} traces, {len(texts)} texts, {chars / 1e6:.2f} M characters")

        gate = best_cpu(lambda: [redactor.redact(t) for t in texts], repeats)
        naive = best_cpu(lambda: one_pass_each(texts), repeats)
        rows += [
            {
                "what": "Redactor().redact, every text (keyword gate)",
                "items": len(texts),
                "cpu_ms": round(gate * 1000, 1),
                "mchars_per_second": round(chars / gate / 1e6, 1),
            },
            {
                "what": "same patterns, one pass each behind its own `in` prefilter",
                "items": len(texts),
                "cpu_ms": round(naive * 1000, 1),
                "mchars_per_second": round(chars / naive / 1e6, 1),
            },
        ]
        limits = Limits()
        requests = [request for trace in traces for _, request in requests_for(trace, limits)]
        prompts = best_cpu(lambda: [build_prompt(r, redactor) for r in requests], repeats)
        rows.append(
            {
                "what": "build_prompt per site (redacted, then bounded)",
                "items": len(requests),
                "cpu_ms": round(prompts * 1000, 1),
                "us_per_item": round(prompts / max(len(requests), 1) * 1e6, 1),
            },
        )
        output = best_cpu(lambda: [redact_trace(t, redactor) for t in traces], repeats)
        rows.append(
            {
                "what": "redact_trace (--redact-output), every trace",
                "items": len(traces),
                "cpu_ms": round(output * 1000, 1),
                "mchars_per_second": round(chars / output / 1e6, 1),
            },
        )
        hostile = {
            name: round(best_cpu(lambda text=text: redactor.redact(text), repeats) * 1000, 1)
            for name, text in HOSTILE.items()
        }
        worst_name = max(hostile, key=lambda name: hostile[name])
        worst = hostile[worst_name]
        rows.append(
            {
                "what": f"2 MB hostile text, worst of {len(HOSTILE)} ({worst_name})",
                "items": len(HOSTILE),
                "cpu_ms": worst,
            },
        )

        root = base / f"x{copies}"
        files = replicate_corpus(args.corpus, root, copies)
        out = base / "out.jsonl"
        cli: dict[str, dict[str, Any]] = {}
        for label, flag in (
            ("--no-redact-output", "--no-redact-output"),
            ("--redact-output", "--redact-output"),
        ):
            runs = [
                run_measured(annotate_command([root], out, "--layers", "template,raw", flag))
                for _ in range(repeats)
            ]
            cli[label] = min(runs, key=lambda r: r["cpu_seconds"])
        cli_rows = [
            {
                "run": f"annotate corpus x{copies} {label}",
                "input_mb": round(total_bytes(files) / 1e6, 1),
                "wall_seconds": round(found["wall_seconds"], 2),
                "cpu_seconds": round(found["cpu_seconds"], 2),
            }
            for label, found in cli.items()
        ]
    cpu_ratio = cli["--redact-output"]["cpu_seconds"] / cli["--no-redact-output"]["cpu_seconds"]
    data = {
        "settings": {
            "repeats": repeats,
            "copies": copies,
            "patterns": len(DEFAULT_SECRET_PATTERNS),
        },
        "rows": rows,
        "hostile_ms": hostile,
        "cli": cli_rows,
        "ratios": {
            "keyword gate vs one pass per pattern (speed-up)": round(naive / gate, 2),
            "annotate CPU with --redact-output / without": round(cpu_ratio, 2),
        },
        "targets": [
            target("redaction of 2 MB of hostile text, worst case (ms)", worst, 100, at_least=False)
        ],
        "tables": [
            table(
                f"Redaction on the corpus ({len(texts)} texts, {chars / 1e6:.2f} M characters), "
                "best CPU time",
                {
                    "what": "what",
                    "items": "items",
                    "cpu_ms": "CPU ms",
                    "mchars_per_second": "M chars/s",
                    "us_per_item": "µs each",
                },
                rows,
            ),
            table(
                "`tracehint annotate --layers template,raw` (best CPU of the repeats)",
                {
                    "run": "run",
                    "input_mb": "input MB",
                    "wall_seconds": "wall s",
                    "cpu_seconds": "CPU s",
                },
                cli_rows,
            ),
        ],
    }
    write_result("bench_redact", data, quick=args.quick)
    print_tables(data)


if __name__ == "__main__":
    main()
