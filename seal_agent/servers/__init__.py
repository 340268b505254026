"""Servers that put SEAL where other programs already are: MCP (``seal-agent mcp``).

The LangGraph Server needs no code here: ``langgraph.json`` serves
``seal_agent.graph:graph``.
"""
