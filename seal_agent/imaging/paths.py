"""Which local files an image input may name, and reading them safely.

A deployment that serves callers (a tool, a server) reads only regular files inside its
allowed roots. Real paths are resolved (symlinks, ``..``) before the check, and every
refused or missing path gets one and the same message, so a caller cannot probe what
exists. A user's own program (roots ``None``) gets detailed messages instead.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path

from seal_agent.errors import InvalidImageError

#: The one message for a path refused under allowed roots (existing or not).
REFUSED_PATH_MESSAGE = (
    "the image path was refused: local images are read only from files inside the "
    "allowed roots of this deployment{hint}"
)


class PathRefusedError(InvalidImageError):
    """A local path outside the allowed roots, missing, or not a regular file."""


def refused(roots: Sequence[Path] | None) -> PathRefusedError:
    hint = (
        " (none are configured: pass allowed_roots=[folder, ...] to "
        "create_visual_search_tool, or SealConfig(allowed_roots=[...]) to build_graph)"
        if not roots
        else ""
    )
    return PathRefusedError(REFUSED_PATH_MESSAGE.format(hint=hint))


#: Longest path string looked up on disk (Linux's PATH_MAX). Longer text names no file,
#: and resolving it (``realpath`` joins every component) costs time quadratic in its length.
MAX_PATH_CHARS = 4096


def is_within(path: Path, root: Path) -> bool:
    """Whether the resolved ``path`` is ``root`` or lies below it."""
    text, top = str(path), str(root)
    return text == top or text.startswith(top if top.endswith(os.sep) else top + os.sep)


def resolve_allowed_path(
    source: str | os.PathLike[str],
    roots: Sequence[Path] | None,
    *,
    also: Sequence[Path] = (),
) -> Path:
    """The real path of an existing regular file that ``roots`` (or ``also``) allow.

    ``roots=None`` allows any file and explains each failure; otherwise every failure is
    the same ``PathRefusedError``. Reusable by anything that takes paths from callers.
    """
    raw = os.fspath(source)
    if "\x00" in raw:
        if roots is not None:
            raise refused(roots)
        raise InvalidImageError("the image path contains a NUL byte")
    if len(raw) > MAX_PATH_CHARS:
        raise InvalidImageError(
            f"the image path is {len(raw)} characters long, above the limit of "
            f"{MAX_PATH_CHARS}: it names no file (to pass base64 data, use a data URL such "
            "as 'data:image/png;base64,...')"
        )
    path = Path(raw).expanduser()
    try:
        real = Path(os.path.realpath(path))
        st = os.stat(real)
    except FileNotFoundError as exc:
        if roots is not None:
            raise refused(roots) from None
        raise InvalidImageError(f"image file not found: {path}") from exc
    except (OSError, ValueError) as exc:
        if roots is not None:
            raise refused(roots) from None
        raise InvalidImageError(f"cannot access image file {path}: {exc}") from exc
    if roots is not None:
        allowed = [*roots, *also]
        if not any(is_within(real, Path(root)) for root in allowed):
            raise refused(roots)
    if not stat.S_ISREG(st.st_mode):
        if roots is not None:
            raise refused(roots)
        raise InvalidImageError(f"image path is not a file: {path}")
    return real


def read_regular_file(path: Path, max_bytes: int, what: str) -> tuple[bytes, os.stat_result]:
    """The bytes of a regular file, at most ``max_bytes``; never blocks on a FIFO or device.

    Opened non-blocking and checked with ``fstat`` on the open descriptor, so a path
    swapped for a FIFO or device after the check is still refused.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError as exc:
        raise InvalidImageError(f"image file not found: {what}") from exc
    except IsADirectoryError as exc:
        raise InvalidImageError(f"image path is not a file: {what}") from exc
    except (OSError, ValueError) as exc:
        raise InvalidImageError(f"cannot read image file {what}: {exc}") from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise InvalidImageError(f"image path is not a file: {what}")
        if st.st_size > max_bytes:
            raise InvalidImageError(
                f"{what} is {st.st_size / 2**20:.0f} MiB, above the limit of "
                f"{max_bytes / 2**20:.0f} MiB (raise SealConfig.max_file_bytes to allow it)"
            )
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        with os.fdopen(fd, "rb", closefd=False) as fh:
            data = fh.read(st.st_size + 1)
        if len(data) != st.st_size:
            raise InvalidImageError(f"{what} changed while it was read")
        return data, st
    except OSError as exc:
        raise InvalidImageError(f"cannot read image file {what}: {exc}") from exc
    finally:
        os.close(fd)


def caller_image_source(source: object, roots: Sequence[Path] | None) -> object:
    """An image argument from a caller (an agent, a remote client), checked for roots.

    Data URLs, http(s) URLs (fetched only where the deployment allows) and in-memory
    images pass; a local path must be a regular file inside ``roots`` and is replaced by
    its real path; a caller-made ``ImageRef`` dict is refused (references are the
    graph's own, never a caller's).
    """
    if isinstance(source, dict):
        raise InvalidImageError(
            "image references are not accepted from callers: pass a path, an http(s) URL "
            "or a base64 data URL"
        )
    if isinstance(source, str | os.PathLike):
        text = os.fspath(source).strip()
        lowered = text[:8].lower()
        if lowered.startswith(("data:", "http://", "https://")):
            return text
        if "://" in text[:32] or (len(text) > 1024 and os.sep not in text[:256]):
            return text  # other schemes, bare base64: refused by to_image_ref, explained
        return str(resolve_allowed_path(text, roots))
    return source


__all__ = [
    "MAX_PATH_CHARS",
    "REFUSED_PATH_MESSAGE",
    "PathRefusedError",
    "caller_image_source",
    "is_within",
    "read_regular_file",
    "resolve_allowed_path",
]
