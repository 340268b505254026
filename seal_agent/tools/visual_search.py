"""SEAL as a LangChain tool that any tool-calling agent can use.

The content an agent reads is short: the answer and one line per target with its box.
The artifact (kept out of the model's context by LangChain) holds what a program or UI
wants: boxes, PNG crops of the found targets and the run's trace. Errors come back as
tool messages the agent can read and act on, never as a crashed agent loop.

Inside a LangGraph agent the tool gets the agent's state and stream writer (LangGraph's
``ToolRuntime``): ``image="latest"`` names the user's photo in the conversation instead
of copying it, and every event of the search (``search_step`` ...) is relayed to the
agent's ``stream_mode="custom"``. The graph itself still runs in a thread of its own, so
its checkpoints never mix with the agent's.
"""

from __future__ import annotations

import asyncio
import functools
import os
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, cast

from langchain_core.tools import InjectedToolArg, StructuredTool, ToolException
from langgraph.graph.state import CompiledStateGraph
from langgraph.prebuilt import ToolRuntime
from PIL import Image
from pydantic import BaseModel, Field, ValidationError

from seal_agent.errors import SealError
from seal_agent.graph.builder import build_default_graph, graph_settings
from seal_agent.graph.configuration import SealConfig, merge_overrides
from seal_agent.imaging.content_blocks import image_from_block, is_image_block
from seal_agent.imaging.geometry import Box, crop_box_around
from seal_agent.imaging.loading import encode_image, load_image
from seal_agent.imaging.paths import caller_image_source
from seal_agent.imaging.policy import ImagePolicy
from seal_agent.imaging.pyramid import ImagePyramid
from seal_agent.text_arguments import check_text_arguments
from seal_agent.tools.conversation_images import (
    REFERENCE_HELP,
    messages_of,
    parse_image_reference,
    resolve_conversation_image,
)

#: LangGraph's ToolNode injects the agent's ``ToolRuntime`` (state, stream writer) into a
#: tool parameter named ``runtime``; hidden from the model, None outside an agent.
InjectedRuntime = Annotated[ToolRuntime | None, InjectedToolArg]

DEFAULT_NAME = "visual_search"
DEFAULT_DESCRIPTION = (
    "Answer a question about small details in a large image. The tool looks at the whole "
    "image, searches the full-resolution image for the objects it cannot make out (guided "
    "visual search, V*/SEAL), zooms in on them and answers. Use it for questions about "
    "small or distant objects (their colour, text, position). Returns the answer and, for "
    "each object searched for, its box [x1, y1, x2, y2] in pixels of the original image."
)


class VisualSearchInput(BaseModel):
    """Arguments of the ``visual_search`` tool."""

    image: str | dict[str, Any] = Field(
        description=(
            "the image: an image already in this conversation, named by reference: "
            f"{REFERENCE_HELP}; or a local file path, or an http(s) URL where downloads are "
            "enabled. Never copy image data into this argument."
        ),
    )
    question: str = Field(description="the question about the image", min_length=1)
    targets: list[str] | None = Field(
        None,
        description=(
            "optional: names of the objects to search for (e.g. ['red car']); when given, "
            "the search starts at once without asking which objects are needed"
        ),
    )


#: Longest side of a crop in the artifact. A found box can be most of the image (a large
#: object, or a model's runaway box): cut at full resolution it would be a PNG of the
#: whole scan, hundreds of megabytes of base64 for a 200 MP image. Larger crops are
#: scaled down to this side; ``crop_size`` says what the PNG holds.
MAX_CROP_SIDE = 2048


def _crop(pyramid: ImagePyramid, region: Box) -> Image.Image:
    if max(region.width, region.height) <= MAX_CROP_SIDE:
        return pyramid.crop(region)
    view, _ = pyramid.view(region, MAX_CROP_SIDE)
    return view


def _content(out: dict[str, Any]) -> str:
    image = out.get("image") or {}
    lines = [str(out.get("answer", "")).strip()]
    searches: dict[str, Any] = out.get("searches") or {}
    if searches:
        lines.append(
            f"Objects searched (boxes [x1, y1, x2, y2] in pixels of the "
            f"{image.get('width')}x{image.get('height')} image):"
        )
    for target in out.get("targets") or []:
        outcome = searches.get(target)
        if outcome is None:
            continue
        if outcome["found"]:
            box = ", ".join(f"{v:.0f}" for v in outcome["box"])
            confidence = outcome["confidence"] or 0.0
            lines.append(f"- {target}: found at [{box}], confidence {confidence:.2f}")
        else:
            lines.append(f"- {target}: not found ({outcome['message']})")
    lines.extend(f"Warning: {w}" for w in out.get("warnings") or [])
    return "\n".join(line for line in lines if line)


def _artifact(
    out: dict[str, Any], crop_scale: float, include_crops: bool, policy: ImagePolicy
) -> dict[str, Any]:
    searches: dict[str, Any] = out.get("searches") or {}
    pyramid = None
    if include_crops and any(o["found"] for o in searches.values()):
        _, pyramid = load_image(out["image"], policy)
    targets = []
    for target in out.get("targets") or []:
        outcome = searches.get(target)
        if outcome is None:
            continue
        entry: dict[str, Any] = {
            key: outcome[key]
            for key in (
                "target",
                "found",
                "box",
                "confidence",
                "instances",
                "stop_reason",
                "message",
                "patches_scored",
            )
        }
        if pyramid is not None and outcome["found"] and outcome["box"]:
            region = crop_box_around(
                Box(*outcome["box"]), pyramid.width, pyramid.height, crop_scale
            )
            crop = _crop(pyramid, region)
            entry["crop_box"] = list(region)
            entry["crop_size"] = list(crop.size)
            entry["crop_png_base64"] = encode_image(crop, "png")
        targets.append(entry)
    return {
        "answer": out.get("answer"),
        "choice": out.get("choice"),
        "image": {k: out["image"].get(k) for k in ("uri", "width", "height", "source_url")},
        "targets": targets,
        "searches": searches,  # with each search's full patch trace
        "trace": out.get("events") or [],
        "warnings": out.get("warnings") or [],
    }


def _visualization(out: dict[str, Any]) -> str:
    """The picture of the run's searches (``seal_agent.viz``), PNG in base64."""
    from seal_agent.viz import render_search

    return encode_image(render_search(out, max_side=1280), "png")


def _image_input(image: str | dict[str, Any], runtime: Any) -> Any:
    """The graph's image input for the tool's ``image`` argument."""
    if isinstance(image, dict):
        if not is_image_block(image):
            raise ToolException(
                "image: an object must be an image content block (LangChain 'image', OpenAI "
                f"'image_url' or Anthropic 'image'); got type {image.get('type')!r}"
            )
        return image_from_block(image)
    if parse_image_reference(image) is not None:
        state = getattr(runtime, "state", None) if runtime is not None else None
        messages = messages_of(state) if state is not None else None
        return resolve_conversation_image(image, messages)
    return image


def _relay(runtime: Any) -> Callable[[Any], None]:
    """Forwards the graph's custom events to the calling agent's stream, if there is one."""
    writer = getattr(runtime, "stream_writer", None) if runtime is not None else None
    if writer is None:
        try:
            from langgraph.config import get_stream_writer

            writer = get_stream_writer()
        except (RuntimeError, KeyError):  # not inside a LangGraph run
            writer = None
    if writer is None:
        return lambda event: None
    call_id = getattr(runtime, "tool_call_id", None)
    write = cast(Callable[[Any], None], writer)

    def relay(event: Any) -> None:
        if call_id is not None and isinstance(event, dict):
            event = {**event, "tool_call_id": call_id}
        write(event)

    return relay


def _error_message(error: ToolException) -> str:
    return f"visual_search failed: {error}"


def _validation_message(error: ValidationError | Exception) -> str:
    if isinstance(error, ValidationError):
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()
        )
        return f"visual_search was called with invalid arguments: {problems}"
    return f"visual_search was called with invalid arguments: {error}"


@functools.cache
def _default_graph_reading(roots: tuple[Path, ...]) -> Any:
    """The default graph, as a graph that itself reads files only inside ``roots``.

    The tool checks a caller's path against its roots and hands the graph the real path;
    the module's default graph (``allowed_roots=None``) would read whatever that path
    names by the time it opens it (a directory swapped for a symlink in between). This
    one refuses it too, and shares the default models (``default_models``): no second
    load of the weights.
    """
    return build_default_graph(SealConfig(allowed_roots=list(roots)))


def create_visual_search_tool(
    graph: CompiledStateGraph[Any, Any, Any, Any] | None = None,
    *,
    config: SealConfig | dict[str, Any] | None = None,
    name: str = DEFAULT_NAME,
    description: str = DEFAULT_DESCRIPTION,
    include_crops: bool = True,
    allowed_roots: Sequence[str | os.PathLike[str]] = (),
    include_visualization: bool = False,
) -> StructuredTool:
    """A ``visual_search`` tool over a SEAL graph (the lazily built default if ``None``).

    ``config`` is passed to every call as the graph's runtime context (per-call settings;
    the graph's deployment settings cannot be changed through it). ``allowed_roots``:
    the folders whose files a caller may name by path (default none: only data URLs,
    image content blocks, the agent's own images by reference, and http(s) URLs where
    the graph allows them). ``include_visualization`` adds the picture of the search
    (``seal_agent.viz``) to the artifact as ``visualization_png_base64``. Each call runs
    in a fresh thread id, so calls never share state even when the graph has a
    checkpointer.
    """
    if config is not None and not isinstance(config, SealConfig | dict):
        raise TypeError(f"config must be a SealConfig or a dict, got {type(config).__name__}")
    crop_scale = (
        SealConfig.model_validate(config).crop_scale
        if isinstance(config, dict)
        else (config or SealConfig()).crop_scale
    )

    roots = tuple(Path(os.path.realpath(Path(r).expanduser())) for r in allowed_roots)
    built = graph_settings(graph) if graph is not None else None
    if built is not None and config is not None:
        merge_overrides(built, config)  # a deployment setting it changes is refused now

    def the_graph() -> Any:  # a compiled SEAL graph (its context is SealConfig)
        if graph is not None:
            return graph
        if roots:
            return _default_graph_reading(roots)
        from seal_agent.graph import graph as default_graph

        return default_graph  # reads no path a caller names: the tool refuses them all

    def policy() -> ImagePolicy:
        return (graph_settings(the_graph()) or SealConfig()).image_policy()

    def request(
        image: str | dict[str, Any], question: str, targets: list[str] | None, runtime: Any
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        check_text_arguments(question, targets)
        state: dict[str, Any] = {
            "image": caller_image_source(_image_input(image, runtime), roots),
            "question": question,
        }
        if targets is not None:
            state["targets"] = targets
        # A configurable of its own: a fresh thread, and none of the parent's checkpoint
        # keys, so the graph never writes into the agent's checkpoints. The parent's
        # callbacks (tracing) still reach it through the run's context.
        return state, {"configurable": {"thread_id": f"visual-search-{uuid.uuid4()}"}}

    def finish(out: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        try:
            artifact = _artifact(out, crop_scale, include_crops, policy())
            if include_visualization:
                artifact["visualization_png_base64"] = _visualization(out)
            return _content(out), artifact
        except (SealError, ValueError) as exc:
            raise ToolException(str(exc)) from exc

    def run(
        image: str | dict[str, Any],
        question: str,
        targets: list[str] | None = None,
        runtime: InjectedRuntime = None,
    ) -> tuple[str, dict]:
        relay = _relay(runtime)
        try:
            state, run_config = request(image, question, targets, runtime)
            out: dict[str, Any] = {}
            for mode, chunk in the_graph().stream(
                state, run_config, context=config, stream_mode=["custom", "values"]
            ):
                if mode == "custom":
                    relay(chunk)
                else:
                    out = chunk
        except (SealError, ValueError) as exc:
            raise ToolException(str(exc)) from exc
        return finish(out)

    async def arun(
        image: str | dict[str, Any],
        question: str,
        targets: list[str] | None = None,
        runtime: InjectedRuntime = None,
    ) -> tuple[str, dict]:
        relay = _relay(runtime)
        try:
            # Decoding a conversation's base64 image is CPU work: off the event loop.
            state, run_config = await asyncio.to_thread(request, image, question, targets, runtime)
            out: dict[str, Any] = {}
            async for mode, chunk in the_graph().astream(
                state, run_config, context=config, stream_mode=["custom", "values"]
            ):
                if mode == "custom":
                    relay(chunk)
                else:
                    out = chunk
        except (SealError, ValueError) as exc:
            raise ToolException(str(exc)) from exc
        return await asyncio.to_thread(finish, out)

    return StructuredTool.from_function(
        func=run,
        coroutine=arun,
        name=name,
        description=description,
        args_schema=VisualSearchInput,
        response_format="content_and_artifact",
        handle_tool_error=_error_message,
        handle_validation_error=_validation_message,
    )


def result_text(out: dict[str, Any]) -> str:
    """What the tool tells an agent about a finished run: the answer, one line per target."""
    return _content(out)


def result_artifact(
    out: dict[str, Any],
    crop_scale: float = 1.2,
    include_crops: bool = True,
    policy: ImagePolicy | None = None,
) -> dict[str, Any]:
    """The tool's artifact of a finished run: boxes, PNG crops (base64) and the trace.

    ``policy``: the image rules of the graph that produced ``out`` (crops are cut from
    its image under them); the default deployment's when not given.
    """
    return _artifact(out, crop_scale, include_crops, policy or SealConfig().image_policy())


__all__ = [
    "DEFAULT_DESCRIPTION",
    "VisualSearchInput",
    "create_visual_search_tool",
    "result_artifact",
    "result_text",
]
