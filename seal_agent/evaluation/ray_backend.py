"""Spread a run's items over a Ray cluster.

Each actor builds its own copy of the models from the run's (picklable) ``ModelSpec``
on its own GPU or CPU and reads each item's image itself from the path in the item, so
the data folder (and the image cache for HR-Bench) must be visible to every node, e.g.
on a shared file system. The driver only collects records and appends them to the same
JSONL file a local run writes, so resume and the report work unchanged.

``ray_address``: ``local`` starts a private local instance (``ray_num_cpus`` CPUs);
``auto`` joins the cluster this machine belongs to; ``ray://head:10001`` connects a
client to a remote one.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seal_agent.errors import SealError
from seal_agent.evaluation.records import ItemRecord

if TYPE_CHECKING:
    from seal_agent.evaluation.run import EvalSpec, Task


class RayUnavailableError(SealError, ImportError):
    """``--ray`` was asked for but Ray is not installed."""


class EvalActor:
    """One copy of the models; answers items sent to it, one at a time."""

    def __init__(self, spec: EvalSpec) -> None:
        from seal_agent.evaluation.run import AnswererSet

        self._order = spec.order
        self._answerers = AnswererSet(spec.models, spec.systems)

    def answer(self, task: Task) -> dict[str, Any]:
        from seal_agent.evaluation.run import answer_item

        system, seed, item = task
        record = answer_item(
            self._answerers.get(system, seed), system.name, seed, item, self._order
        )
        return record.model_dump(mode="json")


def _package_root() -> str:
    """The folder this ``seal_agent`` was imported from, for a local instance's workers."""
    return str(Path(__file__).resolve().parents[2])


def _init_ray(ray: Any, spec: EvalSpec) -> bool:
    """Connect (or start); True when this call started Ray and must shut it down."""
    if ray.is_initialized():
        return False
    if spec.ray_address in (None, "local"):
        path = os.pathsep.join(p for p in (_package_root(), os.environ.get("PYTHONPATH")) if p)
        ray.init(
            num_cpus=spec.ray_num_cpus,
            include_dashboard=False,
            runtime_env={"env_vars": {"PYTHONPATH": path}},
            log_to_driver=False,
        )
    else:
        ray.init(address=spec.ray_address, log_to_driver=False)
    return True


def _actor_count(ray: Any, spec: EvalSpec) -> int:
    if spec.ray_actors is not None:
        return spec.ray_actors
    resources = ray.cluster_resources()
    if spec.ray_gpus_per_actor > 0:
        return max(1, int(resources.get("GPU", 0) // spec.ray_gpus_per_actor))
    return max(1, int(resources.get("CPU", 1)))


def run_on_ray(tasks: Sequence[Task], spec: EvalSpec) -> Iterator[ItemRecord]:
    """Answer ``tasks`` on Ray actors, yielding records as they finish (any order)."""
    try:
        import ray
        from ray.util import ActorPool
    except ImportError as exc:
        raise RayUnavailableError("--ray needs Ray: pip install 'seal-agent[ray]'") from exc
    started = _init_ray(ray, spec)
    try:
        remote = ray.remote(num_cpus=1, num_gpus=spec.ray_gpus_per_actor)(EvalActor)
        count = min(_actor_count(ray, spec), len(tasks))
        pool: Any = ActorPool([remote.remote(spec) for _ in range(count)])
        for payload in pool.map_unordered(lambda actor, task: actor.answer.remote(task), tasks):
            yield ItemRecord.model_validate(payload)
    finally:
        if started:
            ray.shutdown()


__all__ = ["EvalActor", "RayUnavailableError", "run_on_ray"]
