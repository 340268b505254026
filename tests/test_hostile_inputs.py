"""Hostile inputs, walked through ``graph.invoke``, the ``visual_search`` tool and the CLI.

Each row of ``CASES`` is one input an attacker (or a broken client) could send: bombs of
every mode and format, truncated and polyglot files, formats outside the allow-list,
traversal, symlink escapes, FIFOs, device files, NUL bytes, forged references, SSRF
forms, slow and oversized servers, and per-call attempts to change deployment settings.
Every surface it applies to must refuse it with the stated error class (the tool and the
CLI carry the class's message as text) and never hang or leak a traceback. The graph and
the tool are a deployment: local paths only inside ``allowed/``, URLs enabled but only
``localhost`` allow-listed. The CLI reads what its user names, so path rows that are
refusals only under roots do not apply to it.
"""

from __future__ import annotations

import asyncio
import http.server
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hostile_files as hf
import pytest
from langchain_core.messages import ToolMessage
from test_graph_fakes import ColourSearchModel, ScriptedChatModel, make_scene, seal_script

from seal_agent.cli import main
from seal_agent.errors import (
    ChatModelError,
    InvalidImageError,
    InvalidQuestionError,
    SealError,
    SearchModelError,
)
from seal_agent.graph import SealConfig, build_graph
from seal_agent.graph.configuration import DeploymentSettingError, SettingsError
from seal_agent.imaging.fetching import URLRefusedError
from seal_agent.imaging.paths import PathRefusedError
from seal_agent.tools import create_visual_search_tool

REFUSED = r"image path was refused: local images are read only from files inside the allowed"
NOT_PUBLIC = r"was refused: its host resolves to a non-public address"
NOT_ALLOWED_FORMAT = r"not an image in an allowed format"
OVER_PIXELS = r"above the limit of 200\.0 MP"
OVER_BYTES = r"MiB to decode, above the limit of 763 MiB"


@dataclass
class Env:
    root: Path
    allowed: Path
    outside: Path
    cache: Path
    port: int
    files: dict[str, Path] = field(default_factory=dict)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    png = b""

    def do_GET(self) -> None:
        port = self.server.server_address[1]
        if self.path == "/img.png":
            self._send(200, self.png, "image/png")
        elif self.path == "/redirect-inside":
            self._redirect(f"http://127.0.0.1:{port}/img.png")
        elif self.path == "/loop":
            self._redirect("/loop")
        elif self.path == "/html":
            self._send(200, b"<html><body>not an image</body></html>", "text/html")
        elif self.path == "/big":
            self._send(200, b"\x89PNG\r\n\x1a\n" + b"\x00" * 3_000_000, "image/png")
        elif self.path == "/slow":
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            try:
                for _ in range(1000):
                    self.wfile.write(b"\x00")
                    self.wfile.flush()
                    time.sleep(0.5)
            except OSError:
                pass
        else:
            self._send(404, b"no", "text/plain")

    def _send(self, status: int, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _redirect(self, where: str) -> None:
        self.send_response(302)
        self.send_header("Location", where)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    root = tmp_path_factory.mktemp("hostile")
    allowed, outside, cache = root / "allowed", root / "outside", root / "cache"
    for folder in (allowed, outside, cache):
        folder.mkdir()
    scene = make_scene()
    scene.save(allowed / "good.png")
    scene.save(outside / "secret.png")
    _Handler.png = (allowed / "good.png").read_bytes()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    e = Env(root, allowed, outside, cache, server.server_address[1])
    files = {
        "png_1bit_900mp": hf.png(30000, 30000, 1, 0),
        "png_rgb_400mp": hf.png(20000, 20000),
        "png_16bit_grey": hf.png(13000, 13000, 16, 0),
        "png_16bit_rgba": hf.png(12000, 12000, 16, 6),
        "png_grey_alpha": hf.png(12000, 10000, 8, 4),
        "png_palette_alpha": hf.png_palette_with_alpha(12000, 11000),
        "png_huge_width": hf.png(2**31 - 1, 1),
        "png_zero_size": hf.png(0, 0),
        "jpeg_4gp": hf.jpeg(65000, 65000),
        "gif_4gp": hf.gif(65535, 65535),
        "bmp_2gp": hf.bmp(50000, 50000),
        "tiff_3gp": hf.tiff(60000, 60000),
        "tiff_16bit": hf.tiff(13000, 13000, "I;16"),
        "webp_268mp": hf.webp(16384, 16384),
        "eps": hf.EPS,
        "svg": hf.SVG,
        "pdf": hf.PDF,
        "gif_html_polyglot": hf.GIF_HTML_POLYGLOT,
        "ico": hf.other_format("ICO"),
        "pcx": hf.other_format("PCX"),
        "tga": hf.other_format("TGA"),
        "ppm": hf.other_format("PPM"),
        "sgi": hf.other_format("SGI"),
        "xbm": hf.other_format("XBM"),
        "dds": hf.other_format("DDS"),
        "truncated_png": _Handler.png[: len(_Handler.png) // 2],
        "truncated_jpeg": hf.jpeg(64, 64)[:200],
        "png_signature_only": b"\x89PNG\r\n\x1a\n",
        "jpeg_soi_only": b"\xff\xd8\xff",
        "empty": b"",
        "text": b"just some text, no image here\n",
        "random": os.urandom(4096),
    }
    for name, data in files.items():
        path = allowed / f"{name}.img"
        path.write_bytes(data)
        e.files[name] = path
    os.mkfifo(allowed / "fifo.png")
    (allowed / "folder.png").mkdir()
    (allowed / "escape.png").symlink_to(outside / "secret.png")
    (allowed / "dev_zero.png").symlink_to("/dev/zero")
    yield e
    server.shutdown()
    server.server_close()


@dataclass(frozen=True)
class Case:
    """One hostile input; ``image`` builds the input's image from the environment."""

    name: str
    image: Callable[[Env], Any]
    error: type[Exception]
    message: str
    surfaces: tuple[str, ...] = ("graph", "tool", "cli")
    #: What the CLI (no allowed roots, URLs off) says instead, where it differs.
    cli_message: str | None = None
    inputs: dict[str, Any] = field(default_factory=dict)


def _file(name: str) -> Callable[[Env], str]:
    return lambda e: str(e.files[name])


def _bomb(name: str, message: str) -> Case:
    return Case(name, _file(name), InvalidImageError, message)


def _ref(**fields: Any) -> Callable[[Env], dict[str, Any]]:
    def make(e: Env) -> dict[str, Any]:
        return {k: (v(e) if callable(v) else v) for k, v in fields.items()}

    return make


def _url(path: str, host: str = "127.0.0.1") -> Callable[[Env], str]:
    return lambda e: e.url(path, host)


URL_ONLY = ("graph", "tool")
CASES: list[Case] = [
    # -- decompression bombs of every mode and format: refused from the header ------------
    _bomb("png_1bit_900mp", r"30000x30000 = 900\.0 MP, " + OVER_PIXELS),
    _bomb("png_rgb_400mp", OVER_PIXELS),
    _bomb("png_16bit_grey", r"mode I;16\) would take 806 " + OVER_BYTES),
    _bomb("png_16bit_rgba", r"mode RGBA\) would take 1099 " + OVER_BYTES),
    _bomb("png_grey_alpha", r"mode LA\) would take 916 " + OVER_BYTES),
    _bomb("png_palette_alpha", r"mode P\) would take 1133 " + OVER_BYTES),
    _bomb("png_huge_width", r"above the limit|cannot open|allowed format"),
    _bomb("png_zero_size", r"no pixels|allowed format|cannot open"),
    _bomb("jpeg_4gp", r"65000x65000 = 4225\.0 MP, " + OVER_PIXELS),
    _bomb("gif_4gp", OVER_PIXELS),
    _bomb("bmp_2gp", OVER_PIXELS),
    _bomb("tiff_3gp", OVER_PIXELS),
    _bomb("tiff_16bit", r"mode I;16\) would take 806 " + OVER_BYTES),
    _bomb("webp_268mp", r"decompression bomb|" + OVER_PIXELS),
    # -- formats outside the allow-list (EPS would start Ghostscript) --------------------
    *(
        _bomb(name, NOT_ALLOWED_FORMAT)
        for name in ("eps", "svg", "pdf", "gif_html_polyglot", "ico", "pcx", "tga", "ppm")
    ),
    *(_bomb(name, NOT_ALLOWED_FORMAT) for name in ("sgi", "xbm", "dds", "text", "random")),
    # -- truncated and empty files --------------------------------------------------------
    _bomb("truncated_png", r"corrupt or truncated"),
    _bomb("truncated_jpeg", r"corrupt or truncated|cannot open"),
    _bomb("png_signature_only", r"allowed format|cannot open|corrupt"),
    _bomb("jpeg_soi_only", r"allowed format|cannot open|corrupt"),
    _bomb("empty", r"empty \(zero bytes\)"),
    # -- paths: traversal, escapes, special files; one message for all under roots -------
    Case("outside_roots", lambda e: str(e.outside / "secret.png"), PathRefusedError, REFUSED,
         ("graph", "tool")),
    Case("dotdot_traversal", lambda e: f"{e.allowed}/../outside/secret.png", PathRefusedError,
         REFUSED, ("graph", "tool")),
    Case("symlink_escape", lambda e: str(e.allowed / "escape.png"), PathRefusedError, REFUSED,
         ("graph", "tool")),
    Case("missing_inside_roots", lambda e: str(e.allowed / "nope.png"), PathRefusedError,
         REFUSED, cli_message=r"image file not found"),
    Case("fifo", lambda e: str(e.allowed / "fifo.png"), PathRefusedError, REFUSED,
         cli_message=r"image path is not a file"),
    Case("directory", lambda e: str(e.allowed / "folder.png"), PathRefusedError, REFUSED,
         cli_message=r"image path is not a file"),
    Case("dev_zero_symlink", lambda e: str(e.allowed / "dev_zero.png"), PathRefusedError,
         REFUSED, cli_message=r"image path is not a file"),
    Case("dev_zero", lambda e: "/dev/zero", PathRefusedError, REFUSED,
         cli_message=r"image path is not a file"),
    Case("etc_passwd", lambda e: "/etc/passwd", PathRefusedError, REFUSED, ("graph", "tool")),
    Case("proc_environ", lambda e: "/proc/self/environ", PathRefusedError, REFUSED,
         ("graph", "tool")),
    Case("home_tilde", lambda e: "~/.ssh/id_rsa", PathRefusedError, REFUSED, ("graph", "tool")),
    Case("nul_byte", lambda e: f"{e.allowed}/good.png\x00.txt", PathRefusedError, REFUSED,
         cli_message=r"NUL byte"),
    Case("windows_path", lambda e: "C:\\Windows\\win.ini", PathRefusedError, REFUSED,
         cli_message=r"image file not found"),
    Case("file_url", lambda e: f"file://{e.outside}/secret.png", InvalidImageError,
         r"unsupported image URL scheme"),
    Case("ftp_url", lambda e: "ftp://127.0.0.1/x.png", InvalidImageError,
         r"unsupported image URL scheme"),
    Case("long_base64_without_prefix", lambda e: "QUFB" * 2000, InvalidImageError,
         r"neither an existing file nor a URL"),
    Case("bad_data_url", lambda e: "data:image/png,notbase64", InvalidImageError,
         r"data:image/png;base64"),
    Case("data_url_bomb", lambda e: "data:image/png;base64,"
         + __import__("base64").b64encode(hf.png(30000, 30000, 1, 0)).decode(),
         InvalidImageError, OVER_PIXELS),
    # -- forged ImageRefs (graph input or checkpoint; the tool takes no refs) ------------
    Case("ref_memory_outside_cache", _ref(uri=lambda e: str(e.outside / "secret.png"),
         origin="memory"), PathRefusedError, REFUSED, ("graph",)),
    Case("ref_path_outside_roots", _ref(uri=lambda e: str(e.outside / "secret.png"),
         origin="path"), PathRefusedError, REFUSED, ("graph",)),
    Case("ref_wrong_digest", _ref(uri=lambda e: str(e.allowed / "good.png"), origin="path",
         digest="0" * 64), InvalidImageError, r"does not match the content hash", ("graph",)),
    Case("ref_file_url", _ref(uri="file:///etc/passwd", origin="path"), InvalidImageError,
         r"absolute local path", ("graph",)),
    Case("ref_relative_traversal", _ref(uri="../../../../etc/passwd", origin="path"),
         InvalidImageError, r"absolute local path", ("graph",)),
    Case("ref_bad_digest", _ref(uri="/x.png", origin="memory", digest="zz"),
         InvalidImageError, r"not a sha256 hex digest", ("graph",)),
    Case("ref_bad_origin", _ref(uri="/x.png", origin="evil"), InvalidImageError,
         r"origin must be one of", ("graph",)),
    Case("ref_url_to_file", _ref(uri="file:///etc/passwd", origin="url"), InvalidImageError,
         r"must be http\(s\)", ("graph",)),
    Case("ref_url_loopback", _ref(uri=_url("/img.png"), origin="url"), URLRefusedError,
         NOT_PUBLIC, ("graph",)),
    Case("ref_fifo", _ref(uri=lambda e: str(e.allowed / "fifo.png"), origin="path"),
         PathRefusedError, REFUSED, ("graph",)),
    Case("ref_nul", _ref(uri="/tmp/a\x00b", origin="path"), PathRefusedError, REFUSED,
         ("graph",)),
    Case("ref_not_a_string", _ref(uri=5, origin="path"), InvalidImageError,
         r"unsupported image input|not an image reference", ("graph",)),
    # -- SSRF: every form of an inside address, and redirects to one --------------------
    Case("url_loopback", _url("/img.png"), URLRefusedError, NOT_PUBLIC, URL_ONLY),
    Case("url_decimal", _url("/img.png", "2130706433"), URLRefusedError, NOT_PUBLIC, URL_ONLY),
    Case("url_octal", _url("/img.png", "0177.0.0.1"), URLRefusedError, NOT_PUBLIC, URL_ONLY),
    Case("url_hex", _url("/img.png", "0x7f.0.0.1"), URLRefusedError, NOT_PUBLIC, URL_ONLY),
    Case("url_short", _url("/img.png", "127.1"), URLRefusedError, NOT_PUBLIC, URL_ONLY),
    Case("url_ipv6_loopback", _url("/img.png", "[::1]"), URLRefusedError, NOT_PUBLIC, URL_ONLY),
    Case("url_ipv4_mapped", _url("/img.png", "[::ffff:127.0.0.1]"), URLRefusedError,
         NOT_PUBLIC, URL_ONLY),
    Case("url_unspecified", _url("/img.png", "0.0.0.0"), URLRefusedError, NOT_PUBLIC, URL_ONLY),
    Case("url_metadata", lambda e: "http://169.254.169.254/latest/meta-data/", URLRefusedError,
         NOT_PUBLIC, URL_ONLY),
    Case("url_private", lambda e: "http://10.0.0.1/x.png", URLRefusedError, NOT_PUBLIC,
         URL_ONLY),
    Case("url_cgnat", lambda e: "http://100.64.0.1/x.png", URLRefusedError, NOT_PUBLIC,
         URL_ONLY),
    Case("url_multicast", lambda e: "http://224.0.0.1/x.png", URLRefusedError, NOT_PUBLIC,
         URL_ONLY),
    Case("url_redirect_inside", _url("/redirect-inside", "localhost"), URLRefusedError,
         NOT_PUBLIC, URL_ONLY),
    Case("url_redirect_loop", _url("/loop", "localhost"), InvalidImageError,
         r"more than 5 redirects", URL_ONLY),
    Case("url_slow_server", _url("/slow", "localhost"), InvalidImageError,
         r"did not arrive within 1\.5 s", URL_ONLY),
    Case("url_oversized", _url("/big", "localhost"), InvalidImageError,
         r"larger than 1,000,000 bytes", URL_ONLY),
    Case("url_html", _url("/html", "localhost"), InvalidImageError, NOT_ALLOWED_FORMAT,
         URL_ONLY),
    Case("url_404", _url("/missing", "localhost"), InvalidImageError, r"HTTP 404", URL_ONLY),
    Case("url_closed_port", lambda e: "http://localhost:9/x.png", InvalidImageError,
         r"the connection failed", URL_ONLY),
    Case("url_unresolvable", lambda e: "http://no-such-host.invalid/x.png", InvalidImageError,
         r"does not resolve", URL_ONLY),
    Case("url_cli_disabled", _url("/img.png", "localhost"), URLRefusedError,
         r"image URLs are disabled", ("cli",),
         cli_message=r"is a URL and downloads are off: add --allow-urls"),
    # -- questions and options ------------------------------------------------------------
    Case("question_1mb", lambda e: str(e.allowed / "good.png"), InvalidQuestionError,
         r"above the limit of 10000", ("graph", "tool"), inputs={"question": "?" * 1_000_000}),
    Case("options_1000", lambda e: str(e.allowed / "good.png"), InvalidQuestionError,
         r"options must be a list of 2 to 26", ("graph",),
         inputs={"options": [f"o{i}" for i in range(1000)]}),
    Case("options_1mb_each", lambda e: str(e.allowed / "good.png"), InvalidQuestionError,
         r"of at most 10000 characters each", ("graph",),
         inputs={"options": ["x" * 1_000_000, "y" * 1_000_000]}),
]  # fmt: skip


def _config(env: Env) -> SealConfig:
    return SealConfig(
        allowed_roots=[env.allowed],
        cache_dir=env.cache,
        allow_urls=True,
        url_allowed_hosts=["localhost"],
        url_timeout_s=1.5,
        max_download_bytes=1_000_000,
    )


@pytest.fixture(scope="module")
def deployment(env: Env):
    graph = build_graph(ScriptedChatModel(script=seal_script()), ColourSearchModel(), _config(env))
    tool = create_visual_search_tool(graph=graph, allowed_roots=[env.allowed])
    return graph, tool


def _cases(surface: str) -> list[Any]:
    return [pytest.param(c, id=c.name) for c in CASES if surface in c.surfaces]


def test_the_table_has_at_least_sixty_hostile_inputs() -> None:
    assert len({c.name for c in CASES}) == len(CASES) >= 60


@pytest.mark.parametrize("case", _cases("graph"))
def test_graph_refuses(case: Case, env: Env, deployment) -> None:
    graph, _ = deployment
    inputs = {"image": case.image(env), "question": "What colour is the square?", **case.inputs}
    started = time.monotonic()
    with pytest.raises(case.error, match=case.message):
        graph.invoke(inputs)
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("case", _cases("tool"))
def test_tool_refuses(case: Case, env: Env, deployment) -> None:
    _, tool = deployment
    args = {"image": case.image(env), "question": "What colour is the square?", **case.inputs}
    message = tool.invoke({"type": "tool_call", "name": tool.name, "args": args, "id": "c1"})
    assert isinstance(message, ToolMessage)
    assert message.status == "error"
    assert message.content.startswith("visual_search failed: ")
    assert re.search(case.message, message.content), message.content
    assert "Traceback" not in message.content


@pytest.mark.parametrize("case", _cases("cli"))
def test_cli_refuses(
    case: Case, env: Env, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEAL_AGENT_CACHE_DIR", str(env.cache))
    code = main(["ask", case.image(env), "What colour is the square?", "--shapeworld", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("seal-agent: ")
    assert re.search(case.cli_message or case.message, err), err
    assert "Traceback" not in err


def test_one_message_for_every_refused_path(env: Env, deployment) -> None:
    """Existing, missing, special or outside: a caller learns nothing about the disk."""
    _, tool = deployment
    paths = [
        "/etc/passwd",
        "/etc/no-such-file",
        "/dev/zero",
        str(env.outside),
        str(env.allowed / "nope.png"),
        str(env.allowed / "fifo.png"),
        str(env.allowed / "escape.png"),
    ]
    contents = {
        tool.invoke(
            {"type": "tool_call", "name": tool.name, "args": {"image": p, "question": "q?"},
             "id": "x"}
        ).content
        for p in paths
    }  # fmt: skip
    assert len(contents) == 1


def test_allow_listed_url_and_allowed_root_succeed(env: Env, deployment) -> None:
    """The same deployment answers what it allows: the refusals are not blanket ones."""
    graph, tool = deployment
    out = graph.invoke({"image": env.url("/img.png", "localhost"), "question": "q?"})
    assert out["image"]["source_url"].startswith("http://localhost:")
    assert out["searches"]["red square"]["found"]
    message = tool.invoke(
        {"type": "tool_call", "name": tool.name,
         "args": {"image": str(env.allowed / "good.png"), "question": "q?"}, "id": "ok"}
    )  # fmt: skip
    assert message.status == "success"


@pytest.mark.parametrize(
    "override",
    [
        {"allow_urls": False},
        {"cache_dir": "/tmp/elsewhere"},
        {"allowed_roots": ["/"]},
        {"allowed_roots": None},
        {"url_allowed_hosts": ["0.0.0.0/0"]},
        {"max_image_pixels": 10**12},
        {"max_decoded_bytes": 10**12},
        {"image_formats": ["EPS"]},
        {"url_timeout_s": 3600},
        {"chat_timeout_s": None},
        {"spill_max_bytes": 10**15},
    ],
    ids=lambda o: next(iter(o)),
)
def test_a_call_cannot_change_a_deployment_setting(env: Env, deployment, override) -> None:
    graph, _ = deployment
    inputs = {"image": str(env.allowed / "good.png"), "question": "q?"}
    name = next(iter(override))
    with pytest.raises(DeploymentSettingError, match=f"'{name}', a deployment setting"):
        graph.invoke(inputs, context=override)
    with pytest.raises(DeploymentSettingError, match=name):
        graph.invoke(inputs, config={"configurable": {"seal": override}})


def test_per_call_search_settings_still_work_and_max_targets_is_capped(env: Env, deployment):
    graph, _ = deployment
    inputs = {"image": str(env.allowed / "good.png"), "question": "q?"}
    out = graph.invoke(inputs, context={"max_targets": 1, "allow_urls": True})  # same value: ok
    assert list(out["searches"]) == ["red square"]
    with pytest.raises(SettingsError, match="max_targets"):
        graph.invoke(inputs, context={"max_targets": 1000})
    with pytest.raises(SettingsError, match="max_targets"):
        graph.invoke(inputs, config={"configurable": {"seal": {"max_targets": 1000}}})
    with pytest.raises(DeploymentSettingError, match="allow_urls"):
        create_visual_search_tool(graph=graph, config={"allow_urls": False})


@pytest.mark.parametrize(
    "context",
    [{"foo": 1}, {"max_targets": 10**9}, {"search": {"deadline_s": float("nan")}}],
    ids=["unknown-field", "huge-max-targets", "nan-deadline"],
)
def test_a_bad_run_context_is_a_settings_error_sync_and_async(env: Env, deployment, context):
    # LangGraph would build the context with SealConfig(**context) and raise pydantic's
    # ValidationError from inside the run; LangGraph Server passes it to astream.
    graph, _ = deployment
    inputs = {"image": str(env.allowed / "good.png"), "question": "q?"}
    with pytest.raises(SettingsError, match="invalid SEAL settings for this call"):
        graph.invoke(inputs, context=context)
    with pytest.raises(SettingsError, match="invalid SEAL settings for this call"):
        asyncio.run(graph.ainvoke(inputs, context=context))


def test_a_run_context_never_makes_the_graph_read_a_profile_path(env: Env, deployment, tmp_path):
    graph, _ = deployment
    inputs = {"image": str(env.allowed / "good.png"), "question": "q?"}
    fifo = tmp_path / "profile.json"
    os.mkfifo(fifo)  # reading it would block this test forever
    for context in ({"search": {"thresholds": str(fifo)}}, {"search": {"thresholds": fifo}}):
        with pytest.raises(DeploymentSettingError, match="thresholds profile"):
            graph.invoke(inputs, context=context)


@pytest.mark.parametrize(
    "search", [{"max_calls": None}, {"max_calls": 10**9}, {"deadline_s": None}, {"deadline_s": 1e9}]
)
def test_a_call_may_lower_the_search_budget_but_never_raise_it(env: Env, deployment, search):
    graph, _ = deployment
    inputs = {"image": str(env.allowed / "good.png"), "question": "q?"}
    name = next(iter(search))
    with pytest.raises(DeploymentSettingError, match=f"search budget '{name}'"):
        graph.invoke(inputs, context={"search": search})
    with pytest.raises(DeploymentSettingError, match=f"search budget '{name}'"):
        graph.invoke(inputs, config={"configurable": {"seal": {"search": search}}})
    lowered = graph.invoke(inputs, context={"search": {"max_calls": 2, "deadline_s": 5.0}})
    assert all(o["patches_scored"] <= 2 for o in lowered["searches"].values())


def test_hostile_inputs_leave_no_spilled_or_temporary_files(env: Env) -> None:
    """Only inputs that decoded are spilled; failed writes leave no temporary files."""
    spilled = [p for p in env.cache.rglob("*") if p.is_file()]
    assert all(not p.name.startswith(".spill-") for p in spilled)
    assert len(spilled) <= 1  # at most the allow-listed download of good.png


# -- concurrency: one shared graph and model, many callers --------------------------------
def _inputs(i: int, env: Env) -> dict[str, Any]:
    target = ("red square", "blue square")[i % 2]
    return {"image": str(env.allowed / "good.png"), "question": f"q{i}?", "targets": [target]}


def _summary(out: dict[str, Any]) -> tuple[Any, ...]:
    ((target, outcome),) = out["searches"].items()
    return out["question"], target, outcome["found"], tuple(outcome["box"] or ())


@pytest.mark.slow
def test_64_threads_and_64_tasks_on_one_model_match_serial_runs(env: Env, deployment) -> None:
    graph, _ = deployment
    serial = [_summary(graph.invoke(_inputs(i, env))) for i in range(64)]
    results: list[Any] = [None] * 64

    def call(i: int) -> None:
        results[i] = _summary(graph.invoke(_inputs(i, env)))

    threads = [threading.Thread(target=call, args=(i,)) for i in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert results == serial

    async def many() -> list[Any]:
        outs = await asyncio.gather(*(graph.ainvoke(_inputs(i, env)) for i in range(64)))
        return [_summary(o) for o in outs]

    assert asyncio.run(many()) == serial
    assert len({s[3] for s in serial}) == 2  # both targets found, at their own boxes


def test_errors_are_seal_errors() -> None:
    for case in CASES:
        assert issubclass(case.error, SealError)


# -- hostile models: adversarial replies, hangs, malformed search output -----------------
class _Hanging(ScriptedChatModel):
    def _generate(self, messages, stop=None, run_manager=None, **kwargs):  # type: ignore[override]
        time.sleep(3)
        return super()._generate(messages, stop, run_manager, **kwargs)


class _GarbageSearch(ColourSearchModel):
    def __init__(self, garbage: Callable[[int, int], object]) -> None:
        super().__init__()
        self.garbage = garbage

    def predict(self, views, phrases):  # type: ignore[override]
        return self.garbage(len(views), len(phrases))


def _raise(text: str, messages: Any) -> str:
    raise RuntimeError("provider exploded")


def _pred(heatmap: Any = None, detections: Any = ()) -> Any:
    import numpy as np

    from seal_agent.search import PatchPrediction

    hm = np.zeros((4, 4), np.float32) if heatmap is None else heatmap
    return PatchPrediction(detections=detections, heatmap=hm)


def _det(box: Any, score: Any) -> Any:
    from seal_agent.search import Detection

    return Detection(box, score)  # unchecked on purpose: the search must catch it


MODEL_FAULTS = [
    pytest.param("chat", _raise, ChatModelError, r"failed while listing.*provider exploded",
                 id="chat_raises"),
    pytest.param("hang", seal_script(), ChatModelError, r"did not answer within 0\.5 s",
                 id="chat_hangs"),
    pytest.param("search", lambda v, p: None, SearchModelError, r"returned NoneType results",
                 id="search_returns_none"),
    pytest.param("search", lambda v, p: [[]] * v, SearchModelError, r"malformed result",
                 id="search_wrong_nesting"),
    pytest.param("search", lambda v, p: [["x"] * p] * v, SearchModelError, r"expected Patch",
                 id="search_not_a_prediction"),
    pytest.param("search", lambda v, p: [[_pred(__import__("numpy").full((4, 4), float("nan")))]
                 * p] * v, SearchModelError, r"NaN or inf", id="search_nan_heatmap"),
    pytest.param("search", lambda v, p: [[_pred(__import__("numpy").zeros(4))] * p] * v,
                 SearchModelError, r"not a 2-D array", id="search_1d_heatmap"),
    pytest.param("search", lambda v, p: [[_pred(detections=(_det((1, 2, 3), 0.9),))] * p] * v,
                 SearchModelError, r"a box has 3 coordinates", id="search_3_number_box"),
    pytest.param("search", lambda v, p: [[_pred(detections=(_det(("a",) * 4, 0.9),))] * p] * v,
                 SearchModelError, r"coordinates must be numbers", id="search_string_coords"),
    pytest.param("search", lambda v, p: [[_pred(detections=None)] * p] * v, SearchModelError,
                 r"detections is NoneType", id="search_detections_none"),
    pytest.param("search", lambda v, p: [[_pred(__import__("numpy").array([["a", "b"]] * 2,
                 dtype=object))] * p] * v, SearchModelError, r"heatmap is not numeric",
                 id="search_object_heatmap"),
    pytest.param("search", lambda v, p: [[_pred(detections=(_det((1, 2, 5, 6), 1.7),))] * p]
                 * v, SearchModelError, r"outside the model's range", id="search_score_above_1"),
    pytest.param("search", lambda v, p: [[_pred(detections=(_det((1, 2, 5, 6), "high"),))] * p]
                 * v, SearchModelError, r"a score is str", id="search_string_score"),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "behaviour", "error", "message"), MODEL_FAULTS)
def test_model_faults_end_the_run_with_a_reason(env: Env, kind, behaviour, error, message):
    chat: ScriptedChatModel = ScriptedChatModel(script=seal_script())
    search: ColourSearchModel = ColourSearchModel()
    config = _config(env).model_copy(update={"chat_timeout_s": 0.5})
    if kind == "chat":
        chat = ScriptedChatModel(script=behaviour)
    elif kind == "hang":
        chat = _Hanging(script=behaviour)
    else:
        search = _GarbageSearch(behaviour)
    graph = build_graph(chat, search, config)
    inputs = {"image": str(env.allowed / "good.png"), "question": "q?"}
    started = time.monotonic()
    with pytest.raises(error, match=message):
        graph.invoke(inputs)
    with pytest.raises(error, match=message):  # the same under ainvoke
        asyncio.run(graph.ainvoke(inputs))
    assert time.monotonic() - started < 15
    if kind == "search":  # raise_on_search_error=False holds: the run answers anyway
        tolerant = build_graph(
            chat, search, config.model_copy(update={"raise_on_search_error": False})
        )
        out = tolerant.invoke(inputs)
        assert all(o["stop_reason"] == "model_error" for o in out["searches"].values())


ADVERSARIAL_REPLIES = {
    "answer_then_spaces": "answer" + " " * 1_000_000,
    "answer_is_spaces": "The answer is" + " " * 1_000_000 + "x",
    "missing_then_spaces": "missing" + " " * 1_000_000 + "or",
    "list_of_empty_items": "missing or unclear:" + " ," * 500_000,
    "list_of_newlines": "missing or unclear:\n" + "\n " * 500_000,
    "prepositions_without_place": "under " * 166_000 + "image",
    "determiners": "on the " * 142_000,
    "cannot_spaces": "can" + " " * 1_000_000 + "not answer",
    "bullets": "missing or unclear: " + "-" * 1_000_000,
    "parentheses": "(" * 1_000_000,
}


@pytest.mark.parametrize("reply", list(ADVERSARIAL_REPLIES.values()), ids=list(ADVERSARIAL_REPLIES))
def test_1mb_adversarial_replies_parse_in_linear_time(reply: str) -> None:
    from seal_agent.graph.parsing import (
        parse_context_cue,
        parse_option_choice,
        parse_target_listing,
    )

    for parse in (
        lambda: parse_target_listing(reply),
        lambda: parse_context_cue(reply, "star"),
        lambda: parse_option_choice(reply, ["red", "blue", "green"]),
    ):
        started = time.perf_counter()
        parse()
        assert time.perf_counter() - started < 1.0


def test_a_1mb_reply_is_capped_and_the_run_answers(env: Env) -> None:
    flood = "missing or unclear: red square" + " ," * 500_000

    def script(text: str, messages: Any) -> str:
        return flood if "Additional visual information" not in text else "x" * 1_000_000

    graph = build_graph(ScriptedChatModel(script=script), ColourSearchModel(), _config(env))
    started = time.monotonic()
    out = graph.invoke({"image": str(env.allowed / "good.png"), "question": "q?"})
    assert time.monotonic() - started < 10
    assert out["targets"] == ["red square"]
    assert len(out["answer"]) == 20_000  # SealConfig.max_reply_chars


def test_a_ref_forged_into_a_checkpoint_is_refused_on_resume(env: Env) -> None:
    """A checkpoint is outside data too: its ImageRef is re-validated when the run resumes."""
    from langgraph.checkpoint.memory import InMemorySaver

    graph = build_graph(
        ScriptedChatModel(script=seal_script()),
        ColourSearchModel(),
        _config(env),
        checkpointer=InMemorySaver(),
        interrupt_before=["search"],
    )
    thread = {"configurable": {"thread_id": "forged"}}
    graph.invoke({"image": str(env.allowed / "good.png"), "question": "q?"}, thread)
    state = graph.get_state(thread).values
    forged = {**state["image"], "uri": str(env.outside / "secret.png")}
    graph.update_state(thread, {"image": forged})
    with pytest.raises(PathRefusedError, match=REFUSED):
        graph.invoke(None, thread)
    swapped = {**state["image"], "digest": "f" * 64}
    graph.update_state(thread, {"image": swapped})
    with pytest.raises(InvalidImageError, match="does not match the content hash"):
        graph.invoke(None, thread)
