"""One configuration path: ``AnnotatorConfig`` reaches the file pipeline, Ray and ``bench``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from conftest import EXAMPLES
from tracehint import (
    DEFAULT_TEMPLATES,
    AnnotatorConfig,
    ErrorDetector,
    ErrorKind,
    HintChain,
    InputFormat,
    RawErrorLayer,
    RunStats,
    TemplateLayer,
    annotate_files,
)
from tracehint._bench import bench_pipeline
from tracehint._output import MemorySink

CHAIN = HintChain((TemplateLayer(), RawErrorLayer()))


def rollout_file(tmp_path: Path) -> Path:
    """An OpenAI-messages rollout whose failed tool says so only in its own words."""
    messages = [
        {"role": "user", "content": "deploy"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "deploy", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "DEPLOY REFUSED: quota exceeded"},
        {"role": "assistant", "content": "Retrying with a smaller plan."},
    ]
    path = tmp_path / "rollouts.jsonl"
    path.write_bytes(orjson.dumps({"id": "r1", "messages": messages}) + b"\n")
    return path


async def run(paths: list[Path], config: AnnotatorConfig) -> tuple[list[dict[str, Any]], int]:
    sink, issues, stats = MemorySink(), MemorySink(), RunStats()
    await annotate_files(
        paths, chain=CHAIN, sink=sink, stats=stats, issue_sink=issues, config=config.pipeline()
    )
    return [orjson.loads(line) for line in sink.lines], len(issues.lines)


async def test_a_custom_detector_reaches_file_parsing(tmp_path: Path) -> None:
    path = rollout_file(tmp_path)
    (plain,), _ = await run([path], AnnotatorConfig())
    assert not any("tool_error" in turn for turn in plain["turns"])
    detector = ErrorDetector(re.compile(r"\A[A-Z ]+ REFUSED\b"))
    (custom,), _ = await run([path], AnnotatorConfig(detector=detector))
    assert [turn["tool_error"] for turn in custom["turns"] if "tool_error" in turn] == [
        ErrorKind.TOOL_ERROR.value
    ]


async def test_input_format_and_reasoning_come_from_the_config() -> None:
    session = next(EXAMPLES.glob("*.jsonl"))
    traces, issues = await run([session], AnnotatorConfig(input_format=InputFormat.OPENAI))
    assert traces == []
    assert issues > 0  # read as OpenAI records: every line is named as not one
    traces, _ = await run([session], AnnotatorConfig(reasoning=False))
    assert traces
    assert not any("reasoning_content" in m for t in traces for m in t["messages"])


async def test_ray_batches_use_the_config() -> None:
    pytest.importorskip("ray")
    from tracehint import ray_data  # noqa: PLC0415 -- optional extra

    session = next(EXAMPLES.glob("*.jsonl"))
    batch = {"bytes": [session.read_bytes()], "path": [str(session)]}
    forced = ray_data._AnnotateBatch(
        AnnotatorConfig(input_format=InputFormat.OPENAI, use_cache=False), ray_data.RayOptions()
    )
    kinds = (await forced(batch))["kind"]
    assert "trace" not in kinds
    assert "issue" in kinds
    auto = ray_data._AnnotateBatch(AnnotatorConfig(use_cache=False), ray_data.RayOptions())
    assert "trace" in (await auto(batch))["kind"]


async def test_bench_pipeline_keeps_templates_and_classifier() -> None:
    silent = DEFAULT_TEMPLATES.with_overrides(dict.fromkeys(ErrorKind, lambda _request: None))
    base = AnnotatorConfig(layers=("template",))
    (default, _warm) = await bench_pipeline([str(EXAMPLES)], base)
    assert default["hints"] > 0
    (quiet, _warm) = await bench_pipeline(
        [str(EXAMPLES)], AnnotatorConfig(layers=("template",), templates=silent)
    )
    assert quiet["sites"] == default["sites"]
    assert quiet["hints"] == 0  # the templates given were used, not the defaults
