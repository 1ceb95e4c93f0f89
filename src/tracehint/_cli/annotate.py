"""``tracehint annotate``: the local pipeline and the Ray engine."""

from __future__ import annotations

import functools
import logging
import os
import signal
import sys
from collections import Counter
from contextlib import AsyncExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import orjson

from tracehint._annotator import Annotator, AnnotatorConfig
from tracehint._cache import CacheMode, default_cache_path
from tracehint._exceptions import ConfigError, JudgeError, OutputError
from tracehint._ingest._discover import DEFAULT_DIRS
from tracehint._ingest.formats import InputFormat
from tracehint._judge import FailureReason, JudgeConfig, RetryPolicy
from tracehint._kinds import DetectedBy
from tracehint._limits import Limits
from tracehint._output import STDOUT, JsonlSink, OutputPath, check_outputs
from tracehint._pipeline import annotate_files
from tracehint._progress import measure_inputs, progress
from tracehint._prompt import PROMPT_VERSION
from tracehint._reader import ReaderConfig
from tracehint._resume import ResumeState, RunConfig, journal_path, prepare_resume, recorded_run
from tracehint._stats import RunStats

if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence


from tracehint._cli._common import (
    EXIT_ERROR,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TERMINATED,
    parse_json_object,
    parse_seconds,
    parse_temperature,
    tracehint_error,
)


def add_parser(commands: Any) -> None:  # noqa: ANN401 -- argparse's private subparsers type
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
        type=parse_seconds,
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
    annotate.add_argument(
        "--stats-json",
        metavar="FILE",
        help="also write the summary as JSON (- for stdout, when -o is a file)",
    )
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
    engine.add_argument(
        "--merge-caches",
        action="store_true",
        help="with --engine ray: collect the hints the workers learnt into this machine's "
        "cache (--cache) at the end, whatever node's cache they went to",
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
        type=parse_seconds,
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
    judge.add_argument(
        "--max-traces-in-flight",
        type=int,
        default=8,
        metavar="N",
        help="traces hinted at once, whatever --concurrency is: their sites share the "
        "requests in flight (more while they are small, see --max-trace-bytes-in-flight)",
    )
    judge.add_argument(
        "--max-trace-bytes-in-flight",
        type=int,
        default=16 * 1024 * 1024,
        metavar="BYTES",
        help="more traces than --max-traces-in-flight are hinted at once while they hold at "
        "most this much text in all and have fewer open sites than twice --concurrency",
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
        type=parse_temperature,
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
        type=parse_json_object,
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
        max_traces_in_flight=args.max_traces_in_flight,
        max_trace_bytes_in_flight=args.max_trace_bytes_in_flight,
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
    if args.stats_json and args.stats_json != STDOUT:
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


async def run(args: argparse.Namespace) -> int:  # noqa: C901, PLR0915 -- the run's whole life
    if args.stats_json == STDOUT and args.output == STDOUT:
        raise ConfigError(
            "-o - and --stats-json - would both write to stdout: write one of them to a file"
        )
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
                    print(f"tracehint: error: {tracehint_error(found)}", file=sys.stderr)  # noqa: T201 -- CLI output
                    status = EXIT_ERROR
                group.cancel_scope.cancel()
        stats.judge = annotator.stats()
    if stats.finished is None:
        stats.finish()
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
    judge_failed = stats.judge.judge_failed if stats.judge is not None else 0
    if failed:
        print(  # noqa: T201 -- CLI output
            f'tracehint: {failed} of {stats.sites} site(s) failed (hint_status "failed", the '
            "reason in hint_reason); run again to retry them, finished hints are cached",
            file=sys.stderr,
        )
        return EXIT_FAILED
    failures = stats.judge.failures if stats.judge is not None else Counter[str]()
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
        data = orjson.dumps(stats.to_dict(), option=orjson.OPT_INDENT_2) + b"\n"
        if args.stats_json == STDOUT:
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
            return
        try:
            Path(args.stats_json).write_bytes(data)
        except OSError as exc:
            # Checked before the run; this is a disk that filled or a folder removed since.
            message = f"cannot write --stats-json {args.stats_json}: {exc.strerror or exc}"
            raise OutputError(message) from exc


_RAY_OUTPUTS = (
    "traces-*.jsonl",
    "errors-*.jsonl",
    "done-*.jsonl",
    "hints-*.jsonl",
    "*.jsonl.part",
    "run.json",
)
"""What an ``--engine ray`` run writes into its output folder."""


def _ray_output(args: argparse.Namespace) -> Path:
    if args.output == STDOUT:
        raise ConfigError("with --engine ray, -o must be an output folder, not stdout")
    folder = Path(args.output)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"with --engine ray, -o must be a folder: {folder} is a file")
    if args.resume or not folder.is_dir() or not any(folder.iterdir()):
        return folder
    if not args.overwrite:
        raise ConfigError(
            f"{folder} is not empty; pass --overwrite to replace its traces, or --resume to "
            "finish an interrupted run into it"
        )
    for pattern in _RAY_OUTPUTS:
        for old in folder.glob(pattern):
            old.unlink()
    if any(folder.iterdir()):
        raise ConfigError(f"{folder} holds other files; choose a new output folder")
    return folder


def run_ray(args: argparse.Namespace) -> int:
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
    resume = ray_data.prepare_folder(
        folder, _run_config(args, config, paths), resume=bool(args.resume)
    )
    merge = args.merge_caches and config.use_cache and config.judge is not None
    options = ray_data.RayOptions(
        per_actor_concurrency=config.judge.concurrency if config.judge is not None else 64,
        seed_cache=args.seed_cache,
        export_hints=merge,
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
        stats = ray_data.annotate_folder(paths, folder, config, options, resume=resume)
    finally:
        if started:
            ray.shutdown()
    if merge:
        cache = config.cache_path or default_cache_path()
        merged = ray_data.merge_hints(folder, cache)
        if not args.quiet:
            print(f"tracehint: merged {merged} new hint(s) into {cache}", file=sys.stderr)  # noqa: T201 -- CLI output
    stats.finish()
    if args.errors:
        with Path(args.errors).open("wb") as errors:
            errors.writelines(part.read_bytes() for part in sorted(folder.glob("errors-*.jsonl")))
    _report(args, stats)
    return EXIT_ERROR if _nothing_read(args, stats) else _exit_status(EXIT_OK, stats)
