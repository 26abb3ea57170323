"""Speculative decoding with a model's own multi-token-prediction (MTP) modules or an EAGLE head (issue #22,
item 4).

A drafter proposes k tokens; the target verifies them in one step, and on average `accepted` tokens come out of
a step (its own included: 1 <= accepted <= k + 1). DeepSeek-V3, GLM-4.5, Qwen3-Next, MiMo and MiniMax-M3 ship
MTP modules (num_nextn_predict_layers, mtp_num_hidden_layers, num_mtp_modules). As vLLM builds them
(model_executor/models/deepseek_mtp.py, qwen3_next_mtp.py; v1/spec_decode, read 2026-12):

- memory: each module is one more decoder layer like the model's last (DeepSeek: MLA and MoE), an eh_proj of
  hidden x 2 hidden and three norms (enorm, hnorm, the shared head's); the embedding and the LM head are the
  target's ("Sharing target model embedding weights"; the shared head is set to the target's lm_head). Each
  module's attention is one more layer in the same KV pool (same page, same block count). So the target with
  its modules as extra layers (`with_mtp`) answers every memory question.
- speed (kvdash.serving): a decode step verifies k + 1 tokens per request in one target step, and drafts with
  k passes of a module (one layer and the LM head for the running requests; k beyond the modules reuses them
  in turn). eh_proj's matrix product (2 hidden^2 per token, one module layer's few percent) is not timed.

EAGLE heads (`spec_method` "eagle" or "eagle3"), as vLLM builds them (model_executor/models/llama_eagle.py,
llama_eagle3.py; v1/spec_decode; read 2026-12): one decoder layer shaped like the target's (the published heads
for Llama and Qwen dense models copy its widths), in the checkpoint's 16 bits whatever the target's format, whose
attention is one more layer in the same KV pool; EAGLE-1 drops the layer's input norm and adds fc (2 hidden ->
hidden, no bias); EAGLE-3 widens q/k/v's input to 2 hidden, adds a hidden_norm, fc (3 hidden -> hidden), a final
norm, its own LM head over a draft vocabulary (default 32,000: SafeAILab/EAGLE's EAGLE-3 training config for
Llama-3.1-8B) and the draft-to-target map d2t (int64, one per draft token). Both share the target's embedding,
EAGLE-1 its LM head too. Heads for mixture-of-experts, windowed, latent or hybrid targets have widths of their
own, so kvdash refuses them rather than guess. A draft pass runs the head's layer and its LM head (fc is timed
with the layer).

A draft model (`spec_method` "draft", `spec_draft` a preset id), as vLLM v1 loads it (method "draft_model";
v1/spec_decode/draft_model.py, config/speculative.py, read 2026-12): its own full weights in its own format (no
sharing), at the target's tensor-parallel degree, the same vocabulary size, and its attention layers in the
target's KV pool beside the target's ("interleaving target/draft layers"); a draft pass is one step of the draft
model. SGLang keeps a draft model's cache in a pool of its own outside its memory share, and TensorRT-LLM's two-
model mode was not read: both are refused for draft models.

The acceptance is an input, with a default only where a source measured it at that k:
- MTP, k = 1: 1.85 tokens a step, the low end of DeepSeek-V3's technical report ("the acceptance rate of the
  second token prediction ranges between 85% and 90%", arXiv 2412.19437);
- EAGLE-1, k = 2 and 4: 1.89 and 2.08 (vLLM PR #16035, Llama-3-8B-Instruct's head, MT-Bench);
- EAGLE-3, k = 7: 3.53 (vLLM issue #26191, Llama-3.1-8B-Instruct's head, MT-Bench, temperature 0; the issue
  reports newer releases lower);
- a draft model, k = 3 and 4: 2.79 and 3.12 (vLLM PR #24322: Qwen3-1.7B drafting for Qwen3-32B, temperature 0;
  another pair accepts differently).
Any other k needs the user's number.
"""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache
from typing import TYPE_CHECKING

from kvdash.errors import KvdashError

if TYPE_CHECKING:  # kvdash.model imports kvdash.params, which imports this module
    from kvdash.model import ModelSpec

METHODS = ("mtp", "eagle", "eagle3", "draft")
# (method, k) -> tokens a step, each with its source in the module docstring
DEFAULT_ACCEPTED = {("mtp", 1): 1.85, ("eagle", 2): 1.89, ("eagle", 4): 2.08, ("eagle3", 7): 3.53, ("draft", 3): 2.79,
                    ("draft", 4): 3.12}
DRAFT_VOCAB = 32_000  # an EAGLE-3 head's draft vocabulary when none is stated (module docstring)
PER_LAYER = ("layer_specs", "moe_layers", "mlp_layers", "intermediate_sizes", "layer_norms")  # () : uniform


def _layers(m: ModelSpec, picked: tuple[int, ...]) -> dict:
    """ModelSpec's per-layer fields for the layers `picked` (by index, repeats allowed)."""
    return {f: tuple(getattr(m, f)[i] for i in picked) if getattr(m, f) else () for f in PER_LAYER}


@lru_cache(maxsize=64)
def with_mtp(m: ModelSpec) -> ModelSpec:
    """The target with its MTP modules as extra layers like its last: every memory answer counts them."""
    if m.mtp_included or not m.mtp_layers:
        return m
    n, last, h = m.mtp_layers, m.n_layers - 1, m.hidden_size
    return replace(m, **_layers(m, (*range(m.n_layers), *(last,) * n)),
                   extra_params=m.extra_params + n * (2 * h * h + 3 * h), mtp_included=True)


@lru_cache(maxsize=64)
def mtp_module(m: ModelSpec) -> ModelSpec:
    """One MTP module as a model of its own, to time a draft pass: the last layer and the (shared) LM head."""
    return replace(m, **_layers(m, (m.n_layers - 1,)), mtp_layers=0, mtp_included=False)


def method(s) -> str:
    """The scenario's drafter: its spec_method, else the model's own MTP modules."""
    return s.spec_method or "mtp"


def check(m: ModelSpec, s) -> None:
    """Refuse speculation kvdash does not model: MTP for a model without MTP modules, an EAGLE head for a target
    whose head has widths of its own, a runtime that is not a serving engine, a pipeline."""
    if not s.spec_tokens:
        return
    if method(s) == "mtp" and not (m.mtp_layers or m.mtp_included):
        raise KvdashError(f"{m.name} ships no multi-token-prediction modules: speculate with an EAGLE head "
                          "(spec_method eagle or eagle3) or a draft model (spec_method draft)")
    if method(s) in ("eagle", "eagle3") and not m.draft_head:
        eagle_target(m)
    if method(s) == "draft" and s.engine and s.engine != "vllm":
        raise KvdashError(f"a draft model on {s.engine} is not modelled (SGLang keeps its cache in a pool of its own; "
                          "TensorRT-LLM's two-model mode was not read): use vllm, or an EAGLE head or MTP modules")
    if not s.engine:
        raise KvdashError(f"speculative decoding is a serving engine's (vllm, sglang, trtllm), not the {s.runtime} "
                          "runtime's")
    if s.pp > 1:
        raise KvdashError("speculative decoding with pipeline parallelism is not modelled (vLLM shares the drafter's "
                          "embedding only at pp 1)")


def drafted(m: ModelSpec, s) -> ModelSpec:
    """The model whose memory the scenario holds: with its MTP modules or EAGLE head when it speculates."""
    check(m, s)
    if not s.spec_tokens:
        return m
    if method(s) == "mtp":
        return with_mtp(m)
    if method(s) == "draft":
        from kvdash.presets import preset_model  # the presets read model configs, which import this module

        return with_draft(m, preset_model(s.spec_draft))
    return with_eagle(m, method(s), s.spec_draft_vocab or DRAFT_VOCAB)


def draft_module(m: ModelSpec, s):
    """The drafter as a model of its own, to time a draft pass, and the scenario it runs in: an MTP module, the
    EAGLE head's layer with its LM head (EAGLE-3's over the draft vocabulary), or the draft model in its own
    weight format."""
    if method(s) == "mtp":
        return mtp_module(m), s
    if method(s) == "draft":
        d = drafted(m, s).draft_model
        return d, s.with_(weights_dtype=draft_format(d), moe_weights_dtype="", spec_tokens=0, spec_accepted=0.0,
                          spec_method="", spec_draft="")
    head = drafted(m, s)
    return _one_layer(head, head.draft_vocab or head.vocab_size), s


def drafter_words(s) -> str:
    """What drafts, in words (a step's terms)."""
    return {"mtp": "an MTP module (its layer and the shared LM head)",
            "eagle": "the EAGLE head (its layer, fc and the shared LM head)",
            "eagle3": "the EAGLE-3 head (its layer, fc and its draft-vocabulary LM head)",
            "draft": f"the draft model {s.spec_draft}"}[method(s)]


def drafter_buffer_bytes(m: ModelSpec, s, tokens: int, seqs: int, act: int) -> int:
    """Bytes of the buffers vLLM's proposer allocates at start-up, beside its weights (v1/spec_decode/
    llm_base_proposer.py, read 2026-12): per token of max_num_batched_tokens `tokens`, input_ids (int32), positions
    and the slot mapping (int64), the hidden states and input embeddings at the drafter's hidden size in the
    model's dtype (`act` bytes), and for a draft model two bool masks; arange (int32) over max(seqs + 1, tokens);
    the next-token backup (int32) per sequence. 0 without speculation."""
    if not s.spec_tokens:
        return 0
    draft = method(s) == "draft"
    hidden = drafted(m, s).draft_model.hidden_size if draft else m.hidden_size
    return tokens * (4 + 8 + 8 + 2 * hidden * act + (2 if draft else 0)) + 4 * max(seqs + 1, tokens) + 4 * seqs


def draft_format(d: ModelSpec) -> str:
    """A draft model's weights as its checkpoint stores them (vLLM gives it its own quantization)."""
    return d.weights_format or d.default_dtype


@lru_cache(maxsize=64)
def with_draft(m: ModelSpec, d: ModelSpec) -> ModelSpec:
    """The target with a draft model the engine loads beside it (kvdash.breakdown adds its weights and its cache
    to the first stage's)."""
    if m.draft_model == d:
        return m
    if d.vocab_size != m.vocab_size:
        raise KvdashError(f"{d.name}'s vocabulary ({d.vocab_size:,}) differs from {m.name}'s ({m.vocab_size:,}): vLLM "
                          "requires a draft model of the same vocabulary size")
    if d.draft_model or d.draft_head or d.mtp_included or d.params >= m.params:
        raise KvdashError(f"{d.name} cannot draft for {m.name}: a draft model is a smaller model of its own")
    return replace(m, draft_model=d)


@lru_cache(maxsize=64)
def _one_layer(m: ModelSpec, vocab: int) -> ModelSpec:
    return replace(m, **_layers(m, (m.n_layers - 1,)), vocab_size=vocab, mtp_layers=0, mtp_included=False)


def drafters(m: ModelSpec) -> tuple[str, ...]:
    """The drafters kvdash models for `m`: its MTP modules where it ships them, EAGLE heads where they are shaped
    like its layers."""
    out = ("mtp",) if m.mtp_layers else ()
    try:
        eagle_target(m)
    except KvdashError:
        return out
    return (*out, "eagle3", "eagle")


def eagle_target(m: ModelSpec) -> None:
    """Refuse a target whose EAGLE heads are not shaped like its layers: kvdash builds the head from the target's
    widths, which the published heads of dense, full-attention models copy."""
    if m.n_experts or m.intermediate_sizes or not m.intermediate_size or not m.gated_mlp or m.mlp_bias or \
            len(set(m.layers)) > 1 or m.layers[-1].eagle_head() is None or m.norm != "rms" or m.mtp_included:
        raise KvdashError(f"{m.name}'s EAGLE heads have widths of their own (kvdash models heads shaped like a "
                          "dense, full-attention target's layer); a draft model (spec_method draft) is the other way")


@lru_cache(maxsize=64)
def with_eagle(m: ModelSpec, version: str, draft_vocab: int) -> ModelSpec:
    """The target with an EAGLE head as one more layer: a Llama layer of the target's widths (no biases, no q/k
    norms, two norms), its tensors by kvdash.params through head_layer_tensors and head_tensors."""
    if m.draft_head:  # already with its head
        return m
    eagle_target(m)
    n = m.n_layers
    fields = _layers(m, (*range(n), n - 1))
    fields["layer_specs"] = (*m.layer_specs, m.layers[-1].eagle_head())
    fields["layer_norms"] = (*(m.layer_norms or (m.norms_per_layer,) * n), 2)
    return replace(m, **fields, draft_head=version, draft_vocab=draft_vocab if version == "eagle3" else 0)


def accepted_tokens(s) -> float:
    """Tokens a speculative step yields on average: the scenario's, else the sourced default for its drafter
    and k."""
    if s.spec_accepted:
        return s.spec_accepted
    if (method(s), s.spec_tokens) in DEFAULT_ACCEPTED:
        return DEFAULT_ACCEPTED[method(s), s.spec_tokens]
    raise KvdashError(f"kvdash has no sourced acceptance for {method(s)} with {s.spec_tokens} draft tokens: state "
                      f"the tokens a step yields (1 to {s.spec_tokens + 1})")
