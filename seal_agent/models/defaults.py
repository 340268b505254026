"""Default checkpoints, and why these.

VQA model: ``Qwen/Qwen2.5-VL-7B-Instruct``.

* Quality for the job. SEAL's VQA model must (a) answer when the evidence is visible,
  (b) say which objects it cannot make out, and (c) read the crops the search brings
  back. The paper's LLaVA-1.5-7B sees every image padded to a square at 336x336, which is
  exactly why it scores 48.7 on V*Bench (near chance on the spatial subset). Qwen2.5-VL
  reads images at their native aspect ratio and (bounded) resolution, so crops and the
  global view lose far less, and later papers report it around 75-79 on V*Bench
  *without* any search (e.g. the DeepEyes baseline), already above SEAL's 75.4, with
  search adding to it.
* Cost. About 8.3B parameters (7.6B language + 0.7B vision): ~17 GB in bf16, against
  ~14 GB for LLaVA-1.5-7B, so about 20 % more memory for a model that is far stronger
  on fine detail: the best quality per GB among open 7B-class VLMs that transformers
  supports natively. With OWLv2-B/16 (~0.6 GB) the whole system fits one 24 GB card,
  where the reference's two 7B models (~27 GB) did not.
* Licence. Qwen2.5-VL-7B-Instruct is Apache-2.0. LLaVA-1.5 inherits the Llama 2
  Community Licence (acceptable-use policy, 700M-MAU clause), and the smaller
  Qwen2.5-VL-3B is under a research-only licence, so neither is a good *default* for an
  Apache-2.0 library; both remain one argument away (``model_id=``).
* Image budget. Qwen2.5-VL turns every 28x28 pixels into one token; a 4000x3000 photo
  would become ~15k tokens. ``DEFAULT_MAX_IMAGE_PIXELS`` (1280 * 28 * 28, Qwen's own
  recommended ``max_pixels``) caps each image at ~1280 visual tokens; high-resolution
  detail is what the visual search is for.

Search model: ``google/owlv2-base-patch16-ensemble`` (Apache-2.0, ~155M parameters):
one forward pass gives boxes, calibrated-ish confidences and a 60x60 per-phrase logit
grid, i.e. everything V* needs from its search model, at ~0.6 GB instead of the
reference's second 7B LLM.
"""

from __future__ import annotations

DEFAULT_VQA_MODEL_ID = "Qwen/Qwen2.5-VL-7B-Instruct"
PAPER_VQA_MODEL_ID = "llava-hf/llava-1.5-7b-hf"
DEFAULT_SEARCH_MODEL_ID = "google/owlv2-base-patch16-ensemble"
DEFAULT_MAX_IMAGE_PIXELS = 1280 * 28 * 28
