"""One evaluation run: items x systems x seeds, resumable, concurrent, on Ray if asked.

Every finished item is appended to ``results.jsonl`` at once; ``resume`` skips what is
there. ``workers`` answers items concurrently in threads over one shared copy of each
model; ``ray_address`` hands items to Ray actors instead (see ``ray_backend``). The
report (table, JSON, figure) is written from the JSONL file, so it is the same however
the items were run and however often the run was interrupted.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from seal_agent.errors import SealError
from seal_agent.evaluation.dataset import EXPLORATORY_SUBSETS, SUBSETS, vstar_items
from seal_agent.evaluation.hrbench import load_hrbench
from seal_agent.evaluation.items import EvalItem
from seal_agent.evaluation.metrics import RowSummary, summarise_rows
from seal_agent.evaluation.protocol import Order, run_seeds, sample_items, shown_options
from seal_agent.evaluation.records import ItemRecord, Prediction
from seal_agent.evaluation.reporting import write_report
from seal_agent.evaluation.store import RunStore
from seal_agent.evaluation.systems import (
    Answerer,
    EvalSettingsError,
    ModelSpec,
    SystemSpec,
    build_answerers,
    default_systems,
    random_answerer,
)

Bench = Literal["vstar", "hrbench"]


class EvalSpec(BaseModel):
    """Everything that defines a run (``seal-agent eval``'s flags)."""

    model_config = ConfigDict(frozen=True)

    bench: Bench
    data: Path = Field(description="V*Bench folder or HR-Bench TSV")
    models: ModelSpec = Field(default_factory=ModelSpec)
    systems: tuple[SystemSpec, ...] = Field(default_factory=lambda: tuple(default_systems()))
    order: Order = "official"
    seeds: int = Field(1, ge=1)
    limit: int | None = Field(None, ge=1)
    exploratory: bool = Field(False, description="V*Bench: also the OCR / GPT4V-hard folders")
    workers: int = Field(1, ge=1)
    out: Path = Path("eval-out")
    resume: bool = False
    ray_address: str | None = Field(
        None, description="'local' starts a local Ray instance; 'auto' or ray://host:10001 joins"
    )
    ray_actors: int | None = Field(None, ge=1, description="actors (default: one per GPU/CPU)")
    ray_gpus_per_actor: float = Field(0.0, ge=0)
    ray_num_cpus: int | None = Field(None, ge=1, description="CPUs of a local Ray instance")

    def manifest(self) -> dict[str, Any]:
        """The settings a resumed run must share (not how it is executed)."""
        return self.model_dump(
            mode="json",
            include={
                "bench",
                "data",
                "models",
                "systems",
                "order",
                "seeds",
                "limit",
                "exploratory",
            },
        )


class EvalResult(BaseModel):
    rows: list[RowSummary]
    files: dict[str, Path]
    records: int
    ran: int = Field(description="items answered by this invocation (the rest were resumed)")


Task = tuple[SystemSpec, int, EvalItem]


def load_items(spec: EvalSpec) -> list[EvalItem]:
    if spec.bench == "hrbench":
        return load_hrbench(spec.data, cache_dir=spec.models.cache_dir)
    subsets = list(SUBSETS)
    if spec.exploratory:  # the folders the release ships; a copy without them is fine
        subsets += [s for s in EXPLORATORY_SUBSETS if (Path(spec.data) / s).is_dir()]
    return vstar_items(spec.data, subsets)


def answer_item(
    answerer: Answerer, system: str, seed: int, item: EvalItem, order: Order
) -> ItemRecord:
    """Run one system on one item; a model fault is recorded as an unanswered item."""
    shown, correct = shown_options(item, order, seed)
    cuda = _reset_gpu_peak()
    error: str | None = None
    started = time.perf_counter()
    try:
        prediction = answerer(item, shown)
    except SealError as exc:
        prediction, error = Prediction(choice=None), f"{type(exc).__name__}: {exc}"
    elapsed = time.perf_counter() - started
    return ItemRecord(
        system=system,
        seed=seed,
        item_id=item.id,
        category=item.category,
        cycle=item.cycle,
        shown_options=shown,
        correct_index=correct,
        prediction=prediction,
        correct=prediction.choice == correct,
        elapsed_s=round(elapsed, 4),
        peak_gpu_mb=_gpu_peak_mb() if cuda else None,
        error=error,
    )


def _reset_gpu_peak() -> bool:
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
            return True
    except Exception:  # no usable CUDA: peak memory is simply not measured
        return False
    return False


def _gpu_peak_mb() -> float:
    import torch

    return round(torch.cuda.max_memory_allocated() / 2**20, 1)


class AnswererSet:
    """The answerers of one process, built on first use (a resumed run may need none)."""

    def __init__(self, models: ModelSpec, systems: Sequence[SystemSpec]) -> None:
        self._models = models
        self._systems = list(systems)
        self._built: dict[str, Answerer] | None = None

    def get(self, system: SystemSpec, seed: int) -> Answerer:
        if system.kind == "random":
            return random_answerer(seed)
        if self._built is None:
            self._built = build_answerers(self._models, self._systems)
        return self._built[system.name]


def run_local(
    tasks: Sequence[Task], answerers: AnswererSet, order: Order, workers: int
) -> Iterator[ItemRecord]:
    """Answer ``tasks`` in ``workers`` threads, yielding records as they finish."""
    if workers == 1:
        for system, seed, item in tasks:
            yield answer_item(answerers.get(system, seed), system.name, seed, item, order)
        return
    pending: set[Future[ItemRecord]] = set()
    queue = iter(tasks)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="seal-eval") as pool:

        def submit() -> bool:
            task = next(queue, None)
            if task is None:
                return False
            system, seed, item = task
            answerer = answerers.get(system, seed)
            pending.add(pool.submit(answer_item, answerer, system.name, seed, item, order))
            return True

        # Keep at most 2x workers in flight: a kill loses little, memory stays bounded.
        while len(pending) < 2 * workers and submit():
            pass
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                pending.discard(future)
                yield future.result()
                submit()


def evaluate_run(
    spec: EvalSpec,
    *,
    progress: bool = True,
    on_record: Callable[[ItemRecord], None] | None = None,
) -> EvalResult:
    """Run (or resume) ``spec`` and write its report; returns the table's rows."""
    if len({s.name for s in spec.systems}) != len(spec.systems):
        raise EvalSettingsError("system names must be unique")
    items = sample_items(load_items(spec), spec.limit)
    store = RunStore(spec.out, spec.manifest(), resume=spec.resume)
    tasks: list[Task] = [
        (system, seed, item)
        for seed in run_seeds(spec.seeds)
        for system in spec.systems
        for item in items
        if not store.done((system.name, seed, item.id))
    ]
    records: Iterator[ItemRecord]
    if spec.ray_address is not None and tasks:
        from seal_agent.evaluation.ray_backend import run_on_ray

        records = run_on_ray(tasks, spec)
    else:
        records = run_local(tasks, AnswererSet(spec.models, spec.systems), spec.order, spec.workers)
    ran = 0
    with _progress_bar(len(tasks), progress) as bar:
        for record in records:
            store.append(record)
            ran += 1
            bar.update(1)
            if on_record is not None:
                on_record(record)
    keys = {
        (s.name, seed, i.id) for seed in run_seeds(spec.seeds) for s in spec.systems for i in items
    }
    finished = [r for r in store.records() if r.key in keys]
    rows = summarise_rows(finished, spec.bench, [s.name for s in spec.systems])
    bench = "V*Bench" if spec.bench == "vstar" else "HR-Bench"
    title = f"{bench}: {spec.data.name}, order {spec.order}"
    files = write_report(Path(spec.out), rows, spec.manifest(), title)
    return EvalResult(rows=rows, files=files, records=len(finished), ran=ran)


def _progress_bar(total: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(
        total=total, disable=not enabled, unit="item", desc="seal-agent eval", smoothing=0.1
    )


__all__ = [
    "AnswererSet",
    "Bench",
    "EvalResult",
    "EvalSettingsError",
    "EvalSpec",
    "answer_item",
    "evaluate_run",
    "load_items",
    "run_local",
]
