"""The ``tracehint`` command line: ``annotate``, ``cache`` and ``mock-judge``."""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import signal
import sys
import time
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import orjson

from tracehint import __version__
from tracehint._annotator import Annotator, AnnotatorConfig
from tracehint._cache import CacheMode, HintCache, default_cache_path
from tracehint._exceptions import ConfigError, JudgeError, OutputError, TracehintError
from tracehint._export import ExportOptions, export_sites
from tracehint._ingest._discover import DEFAULT_DIRS
from tracehint._ingest.formats import InputFormat
from tracehint._judge import FailureReason, JudgeConfig, RetryPolicy
from tracehint._kinds import DetectedBy, HintSource
from tracehint._limits import Limits
from tracehint._output import STDOUT, JsonlSink, OutputPath, check_outputs
from tracehint._pipeline import annotate_files
from tracehint._progress import measure_inputs, progress
from tracehint._prompt import PROMPT_VERSION
from tracehint._quality import (
    load_corrections,
    load_labels,
    load_traces,
    score,
    score_corrections,
)
from tracehint._reader import ReaderConfig
from tracehint._resume import ResumeState, RunConfig, journal_path, prepare_resume, recorded_run
from tracehint._stats import RunStats
from tracehint._teacher import HintPlacement

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_ERROR = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


class _HelpFormatter(argparse.HelpFormatter):
    """Says every option's default in its help (unless the help already does)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            text == argparse.SUPPRESS
            or "default" in text
            or action.nargs == 0  # a flag: its help says what it turns on
            or default in (None, [], argparse.SUPPRESS)
        ):
            return action.help
        return f"{text} (default: %(default)s)".lstrip()


class _Parser(argparse.ArgumentParser):
    """An argument parser (and, through ``add_subparsers``, its subcommands) with defaults shown."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # noqa: ANN401 -- argparse's signature
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)


def _seconds(value: str) -> float:
    """A number of seconds, zero or more (argparse ``type``)."""
    try:
        found = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a number of seconds, got {value!r}") from None
    if not found >= 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be 0 or more seconds, got {value!r}")
    return found


def _add_annotate(commands: Any) -> None:  # noqa: ANN401 -- argparse's private subparsers type
    annotate = commands.add_parser(
        "annotate",
        help="annotate session files and write one JSON trace per line",
        description="Read session files (and folders of them, recursively), tag every error "
        "site, give it a hint, and write one JSON trace per line.",
    )
    annotate.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help="session files or folders (default: every one of "
        f"{', '.join(str(d) for d in DEFAULT_DIRS)} that exists)",
    )
    annotate.add_argument(
        "-o", "--output", required=True, help="output JSONL file, or - for stdout"
    )
    existing = annotate.add_mutually_exclusive_group()
    existing.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the output if it exists",
    )
    existing.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted run into the same output: finished files and traces "
        "are skipped, a torn last line is cut off",
    )
    annotate.add_argument(
        "--grace",
        type=_seconds,
        default=10.0,
        help="seconds in-flight work may take to finish after Ctrl-C/SIGTERM",
    )
    annotate.add_argument(
        "--format",
        choices=[f.value for f in InputFormat],
        default=InputFormat.AUTO.value,
        help="input format (see the README's table of formats); auto decides per file from "
        "its content (default: auto)",
    )
    annotate.add_argument(
        "--layers",
        help="hint layers in the order they are asked, first answer wins "
        "(default: template,raw; template,judge,raw with --judge-url)",
    )
    annotate.add_argument(
        "--detect",
        default="tool_error,user",
        metavar="DETECTORS",
        help="what finds sites, comma-separated: tool_error (failed tool results, always on), "
        "user (the user's corrections: a rejection with words, a reply that says the agent was "
        "wrong; offline), reader (the judge reads each trace for mistakes no tool reported: one "
        "request per window, needs --judge-url) (default: tool_error,user)",
    )
    annotate.add_argument(
        "--reader-window-chars",
        type=int,
        default=ReaderConfig().window_chars,
        metavar="N",
        help="characters of a trace per reader request; longer traces are read in overlapping "
        f"windows (default {ReaderConfig().window_chars})",
    )
    annotate.add_argument("--stats-json", metavar="FILE", help="also write the summary as JSON")
    annotate.add_argument(
        "--drop-reasoning",
        action="store_true",
        help="leave the assistants' thinking out of each trace's `messages` (default: kept as "
        "reasoning_content)",
    )
    redaction = annotate.add_mutually_exclusive_group()
    redaction.add_argument(
        "--redact-output",
        dest="redact_output",
        action="store_true",
        default=True,
        help="redact secrets (API keys, tokens, passwords, private keys) in the written traces: "
        "turns, error_meta, hints and messages (the default: the output is training data)",
    )
    redaction.add_argument(
        "--no-redact-output",
        dest="redact_output",
        action="store_false",
        help="write the transcripts' text as read, secrets included (judge prompts and hints "
        "are redacted either way)",
    )
    engine = annotate.add_argument_group("engine")
    engine.add_argument(
        "--engine",
        choices=["local", "ray"],
        default="local",
        help="local: this process (default); ray: a Ray cluster via Ray Data (needs "
        "pip install 'tracehint[ray]'; -o is then an output folder)",
    )
    engine.add_argument(
        "--ray-address",
        help="Ray cluster to join (e.g. auto); default: $RAY_ADDRESS, else a local instance",
    )
    engine.add_argument(
        "--seed-cache",
        metavar="FILE",
        help="with --engine ray: merge this cache file into each worker's cache first",
    )
    annotate.add_argument(
        "--errors",
        metavar="FILE",
        help="write every input issue (file, line, reason) as JSONL",
    )
    bar = annotate.add_mutually_exclusive_group()
    bar.add_argument(
        "--progress",
        dest="progress",
        action="store_true",
        default=None,
        help="show the progress line even when stderr is not a terminal (then as a plain "
        "line every --progress-every seconds)",
    )
    bar.add_argument(
        "--no-progress",
        dest="progress",
        action="store_false",
        help="never show the progress line",
    )
    annotate.add_argument(
        "--progress-every",
        type=_seconds,
        default=5.0,
        metavar="SECONDS",
        help="seconds between progress lines when stderr is not a terminal",
    )
    annotate.add_argument("-q", "--quiet", action="store_true", help="no summary on stderr")
    judge = annotate.add_argument_group(
        "judge",
        "an OpenAI-compatible chat-completions endpoint; the API key is read from "
        "TRACEHINT_JUDGE_API_KEY, else OPENAI_API_KEY",
    )
    judge.add_argument("--judge-url", help="base URL, e.g. http://localhost:8000/v1")
    judge.add_argument("--judge-model", help="model name the endpoint serves")
    judge.add_argument(
        "--concurrency",
        type=int,
        default=64,
        help="judge requests in flight at most",
    )
    judge.add_argument("--rps", type=float, help="client-side limit, requests per second")
    judge.add_argument("--tpm", type=float, help="client-side limit, tokens per minute")
    judge.add_argument(
        "--judge-timeout",
        type=float,
        default=60.0,
        help="seconds per attempt",
    )
    judge.add_argument(
        "--max-attempts",
        type=int,
        default=5,
        help="attempts per request, retries included",
    )
    judge.add_argument(
        "--judge-samples",
        type=int,
        default=1,
        metavar="K",
        help="answers asked per site; the valid ones are compared and the one closest to the "
        "others is kept (more than 1 needs a temperature above 0)",
    )
    judge.add_argument(
        "--judge-show-next-action",
        action="store_true",
        help="also show the judge the agent's next message (off by default: it is usually "
        "the agent's own recovery, and a teacher that sees it copies it)",
    )
    judge.add_argument(
        "--judge-temperature",
        type=_temperature,
        default=0.0,
        metavar="T",
        help="sampling temperature, or none to send none (for models that accept only their "
        "default)",
    )
    judge.add_argument(
        "--judge-max-tokens",
        type=int,
        default=160,
        metavar="N",
        help="answer budget per request; a cut-off answer is asked again once with twice as many",
    )
    judge.add_argument(
        "--judge-extra-body",
        type=_json_object,
        metavar="JSON",
        help="a JSON object merged into every request, e.g. "
        '\'{"chat_template_kwargs": {"enable_thinking": false}}\'',
    )
    judge.add_argument(
        "--judge-prompt-chars",
        type=int,
        default=Limits().judge_prompt_chars,
        metavar="N",
        help="characters of site text per judge prompt; a prompt over the model's context is "
        "asked again with a quarter",
    )
    judge.add_argument(
        "--no-judge-check",
        action="store_true",
        help="do not check the judge URL and model (GET /models) before the run",
    )
    judge.add_argument(
        "--transport",
        choices=["aiohttp", "httpx-aiohttp", "httpx"],
        default="aiohttp",
        help="HTTP client: aiohttp (default, least CPU per request), httpx-aiohttp (httpx "
        "over aiohttp) or httpx (stock; slow at 64+ requests in flight)",
    )
    cache = annotate.add_mutually_exclusive_group()
    cache.add_argument(
        "--cache", metavar="PATH", help=f"judge cache file (default: {default_cache_path()})"
    )
    cache.add_argument("--no-cache", action="store_true", help="do not read or write the cache")


def _temperature(value: str) -> float | None:
    if value.strip().lower() == "none":
        return None
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a number or none, got {value!r}") from None


def _json_object(value: str) -> dict[str, Any]:
    try:
        found = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None
    if not isinstance(found, dict):
        raise argparse.ArgumentTypeError("must be a JSON object ({...})")
    return found


def _add_cache(commands: Any) -> None:  # noqa: ANN401 -- argparse's private subparsers type
    cache = commands.add_parser("cache", help="inspect or clear the judge cache")
    actions = cache.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, text in (
        ("stats", "show what the cache holds"),
        ("clear", "delete every cached hint"),
    ):
        action = actions.add_parser(name, help=text)
        action.add_argument("--cache", metavar="PATH", help="cache file (default: the user cache)")
        if name == "stats":
            action.add_argument("--json", action="store_true", help="print JSON")
    merge = actions.add_parser("merge", help="copy hints from other cache files into this one")
    merge.add_argument("sources", nargs="+", metavar="FILE", help="cache files to merge in")
    merge.add_argument(
        "--cache", metavar="PATH", help="target cache file (default: the user cache)"
    )


def _add_mock_judge(commands: Any) -> None:  # noqa: ANN401 -- argparse's private subparsers type
    mock = commands.add_parser(
        "mock-judge",
        help="serve a loopback OpenAI-compatible judge for dry runs",
        description="Serve a fake judge on loopback with set latency and fault rates, to dry-run "
        "a pipeline or a benchmark without spending money.",
    )
    mock.add_argument("--host", default="127.0.0.1", help="address to listen on")
    mock.add_argument("--port", type=int, default=8000, help="port to listen on (0: any free one)")
    mock.add_argument("--latency", type=float, default=0.05, help="seconds per request")
    mock.add_argument("--jitter", type=float, default=0.0, help="uniform ± seconds")
    for fault in ("429", "500", "hang", "garbage", "empty", "reset"):
        mock.add_argument(
            f"--rate-{fault}", type=float, default=0.0, help=f"fraction of {fault} faults"
        )
    mock.add_argument("--retry-after", type=float, default=0.1, help="Retry-After seconds on 429")
    mock.add_argument("--require-key", help="answer 401 unless this Bearer key is sent")
    mock.add_argument("--seed", type=int, help="seed for reproducible faults")
    mock.add_argument(
        "--answers",
        default="hint",
        metavar="KIND[,KIND...]",
        help="what the answers are, cycled over the requests (default: hint). Kinds: "
        "hint, plain (text even when JSON is asked), fenced (```json```), think "
        "(<think>…</think> first), think_unterminated, cut_off (finish_reason length), empty, "
        'essay, echo ("Corrective hint: …"), generic ("Be careful and try again."), '
        "not_a_mistake, control (the hint with terminal escapes and control characters)",
    )
    mock.add_argument(
        "--reader-answers",
        default="findings",
        metavar="KIND[,KIND...]",
        help="what reader requests (--detect reader) are answered, cycled (default: findings). "
        "Kinds: findings, none, bad_message, fake_quote, bad_hint, mixed, malformed",
    )
    mock.add_argument("--model", default="mock-judge", help="the model it serves and lists")
    mock.add_argument(
        "--strict",
        action="store_true",
        help="behave like vLLM: /v1 paths only, 404 for a model it does not serve, 400 for a "
        "bad request (default: answer any model on any path)",
    )
    mock.add_argument(
        "--served-model", action="append", default=[], help="another model it serves (strict)"
    )
    mock.add_argument("--no-models", action="store_true", help="no GET /v1/models (404)")
    mock.add_argument(
        "--max-in-flight",
        type=int,
        metavar="N",
        help="answer 429 without Retry-After above N requests in flight",
    )
    mock.add_argument(
        "--cut-off-below",
        type=int,
        metavar="N",
        help="cut answers off (finish_reason length) unless max_tokens >= N",
    )
    mock.add_argument(
        "--context-chars",
        type=int,
        metavar="N",
        help="a 400 context-length error for messages over N characters",
    )
    mock.add_argument(
        "--require-max-completion-tokens",
        action="store_true",
        help="a 400 asking for max_completion_tokens when max_tokens is sent",
    )
    mock.add_argument(
        "--reject-response-format",
        metavar="MESSAGE",
        help="a 400 with MESSAGE for requests with response_format",
    )
    mock.add_argument("--garbage-bytes", type=int, default=0, help="size of a garbage fault's body")


def _add_bench(commands: Any) -> None:  # noqa: ANN401 -- argparse's private subparsers type
    bench = commands.add_parser("bench", help="measure your judge deployment or the pipeline")
    kinds = bench.add_subparsers(dest="bench", required=True, metavar="WHAT")
    judge = kinds.add_parser(
        "judge",
        help="requests/s and latency of a judge endpoint at several concurrency levels",
    )
    judge.add_argument("--judge-url", required=True, help="base URL, e.g. http://localhost:8000/v1")
    judge.add_argument("--judge-model", required=True, help="model name the endpoint serves")
    judge.add_argument(
        "--concurrency",
        default="1,8,32,128,256",
        help="comma-separated levels",
    )
    judge.add_argument("--requests", type=int, default=256, help="requests per level")
    judge.add_argument("--judge-timeout", type=float, default=60.0, help="seconds per attempt")
    judge.add_argument(
        "--transport",
        choices=["aiohttp", "httpx-aiohttp", "httpx"],
        default="aiohttp",
        help="HTTP client",
    )
    judge.add_argument("--json", action="store_true", help="print JSON instead of a table")
    judge.add_argument("--plot", metavar="FILE.png", help="write a throughput/latency plot")
    pipeline = kinds.add_parser(
        "pipeline",
        help="end-to-end sites/s and hints/s on your sessions, cold and warm cache",
    )
    pipeline.add_argument("paths", nargs="+", metavar="PATH")
    pipeline.add_argument("--judge-url", help="your judge (default: the built-in mock judge)")
    pipeline.add_argument("--judge-model", default="mock-judge", help="model name")
    pipeline.add_argument("--mock-latency", type=float, default=0.05, help="mock judge latency (s)")
    pipeline.add_argument(
        "--concurrency", type=int, default=64, help="judge requests in flight at most"
    )
    pipeline.add_argument("--layers", default="judge", help="hint layers (default: judge)")
    pipeline.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _add_eval(commands: Any) -> None:  # noqa: ANN401 -- argparse's private subparsers type
    evaluate = commands.add_parser(
        "eval",
        help="score annotated traces against hand labels (kind accuracy, wrong/specific hints)",
        description="Score `tracehint annotate` output against label files (see "
        "quality/labels/README.md). Exit 1 when a hint is wrong, a non-mistake became a site, "
        "or kind accuracy is below --min-kind.",
    )
    evaluate.add_argument("labels", type=Path, metavar="LABELS", help="a label file or folder")
    evaluate.add_argument("traces", type=Path, nargs="+", metavar="TRACES", help="output JSONL")
    evaluate.add_argument("--min-kind", type=float, default=0.9, help="default: 0.9")
    evaluate.add_argument(
        "--corrections",
        type=Path,
        metavar="REPLIES",
        help="also score the user-correction sites against reply labels (a file or folder, "
        "see quality/corrections/README.md); exit 1 on a site on a reply that is no correction",
    )
    evaluate.add_argument(
        "--verbose", "-v", action="store_true", help="list each site not specific"
    )
    evaluate.add_argument("--json", action="store_true", help="print the counts as JSON")


def _add_export(commands: Any) -> None:  # noqa: ANN401 -- argparse's private subparsers type
    export = commands.add_parser(
        "export",
        help="write one training row per hinted site (prompt, completion, teacher_prompt)",
        description="Read `tracehint annotate` output and write one row per hinted site in the "
        "conversational prompt/completion layout Hugging Face datasets and TRL read: `prompt` "
        "(the messages before the target), `completion` (the target assistant message), "
        "`teacher_prompt` (the prompt with the hint appended). Parquet when OUT ends in "
        ".parquet (pip install 'tracehint[parquet]'), else JSONL.",
    )
    export.add_argument(
        "traces", nargs="+", metavar="TRACES", help="annotate output files or folders (Ray)"
    )
    export.add_argument("-o", "--output", required=True, metavar="OUT", help="rows file")
    export.add_argument(
        "--at",
        choices=[p.value for p in HintPlacement],
        default=HintPlacement.RECOVERY.value,
        help="the target: the agent's message after the failed result (recovery, the "
        "default), or the message whose call failed (mistake)",
    )
    export.add_argument(
        "--hint-role", default="user", help="role of the hint message (default: user)"
    )
    export.add_argument(
        "--sources",
        help="only hints from these layers, comma-separated (e.g. template,judge; "
        "default: every layer)",
    )
    export.add_argument(
        "--drop-reasoning", action="store_true", help="leave the assistants' thinking out"
    )
    export.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    export.add_argument("--quiet", "-q", action="store_true", help="no summary on stderr")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="tracehint",
        description="Find the error sites in coding-agent transcripts and give each a short "
        "corrective hint.",
    )
    parser.add_argument("--version", action="version", version=f"tracehint {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_annotate(commands)
    _add_cache(commands)
    _add_mock_judge(commands)
    _add_bench(commands)
    _add_eval(commands)
    _add_export(commands)
    return parser


def _annotator_config(args: argparse.Namespace) -> AnnotatorConfig:
    judge: JudgeConfig | None = None
    if args.judge_url or args.judge_model:
        if not (args.judge_url and args.judge_model):
            raise ConfigError("pass both --judge-url and --judge-model to use a judge")
        judge = JudgeConfig.from_env(
            url=args.judge_url,
            model=args.judge_model,
            concurrency=args.concurrency,
            requests_per_second=args.rps,
            tokens_per_minute=args.tpm,
            timeout=args.judge_timeout,
            retry=RetryPolicy(max_attempts=args.max_attempts),
            transport=args.transport,
            temperature=args.judge_temperature,
            max_tokens=args.judge_max_tokens,
            extra_body=args.judge_extra_body or {},
            preflight=not args.no_judge_check,
        )
    layers = tuple(x.strip() for x in args.layers.split(",")) if args.layers else None
    return AnnotatorConfig(
        layers=layers,
        judge=judge,
        cache_path=args.cache,
        use_cache=not args.no_cache,
        judge_samples=args.judge_samples,
        judge_show_next_action=args.judge_show_next_action,
        limits=Limits(judge_prompt_chars=args.judge_prompt_chars),
        detect=_detectors(args.detect),
        reader=ReaderConfig(
            window_chars=args.reader_window_chars,
            overlap_chars=min(ReaderConfig().overlap_chars, args.reader_window_chars // 4),
        ),
        input_format=InputFormat(args.format),
        reasoning=not args.drop_reasoning,
        redact_output=args.redact_output,
    )


def _detectors(value: str) -> frozenset[DetectedBy]:
    """``--detect tool_error,user,reader`` as detectors (``ConfigError`` naming a wrong one)."""
    names = [name.strip() for name in value.split(",") if name.strip()]
    known = {d.value: d for d in DetectedBy}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ConfigError(
            f"--detect: unknown detector {', '.join(unknown)}; use {', '.join(known)}"
        )
    return frozenset(known[name] for name in names)


def _own_files(args: argparse.Namespace) -> frozenset[str]:
    """The files this run writes, never to be read as input (e.g. ``-o`` inside a PATH)."""
    names = [args.output, journal_path(args.output), args.errors, args.stats_json]
    return frozenset(
        os.path.abspath(name)  # noqa: PTH100 -- str paths
        for name in names
        if name and name != STDOUT
    )


def _outputs(args: argparse.Namespace, *, to_file: bool) -> list[OutputPath]:
    """Every file an ``annotate`` run writes, for ``check_outputs``."""
    outputs = [OutputPath(option="-o", path=args.output, replace=args.overwrite or args.resume)]
    if to_file:
        outputs.append(OutputPath(option="the journal", path=journal_path(args.output)))
    if args.errors:
        outputs.append(OutputPath(option="--errors", path=args.errors))
    if args.stats_json:
        outputs.append(OutputPath(option="--stats-json", path=args.stats_json))
    return outputs


def _run_config(
    args: argparse.Namespace, config: AnnotatorConfig, paths: Sequence[str]
) -> RunConfig:
    """What this run's output depends on, as the journal records it (blocking: resolves)."""
    layers = config.layer_names()
    judge = config.judge if "judge" in layers else None
    return RunConfig(
        layers=layers,
        judge_model=judge.model if judge is not None else None,
        prompt_version=PROMPT_VERSION if judge is not None else None,
        judge_samples=config.judge_samples if judge is not None else None,
        judge_show_next_action=config.judge_show_next_action if judge is not None else None,
        input_format=args.format,
        inputs=RunConfig.resolve_inputs(paths),
        reasoning=not args.drop_reasoning,
        detect=tuple(sorted(d.value for d in config.detect)),
        cwd=os.getcwd(),  # noqa: PTH109 -- str paths
    )


def _check_resume(args: argparse.Namespace, run: RunConfig) -> ResumeState:
    """Refuse a resume of another run's output; else read what it finished (blocking)."""
    earlier = recorded_run(args.output)
    if earlier is not None:
        differences = run.differences(earlier)
        if differences:
            raise ConfigError(
                f"cannot resume {args.output}: it was written with other settings ("
                + "; ".join(differences)
                + "). Resume with the earlier settings, or start over with --overwrite "
                "(finished judge answers are cached)",
            )
    elif os.path.exists(args.output) and os.path.getsize(args.output) > 0:  # noqa: PTH110, PTH202
        print(  # noqa: T201 -- CLI output
            f"tracehint: note: {journal_path(args.output)} records no run settings (written by "
            "an older tracehint, or missing): this resume's settings could not be checked",
            file=sys.stderr,
        )
    return prepare_resume(args.output)


async def _is_regular_or_new(path: str) -> bool:
    """Whether ``path`` is a regular file or does not exist yet (so a journal can go beside it)."""
    target = anyio.Path(path)
    return not await target.exists() or await target.is_file()


def _default_paths(args: argparse.Namespace) -> list[str]:
    """The default session folders that exist, said on stderr; ``ConfigError`` if none."""
    found = [str(d.expanduser()) for d in DEFAULT_DIRS if d.expanduser().is_dir()]
    if not found:
        raise ConfigError(
            "no PATH given and no default session folder exists (looked in "
            f"{', '.join(str(d) for d in DEFAULT_DIRS)}); name the files or folders to read",
        )
    if not args.quiet:
        print(f"tracehint: reading {', '.join(found)}", file=sys.stderr)  # noqa: T201 -- CLI output
    return found


def _nothing_read(args: argparse.Namespace, stats: RunStats) -> bool:
    """Say so on stderr when the run found no transcript; whether the user's paths held none."""
    if stats.traces or stats.traces_resumed or stats.files_resumed:
        return False
    where = "the given paths" if args.paths else "the default session folders"
    print(  # noqa: T201 -- CLI output
        f"tracehint: no transcript found in {where} ({stats.files} files read, "
        f"{stats.files_skipped} skipped, {stats.input_issues} input issues)",
        file=sys.stderr,
    )
    return bool(args.paths)


async def _annotate(args: argparse.Namespace) -> int:  # noqa: C901, PLR0915 -- the run's whole life
    config = _annotator_config(args)
    paths = args.paths or await anyio.to_thread.run_sync(_default_paths, args)
    to_file = args.output != STDOUT and await _is_regular_or_new(args.output)
    # Before any work: a run must not read everything and then fail to write its results.
    await anyio.to_thread.run_sync(check_outputs, _outputs(args, to_file=to_file), paths)
    stats = RunStats()
    pipeline = config.pipeline(exclude=_own_files(args))
    run = await anyio.to_thread.run_sync(_run_config, args, config, paths)
    resume: ResumeState | None = None
    if args.resume:
        if not to_file:
            raise ConfigError("--resume needs an output file, not stdout")
        resume = await anyio.to_thread.run_sync(_check_resume, args, run)
    status = EXIT_OK
    stop = anyio.Event()
    signalled: list[int] = []
    async with AsyncExitStack() as stack:
        annotator = await stack.enter_async_context(Annotator(config))
        if annotator.judge_preflight is not None:
            for note in annotator.judge_preflight.notes:
                print(f"tracehint: judge: {note}", file=sys.stderr)  # noqa: T201 -- CLI output
        if annotator.cache is not None and annotator.cache.mode is CacheMode.READ_ONLY:
            print(  # noqa: T201 -- CLI output
                f"tracehint: warning: the cache {annotator.cache.path} is read-only "
                f"({annotator.cache.read_only_reason}): cached hints are used, new hints will "
                "not be kept",
                file=sys.stderr,
            )
        sink = await stack.enter_async_context(
            JsonlSink(args.output, overwrite=args.overwrite, append=args.resume),
        )
        journal = None
        if to_file:
            journal = await stack.enter_async_context(
                JsonlSink(journal_path(args.output), overwrite=True, append=args.resume),
            )
            if resume is None or resume.run is None:
                await journal.write(run.journal_line())
                await journal.flush()
        issues = (
            await stack.enter_async_context(JsonlSink(args.errors, overwrite=True))
            if args.errors
            else None
        )
        with anyio.CancelScope() as run_scope:
            async with anyio.create_task_group() as group:

                async def on_signals() -> None:
                    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                        async for signum in signals:
                            signalled.append(signum)
                            if len(signalled) > 1:
                                run_scope.cancel()
                                return
                            # No new file, no new judge request from here on (the pipeline
                            # drains the chain); requests in flight finish and are cached.
                            stop.set()
                            print(  # noqa: T201 -- CLI output
                                "tracehint: stopping: finishing work in flight, no new file "
                                f"or judge request (up to {args.grace:g} s; press Ctrl-C "
                                "again to stop now)",
                                file=sys.stderr,
                            )
                            run_scope.deadline = anyio.current_time() + args.grace

                group.start_soon(on_signals)
                try:
                    async with progress(
                        stats,
                        enabled=args.progress,
                        judge=annotator.judge.client.stats if annotator.judge else None,
                        measure=functools.partial(
                            measure_inputs, paths, resume=resume, exclude=pipeline.exclude
                        ),
                        every=args.progress_every,
                    ):
                        await annotate_files(
                            paths,
                            chain=annotator.chain,
                            sink=sink,
                            stats=stats,
                            issue_sink=issues,
                            config=pipeline,
                            resume=resume,
                            journal=journal,
                            stop=stop,
                        )
                except* JudgeError as found:
                    print(f"tracehint: error: {_tracehint_error(found)}", file=sys.stderr)  # noqa: T201 -- CLI output
                    status = EXIT_ERROR
                group.cancel_scope.cancel()
        stats.judge = annotator.stats()
        if annotator.cache is not None:
            stats.judge["cache_path"] = str(annotator.cache.path)
    if stats.finished is None:
        stats.finished = time.monotonic()
    if signalled:
        status = EXIT_INTERRUPTED if signalled[0] == signal.SIGINT else EXIT_TERMINATED
        print(  # noqa: T201 -- CLI output
            "tracehint: stopped early; run again with --resume to finish",
            file=sys.stderr,
        )
    await anyio.to_thread.run_sync(_report, args, stats)
    if status == EXIT_OK and not signalled and _nothing_read(args, stats):
        status = EXIT_ERROR
    return _exit_status(status, stats)


def _exit_status(status: int, stats: RunStats) -> int:
    """``status``, or ``EXIT_FAILED`` (with the count on stderr) when sites failed."""
    if status != EXIT_OK:
        return status
    failed = stats.hint_status.get("failed", 0)
    judge_failed = int(stats.judge.get("judge_failed", 0))
    if failed:
        print(  # noqa: T201 -- CLI output
            f'tracehint: {failed} of {stats.sites} site(s) failed (hint_status "failed", the '
            "reason in hint_reason); run again to retry them, finished hints are cached",
            file=sys.stderr,
        )
        return EXIT_FAILED
    failures = stats.judge.get("failures") or {}
    unanswered = sum(n for reason, n in failures.items() if reason != FailureReason.CUT_OFF)
    if judge_failed:
        print(  # noqa: T201 -- CLI output
            f"tracehint: the judge failed for {judge_failed} site(s), which a later layer "
            "answered instead (judge_reason in the output); run again to retry them, "
            "finished hints are cached",
            file=sys.stderr,
        )
        # Requests that failed (not answers that were rejected) are failures of the run.
        if unanswered:
            return EXIT_FAILED
    return status


def _report(args: argparse.Namespace, stats: RunStats) -> None:
    """The end of an ``annotate`` run: the summary on stderr and ``--stats-json``."""
    if not args.quiet:
        print(stats.summary(), file=sys.stderr)  # noqa: T201 -- the summary is CLI output
    if args.stats_json:
        try:
            Path(args.stats_json).write_bytes(
                orjson.dumps(stats.to_dict(), option=orjson.OPT_INDENT_2) + b"\n",
            )
        except OSError as exc:
            # Checked before the run; this is a disk that filled or a folder removed since.
            message = f"cannot write --stats-json {args.stats_json}: {exc.strerror or exc}"
            raise OutputError(message) from exc


def _date(unix_time: float | None) -> str | None:
    """A cache entry's time as an ISO 8601 date and time in UTC (``None`` stays ``None``)."""
    if unix_time is None:
        return None
    return (
        datetime.fromtimestamp(unix_time, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    )


async def _cache(args: argparse.Namespace) -> int:
    path = args.cache or default_cache_path()
    async with HintCache(path) as cache:
        if args.action == "stats":
            found = await cache.stats()
            data = {
                "path": found.path,
                "entries": found.entries,
                "size_bytes": found.size_bytes,
                "by_model": found.by_model,
                "oldest": _date(found.oldest),
                "newest": _date(found.newest),
                "prompt_tokens": found.prompt_tokens,
                "completion_tokens": found.completion_tokens,
            }
            if args.json:
                print(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())  # noqa: T201 -- CLI output
            else:
                for key, value in data.items():
                    print(f"{key:18} {value}")  # noqa: T201 -- CLI output
        elif args.action == "clear":
            removed = await cache.clear()
            print(f"removed {removed} cached hint(s) from {path}")  # noqa: T201 -- CLI output
        else:
            added = 0
            for source in args.sources:
                if not await anyio.Path(source).exists():
                    raise ConfigError(f"cache file {source} does not exist")
                added += await cache.merge_from(source)
            print(f"merged {added} hint(s) into {path}")  # noqa: T201 -- CLI output
    return EXIT_OK


async def _mock_judge(args: argparse.Namespace) -> int:
    from tracehint._mockjudge import (  # noqa: PLC0415 -- only here
        MockAnswer,
        MockJudgeConfig,
        MockReaderAnswer,
        serve_forever,
    )

    answers: list[MockAnswer] = []
    for name in args.answers.split(","):
        try:
            answers.append(MockAnswer(name.strip()))
        except ValueError:
            known = ", ".join(a.value for a in MockAnswer)
            message = f"unknown answer kind {name.strip()!r}; choose from: {known}"
            raise ConfigError(message) from None
    readers: list[MockReaderAnswer] = []
    for name in args.reader_answers.split(","):
        try:
            readers.append(MockReaderAnswer(name.strip()))
        except ValueError:
            known = ", ".join(a.value for a in MockReaderAnswer)
            message = f"unknown reader answer {name.strip()!r}; choose from: {known}"
            raise ConfigError(message) from None
    config = MockJudgeConfig(
        answers=tuple(answers),
        reader_answers=tuple(readers),
        latency=args.latency,
        jitter=args.jitter,
        rate_429=args.rate_429,
        retry_after=args.retry_after,
        rate_500=args.rate_500,
        rate_hang=args.rate_hang,
        rate_garbage=args.rate_garbage,
        rate_empty=args.rate_empty,
        rate_reset=args.rate_reset,
        require_key=args.require_key,
        seed=args.seed,
        model=args.model,
        strict=args.strict,
        served_models=tuple(args.served_model),
        list_models=not args.no_models,
        max_in_flight=args.max_in_flight,
        cut_off_below=args.cut_off_below,
        context_chars=args.context_chars,
        require_max_completion_tokens=args.require_max_completion_tokens,
        reject_response_format=args.reject_response_format,
        garbage_bytes=args.garbage_bytes,
    )
    await serve_forever(config, host=args.host, port=args.port)
    return EXIT_OK


_JUDGE_COLUMNS = {
    "concurrency": "C",
    "requests_per_second": "req/s",
    "p50_ms": "p50 ms",
    "p95_ms": "p95 ms",
    "p99_ms": "p99 ms",
    "errors": "errors",
    "efficiency": "vs C/L",
    "client_cpu_ms_per_request": "cpu ms/req",
}
_PIPELINE_COLUMNS = {
    "run": "run",
    "sites": "sites",
    "seconds": "s",
    "sites_per_second": "sites/s",
    "hints_per_second": "hints/s",
    "judge_requests": "requests",
    "cache_hits": "cache hits",
    "failures": "failures",
}


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict):
        return ", ".join(f"{k} {n}" for k, n in value.items()) or "0"
    return str(value)


def _table(
    title: str, rows: list[dict[str, Any]], columns: dict[str, str], *, as_json: bool
) -> None:
    if as_json:
        print(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode())  # noqa: T201 -- CLI output
        return
    from rich.console import Console  # noqa: PLC0415 -- only for tables
    from rich.table import Table  # noqa: PLC0415 -- only for tables

    table = Table(title=title)
    for header in columns.values():
        table.add_column(header, justify="right")
    for row in rows:
        table.add_row(*(_cell(row.get(key)) for key in columns))
    Console().print(table)


async def _bench(args: argparse.Namespace) -> int:
    from tracehint._bench import bench_judge, bench_pipeline, plot_judge  # noqa: PLC0415 -- only here

    if args.bench == "judge":
        try:
            levels = [int(x) for x in args.concurrency.split(",") if x.strip()]
        except ValueError as exc:
            raise ConfigError(f"--concurrency must be integers like 1,8,32: {exc}") from exc
        config = JudgeConfig.from_env(
            url=args.judge_url,
            model=args.judge_model,
            timeout=args.judge_timeout,
            transport=args.transport,
        )
        rows = await bench_judge(config, levels, args.requests)
        _table(
            f"judge {args.judge_url} ({args.judge_model})", rows, _JUDGE_COLUMNS, as_json=args.json
        )
        busy = [r for r in rows if (r["client_cpu_share"] or 0) > 0.8]
        if busy:
            print(  # noqa: T201 -- CLI output
                "tracehint: warning: the client used over 80% of a CPU core at concurrency "
                f"{', '.join(str(r['concurrency']) for r in busy)}: the client, not the judge, "
                "may be the bottleneck there",
                file=sys.stderr,
            )
        if args.plot:
            await anyio.to_thread.run_sync(plot_judge, rows, args.plot)
        return EXIT_OK
    async with AsyncExitStack() as stack:
        url = args.judge_url
        if url is None:
            from tracehint._mockjudge import MockJudge, MockJudgeConfig  # noqa: PLC0415 -- only here

            mock = await stack.enter_async_context(
                MockJudge(MockJudgeConfig(latency=args.mock_latency)),
            )
            url = mock.url
        judge = JudgeConfig.from_env(url=url, model=args.judge_model, concurrency=args.concurrency)
        layers = tuple(x.strip() for x in args.layers.split(","))
        rows = await bench_pipeline(args.paths, AnnotatorConfig(layers=layers, judge=judge))
    _table("pipeline", rows, _PIPELINE_COLUMNS, as_json=args.json)
    return EXIT_OK


def _tracehint_error(exc: BaseException) -> TracehintError | None:
    """The first ``TracehintError`` in ``exc`` (task groups wrap errors in groups)."""
    if isinstance(exc, TracehintError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _tracehint_error(inner)
            if found is not None:
                return found
    return None


def _ray_output(args: argparse.Namespace) -> Path:
    if args.resume:
        raise ConfigError(
            "--resume is not supported with --engine ray: run again into a new folder "
            "(the cache makes finished judge work free)",
        )
    if args.output == STDOUT:
        raise ConfigError("with --engine ray, -o must be an output folder, not stdout")
    folder = Path(args.output)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"with --engine ray, -o must be a folder: {folder} is a file")
    if folder.is_dir() and any(folder.iterdir()):
        if not args.overwrite:
            raise ConfigError(f"{folder} is not empty; pass --overwrite to replace its traces")
        for old in [*folder.glob("traces-*.jsonl"), *folder.glob("errors-*.jsonl")]:
            old.unlink()
        if any(folder.iterdir()):
            raise ConfigError(f"{folder} holds other files; choose a new output folder")
    return folder


def _annotate_ray(args: argparse.Namespace) -> int:
    """``tracehint annotate --engine ray``: the same annotation through Ray Data."""
    config = _annotator_config(args)
    outputs = _outputs(args, to_file=False)[1:]  # -o is the output folder, checked apart
    check_outputs(outputs, args.paths)
    folder = _ray_output(args)
    try:
        import ray  # noqa: PLC0415 -- optional extra

        from tracehint import ray_data  # noqa: PLC0415 -- optional extra
    except ImportError as exc:
        raise ConfigError("--engine ray needs Ray Data: pip install 'tracehint[ray]'") from exc
    paths = args.paths or _default_paths(args)
    options = ray_data.RayOptions(
        per_actor_concurrency=config.judge.concurrency if config.judge is not None else 64,
        seed_cache=args.seed_cache,
    )
    started = not ray.is_initialized()
    if started:
        ray.init(
            address=args.ray_address,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.WARNING,
        )
    if args.progress is False or (args.progress is None and not sys.stderr.isatty()):
        ray.data.DataContext.get_current().enable_progress_bars = False
        logging.getLogger("ray.data").setLevel(logging.WARNING)
    try:
        annotated = ray_data.annotate_dataset(ray_data.read_sessions(paths), config, options)
        stats = ray_data.write_jsonl(annotated, folder)
    finally:
        if started:
            ray.shutdown()
    stats.finished = time.monotonic()
    if args.errors:
        with Path(args.errors).open("wb") as errors:
            errors.writelines(part.read_bytes() for part in sorted(folder.glob("errors-*.jsonl")))
    _report(args, stats)
    return EXIT_ERROR if _nothing_read(args, stats) else _exit_status(EXIT_OK, stats)


async def _eval(args: argparse.Namespace) -> int:
    report = score(load_labels([args.labels]), load_traces(args.traces))
    if args.json:
        verdicts = report.verdicts
        print(  # noqa: T201 -- CLI output
            json.dumps(
                {
                    "labelled_mistakes": len(report.scores),
                    "found": len(report.found),
                    "kind_accuracy": round(report.kind_accuracy, 4),
                    "hints": dict(verdicts),
                    "specific_share": round(report.specific_share, 4),
                    "spurious": len(report.spurious),
                    "unread": len(report.unread),
                },
                indent=2,
            ),
        )
    else:
        print(report.summary())  # noqa: T201 -- CLI output
    if args.verbose:
        for item in report.found:
            if item.verdict != "specific" or not item.kind_right:
                print(  # noqa: T201 -- CLI output
                    f"[{item.verdict}] {item.label.file} {item.label.call_id}: "
                    f"{item.label.kind.value} -> {item.site.kind if item.site else '-'} "
                    f"{item.why}",
                )
        for site, why in report.spurious:
            print(f"[spurious] {site.path} {site.call_id}: {why}")  # noqa: T201 -- CLI output
    bad = report.verdicts["wrong"] > 0 or report.spurious or report.kind_accuracy < args.min_kind
    if args.corrections is not None:
        bad = _eval_corrections(args) or bad
    return 1 if bad else EXIT_OK


def _eval_corrections(args: argparse.Namespace) -> bool:
    """``eval --corrections``: score the reply sites; whether one is on no correction."""
    replies = score_corrections(load_corrections([args.corrections]), load_traces(args.traces))
    if not args.json:
        print(replies.summary())  # noqa: T201 -- CLI output
    if args.verbose:
        for label in replies.missed:
            print(f"[missed] {label.file}: {label.quote!r}")  # noqa: T201 -- CLI output
        for site, why in replies.wrong:
            print(f"[wrong] {site.path} {site.trace_id}: {why}")  # noqa: T201 -- CLI output
    return bool(replies.wrong)


async def _export(args: argparse.Namespace) -> int:
    sources: frozenset[str] | None = None
    if args.sources:
        sources = frozenset(s.strip() for s in args.sources.split(",") if s.strip())
        unknown = sources - {s.value for s in HintSource}
        if unknown:
            known = ", ".join(s.value for s in HintSource)
            raise ConfigError(f"--sources: unknown layer {', '.join(sorted(unknown))}; use {known}")
    options = ExportOptions(
        at=HintPlacement(args.at),
        hint_role=args.hint_role,
        reasoning=not args.drop_reasoning,
        sources=sources,
        overwrite=args.overwrite,
    )
    stats = await anyio.to_thread.run_sync(export_sites, args.traces, args.output, options)
    if not args.quiet:
        print(f"tracehint: {stats.summary()}", file=sys.stderr)  # noqa: T201 -- CLI output
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    args = _parser().parse_args(argv)
    if args.command == "annotate" and args.output == STDOUT and args.progress is None:
        args.progress = False if not sys.stderr.isatty() else None
    runners = {
        "annotate": _annotate,
        "cache": _cache,
        "mock-judge": _mock_judge,
        "bench": _bench,
        "eval": _eval,
        "export": _export,
    }
    runner = runners[args.command]
    try:
        if args.command == "annotate" and args.engine == "ray":
            return _annotate_ray(args)
        return anyio.run(runner, args)
    except (TracehintError, BaseExceptionGroup) as exc:
        error = _tracehint_error(exc)
        if error is None:
            raise
        print(f"tracehint: error: {error}", file=sys.stderr)  # noqa: T201 -- CLI output
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("tracehint: interrupted", file=sys.stderr)  # noqa: T201 -- CLI output
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    raise SystemExit(main())
