"""Shared fixtures: the real session corpus, copied so tests never touch the original."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_CORPUS = REPO.parent / "shared" / "corpus" / "claude_code"
EXAMPLES = REPO / "examples" / "sessions"


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def shared_corpus() -> Path:
    """The read-only shared corpus (skip the test when it is not beside the repo)."""
    if not SHARED_CORPUS.is_dir():
        pytest.skip(f"shared corpus not found at {SHARED_CORPUS}")
    return SHARED_CORPUS


@pytest.fixture
def corpus(shared_corpus: Path, tmp_path: Path) -> Path:
    """A private copy of the shared corpus."""
    target = tmp_path / "corpus"
    shutil.copytree(shared_corpus, target)
    return target


def assert_not_written(secret: str, root: Path) -> None:
    """No file under ``root`` contains ``secret``."""
    for path in root.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


def run_cli(
    *args: str,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """``tracehint ARGS`` in a fresh interpreter, its output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "tracehint._main", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=timeout,
        check=False,
    )
