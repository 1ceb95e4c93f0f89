"""Shared fixtures: real Claude Code sessions, copied so tests never touch the originals.

``sessions`` are the few real sessions shipped in ``tests/data/claude_code`` (byte-for-byte
copies of shared-corpus files, see ``tests/data/README.md``): tests that need real sessions,
not the whole corpus, use them and run anywhere. ``shared_corpus`` is the whole corpus beside
the repository (``../shared``, as CI has it); tests of corpus-wide properties use it and skip
without it. ``claude_corpus`` runs a test on both.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_CORPUS = REPO.parent / "shared" / "corpus" / "claude_code"
EXAMPLES = REPO / "examples" / "sessions"
SESSIONS = REPO / "tests" / "data" / "claude_code"


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def shared_corpus() -> Path:
    """The read-only shared corpus (skip the test when it is not beside the repo)."""
    if not SHARED_CORPUS.is_dir():
        pytest.skip(f"shared corpus not found at {SHARED_CORPUS}")
    return SHARED_CORPUS


@pytest.fixture(scope="session")
def sessions() -> Path:
    """Real Claude Code sessions shipped with the tests (read-only; a few corpus files)."""
    return SESSIONS


@pytest.fixture
def sessions_copy(tmp_path: Path) -> Path:
    """A private copy of ``sessions``."""
    target = tmp_path / "sessions"
    shutil.copytree(SESSIONS, target)
    return target


@pytest.fixture(scope="session", params=["tests/data", "shared"])
def claude_corpus(request: pytest.FixtureRequest) -> Path:
    """Real Claude Code sessions: those in tests/data (anywhere), then the whole shared corpus
    (skipped when it is not beside the repo)."""
    if request.param == "tests/data":
        return SESSIONS
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
