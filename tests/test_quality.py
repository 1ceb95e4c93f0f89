"""The labelled quality suite: hints on the shared corpus scored against hand labels.

The labels (``quality/labels``) were written by reading the transcripts. This test fails on
any wrong hint, any site on a non-mistake, or a drop of kind accuracy or specific hints below
the targets. It needs ``../shared/corpus`` (CI has it); ``tracehint eval`` runs the same.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import REPO, run_cli
from tracehint._quality import (
    HintVerdict,
    load_corrections,
    load_labels,
    load_traces,
    score,
    score_corrections,
)

LABELS = REPO / "quality" / "labels"
REPLIES = REPO / "quality" / "corrections"
CORPUS = REPO.parent / "shared" / "corpus"


@pytest.fixture(scope="module")
def annotated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not CORPUS.is_dir():
        pytest.skip(f"shared corpus not found at {CORPUS}")
    out = tmp_path_factory.mktemp("quality") / "traces.jsonl"
    result = run_cli("annotate", str(CORPUS), "-o", str(out), "--no-progress", "-q")
    assert result.returncode == 0, result.stderr
    return out


def test_labels_cover_at_least_150_results() -> None:
    labels = load_labels([LABELS])
    assert len(labels.labels) >= 150
    assert {label.file.split("/", 1)[0] for label in labels.labels} >= {
        "claude_code",
        "claude_code_more",
        "openhands",
        "swe_agent",
    }


def test_offline_hints_meet_the_targets(annotated: Path) -> None:
    report = score(load_labels([LABELS]), load_traces([annotated]))
    wrong = [s for s in report.found if s.verdict == HintVerdict.WRONG]
    assert not wrong, [(s.label.call_id, s.why, s.site and s.site.hint) for s in wrong]
    assert not report.spurious, report.spurious
    assert len(report.found) >= 130
    assert report.kind_accuracy >= 0.95
    assert report.specific_share >= 0.70


def test_eval_command_exit_code(annotated: Path) -> None:
    result = run_cli("eval", str(LABELS), str(annotated), "--corrections", str(REPLIES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "kind accuracy" in result.stdout
    assert "user corrections (replies)" in result.stdout


def test_rejections_with_words_are_user_corrections(annotated: Path) -> None:
    """Every labelled rejection that carries the user's words is a site hinted with them."""
    report = score(load_labels([LABELS]), load_traces([annotated]))
    rejections = [s for s in report.scores if s.label.kind.value == "user_correction"]
    assert len(rejections) >= 10
    for found in rejections:
        assert found.site is not None, found.label.call_id
        assert found.site.source == "user"
        assert found.verdict == HintVerdict.SPECIFIC, (found.label.call_id, found.why)


def test_user_corrections_precision_over_recall(annotated: Path) -> None:
    """Replies that correct the agent: no wrong site on the labelled replies, most found."""
    labels = load_corrections([REPLIES])
    assert sum(label.correction for label in labels.labels) >= 10
    assert sum(not label.correction for label in labels.labels) >= 15
    report = score_corrections(labels, load_traces([annotated]))
    assert report.wrong == []
    assert report.precision == 1.0
    assert report.recall >= 0.75, [label.quote for label in report.missed]
