"""Likelihood scoring of multiple-choice options, with and without the prompt's KV cache."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest
import torch
from langchain_core.messages import HumanMessage
from models_fixtures import llava_dir, qwen_dir  # noqa: F401  (fixtures)
from PIL import Image

from seal_agent.errors import InvalidQuestionError
from seal_agent.models.chat import TransformersChatModel
from seal_agent.models.option_scoring import best_option, score_options

OPTIONS = ["red", "a light blue plastic cup", "x", "green"]


def _question(seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    data = base64.b64encode(buffer.getvalue()).decode()
    return [
        HumanMessage(
            content=[
                {"type": "image", "base64": data, "mime_type": "image/png"},
                {"type": "text", "text": "What is the colour of the cup?"},
            ]
        )
    ]


@pytest.mark.parametrize("fixture_name", ["llava_dir", "qwen_dir"])
def test_kv_cached_scores_equal_full_recomputation(
    fixture_name: str, request: pytest.FixtureRequest
) -> None:
    model = TransformersChatModel(model_id=str(request.getfixturevalue(fixture_name)))
    cached = score_options(model, _question(), OPTIONS)
    uncached = score_options(model, _question(), OPTIONS, use_cache=False)
    assert cached == pytest.approx(uncached, abs=1e-4)
    assert len(set(np.round(cached, 3))) == len(OPTIONS)  # options really differ
    # Scoring twice over the same cache-reusing path is stable (the cache was cropped back).
    assert score_options(model, _question(), OPTIONS) == pytest.approx(cached, abs=1e-5)


def test_scores_are_mean_token_losses(llava_dir: Path) -> None:  # noqa: F811
    """Check one option by hand: mean NLL of its tokens and the end of turn."""
    model = TransformersChatModel(model_id=str(llava_dir))
    runtime = model.runtime()
    score = score_options(model, "Is it red?", ["yes"])[0]
    prompt = runtime.processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "text", "text": "Is it red?"}]}],
        add_generation_prompt=True,
    )
    prompt_ids = runtime.processor(text=[prompt], return_tensors="pt")["input_ids"]
    tokenizer = runtime.processor.tokenizer
    option_ids = tokenizer("yes", add_special_tokens=False)["input_ids"]
    option_ids.append(tokenizer.eos_token_id)  # llava-hf's template ends no turn: EOS
    ids = torch.cat([prompt_ids, torch.tensor([option_ids])], dim=1)
    with torch.no_grad():
        logits = runtime.model(input_ids=ids).logits[0].float()
    n = len(option_ids)
    log_probs = torch.log_softmax(logits[-n - 1 : -1], dim=-1)
    expected = -float(log_probs.gather(-1, torch.tensor(option_ids)[:, None]).mean())
    assert score == pytest.approx(expected, abs=1e-4)


def test_best_option_is_the_lowest_loss(llava_dir: Path) -> None:  # noqa: F811
    model = TransformersChatModel(model_id=str(llava_dir))
    scores = score_options(model, _question(1), OPTIONS)
    assert best_option(model, _question(1), OPTIONS) == int(np.argmin(scores))


def test_bad_options_are_named(llava_dir: Path) -> None:  # noqa: F811
    model = TransformersChatModel(model_id=str(llava_dir))
    with pytest.raises(InvalidQuestionError, match="non-empty list"):
        score_options(model, "q", [])
    with pytest.raises(InvalidQuestionError, match="option 1"):
        score_options(model, "q", ["a", " "])


def test_chat_model_scores_options_as_the_graph_expects(llava_dir: Path) -> None:  # noqa: F811
    """The graph's likelihood answering looks for ``OptionScorer.score_options``."""
    from seal_agent.evaluation.scoring import OptionScorer

    model = TransformersChatModel(model_id=str(llava_dir))
    assert isinstance(model, OptionScorer)
    assert model.score_options(_question(2), OPTIONS) == pytest.approx(
        score_options(model, _question(2), OPTIONS), abs=1e-5
    )


def test_the_end_of_turn_token_is_the_templates_own(
    llava_dir: Path,  # noqa: F811
    qwen_dir: Path,  # noqa: F811
) -> None:
    from seal_agent.models.option_scoring import end_of_turn_id

    qwen = TransformersChatModel(model_id=str(qwen_dir)).processor()
    assert end_of_turn_id(qwen) == qwen.tokenizer.convert_tokens_to_ids("<|im_end|>")
    llava = TransformersChatModel(model_id=str(llava_dir)).processor()
    assert end_of_turn_id(llava) == llava.tokenizer.eos_token_id


def test_scoring_without_the_end_of_turn_differs(llava_dir: Path) -> None:  # noqa: F811
    model = TransformersChatModel(model_id=str(llava_dir))
    with_eot = score_options(model, _question(), OPTIONS)
    without = score_options(model, _question(), OPTIONS, end_of_turn=False)
    assert with_eot != pytest.approx(without, abs=1e-4)
    assert score_options(model, _question(), OPTIONS, use_cache=False) == pytest.approx(
        with_eot, abs=1e-4
    )


@pytest.mark.parametrize("fixture_name", ["llava_dir", "qwen_dir"])
def test_all_options_continue_the_prompt_in_one_forward(
    fixture_name: str, request: pytest.FixtureRequest
) -> None:
    """The prompt's prefill, then one forward for every option's own tokens together
    (a block-causal mask), not one per option; the scores are the per-option ones."""
    model = TransformersChatModel(model_id=str(request.getfixturevalue(fixture_name)))
    runtime = model.runtime()
    forwards: list[int] = []
    runtime.model.register_forward_hook(
        lambda _m, args, kwargs, out: forwards.append(1), with_kwargs=True
    )
    cached = score_options(model, _question(), OPTIONS)
    assert len(forwards) == 2
    assert cached == pytest.approx(
        score_options(model, _question(), OPTIONS, use_cache=False), abs=1e-4
    )
