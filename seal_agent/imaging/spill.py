"""The spill cache: content-addressed copies of in-memory inputs, bounded on disk.

An image given as bytes, a data URL, a PIL image or a download is written once under its
sha256, so a checkpoint only names it and a resumed run finds it again. Only inputs that
decoded are spilled. The folder is kept under ``spill_max_bytes`` by evicting the least
recently used files, but never one used within ``spill_retention_s`` (a live run, or a
checkpointed run resumed within that time, still needs it). Writes are atomic (a
temporary file renamed into place, removed on failure); no lock files are used.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
import time
from pathlib import Path

from seal_agent.errors import InvalidImageError
from seal_agent.imaging.policy import ImagePolicy

_SUFFIX_BY_FORMAT = {
    "JPEG": ".jpg",
    "MPO": ".jpg",
    "PNG": ".png",
    "WEBP": ".webp",
    "GIF": ".gif",
    "BMP": ".bmp",
    "TIFF": ".tif",
}
_TEMP_PREFIX = ".spill-"
#: A use refreshes a file's mtime at most this often (the LRU clock).
_TOUCH_EVERY_S = 60.0
_EVICT_LOCK = threading.Lock()


def spill_path(policy: ImagePolicy, digest: str, image_format: str | None) -> Path:
    suffix = _SUFFIX_BY_FORMAT.get((image_format or "").upper(), ".img")
    return policy.spill_dir() / digest[:2] / f"{digest}{suffix}"


def write_once(path: Path, data: bytes) -> None:
    """Write a content-addressed file atomically unless it exists (then mark it used)."""
    if path.exists():
        touch(path, force=True)
        return
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_TEMP_PREFIX)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise InvalidImageError(
            f"cannot store an in-memory image in the cache directory {path.parent}: {exc} "
            "(set SealConfig.cache_dir or $SEAL_AGENT_CACHE_DIR to a writable folder)"
        ) from exc
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def touch(path: Path, *, force: bool = False) -> None:
    """Mark a spilled file as used now (its mtime is the LRU clock)."""
    try:
        if force or time.time() - path.stat().st_mtime > _TOUCH_EVERY_S:
            os.utime(path)
    except OSError:
        pass


def evict(policy: ImagePolicy, *, now: float | None = None) -> list[Path]:
    """Remove least recently used spilled files until the folder fits ``spill_max_bytes``.

    Files used within ``spill_retention_s`` are kept even when the folder is over the
    cap; stale temporary files of interrupted writes are removed. Returns what was removed.
    """
    root = policy.spill_dir()
    now = time.time() if now is None else now
    removed: list[Path] = []
    with _EVICT_LOCK:
        entries: list[tuple[float, int, Path]] = []
        total = 0
        try:
            folders = [p for p in root.iterdir() if p.is_dir()]
        except OSError:
            return removed
        for folder in folders:
            try:
                files = list(os.scandir(folder))
            except OSError:
                continue
            for entry in files:
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                path = Path(entry.path)
                if entry.name.startswith(_TEMP_PREFIX):
                    if now - st.st_mtime > 3600:
                        _unlink(path, removed)
                    continue
                total += st.st_size
                entries.append((st.st_mtime, st.st_size, path))
        if total <= policy.spill_max_bytes:
            return removed
        entries.sort()
        for mtime, size, path in entries:
            if total <= policy.spill_max_bytes or now - mtime < policy.spill_retention_s:
                break
            if _unlink(path, removed):
                total -= size
    return removed


def _unlink(path: Path, removed: list[Path]) -> bool:
    try:
        path.unlink()
    except OSError:
        return False
    removed.append(path)
    return True


__all__ = ["evict", "spill_path", "touch", "write_once"]
