"""``tracehint mock-judge``: the loopback judge as a server."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tracehint._cli._common import EXIT_OK
from tracehint._exceptions import ConfigError

if TYPE_CHECKING:
    import argparse


def add_parser(commands: Any) -> None:  # noqa: ANN401 -- argparse's private subparsers type
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


async def run(args: argparse.Namespace) -> int:
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
