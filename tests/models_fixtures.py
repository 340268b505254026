"""Tiny random checkpoints for the model tests, built offline and saved like hub ones.

Every builder writes a directory that the real ``from_pretrained`` code path loads
(config, safetensors weights, tokenizer, processor/preprocessor config, chat
template), so the tests exercise the same loading users hit with a hub id. Tokenizers
are built from in-memory vocabularies (``tokenizers`` models), never downloaded.
Fixtures are session-scoped: each checkpoint is built once per test run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers.utils import logging as hf_logging

hf_logging.set_verbosity_error()
hf_logging.disable_progress_bar()

LETTERS = "abcdefghijklmnopqrstuvwxyz"

LLAVA_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] != 'system' %}{{ message['role'].upper() + ': ' }}{% endif %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ content['text'] + ' ' }}{% endfor %}"
    "{% endfor %}{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)

QWEN_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}{{ '<|vision_start|><|image_pad|><|vision_end|>' }}"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}"
    "{% endfor %}{% endif %}{{ '<|im_end|>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def _seed() -> None:
    torch.manual_seed(0)


# -- tokenizers ----------------------------------------------------------------------------
def clip_tokenizer():
    """A CLIP BPE tokenizer over single letters; <|endoftext|> has the highest id.

    OWL pools the text embedding at the arg-max token id, which must be the end token.
    """
    from transformers import CLIPTokenizer

    vocab = {"!": 0, "!</w>": 1, "<|startoftext|>": 2}  # id 0 marks a padded OWL query
    for c in LETTERS:
        vocab[c] = len(vocab)
        vocab[c + "</w>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=16, pad_token="!")


def byte_level_tokenizer(special_tokens: list[str], **kwargs):
    """A byte-level BPE tokenizer with no merges: any text encodes, one token a byte."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    backend = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(alphabet)}, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens(special_tokens)
    return PreTrainedTokenizerFast(tokenizer_object=backend, **kwargs)


def bert_tokenizer(directory: Path):
    """A WordPiece BERT tokenizer whose [CLS]/[SEP]/'.' ids are BERT's (101/102/1012).

    Grounding DINO hard-codes those ids to split the caption into phrases.
    """
    from transformers import BertTokenizer

    vocab = ["[PAD]"] + [f"[unused{i}]" for i in range(99)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab += list(LETTERS) + ["##" + c for c in LETTERS]
    while len(vocab) < 1012:
        vocab.append(f"[unused{len(vocab)}]")
    vocab += [".", "?"]
    path = directory / "vocab.txt"
    path.write_text("\n".join(vocab) + "\n")
    return BertTokenizer(str(path))


# -- search models -------------------------------------------------------------------------
def _tiny_clip_towers(tokenizer: Any, image_size: int, layers: int) -> dict[str, Any]:
    """Text and vision tower configs of a tiny CLIP-style detector (OWLv2 / OWL-ViT)."""
    tower = {"hidden_size": 32, "intermediate_size": 37, "num_attention_heads": 4}
    return {
        "text_config": {
            **tower,
            "vocab_size": len(tokenizer),
            "num_hidden_layers": layers,
            "max_position_embeddings": 16,
            "bos_token_id": 2,
            "eos_token_id": len(tokenizer) - 1,
            "pad_token_id": 0,
        },
        "vision_config": {
            **tower,
            "num_hidden_layers": layers,
            "image_size": image_size,
            "patch_size": 16,
        },
        "projection_dim": 32,
    }


def build_owlv2(directory: Path, image_size: int = 96) -> Path:
    from transformers import Owlv2Config, Owlv2ForObjectDetection, Owlv2Processor
    from transformers.models.owlv2 import Owlv2ImageProcessorPil

    _seed()
    tokenizer = clip_tokenizer()
    config = Owlv2Config(
        **_tiny_clip_towers(tokenizer, image_size, layers=2),
    )
    model = Owlv2ForObjectDetection(config).eval()
    processor = Owlv2Processor(
        image_processor=Owlv2ImageProcessorPil(size={"height": image_size, "width": image_size}),
        tokenizer=tokenizer,
    )
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory


def build_owlvit(directory: Path, image_size: int = 64) -> Path:
    from transformers import OwlViTConfig, OwlViTForObjectDetection, OwlViTProcessor
    from transformers.models.owlvit import OwlViTImageProcessorPil

    _seed()
    tokenizer = clip_tokenizer()
    config = OwlViTConfig(
        **_tiny_clip_towers(tokenizer, image_size, layers=1),
    )
    model = OwlViTForObjectDetection(config).eval()
    size = {"height": image_size, "width": image_size}
    processor = OwlViTProcessor(
        image_processor=OwlViTImageProcessorPil(size=size, crop_size=size), tokenizer=tokenizer
    )
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory


def build_grounding_dino(directory: Path) -> Path:
    from transformers import (
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoProcessor,
    )
    from transformers.models.grounding_dino import GroundingDinoImageProcessorPil

    _seed()
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = bert_tokenizer(directory)
    config = GroundingDinoConfig(
        backbone_config={
            "model_type": "swin",
            "image_size": 64,
            "patch_size": 4,
            "embed_dim": 8,
            "depths": [1, 1, 1, 1],
            "num_heads": [1, 1, 1, 1],
            "window_size": 4,
            "out_features": ["stage2", "stage3", "stage4"],
        },
        text_config={
            "model_type": "bert",
            "vocab_size": len(tokenizer),
            "hidden_size": 16,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "intermediate_size": 16,
            "max_position_embeddings": 64,
        },
        d_model=32,
        encoder_layers=1,
        decoder_layers=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        num_queries=12,
        max_text_len=32,
        num_feature_levels=4,
        encoder_n_points=2,
        decoder_n_points=2,
    )
    model = GroundingDinoForObjectDetection(config).eval()
    processor = GroundingDinoProcessor(
        image_processor=GroundingDinoImageProcessorPil(
            size={"shortest_edge": 64, "longest_edge": 96}
        ),
        tokenizer=tokenizer,
    )
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory


# -- VQA models ----------------------------------------------------------------------------
def build_llava(directory: Path) -> Path:
    from transformers import LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor
    from transformers.models.clip import CLIPImageProcessorPil

    _seed()
    tokenizer = byte_level_tokenizer(
        ["<s>", "</s>", "<unk>", "<pad>", "<image>"],
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
    )
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessorPil(
            size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
        ),
        tokenizer=tokenizer,
        patch_size=8,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=LLAVA_CHAT_TEMPLATE,
    )
    config = LlavaConfig(
        vision_config={
            "model_type": "clip_vision_model",
            "hidden_size": 32,
            "intermediate_size": 37,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "image_size": 32,
            "patch_size": 8,
            "projection_dim": 32,
        },
        text_config={
            "model_type": "llama",
            "vocab_size": len(tokenizer),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "max_position_embeddings": 512,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        },
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
    )
    model = LlavaForConditionalGeneration(config).eval()
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory


QWEN_SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]


def build_qwen2_5_vl(directory: Path) -> Path:
    """Model, tokenizer, image-processor config and chat template of a tiny Qwen2.5-VL.

    ``Qwen2_5_VLProcessor`` cannot be instantiated without torchvision (its video
    processor is mandatory), so the processor files are written the way the hub
    checkpoint has them: the tokenizer and image processor save themselves, and
    ``processor_config.json`` names the processor class.
    """
    from transformers import AutoModelForImageTextToText, Qwen2_5_VLConfig
    from transformers.models.qwen2_vl import Qwen2VLImageProcessorPil

    _seed()
    tokenizer = byte_level_tokenizer(
        QWEN_SPECIAL_TOKENS, eos_token="<|im_end|>", pad_token="<|endoftext|>"
    )
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in QWEN_SPECIAL_TOKENS}
    config = Qwen2_5_VLConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "max_position_embeddings": 1024,
            "rope_parameters": {
                "rope_type": "default",
                "mrope_section": [1, 1, 2],
                "rope_theta": 10000.0,
            },
            "bos_token_id": None,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        },
        vision_config={
            "depth": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 4,
            "out_hidden_size": 32,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "window_size": 56,
            "fullatt_block_indexes": [1],
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    model = AutoModelForImageTextToText.from_config(config).eval()
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    Qwen2VLImageProcessorPil(
        min_pixels=28 * 28 * 4, max_pixels=28 * 28 * 16, patch_size=14, merge_size=2
    ).save_pretrained(directory)
    (directory / "chat_template.jinja").write_text(QWEN_CHAT_TEMPLATE)
    (directory / "processor_config.json").write_text(
        json.dumps({"processor_class": "Qwen2_5_VLProcessor"})
    )
    return directory


def build_lora_adapter(base_dir: Path, directory: Path) -> Path:
    """A LoRA on the tiny LLaVA's attention projections, with non-zero B so it matters.

    ``target_modules=["q_proj", "v_proj"]`` is what LLaVA LoRA recipes write; those names
    also exist in the CLIP vision tower, which is why the loader must restrict them.
    """
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText

    _seed()
    base = AutoModelForImageTextToText.from_pretrained(base_dir)
    config = LoraConfig(
        r=4,
        lora_alpha=8,
        target_modules=r".*language_model.*\.(q_proj|v_proj)",
        init_lora_weights=False,
    )
    peft_model = get_peft_model(base, config)
    peft_model.save_pretrained(directory)
    # What users' adapter configs say (plain module names, no language-model scope).
    config_path = directory / "adapter_config.json"
    saved = json.loads(config_path.read_text())
    saved["target_modules"] = ["q_proj", "v_proj"]
    config_path.write_text(json.dumps(saved))
    return directory


# -- fixtures --------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def owlv2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_owlv2(tmp_path_factory.mktemp("owlv2"))


@pytest.fixture(scope="session")
def owlvit_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_owlvit(tmp_path_factory.mktemp("owlvit"))


@pytest.fixture(scope="session")
def grounding_dino_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_grounding_dino(tmp_path_factory.mktemp("grounding_dino"))


@pytest.fixture(scope="session")
def llava_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_llava(tmp_path_factory.mktemp("llava"))


@pytest.fixture(scope="session")
def qwen_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_qwen2_5_vl(tmp_path_factory.mktemp("qwen2_5_vl"))


@pytest.fixture(scope="session")
def lora_dir(llava_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_lora_adapter(llava_dir, tmp_path_factory.mktemp("lora"))
