"""What an image source may make the process read, reach, write and allocate.

These are deployment settings: they are fixed when a graph, tool or server is built
(``SealConfig``'s build-time fields feed one ``ImagePolicy``) and never changed by a
single call, because a call's arguments may come from an attacker (text planted in an
agent's context). Pillow's own global limits are never touched.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

#: Default limit on decoded pixels: a 12000x12000 scan (144 MP) loads.
DEFAULT_MAX_IMAGE_PIXELS = 200_000_000
#: Default limit on the bytes one decode may hold at its peak (the decoded mode, with
#: 16-bit samples and alpha counted, plus its RGB conversion; Pillow keeps RGB in 4
#: bytes a pixel): an 8-bit RGB image up to the pixel limit fits; 16-bit grey up to
#: 160 MP, RGBA and grey+alpha up to 100 MP.
DEFAULT_MAX_DECODED_BYTES = 4 * DEFAULT_MAX_IMAGE_PIXELS
#: Default limit on the size of an encoded image file read into memory.
DEFAULT_MAX_FILE_BYTES = 512 * 1024**2
#: Default limit on bytes downloaded for an http(s) image.
DEFAULT_MAX_DOWNLOAD_BYTES = 200 * 1024**2
#: Formats decoded by default (Pillow format names; MPO is a multi-picture JPEG).
DEFAULT_FORMATS: tuple[str, ...] = ("JPEG", "MPO", "PNG", "WEBP", "GIF", "BMP", "TIFF")
#: Default cap on the spill cache on disk, and how long a used image is kept regardless.
DEFAULT_SPILL_MAX_BYTES = 2 * 1024**3
DEFAULT_SPILL_RETENTION_S = 24 * 3600.0


def default_cache_dir() -> Path:
    """``$SEAL_AGENT_CACHE_DIR``, else ``$XDG_CACHE_HOME/seal-agent`` or ``~/.cache/seal-agent``."""
    env = os.environ.get("SEAL_AGENT_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "seal-agent"


class ImagePolicy(BaseModel):
    """The deployment's rules for image inputs (immutable).

    ``allowed_roots=None`` reads any local file the process can read: right for a user's
    own program and the CLI, wrong for anything that serves callers; a tool or server
    sets roots (``()`` reads no local files at all).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    allowed_roots: tuple[Path, ...] | None = Field(
        None, description="folders local images may be read from (None: any readable file)"
    )
    cache_dir: Path | None = Field(None, description="spill cache (None: default_cache_dir())")
    max_pixels: int = Field(DEFAULT_MAX_IMAGE_PIXELS, ge=1)
    max_decoded_bytes: int = Field(DEFAULT_MAX_DECODED_BYTES, ge=1)
    max_file_bytes: int = Field(DEFAULT_MAX_FILE_BYTES, ge=1)
    formats: tuple[str, ...] = Field(DEFAULT_FORMATS, min_length=1)
    allow_urls: bool = False
    url_allowed_hosts: tuple[str, ...] = Field(
        (), description="hosts or networks (CIDR) that may be fetched although not public"
    )
    url_timeout_s: float = Field(20.0, gt=0, description="total deadline of one download")
    max_download_bytes: int = Field(DEFAULT_MAX_DOWNLOAD_BYTES, ge=1)
    max_redirects: int = Field(5, ge=0, le=20)
    spill_max_bytes: int = Field(DEFAULT_SPILL_MAX_BYTES, ge=0)
    spill_retention_s: float = Field(DEFAULT_SPILL_RETENTION_S, ge=0)

    @field_validator("formats")
    @classmethod
    def _upper(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(dict.fromkeys(f.upper() for f in value))

    @field_validator("allowed_roots")
    @classmethod
    def _absolute(cls, value: tuple[Path, ...] | None) -> tuple[Path, ...] | None:
        if value is None:
            return None
        return tuple(Path(os.path.realpath(Path(p).expanduser())) for p in value)

    def spill_dir(self) -> Path:
        """The folder spilled images live in (``<cache_dir>/images``), resolved."""
        env = os.environ
        return _spill_dir(
            self.cache_dir,
            env.get("SEAL_AGENT_CACHE_DIR"),
            env.get("XDG_CACHE_HOME"),
            env.get("HOME"),
        )


@functools.lru_cache(maxsize=64)
def _spill_dir(
    cache_dir: Path | None, env_dir: str | None, xdg: str | None, home: str | None
) -> Path:
    """Resolved once per setting (every image load asks for it)."""
    base = cache_dir.expanduser() if cache_dir else default_cache_dir()
    return Path(os.path.realpath(base)) / "images"


__all__ = [
    "DEFAULT_FORMATS",
    "DEFAULT_MAX_DECODED_BYTES",
    "DEFAULT_MAX_DOWNLOAD_BYTES",
    "DEFAULT_MAX_FILE_BYTES",
    "DEFAULT_MAX_IMAGE_PIXELS",
    "DEFAULT_SPILL_MAX_BYTES",
    "DEFAULT_SPILL_RETENTION_S",
    "ImagePolicy",
    "default_cache_dir",
]
