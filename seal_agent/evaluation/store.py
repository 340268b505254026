"""The run's results on disk: one JSONL line per finished (system, seed, item).

Each record is written, flushed and fsync'ed as soon as the item finishes, so a killed
run loses at most the items in flight. ``run.json`` beside it holds the protocol; a
resumed run must match it (otherwise its table would mix two protocols).
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from seal_agent.errors import SealError
from seal_agent.evaluation.records import ItemRecord

RESULTS_FILE = "results.jsonl"
MANIFEST_FILE = "run.json"


class RunStoreError(SealError, RuntimeError):
    """The output folder holds another run, or results that cannot be read."""


class RunStore:
    """Append-only results of one run under ``out``."""

    def __init__(self, out: str | Path, manifest: dict[str, Any], *, resume: bool) -> None:
        self.out = Path(out).expanduser()
        self.path = self.out / RESULTS_FILE
        self.manifest_path = self.out / MANIFEST_FILE
        self._lock = threading.Lock()
        self._records: dict[tuple[str, int, str], ItemRecord] = {}
        try:
            self.out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RunStoreError(f"cannot create the output folder {self.out}: {exc}") from exc
        has_results = self.path.is_file() and self.path.stat().st_size > 0
        if has_results and not resume:
            raise RunStoreError(
                f"{self.path} already holds results: pass --resume to continue that run, "
                "or choose another --out"
            )
        if resume and self.manifest_path.is_file():
            self._check_manifest(manifest)
        if resume and has_results:
            self._load()
        self.manifest_path.write_text(json.dumps(manifest, indent=2, default=str))

    def _check_manifest(self, manifest: dict[str, Any]) -> None:
        try:
            previous = json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise RunStoreError(f"cannot read {self.manifest_path}: {exc}") from exc
        current = json.loads(json.dumps(manifest, default=str))
        differing = sorted(
            k for k in set(previous) | set(current) if previous.get(k) != current.get(k)
        )
        if differing:
            raise RunStoreError(
                f"--resume: the run in {self.out} used other settings ({', '.join(differing)}); "
                "resume with the same settings or choose another --out"
            )

    def _load(self) -> None:
        """Read every complete line; cut off a last line torn by a kill mid-write."""
        lines = self.path.read_bytes().splitlines(keepends=True)
        good_end = 0
        for number, line in enumerate(lines, 1):
            last = number == len(lines)
            try:
                record = ItemRecord.model_validate_json(line)
            except ValidationError as exc:
                if last:
                    break
                raise RunStoreError(f"{self.path}:{number}: not a result line") from exc
            if last and not line.endswith(b"\n"):
                break
            self._records[record.key] = record
            good_end += len(line)
        if good_end != self.path.stat().st_size:
            with self.path.open("r+b") as fh:
                fh.truncate(good_end)

    def done(self, key: tuple[str, int, str]) -> bool:
        """Finished with an answer; an item a model fault left unanswered is run again
        on resume (its new line supersedes the old one)."""
        record = self._records.get(key)
        return record is not None and record.error is None

    def append(self, record: ItemRecord) -> None:
        line = record.model_dump_json() + "\n"
        with self._lock:
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(line)
                fh.flush()
                os.fsync(fh.fileno())
            self._records[record.key] = record

    def records(self) -> list[ItemRecord]:
        with self._lock:
            return list(self._records.values())


__all__ = ["MANIFEST_FILE", "RESULTS_FILE", "RunStore", "RunStoreError"]
