"""Speculative decoding with a model's own multi-token-prediction (MTP) modules (issue #22, item 4).

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

Draft models and EAGLE heads are not modelled yet: kvdash refuses them rather than guess.

The acceptance is an input. Its one default, for k = 1: 1.85 tokens a step, the low end of DeepSeek-V3's
technical report ("the acceptance rate of the second token prediction ranges between 85% and 90%",
arXiv 2412.19437). Any other k needs the user's number.
"""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache

from kvdash.errors import KvdashError
from kvdash.model import ModelSpec

DEFAULT_ACCEPTED = {1: 1.85}  # k -> tokens a step, with its source in the module docstring
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


def check(m: ModelSpec, s) -> None:
    """Refuse speculation kvdash does not model: a model without MTP modules, a runtime that is not a serving
    engine, a pipeline."""
    if not s.spec_tokens:
        return
    if not (m.mtp_layers or m.mtp_included):
        raise KvdashError(f"{m.name} ships no multi-token-prediction modules; speculative decoding with a draft "
                          "model or an EAGLE head is not modelled yet")
    if not s.engine:
        raise KvdashError(f"speculative decoding is a serving engine's (vllm, sglang, trtllm), not the {s.runtime} "
                          "runtime's")
    if s.pp > 1:
        raise KvdashError("speculative decoding with pipeline parallelism is not modelled (vLLM shares the drafter's "
                          "embedding only at pp 1)")


def drafted(m: ModelSpec, s) -> ModelSpec:
    """The model whose memory the scenario holds: with its MTP modules when it speculates."""
    check(m, s)
    return with_mtp(m) if s.spec_tokens else m


def accepted_tokens(s) -> float:
    """Tokens a speculative step yields on average: the scenario's, else the sourced default for its k."""
    if s.spec_accepted:
        return s.spec_accepted
    if s.spec_tokens in DEFAULT_ACCEPTED:
        return DEFAULT_ACCEPTED[s.spec_tokens]
    raise KvdashError(f"kvdash has no sourced acceptance for {s.spec_tokens} draft tokens: state the tokens a step "
                      f"yields (1 to {s.spec_tokens + 1})")
