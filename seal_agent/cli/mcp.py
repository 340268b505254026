"""`seal-agent mcp`: serve ``visual_search`` to MCP clients (Claude Desktop, Cursor, ...).

``seal-agent mcp`` speaks MCP over stdio (what desktop clients launch);
``seal-agent mcp --transport http`` serves streamable HTTP on 127.0.0.1:8000/mcp.
Needs the ``mcp`` extra (``pip install 'seal-agent[mcp]'``).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from seal_agent.errors import SealError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``mcp`` to the subcommands."""
    mcp = sub.add_parser("mcp", help="serve visual_search over MCP (stdio or streamable HTTP)")
    mcp.add_argument("--transport", choices=("stdio", "http"), default="stdio")
    mcp.add_argument("--host", default="127.0.0.1", help="HTTP bind address (default 127.0.0.1)")
    mcp.add_argument("--port", type=int, default=8000, help="HTTP port (default 8000)")
    mcp.add_argument(
        "--allow-root",
        action="append",
        dest="roots",
        default=None,
        metavar="DIR",
        help="a directory whose images clients may name by path (repeatable; default: none, "
        "images come as base64)",
    )
    mcp.add_argument("--allow-urls", action="store_true", help="fetch http(s) image URLs")
    mcp.add_argument(
        "--shapeworld",
        action="store_true",
        help="use the offline shape-world reference models (default: $SEAL_AGENT_MODELS)",
    )
    mcp.set_defaults(handler=mcp_command)


def _check_default_weights() -> None:
    from seal_agent.cli.weights import ensure_weights_obtainable
    from seal_agent.models.defaults import DEFAULT_SEARCH_MODEL_ID, DEFAULT_VQA_MODEL_ID

    ensure_weights_obtainable(
        [
            os.environ.get("SEAL_AGENT_VQA_MODEL") or DEFAULT_VQA_MODEL_ID,
            os.environ.get("SEAL_AGENT_SEARCH_MODEL") or DEFAULT_SEARCH_MODEL_ID,
        ]
    )


def mcp_command(args: argparse.Namespace) -> int:
    if not 0 < args.port < 65536:
        raise SealError(f"--port must be between 1 and 65535, got {args.port}")
    for root in args.roots or []:
        if not Path(root).expanduser().is_dir():
            raise SealError(f"--allow-root {root}: not a directory")
    try:
        from seal_agent.servers.mcp import build_mcp_server
    except ImportError as exc:
        raise SealError(
            f"seal-agent mcp needs the MCP SDK ({exc}); install it with "
            "pip install 'seal-agent[mcp]'"
        ) from exc
    from seal_agent.graph import SealConfig, build_default_graph
    from seal_agent.graph.default_models import model_set_from_env

    if not args.shapeworld and model_set_from_env() == "transformers":
        _check_default_weights()  # fail now, not at a client's first call
    roots = [Path(r).expanduser().resolve() for r in args.roots or []]
    settings = SealConfig(allow_urls=args.allow_urls, allowed_roots=roots)
    graph = build_default_graph(settings, models="shapeworld") if args.shapeworld else None
    server = build_mcp_server(graph, allowed_roots=args.roots or (), allow_urls=args.allow_urls)
    if args.transport == "stdio":
        server.run("stdio")
    else:
        server.run("streamable-http", host=args.host, port=args.port)
    return 0
