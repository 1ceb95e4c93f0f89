"""Shared fixtures: real Claude Code sessions, copied so tests never touch the originals.

``sessions`` are the few real sessions shipped in ``tests/data/claude_code`` (byte-for-byte
copies of shared-corpus files, see ``tests/data/README.md``): tests that need real sessions,
not the whole corpus, use them and run anywhere. ``shared_corpus`` is the whole corpus beside
the repository (``../shared``, as CI has it); tests of corpus-wide properties use it and skip
without it. ``claude_corpus`` runs a test on both.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

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


@contextmanager
def read_only(*paths: Path) -> Iterator[None]:
    """Make files and folders unwritable for this process while the block runs.

    Modes do not stop root, so as root the immutable attribute is set instead (``chattr +i``,
    which stops root too); the test is skipped where neither works.
    """
    if sys.platform == "win32":
        pytest.skip("POSIX file modes")
    if os.geteuid() != 0:
        modes = {path: path.stat().st_mode for path in paths}
        for path in paths:
            path.chmod(0o555 if path.is_dir() else 0o444)
        try:
            yield
        finally:
            for path, mode in modes.items():
                path.chmod(mode)
        return
    chattr = shutil.which("chattr")
    if chattr is None:
        pytest.skip("root writes anywhere, and there is no chattr to stop it")
    done: list[Path] = []
    try:
        for path in paths:
            if subprocess.run([chattr, "+i", str(path)], check=False).returncode != 0:
                pytest.skip(f"cannot make {path} immutable here (chattr +i failed)")
            done.append(path)
        yield
    finally:
        for path in done:
            subprocess.run([chattr, "-i", str(path)], check=True)
