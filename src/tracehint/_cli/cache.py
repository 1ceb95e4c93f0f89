"""``tracehint cache``: stats, clear and merge."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import anyio
import orjson

from tracehint._cache import HintCache, default_cache_path
from tracehint._cli._common import EXIT_OK
from tracehint._exceptions import ConfigError

if TYPE_CHECKING:
    import argparse


def add_parser(commands: Any) -> None:  # noqa: ANN401 -- argparse's private subparsers type
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


def _date(unix_time: float | None) -> str | None:
    """A cache entry's time as an ISO 8601 date and time in UTC (``None`` stays ``None``)."""
    if unix_time is None:
        return None
    return (
        datetime.fromtimestamp(unix_time, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    )


async def run(args: argparse.Namespace) -> int:
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
