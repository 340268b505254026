"""SEAL as an MCP server: ``visual_search`` for Claude Desktop, Cursor or any MCP client.

Built on the official ``mcp`` SDK (2.x, ``MCPServer``), served over stdio or streamable
HTTP. The client passes the image as base64 (an MCP image content object, a data URL or
bare base64), as a path inside the server's allowed roots, or as an http(s) URL where
the server allows downloads. The result carries the answer as text, each found target's
crop as image content and the boxes as structured content; the search's events arrive
live as the protocol's progress notifications.
"""

from __future__ import annotations

import asyncio
import binascii
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp_types import CallToolResult, ImageContent, TextContent, ToolAnnotations
from pydantic import Field

from seal_agent.errors import InvalidImageError, SealError
from seal_agent.graph import SealConfig, build_default_graph
from seal_agent.graph.builder import graph_settings
from seal_agent.graph.compiled import SealGraph
from seal_agent.graph.configuration import DeploymentSettingError, merge_overrides
from seal_agent.imaging.content_blocks import decode_base64, image_from_block, is_image_block
from seal_agent.imaging.paths import caller_image_source
from seal_agent.text_arguments import check_text_arguments
from seal_agent.tools.visual_search import DEFAULT_DESCRIPTION, result_artifact, result_text

IMAGE_HELP = (
    "the image: base64 data (bare, a data URL, or MCP image content "
    "{'type': 'image', 'data': ..., 'mimeType': ...}), a file path inside the server's "
    "allowed roots, or an http(s) URL where the server allows downloads"
)
SERVER_NAME = "seal-agent"
TOOL_NAME = "visual_search"
_BASE64 = re.compile(r"^[A-Za-z0-9+/=\s]+$")


class ClientImageSources:
    """Which image sources a client may name: paths only inside ``roots``, URLs if allowed."""

    def __init__(self, roots: Sequence[str | os.PathLike[str]], allow_urls: bool) -> None:
        self.roots = tuple(Path(os.path.realpath(Path(r).expanduser())) for r in roots)
        self.allow_urls = allow_urls

    def image_input(self, image: str | dict[str, Any]) -> bytes | str:
        """The graph's image input for a client's ``image`` argument, or a SealError."""
        if isinstance(image, dict):
            if not is_image_block(image):
                raise InvalidImageError(
                    "image: an object must be MCP image content "
                    "({'type': 'image', 'data': <base64>, 'mimeType': ...})"
                )
            return self._checked(image_from_block(image))
        text = image.strip()
        if not text:
            raise InvalidImageError("image is empty: pass base64 data, a path or a URL")
        if text[:5].lower() == "data:":
            return text
        if len(text) > 256 and _BASE64.match(text[:4096]):
            try:
                return decode_base64(text)
            except (binascii.Error, ValueError) as exc:
                raise InvalidImageError(f"image: the base64 data is not valid: {exc}") from exc
        return self._checked(text)

    def _checked(self, source: bytes | str) -> bytes | str:
        if isinstance(source, bytes) or source[:5].lower() == "data:":
            return source
        if re.match(r"^https?://", source, re.I):
            if not self.allow_urls:
                raise InvalidImageError(
                    "this server does not fetch image URLs (start it with --allow-urls); "
                    "send the image as base64 instead"
                )
            return source
        if re.match(r"^[a-z][a-z0-9+.-]*://", source, re.I):
            raise InvalidImageError(f"unsupported image URL scheme in {source[:40]!r}")
        # Real path inside a root, a regular file, one message for every refusal.
        return str(caller_image_source(source, self.roots))


def _progress_message(event: dict[str, Any]) -> str:
    kind = event.get("event", "event")
    if kind == "search_step":
        return (
            f"search_step {event.get('target')}: patch {event.get('step')} "
            f"{event.get('patch')} score {event.get('score')}"
        )
    details = ", ".join(f"{k}={v}" for k, v in event.items() if k not in ("event", "reply"))
    return f"{kind}: {details}"[:300]


def _structured(out: dict[str, Any], artifact: dict[str, Any]) -> dict[str, Any]:
    return {
        "answer": out.get("answer"),
        "choice": out.get("choice"),
        "image": {
            "width": artifact["image"].get("width"),
            "height": artifact["image"].get("height"),
        },
        "targets": [
            {k: v for k, v in t.items() if k != "crop_png_base64"} for t in artifact["targets"]
        ],
        "warnings": artifact["warnings"],
    }


def build_mcp_server(
    graph: SealGraph | None = None,
    *,
    config: SealConfig | None = None,
    allowed_roots: Sequence[str | os.PathLike[str]] = (),
    allow_urls: bool = False,
    include_crops: bool = True,
) -> MCPServer:
    """An MCP server exposing ``visual_search`` over a SEAL graph (the default if None).

    ``allowed_roots``: directories whose images clients may name by path (none: paths
    are refused and images come as base64). ``allow_urls``: whether http(s) images are
    fetched (the default graph is built with it; a given graph must have been built with
    the same ``SealConfig.allow_urls``). ``config``: per-call settings for a given graph.
    """
    settings = (config or SealConfig()).model_copy(update={"allow_urls": allow_urls})
    sources = ClientImageSources(allowed_roots, allow_urls)
    context: SealConfig | None = settings
    if graph is None:
        if "allowed_roots" not in settings.model_fields_set:
            # The graph enforces the server's roots too: a path checked here and swapped
            # for a symlink before the run reads it is still refused.
            settings = settings.model_copy(update={"allowed_roots": list(sources.roots)})
            context = settings
        the_graph = build_default_graph(settings)
    else:
        # A built graph's deployment settings are its own: sending allow_urls as every
        # call's context would be refused by each run, so a mismatch is refused now.
        the_graph, context = graph, config
        built = graph_settings(graph)
        if built is not None:
            if built.allow_urls != allow_urls:
                raise DeploymentSettingError(
                    f"build_mcp_server(allow_urls={allow_urls}) over a graph built with "
                    f"allow_urls={built.allow_urls}: build the graph with "
                    f"SealConfig(allow_urls={allow_urls})"
                )
            if config is not None:
                merge_overrides(built, config)  # a deployment setting it changes: refused now
    server: MCPServer = MCPServer(
        SERVER_NAME,
        instructions=(
            "visual_search answers questions about small details in large images with "
            "SEAL / V* guided visual search."
        ),
    )

    async def visual_search(
        image: Annotated[str | dict[str, Any], Field(description=IMAGE_HELP)],
        question: Annotated[str, Field(description="the question about the image")],
        ctx: Context,
        targets: Annotated[
            list[str] | None,
            Field(description="optional: objects to search for directly, e.g. ['red car']"),
        ] = None,
        options: Annotated[
            list[str] | None,
            Field(description="optional: multiple-choice answers; the reply names the chosen one"),
        ] = None,
    ) -> CallToolResult:
        try:
            check_text_arguments(question, targets, options)
            source = await asyncio.to_thread(sources.image_input, image)
            inputs: dict[str, Any] = {"image": source, "question": question}
            if targets is not None:
                inputs["targets"] = targets
            if options is not None:
                inputs["options"] = options
            out: dict[str, Any] = {}
            step = 0
            async for mode, chunk in the_graph.astream(
                inputs, context=context, stream_mode=["custom", "values"]
            ):
                if mode == "custom":
                    step += 1
                    await ctx.report_progress(step, None, _progress_message(chunk))
                else:
                    out = chunk
            artifact = await asyncio.to_thread(
                result_artifact,
                out,
                settings.crop_scale,
                include_crops,
                (graph_settings(the_graph) or settings).image_policy(),
            )
        except (SealError, ValueError) as exc:
            return CallToolResult(
                content=[TextContent(type="text", text=f"visual_search failed: {exc}")],
                is_error=True,
            )
        text = result_text(out)
        options_given = out.get("options") or []
        if out.get("choice") is not None and options_given:
            text = f"{text}\nChosen option: {options_given[out['choice']]}"
        content: list[TextContent | ImageContent] = [TextContent(type="text", text=text)]
        for target in artifact["targets"]:
            if target.get("crop_png_base64"):
                content.append(
                    ImageContent(
                        type="image", data=target["crop_png_base64"], mime_type="image/png"
                    )
                )
        return CallToolResult(content=content, structured_content=_structured(out, artifact))

    server.add_tool(
        visual_search,
        name=TOOL_NAME,
        description=f"{DEFAULT_DESCRIPTION} Found objects come back as image crops too.",
        annotations=ToolAnnotations(read_only_hint=True, open_world_hint=allow_urls),
    )
    return server


__all__ = ["IMAGE_HELP", "SERVER_NAME", "TOOL_NAME", "ClientImageSources", "build_mcp_server"]
