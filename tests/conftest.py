"""Fixtures shared by the graph and tool tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_graph_fakes import make_scene

from seal_agent.graph import SealConfig


@pytest.fixture
def scene_path(tmp_path: Path) -> str:
    """A small two-square scene on disk (see ``test_graph_fakes.make_scene``)."""
    path = tmp_path / "scene.png"
    make_scene().save(path)
    return str(path)


@pytest.fixture
def config(tmp_path: Path) -> SealConfig:
    """Settings whose image cache lives in the test's own directory."""
    return SealConfig(cache_dir=tmp_path / "cache")
