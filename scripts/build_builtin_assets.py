"""Build the builtin assets into the cache ahead of time, and print where each one is.

A first `unlearn train` on builtin://tiny-llama otherwise pays for the build itself; running this once (in a
Docker image, a CI cache step, or before `accelerate launch`) makes later runs start at once. Set
UNLEARN_CLI_CACHE to choose the cache folder.

    python scripts/build_builtin_assets.py
    python scripts/build_builtin_assets.py "builtin://fictitious-authors?authors=200&facts=20"
"""

from __future__ import annotations

import argparse
import sys
import time

from unlearn_cli.builtin import ASSETS, BUILTIN_SCHEME, cache_root, resolve_builtin
from unlearn_cli.errors import UserError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "uris", nargs="*", help="builtin:// URIs to build (default: every asset with its default parameters)"
    )
    args = parser.parse_args(argv)
    uris = args.uris or [f"{BUILTIN_SCHEME}{name}" for name in ASSETS]
    print(f"cache: {cache_root()}")
    for uri in uris:
        start = time.perf_counter()
        try:
            folder = resolve_builtin(uri)
        except UserError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(f"{uri} -> {folder} ({time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
