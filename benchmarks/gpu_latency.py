"""Latency and memory of the real model architectures on one 4000x3000 image.

Weights are random (nothing is downloaded): each architecture is built from its real
hub config, stored in ``benchmarks/configs/``. Speed and memory depend on the
architecture, the input sizes and the dtype, not on the weight values; decoding is
forced to its full length (``min_new_tokens``) so random weights cannot stop early.

Measured:

* OWLv2-B/16 search model through ``OwlSearchModel.predict`` (pre-processing, one
  forward pass, post-processing), on views cut from the image the way a search does
  (``ImagePyramid.view`` of the root's children and grandchildren): latency per batch
  and throughput (patches/s) at batch 1, 2, 4, 8 and 16 (one forward each), with target
  + context phrases.
* The VQA model (Qwen2.5-VL-7B by default, LLaVA-1.5-7B with ``--vqa llava-1.5-7b``):
  prefill of the whole image plus a question, and 32-token greedy decoding through
  ``generate`` and through the static decoder (CUDA graphs), with the image limited to
  ``DEFAULT_MAX_IMAGE_PIXELS`` as ``TransformersChatModel`` does.
* Peak GPU memory with the search model and the VQA model loaded together.

The anchor to beat: the reference SEAL needed ~27 GB and ~9 s per question (A100).

    python benchmarks/gpu_latency.py                      # CUDA, full size
    python benchmarks/gpu_latency.py --device cpu --tiny  # smoke test, seconds
    python benchmarks/gpu_latency.py --end-to-end         # whole questions (see end_to_end)
    python benchmarks/gpu_latency.py --end-to-end --device cpu --tiny --questions 2

Prints a table and writes JSON to ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# PyTorch's recommended allocator setting for processes whose tensor sizes vary (prompts,
# images, view batches): segments grow in place instead of fragmenting into new ones, so
# reserved memory stays near what tensors hold. Set before CUDA starts; a user's own
# setting wins. Recommended for the library on GPUs likewise (README).
os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")

import numpy as np
import torch
from PIL import Image
from transformers import StoppingCriteria, StoppingCriteriaList

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))
sys.path.insert(0, str(ROOT))  # cost_replay (end to end)

from seal_agent.imaging.geometry import Box, split_box  # noqa: E402
from seal_agent.imaging.pyramid import ImagePyramid  # noqa: E402
from seal_agent.models.chat import limit_pixels  # noqa: E402
from seal_agent.models.defaults import DEFAULT_MAX_IMAGE_PIXELS  # noqa: E402
from seal_agent.models.devices import dtype_name, resolve_device, resolve_dtype  # noqa: E402
from seal_agent.models.host_embeddings import move_input_embeddings_to_host  # noqa: E402
from seal_agent.models.owl import OwlSearchModel  # noqa: E402
from seal_agent.models.static_decode import (  # noqa: E402
    StaticDecoder,
    generate_with_static_decode,
)

CONFIGS = ROOT / "configs"
RESULTS = ROOT / "results"
IMAGE_SIZE = (4000, 3000)
OWL_BATCHES = (1, 2, 3, 4, 5, 6, 7, 8, 16)  # every size a search pass can have, and 16
NEW_TOKENS = 32
QUESTION_TOKENS = 40  # a V*Bench question with its options, roughly

# Shrunken versions of the real configs for the CPU smoke test (same code paths).
TINY: dict[str, dict[str, Any]] = {
    "owlv2-base-patch16-ensemble": {
        "projection_dim": 32,
        "text_config": {
            "hidden_size": 32,
            "intermediate_size": 37,
            "num_hidden_layers": 1,
            "num_attention_heads": 4,
        },
        "vision_config": {
            "hidden_size": 32,
            "intermediate_size": 37,
            "num_hidden_layers": 1,
            "num_attention_heads": 4,
            "image_size": 96,
        },
    },
    "llava-1.5-7b": {
        "text_config": {
            "vocab_size": 32064,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 4,
        },
        "vision_config": {
            "hidden_size": 32,
            "intermediate_size": 37,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "projection_dim": 32,
        },
    },
    "qwen2.5-vl-7b": {
        "text_config": {
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "rope_parameters": {
                "rope_type": "default",
                "mrope_section": [1, 1, 2],
                "rope_theta": 1000000.0,
            },
        },
        "vision_config": {
            "depth": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 4,
            "out_hidden_size": 32,
            "fullatt_block_indexes": [1],
        },
    },
}


# -- configs ------------------------------------------------------------------------------------
def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merged[key] = _merge(base[key], value)
        else:
            merged[key] = value
    return merged


def load_config(name: str, tiny: bool) -> Any:
    from transformers import AutoConfig

    raw = json.loads((CONFIGS / f"{name}.json").read_text())
    raw = {k: v for k, v in raw.items() if not k.startswith("_") and k != "architectures"}
    if tiny:
        raw = _merge(raw, TINY[name])
    model_type = raw.pop("model_type")
    return AutoConfig.for_model(model_type, **raw)


# -- timing -------------------------------------------------------------------------------------
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Any, device: torch.device, repeats: int, warmup: int = 2) -> list[float]:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        samples.append(time.perf_counter() - start)
    return samples


def benchmark_image(seed: int = 0) -> Image.Image:
    """A 4000x3000 photo-like image: smooth colour field plus noise (not all-constant)."""
    rng = np.random.default_rng(seed)
    w, h = IMAGE_SIZE
    coarse = rng.integers(0, 256, (h // 100 + 1, w // 100 + 1, 3), dtype=np.uint8)
    image = Image.fromarray(coarse).resize((w, h), Image.Resampling.BILINEAR)
    noise = rng.integers(0, 24, (h, w, 3), dtype=np.uint8)
    return Image.fromarray(np.asarray(image) // 2 + noise)


# -- search model -------------------------------------------------------------------------------
def _clip_tokenizer() -> Any:
    """An offline CLIP tokenizer (letters only); the benchmark only needs its shapes."""
    from transformers import CLIPTokenizer

    vocab = {"!": 0, "!</w>": 1, "<|startoftext|>": 2}
    for c in "abcdefghijklmnopqrstuvwxyz":
        vocab[c] = len(vocab)
        vocab[c + "</w>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=16, pad_token="!")


def build_owl(directory: Path, tiny: bool) -> Path:
    from transformers import Owlv2ForObjectDetection, Owlv2Processor
    from transformers.models.owlv2 import Owlv2ImageProcessorPil

    config = load_config("owlv2-base-patch16-ensemble", tiny)
    model = Owlv2ForObjectDetection(config)
    side = config.vision_config.image_size
    processor = Owlv2Processor(
        image_processor=Owlv2ImageProcessorPil(size={"height": side, "width": side}),
        tokenizer=_clip_tokenizer(),
    )
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory


def search_views(image: Image.Image, input_size: int, count: int) -> list[Image.Image]:
    """Views a search would score: the root's children, then its grandchildren."""
    pyramid = ImagePyramid(image)
    root = Box.full(pyramid.width, pyramid.height)
    patches = split_box(root)
    patches += [child for patch in list(patches) for child in split_box(patch)]
    while len(patches) < count:
        patches += patches
    return [pyramid.view(patch, input_size)[0] for patch in patches[:count]]


def bench_owl(owl: OwlSearchModel, image: Image.Image, repeats: int) -> list[dict[str, Any]]:
    rows = []
    views = search_views(image, owl.input_size, max(OWL_BATCHES))
    phrases = ["red cup", "table"]
    owl.predict(views[:1], phrases)  # text embeddings cached, as during a search
    for batch in OWL_BATCHES:
        samples = timed(lambda b=batch: owl.predict(views[:b], phrases), owl.device, repeats)
        # The graph's path: a view cache encodes (feature maps to host memory), then heads.
        cached = timed(
            lambda b=batch: owl.predict_encoded(owl.encode_views(views[:b]), phrases),
            owl.device,
            repeats,
        )
        median = statistics.median(samples)
        rows.append(
            {
                "batch": batch,
                "latency_ms": round(median * 1000, 2),
                "min_ms": round(min(samples) * 1000, 2),
                "patches_per_s": round(batch / median, 2),
                "encode_then_heads_ms": round(statistics.median(cached) * 1000, 2),
            }
        )
    return rows


# -- VQA model ----------------------------------------------------------------------------------
def build_vqa(name: str, tiny: bool, device: torch.device, dtype: torch.dtype) -> Any:
    from transformers import AutoModelForImageTextToText

    config = load_config(name, tiny)
    with torch.device(device):
        model = AutoModelForImageTextToText.from_config(config, dtype=dtype)
    return model.eval()


def _text_ids(count: int, vocab: int, rng: np.random.Generator) -> list[int]:
    return rng.integers(100, min(vocab, 30000), count).tolist()


def vqa_inputs(name: str, model: Any, image: Image.Image) -> dict[str, torch.Tensor]:
    """What the processor would produce for (whole image, question), built offline.

    The real tokenizers cannot be downloaded, so ids are drawn at random, but the image
    goes through the real image processor (PIL backend) and the image-token count,
    token types and layout are the processor's.
    """
    config = model.config
    rng = np.random.default_rng(0)
    vocab = config.text_config.vocab_size
    image = limit_pixels(image, DEFAULT_MAX_IMAGE_PIXELS)
    if name.startswith("qwen"):
        from transformers.models.qwen2_vl import Qwen2VLImageProcessorPil

        vision = config.vision_config
        qwen_processor = Qwen2VLImageProcessorPil(
            patch_size=vision.patch_size,
            merge_size=vision.spatial_merge_size,
            temporal_patch_size=vision.temporal_patch_size,
            max_pixels=DEFAULT_MAX_IMAGE_PIXELS,
        )
        pixels = qwen_processor(images=[image], return_tensors="pt")
        grid = pixels["image_grid_thw"]
        n_image = int(grid.prod()) // vision.spatial_merge_size**2
        ids = (
            _text_ids(5, vocab, rng)
            + [config.vision_start_token_id]
            + [config.image_token_id] * n_image
            + [config.vision_end_token_id]
            + _text_ids(QUESTION_TOKENS, vocab, rng)
        )
        types = [1 if t == config.image_token_id else 0 for t in ids]
        return {
            "input_ids": torch.tensor([ids]),
            "attention_mask": torch.ones(1, len(ids), dtype=torch.long),
            "mm_token_type_ids": torch.tensor([types]),
            "pixel_values": pixels["pixel_values"],
            "image_grid_thw": grid,
        }
    from transformers.models.clip import CLIPImageProcessorPil

    side = config.vision_config.image_size
    processor = CLIPImageProcessorPil(
        size={"shortest_edge": side}, crop_size={"height": side, "width": side}
    )
    pixels = processor(images=[image], return_tensors="pt")["pixel_values"]
    n_image = (side // config.vision_config.patch_size) ** 2  # "default": CLS dropped
    ids = (
        [1]
        + _text_ids(4, vocab, rng)
        + [config.image_token_id] * n_image
        + _text_ids(QUESTION_TOKENS, vocab, rng)
    )
    return {
        "input_ids": torch.tensor([ids]),
        "attention_mask": torch.ones(1, len(ids), dtype=torch.long),
        "pixel_values": pixels,
    }


def bench_vqa(
    model: Any, inputs: dict[str, torch.Tensor], device: torch.device, repeats: int
) -> dict[str, Any]:
    dtype = next(model.parameters()).dtype
    moved = {
        k: v.to(device, dtype) if k == "pixel_values" else v.to(device) for k, v in inputs.items()
    }

    def prefill() -> None:
        with torch.inference_mode():
            model(**moved, use_cache=True, logits_to_keep=1)

    clock = TokenClock(device)

    def generate() -> None:
        clock.times.clear()
        with torch.inference_mode():
            model.generate(
                **moved,
                max_new_tokens=NEW_TOKENS,
                min_new_tokens=NEW_TOKENS,
                do_sample=False,
                temperature=None,
                top_p=None,
                top_k=None,
                stopping_criteria=StoppingCriteriaList([clock]),
            )

    prefill_s = statistics.median(timed(prefill, device, repeats))
    generate_samples, decode_samples = [], []
    for _ in range(1 + max(1, repeats // 2)):  # the first run warms up
        started = time.perf_counter()
        generate()
        _sync(device)
        generate_samples.append(time.perf_counter() - started)
        # Decode time read off the clock between the first and the last new token: the
        # steps that reuse the KV cache, measured directly rather than as a difference.
        decode_samples.append(clock.times[-1] - clock.times[0])
    generate_s = statistics.median(generate_samples[1:])
    decode_s = statistics.median(decode_samples[1:])
    steps = NEW_TOKENS - 1
    # The same decoding through TransformersChatModel's static decoder (CUDA graphs on a
    # GPU): the first run builds the bucket and captures, later ones replay.
    decoder = StaticDecoder(model)
    static_samples = []
    for _ in range(1 + max(1, repeats // 2)):
        marks: list[float] = []

        def first(marks: list[float] = marks) -> None:
            _sync(device)
            marks.append(time.perf_counter())

        with torch.inference_mode():
            generate_with_static_decode(
                model,
                moved,
                None,
                decoder,
                on_first_token=first,
                max_new_tokens=NEW_TOKENS,
                min_new_tokens=NEW_TOKENS,
                do_sample=False,
            )
        _sync(device)
        static_samples.append(time.perf_counter() - marks[0])
    static_s = statistics.median(static_samples[1:])
    static = {
        "static_decode_32_ms": round(static_s * 1000, 2),
        "static_decode_ms_per_token": round(static_s * 1000 / steps, 2),
        "static_cuda_graphs": decoder.cuda_graphs,
        "static_graph_failure": decoder.graph_failure,
    }
    decoder.release()
    return {
        **static,
        "prompt_tokens": int(inputs["input_ids"].shape[1]),
        "prefill_ms": round(prefill_s * 1000, 2),
        "generate_32_ms": round(generate_s * 1000, 2),
        "decode_32_ms": round(decode_s * 1000, 2),
        "decode_ms_per_token": round(decode_s * 1000 / steps, 2),
    }


class TokenClock(StoppingCriteria):
    """Timestamps every generated token (after a device sync); never stops generation."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.times: list[float] = []

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any) -> Any:
        _sync(self.device)
        self.times.append(time.perf_counter())
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)


# -- main ---------------------------------------------------------------------------------------
def _gib(n: int) -> float:
    return round(n / 2**30, 3)


def _params(model: Any) -> int:
    return sum(p.numel() for p in model.parameters())


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None, help="cuda (default when available) or cpu")
    parser.add_argument("--dtype", default=None, help="default: bf16 on CUDA, fp32 on CPU")
    parser.add_argument(
        "--vqa",
        default="qwen2.5-vl-7b",
        choices=["qwen2.5-vl-7b", "llava-1.5-7b", "both", "none"],
        help="none: the search model's forwards alone",
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tiny", action="store_true", help="shrunken configs (smoke test)")
    parser.add_argument("--out", type=Path, default=None, help="JSON path")
    parser.add_argument(
        "--end-to-end", action="store_true", help="whole questions (cost-faithful replay)"
    )
    parser.add_argument("--questions", type=int, default=8, help="--end-to-end: questions")
    parser.add_argument(
        "--new-tokens", type=int, default=E2E_NEW_TOKENS, help="--end-to-end: per chat call"
    )
    parser.add_argument(
        "--static-decode",
        choices=["auto", "on", "off"],
        default="auto",
        help="--end-to-end: the after system's static decoding (auto: on CUDA, as the library)",
    )
    parser.add_argument(
        "--host-embeddings",
        choices=["auto", "on", "off"],
        default="auto",
        help="--end-to-end: the after system's input embeddings in host memory (auto: CUDA)",
    )
    parser.add_argument(
        "--systems",
        nargs="+",
        choices=["before", "after"],
        default=["before", "after"],
        help="--end-to-end: which systems run (after alone: its memory, in half the time)",
    )
    args = parser.parse_args(argv)
    if args.end_to_end:
        return end_to_end_main(args)

    device = resolve_device(args.device)
    dtype = resolve_dtype(args.dtype, device)
    torch.manual_seed(0)
    image = benchmark_image()
    report: dict[str, Any] = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "python": platform.python_version(),
        "dtype": dtype_name(dtype),
        "tiny": args.tiny,
        "image": list(IMAGE_SIZE),
        "weights": "random (real architectures from benchmarks/configs)",
    }
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with tempfile.TemporaryDirectory() as tmp:
        # One forward per batch size measured (the library's default splits batches
        # into forwards of OwlSearchModel's max_batch_size views).
        owl = OwlSearchModel(
            str(build_owl(Path(tmp) / "owlv2", args.tiny)),
            device=str(device),
            dtype=args.dtype,
            max_batch_size=max(OWL_BATCHES),
        )
        owl.ensure_loaded()
        report["search_model"] = {
            "name": "owlv2-base-patch16-ensemble",
            "input_size": owl.input_size,
            "parameters_m": round(_params(owl._model) / 1e6, 1),
            "batches": bench_owl(owl, image, args.repeats),
        }
        names = {"both": ["qwen2.5-vl-7b", "llava-1.5-7b"], "none": []}.get(args.vqa, [args.vqa])
        report["vqa_models"] = []
        for name in names:
            model = build_vqa(name, args.tiny, device, dtype)
            entry = {
                "name": name,
                "parameters_b": round(_params(model) / 1e9, 3),
                **bench_vqa(model, vqa_inputs(name, model, image), device, args.repeats),
            }
            if device.type == "cuda":
                entry["memory_allocated_gib_with_search_model"] = _gib(
                    torch.cuda.memory_allocated(device)
                )
                entry["peak_gib_with_search_model"] = _gib(torch.cuda.max_memory_allocated(device))
                # Both models resident and exercised: a search batch after VQA decoding.
                owl.predict(search_views(image, owl.input_size, 16), ["red cup", "table"])
                entry["peak_gib_with_search_model"] = _gib(torch.cuda.max_memory_allocated(device))
            report["vqa_models"].append(entry)
            del model
            if device.type == "cuda":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats(device)
                torch.cuda.max_memory_allocated(device)
    print_table(report)
    out = args.out or RESULTS / (f"gpu_latency{'_tiny' if args.tiny else ''}_{device.type}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {out}")
    return report


def print_table(report: dict[str, Any]) -> None:
    print(
        f"device: {report['device']}  dtype: {report['dtype']}  tiny: {report['tiny']}  "
        f"image: {report['image'][0]}x{report['image'][1]}  weights: random"
    )
    search = report["search_model"]
    print(
        f"\nsearch model {search['name']} ({search['parameters_m']}M params, "
        f"{search['input_size']} px views), 2 phrases"
    )
    print(f"{'batch':>6} {'latency ms':>11} {'min ms':>9} {'patches/s':>10} {'cached path ms':>15}")
    for row in search["batches"]:
        print(
            f"{row['batch']:>6} {row['latency_ms']:>11.2f} {row['min_ms']:>9.2f} "
            f"{row['patches_per_s']:>10.2f} {row['encode_then_heads_ms']:>15.2f}"
        )
    print("cached path: encode_views (feature maps to host memory) then predict_encoded")
    print(
        f"\n{'VQA model':<16} {'params B':>8} {'prompt tok':>10} {'prefill ms':>11} "
        f"{'decode 32 ms':>13} {'ms/token':>9} {'static ms/token':>16} {'peak GiB*':>10}"
    )
    for row in report["vqa_models"]:
        peak = row.get("peak_gib_with_search_model")
        print(
            f"{row['name']:<16} {row['parameters_b']:>8.3f} {row['prompt_tokens']:>10} "
            f"{row['prefill_ms']:>11.2f} {row['decode_32_ms']:>13.2f} "
            f"{row['decode_ms_per_token']:>9.2f} {row['static_decode_ms_per_token']:>16.2f} "
            f"{peak if peak is not None else 'n/a':>10}"
        )
    print("* peak GPU memory with the search model and this VQA model loaded and run together")
    print("static: the same decoding through StaticDecoder (CUDA graphs on a GPU)")


# -- end to end (issue 12 item 6): whole questions, cost-faithful replay ------------------------
E2E_SIZES = ((4000, 3000), (2246, 1582), (12000, 9000), (7680, 4320))
E2E_SUBSETS = ("direct_attributes", "relative_position")
E2E_NEW_TOKENS = 24  # per chat call: a listing line with its cue, or a short answer
E2E_TINY_MAX_PIXELS = 128 * 28 * 28


def _e2e_scenes(count: int, tiny: bool, seed: int) -> list[Any]:
    from seal_agent.shapeworld.scene import generate_scene

    sizes = ((1024, 768),) if tiny else E2E_SIZES
    scenes = []
    for i in range(count):
        width, height = sizes[i % len(sizes)]
        kind = E2E_SUBSETS[i % len(E2E_SUBSETS)]
        scenes.append(generate_scene(seed + i, width=width, height=height, kind=kind))
    return scenes


def _cuda_context_bytes(device: torch.device) -> int:
    """Device memory this process holds outside PyTorch's allocator (the CUDA context)."""
    if device.type != "cuda":
        return 0
    torch.zeros(1, device=device)
    free, total = torch.cuda.mem_get_info(device)
    return max(0, total - free - torch.cuda.memory_reserved(device))


def end_to_end(
    device: torch.device,
    dtype: torch.dtype,
    tiny: bool,
    questions: int,
    new_tokens: int,
    static_decode: bool | None = None,
    host_embeddings: bool | None = None,
    systems: tuple[str, ...] = ("before", "after"),
) -> dict[str, Any]:
    """Seconds and peak GPU memory per question, before and after issue 12's savings.

    Full-size random-weight Qwen2.5-VL-7B and OWLv2-B/16 run every model call at its real
    input size and length (``cost_replay.py``); shape world's reference models make the
    decisions, so the graph takes a realistic path (targets, views, crops, answer).
    "before": release 0.1.0 (its search engine, per-target cue questions, no view or
    vision cache: ``release_baseline.py``);
    "after": the defaults (cued listing, shared view cache, vision-feature cache,
    prompt-prefix KV cache).
    Both share one set of weights; each question runs on a fresh image.
    """
    from cost_replay import (
        Counters,
        ReplayChatModel,
        ReplaySearchModel,
        VqaCost,
        install_vision_cache,
    )
    from release_baseline import release_seal_config

    from seal_agent.graph import SealConfig, build_graph
    from seal_agent.imaging.loading import image_cache, load_image, to_image_ref
    from seal_agent.models.prefix_cache import PrefixKVCache
    from seal_agent.search.view_cache import DEFAULT_VIEW_CACHE_BYTES
    from seal_agent.shapeworld.search_model import ReferenceSearchModel
    from seal_agent.shapeworld.vqa_model import ReferenceVQAChatModel

    context = _cuda_context_bytes(device)
    memory: dict[str, Any] = {
        "allocator": os.environ.get("PYTORCH_CUDA_ALLOC_CONF", ""),
    }
    scenes = _e2e_scenes(questions, tiny, seed=100)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        owl = OwlSearchModel(
            str(build_owl(Path(tmp) / "owlv2", tiny)), device=str(device), dtype=dtype_name(dtype)
        )
        owl.ensure_loaded()
        vqa_model = build_vqa("qwen2.5-vl-7b", tiny, device, dtype)
        shared_cache = install_vision_cache(vqa_model)
        prefix_cache = PrefixKVCache()  # the "after" system's prompt-prefix KV reuse
        # ... its static decoding and its input embeddings in host memory, where
        # TransformersChatModel would use them (None: on CUDA)
        use_static = device.type == "cuda" if static_decode is None else static_decode
        use_host_table = device.type == "cuda" if host_embeddings is None else host_embeddings
        decoder: StaticDecoder | None = None
        images = Path(tmp) / "images"
        warm = _e2e_scenes(1, True, seed=7)[0]  # kernels, allocator, templates
        # The systems run one after the other (0.1.0 first, with the table on the GPU as
        # it had it), each warmed up first, on the same weights in one process.
        for name, after in (("before", False), ("after", True)):
            if name not in systems:
                continue
            if after and use_host_table:
                memory["host_input_embeddings"] = move_input_embeddings_to_host(vqa_model)
            if after and use_static:
                decoder = StaticDecoder(vqa_model)
            counters = Counters()
            vqa = VqaCost(
                vqa_model,
                vqa_model.config,
                new_tokens=new_tokens,
                cache=shared_cache,
                prefix_cache=prefix_cache,
                decoder=decoder,
                use_cache=after,
                # --tiny is a smoke test: small images keep the CPU run short.
                max_pixels=E2E_TINY_MAX_PIXELS if tiny else DEFAULT_MAX_IMAGE_PIXELS,
            )
            chat = ReplayChatModel(decider=ReferenceVQAChatModel(), cost=vqa, counters=counters)
            # The decider declares OWL's forward size, so the search batches as it would
            # with OWL itself (protocol.SearchModel.max_batch_size): one pass, one forward.
            decider = ReferenceSearchModel(max_batch_size=owl.max_batch_size)
            search = ReplaySearchModel(decider, owl, counters)
            # before: release 0.1.0 as a configuration of today's code (release_baseline.py)
            settings = (
                SealConfig(cache_dir=images, cue_source="listing")
                if after
                else release_seal_config(cache_dir=images)
            )
            view_budget = DEFAULT_VIEW_CACHE_BYTES if after else 0
            graph = build_graph(chat, search, settings, view_cache_bytes=view_budget)
            ref = to_image_ref(warm.image, cache_dir=images)
            graph.invoke({"image": ref, "question": warm.question, "options": list(warm.options)})
            for scene in scenes:
                ref = to_image_ref(scene.image, cache_dir=images)
                load_image(ref, cache_dir=images)
                shared_cache.clear()  # each question's image is new to the VQA model
                prefix_cache.clear()
                before = counters.snapshot()
                phases_before = dict(vqa.phase_seconds)
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                _sync(device)
                started = time.perf_counter()
                out = graph.invoke(
                    {"image": ref, "question": scene.question, "options": list(scene.options)}
                )
                _sync(device)
                seconds = time.perf_counter() - started
                after_counts = counters.snapshot()
                row = {
                    "system": name,
                    "size": [scene.spec.width, scene.spec.height],
                    "subset": scene.spec.kind,
                    "seconds": round(seconds, 3),
                    "network_seconds": round(
                        after_counts["cost_seconds"] - before["cost_seconds"], 3
                    ),
                    "correct": out.get("choice") == 0,
                }
                # Where the time went: the VLM's phases, the search network, the rest
                # (graph, reference deciders, image handling on the CPU).
                vqa_phases = {
                    f"vqa_{phase}_seconds": round(spent - phases_before[phase], 3)
                    for phase, spent in vqa.phase_seconds.items()
                }
                row.update(vqa_phases)
                row["search_network_seconds"] = round(
                    row["network_seconds"]
                    - vqa_phases["vqa_prefill_seconds"]
                    - vqa_phases["vqa_decode_seconds"],
                    3,
                )
                for key in ("chat_calls", "prefill_tokens", "search_views_encoded"):
                    row[key] = after_counts[key] - before[key]
                if device.type == "cuda":
                    row["peak_gib_incl_context"] = _gib(
                        torch.cuda.max_memory_reserved(device) + context
                    )
                    # what tensors held at the peak (reserved adds the allocator's slack)
                    row["peak_allocated_gib"] = _gib(torch.cuda.max_memory_allocated(device))
                    # between questions: weights plus whatever stays on the GPU
                    row["resting_allocated_gib"] = _gib(torch.cuda.memory_allocated(device))
                rows.append(row)
                print(
                    f"  {name:<6} {scene.spec.width}x{scene.spec.height} {scene.spec.kind:<17} "
                    f"{seconds:.2f} s, chat {row['chat_calls']}, "
                    f"views {row['search_views_encoded']}",
                    file=sys.stderr,
                    flush=True,
                )
                image_cache().clear()
    summary = {}
    for name in systems:
        group = [r for r in rows if r["system"] == name]
        summary[name] = {
            "mean_seconds": round(statistics.fmean(r["seconds"] for r in group), 3),
            "max_seconds": round(max(r["seconds"] for r in group), 3),
            "mean_network_seconds": round(statistics.fmean(r["network_seconds"] for r in group), 3),
            "mean_chat_calls": round(statistics.fmean(r["chat_calls"] for r in group), 2),
            **{
                f"mean_{key}": round(statistics.fmean(r[key] for r in group), 3)
                for key in (
                    "vqa_prep_seconds",
                    "vqa_prefill_seconds",
                    "vqa_decode_seconds",
                    "search_network_seconds",
                )
            },
            "mean_views_encoded": round(
                statistics.fmean(r["search_views_encoded"] for r in group), 2
            ),
            "accuracy": round(100 * statistics.fmean(r["correct"] for r in group), 1),
        }
        if device.type == "cuda":
            summary[name]["peak_gib_incl_context"] = max(r["peak_gib_incl_context"] for r in group)
            summary[name]["peak_allocated_gib"] = max(r["peak_allocated_gib"] for r in group)
    if device.type == "cuda":  # weights on the GPU (the after system's placement)
        weights = sum(
            p.numel() * p.element_size()
            for module in (vqa_model, owl._model)
            for p in module.parameters()
            if p.device.type == "cuda"
        )
        memory["weights_on_gpu_gib"] = _gib(weights)
    if decoder is not None:
        memory["static_decode"] = {
            "cuda_graphs": decoder.cuda_graphs,
            "captures": decoder.captures,
            "graph_failure": decoder.graph_failure,
            "decoded_tokens": decoder.decoded_tokens,
        }
    return {
        **memory,
        "questions": len(scenes),
        "new_tokens_per_chat_call": new_tokens,
        "cuda_context_gib": _gib(context),
        "summary": summary,
        "rows": rows,
    }


def end_to_end_main(args: argparse.Namespace) -> dict[str, Any]:
    device = resolve_device(args.device)
    dtype = resolve_dtype(args.dtype, device)
    torch.manual_seed(0)
    report: dict[str, Any] = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "dtype": dtype_name(dtype),
        "tiny": args.tiny,
        "weights": "random (Qwen2.5-VL-7B and OWLv2-B/16 from benchmarks/configs)",
        **end_to_end(
            device,
            dtype,
            args.tiny,
            args.questions,
            args.new_tokens,
            {"auto": None, "on": True, "off": False}[args.static_decode],
            {"auto": None, "on": True, "off": False}[args.host_embeddings],
            tuple(args.systems),
        ),
    }
    print(
        f"\nend to end: {report['questions']} questions on {report['device']} "
        f"({report['dtype']}, tiny={report['tiny']}), {report['new_tokens_per_chat_call']} "
        f"generated tokens per chat call"
    )
    print(
        f"{'system':<8} {'mean s':>8} {'max s':>8} {'network s':>10} {'chat calls':>11} "
        f"{'views':>7} {'acc %':>6} {'peak GiB*':>10}"
    )
    for name, row in report["summary"].items():
        peak = row.get("peak_gib_incl_context", "n/a")
        print(
            f"{name:<8} {row['mean_seconds']:>8.2f} {row['max_seconds']:>8.2f} "
            f"{row['mean_network_seconds']:>10.2f} {row['mean_chat_calls']:>11.2f} "
            f"{row['mean_views_encoded']:>7.2f} {row['accuracy']:>6.1f} {peak:>10}"
        )
    print("* peak GPU memory per question, both models resident, CUDA context included")
    print(
        f"\nwhere the time goes (mean s per question)\n{'system':<8} {'VLM prep':>9} "
        f"{'prefill':>8} {'decode':>8} {'search':>8} {'other':>8}"
    )
    for name, row in report["summary"].items():
        accounted = (
            row["mean_vqa_prefill_seconds"]
            + row["mean_vqa_decode_seconds"]
            + row["mean_search_network_seconds"]
        )
        print(
            f"{name:<8} {row['mean_vqa_prep_seconds']:>9.3f} "
            f"{row['mean_vqa_prefill_seconds']:>8.3f} {row['mean_vqa_decode_seconds']:>8.3f} "
            f"{row['mean_search_network_seconds']:>8.3f} "
            f"{row['mean_seconds'] - accounted:>8.3f}"
        )
    print("VLM prep (image processor, CPU) is inside 'other'; search = OWL passes incl. its CPU")
    out = args.out or RESULTS / (
        f"gpu_latency_end_to_end{'_tiny' if args.tiny else ''}_{device.type}.json"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {out}")
    return report


if __name__ == "__main__":
    main()
