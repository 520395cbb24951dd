"""GraphiQL from local files: strawberry's page with its CDN URLs pointed at `graphiql_assets/`.

The service must be explorable where the browser has no internet access; the page is rewritten
only when every file it names is here (otherwise it stays on the CDN, with a warning). Files are
stored flat, the CDN path with `/` written `__` (`react@18.2.0__umd__react.production.min.js`), so
no folder name (`dist/`, `build/`) can fall under an ignore rule.
Run as a module to fetch the files the installed strawberry names (needs `npm`).
"""

from __future__ import annotations

import logging
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

ASSETS = Path(__file__).with_name("graphiql_assets")
CDN = "https://unpkg.com/"
MOUNT = "graphql/assets/"  # relative to the page at .../graphql, so a path prefix keeps working
_URL = re.compile(re.escape(CDN) + r'([^"\s]+)')


def local_name(cdn_path: str) -> str:
    return cdn_path.replace("/", "__")


def cdn_paths(html: str) -> list[str]:
    return _URL.findall(html)


def missing(html: str) -> list[str]:
    return [path for path in cdn_paths(html) if not (ASSETS / local_name(path)).is_file()]


def local_html(html: str) -> str:
    """`html` loading its assets from this server, or unchanged if any file is missing."""
    absent = missing(html)
    if absent:
        log.warning(
            "GraphiQL assets missing locally (%s): the page loads them from %s", ", ".join(absent), CDN
        )
        return html
    return _URL.sub(lambda match: MOUNT + local_name(match.group(1)), html)


def fetch(paths: list[str]) -> None:
    """Download the named files through `npm pack` (package@version/inner/path)."""
    for path in paths:
        parts = path.split("/")
        split = 2 if path.startswith("@") else 1  # @scope/name@version
        package, inner = "/".join(parts[:split]), "/".join(parts[split:])
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(
                ["npm", "pack", package, "--silent"], cwd=tmp, check=True, stdout=subprocess.DEVNULL
            )
            (archive,) = Path(tmp).glob("*.tgz")
            with tarfile.open(archive) as tar:
                member = tar.extractfile(f"package/{inner}")
                assert member is not None, path
                (ASSETS / local_name(path)).write_bytes(member.read())
        print(f"fetched {path}")


if __name__ == "__main__":
    from strawberry.http.ides import get_graphql_ide_html

    wanted = missing(get_graphql_ide_html("graphiql"))
    if not wanted:
        print(f"all GraphiQL assets present in {ASSETS}")
        sys.exit(0)
    fetch(wanted)
