"""The ``tracehint`` command line (see ``tracehint._cli``)."""

from __future__ import annotations

from tracehint._cli import main

__all__ = ["main"]

if __name__ == "__main__":
    raise SystemExit(main())
