"""Development reload: poll the model files' modification times and reload when they change.

Polling once a second is cheap for a few dozen YAML files and works on any file system (bind
mounts, network shares) without another dependency. The reload runs in a thread; a model error is
logged and the running version keeps serving.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from headless_bi.errors import HeadlessBIError
from headless_bi.runtime import Runtime
from headless_bi.semantic.loader import model_files

log = logging.getLogger(__name__)

Snapshot = tuple[tuple[str, int, int], ...]


def snapshot(models: str | Path) -> Snapshot:
    """(path, mtime_ns, size) of every model file: any edit, addition or removal changes it."""
    out = []
    for path in model_files(models):
        try:
            stat = path.stat()
        except OSError:
            continue  # removed between listing and stat
        out.append((str(path), stat.st_mtime_ns, stat.st_size))
    return tuple(out)


async def watch_models(runtime: Runtime, interval_s: float = 1.0) -> None:
    """Run until cancelled."""
    models = runtime.settings.models
    last = await asyncio.to_thread(snapshot, models)
    log.info("watching %s for model changes", models)
    while True:
        await asyncio.sleep(interval_s)
        current = await asyncio.to_thread(snapshot, models)
        if current == last:
            continue
        last = current
        try:
            model = await asyncio.to_thread(runtime.reload)
        except HeadlessBIError as exc:
            log.error(
                "models changed but do not load; still serving version %s:\n%s",
                runtime.model.version,
                exc.message,
            )
        except Exception:
            log.exception("model reload failed; still serving version %s", runtime.model.version)
        else:
            log.info("models reloaded: version %s", model.version)
