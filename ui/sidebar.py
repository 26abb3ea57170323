"""The shared sidebar: model, scenario, GPU and units, stored in session state for every page.

app.py draws it on every run, before st.navigation runs the page; pages call `selection()`.
Every input is bound to the URL (`bind="query-params"`), so a link reproduces the scenario. A link's
values are parsed first (ui/links.py, the same table the widgets take their ranges from): an invalid
one is removed before any widget reads it, and the notice names it.
"""

from __future__ import annotations

import streamlit as st

from kvdash.dtypes import KV_DTYPES, get_dtype
from kvdash.engines import ENGINES, engine_facts
from kvdash.errors import KvdashError
from kvdash.gpus import load_gpus
from kvdash.hf_config import MAX_CONFIG_BYTES, model_from_config, parse_config_text
from kvdash.hub import load_checkpoint
from kvdash.model import MLA, SLIDING, ModelSpec, attention_shape, decoder
from kvdash.presets import load_presets
from kvdash.scenario import Scenario
from kvdash.speculative import drafters, with_draft
from ui.dimensions import PRECISE, dimension, precise_toggle
from ui.links import (
    ATTENTION_CHOICES,
    BLOCK_CHOICES,
    EXPERT_SPLITS,
    EXPERTS_CHOICES,
    FIELDS,
    RUNTIME_CHOICES,
    SOURCES,
    SPEC_ACCEPTED,
    SPEC_DRAFTERS,
    SPEC_TOKENS,
    STEP_TOKENS,
    UNITS,
    WEIGHT_CHOICES,
    clean_link,
    notice,
    parses,
)

Q = "query-params"
# Widgets whose values travel in the URL, with the type their value must have (a loaded scenario file).
BOUND = {k: f.value_type for k, f in FIELDS.items()}


def _drop_from_link(keys) -> None:
    """Remove invalid values from the link before any widget reads them, so each widget shows its default.

    Streamlit (1.67, pinned) seeds a bound widget from the query string as it was when the page loaded
    (QueryParams._initial_query_params), which st.query_params cannot edit: a value like batch=1e309
    then raises inside the widget. This clears it there and in the address bar (remove_param), as
    Streamlit itself does for values its widgets reject. tests/test_app.py covers it."""
    from streamlit.runtime.state import get_session_state

    with get_session_state().query_params() as qp:
        for key in keys:
            qp._initial_query_params.pop(key, None)
            qp.remove_param(key)


_SEED: dict = {}  # the link's parsed values on a session's first run (ui.dimensions.dimension)
_REFUSED: list[str] = []  # this run's inputs whose typed value was refused: the scenario is not computed


def _number(label: str, key: str, default: int, where=st, **kw) -> int:
    """A URL-bound dimension: a slider, or a number box with "Precise values" (ui/dimensions.py). A typed
    value the box refuses is shown under it, and the pages show it instead of a scenario."""
    try:
        return dimension(label, key, default, _SEED, where, **kw)
    except KvdashError as e:
        where.error(str(e))
        _REFUSED.append(str(e))
        return default


def _cache_signature(m: ModelSpec) -> tuple:
    bf16 = get_dtype("bf16")
    return tuple((spec.bytes_per_token(bf16), spec.held(1, 1 << 20, 0, 0)) for spec in m.layers)


def edit_preset(model: ModelSpec) -> None:
    """Seed the custom architecture with a preset's values and switch to it ("edit this model"). A custom
    model has one attention kind for all layers: the choice whose layers hold the same cache as the
    preset's (bytes per token, and tokens held of a long sequence), else full attention."""
    attn = attention_shape(model)
    heads, kv = getattr(attn, "n_heads", None), getattr(attn, "n_kv_heads", None)
    hd = getattr(attn, "head_dim", None) or getattr(attn, "qk_nope_head_dim", None)
    base = {"c_name": f"{model.name} (edited)"[:120], "c_ctx": model.max_position_embeddings,
            "c_layers": model.n_layers, "c_hidden": model.hidden_size, "c_heads": heads,
            "c_kv": kv or heads, "c_hd": hd, "c_inter": model.intermediate_size or 1,
            "c_vocab": model.vocab_size, "c_experts": model.n_experts, "c_topk": model.experts_per_token,
            "c_expert_inter": model.expert_intermediate_size or 1, "c_attn": ATTENTION_CHOICES[0]}
    for kind in ATTENTION_CHOICES[1:]:
        window = next((w for spec in model.layers if (w := getattr(spec, "window", None))), None)
        trial = base | {"c_attn": kind, "c_window": window, "c_latent": getattr(attn, "kv_lora_rank", None),
                        "c_rope": getattr(attn, "qk_rope_head_dim", None), "c_hd": hd}
        try:
            if _cache_signature(custom_spec(trial)) == _cache_signature(model):
                base = trial
                break
        except (KvdashError, TypeError, ValueError):  # a field this kind needs is missing from the preset
            continue
    for k, v in base.items():
        if k in FIELDS and v is not None and parses(k, v):  # fields this model lacks keep their defaults
            st.session_state[k] = FIELDS[k].parse(str(v))
    st.session_state["source"] = "custom"


def weight_formats(model: ModelSpec, wdtype: str, edtype: str) -> dict:
    """The scenario's weight formats from the sidebar's choices ('checkpoint': as the config stores them)."""
    checkpoint = wdtype == WEIGHT_CHOICES[0]
    w = (model.weights_format or "bf16") if checkpoint else wdtype
    e = edtype if edtype != EXPERTS_CHOICES[0] else (model.experts_format if checkpoint else "")
    return {"weights_dtype": w, "moe_weights_dtype": "" if e == w else e}


def draft_presets(m: ModelSpec) -> list[str]:
    """Presets that can draft for `m` in vLLM: those kvdash.speculative.with_draft takes (the same vocabulary size,
    a smaller model) and, where `m` is a preset, from the same publisher (a vocabulary of the same size is not the
    same tokenizer)."""
    presets = load_presets()

    def owner(p) -> str:
        return (p.hf_id or "").split("/")[0]

    def drafts(d: ModelSpec) -> bool:
        try:
            with_draft(m, d)
        except KvdashError:
            return False
        return True

    mine = next((owner(p) for p in presets.values() if p.model is m), "")
    return [k for k, p in presets.items() if mine in ("", owner(p)) and drafts(p.model)]


def custom_spec(v: dict) -> ModelSpec:
    """The custom architecture from its field values (the c_* keys): one attention kind for all layers."""
    n, attn = int(v["c_layers"]), v["c_attn"]
    kw: dict = {}
    if attn == "sliding":
        kw.update(layer_types=(SLIDING,) * n, sliding_window=int(v["c_window"]))
    elif attn.startswith("latent"):
        kw.update(layer_types=(MLA,) * n, qk_nope_head_dim=int(v["c_hd"]), kv_lora_rank=int(v["c_latent"]),
                  qk_rope_head_dim=int(v["c_rope"]))
    if v["c_experts"]:
        kw.update(n_experts=int(v["c_experts"]), experts_per_token=int(v["c_topk"]),
                  expert_intermediate_size=int(v["c_expert_inter"]))
    return decoder(name=v.get("c_name") or "custom", n_layers=n, hidden_size=int(v["c_hidden"]),
                   n_heads=int(v["c_heads"]), n_kv_heads=int(v["c_kv"]), head_dim=int(v["c_hd"]),
                   vocab_size=int(v["c_vocab"]), intermediate_size=int(v["c_inter"]),
                   max_position_embeddings=int(v.get("c_ctx") or 0), **kw)


def divisors(n: int) -> list[int]:
    small = [d for d in range(1, int(n**0.5) + 1) if n % d == 0]
    return sorted({*small, *(n // d for d in small)})


def _kv_heads(heads: int) -> int:
    """KV heads as a slider over the divisors of the query heads (grouped-query attention shares each KV
    head among heads / kv query heads), so a drag cannot land on an invalid count. A value that no longer
    divides (the heads changed, a link, a number box) moves to the nearest divisor below, and says so."""
    valid = divisors(heads)
    asked = st.session_state.get("c_kv", _SEED.get("c_kv", 8))
    if isinstance(asked, str):  # the precise box's text: its own error box says when it is not a number
        try:
            asked = FIELDS["c_kv"].parse(asked)
        except ValueError:
            asked = valid[0]
    if asked not in valid:
        moved = max(d for d in valid if d <= asked)
        st.session_state["c_kv"] = str(moved) if st.session_state.get(PRECISE) else moved
        st.session_state["_kv_moved"] = (asked, moved)
        _SEED.pop("c_kv", None)
    kv = _number("KV heads", "c_kv", max(d for d in valid if d <= 8), ladder=valid,
                 help=f"a divisor of the {heads:,} query heads: 1 is multi-query, {heads:,} multi-head attention")
    moved = st.session_state.pop("_kv_moved", None)
    if moved:
        st.caption(f"{moved[0]:,} KV heads do not divide {heads:,} query heads: using {moved[1]:,}.")
    return kv


def _custom_model() -> ModelSpec:
    """The 'custom' architecture from sliders (defaults: a Llama-3.1-8B-like shape)."""
    v = {"c_name": st.text_input("Name", "custom", key="c_name", bind=Q, max_chars=120),
         "c_layers": _number("Layers", "c_layers", 32), "c_hidden": _number("Hidden size", "c_hidden", 4096),
         "c_heads": _number("Attention heads", "c_heads", 32)}
    v |= {"c_kv": _kv_heads(v["c_heads"]), "c_hd": _number("Head dim", "c_hd", 128),
          "c_inter": _number("MLP intermediate size", "c_inter", 14336),
          "c_vocab": _number("Vocabulary", "c_vocab", 128256),
          "c_attn": st.selectbox("Attention", ATTENTION_CHOICES, key="c_attn", bind=Q)}
    if v["c_attn"] == "sliding":
        v["c_window"] = _number("Window (tokens)", "c_window", 4096)
    elif v["c_attn"].startswith("latent"):
        v["c_latent"] = _number("kv_lora_rank", "c_latent", 512)
        v["c_rope"] = _number("qk_rope_head_dim", "c_rope", 64)
    v["c_experts"] = _number("Routed experts (0: dense)", "c_experts", 0)
    if v["c_experts"]:
        v["c_topk"] = _number("Experts per token", "c_topk", 2)
        v["c_expert_inter"] = _number("Expert FFN size", "c_expert_inter", 14336)
    v["c_ctx"] = _number("Trained context (0: unknown)", "c_ctx", 131072,
                         help="the longest sequence the model was trained for (max_position_embeddings)")
    return custom_spec(v)


def _preset_kv(presets: dict, pid: str | None) -> str:
    """The KV cache's dtype when nobody chose one: bf16, as engines keep a 16-bit model's cache (and a 32-bit
    one's, which vLLM runs in fp16), unless the preset's story has its own: the article's example is in fp32."""
    return presets[pid].kv_dtype if pid in presets else "bf16"


def _kv_chosen() -> None:
    st.session_state["_kv_chosen"] = True


def _kv_follows_model(presets: dict) -> None:
    """A new preset brings its own dtype to the KV cache, unless the KV dtype was chosen by hand."""
    if not st.session_state.get("_kv_chosen"):
        st.session_state["kvdtype"] = _preset_kv(presets, st.session_state["model"])


def _mark(which: str) -> None:
    st.session_state["cfg_last"] = which


def _uploaded_model() -> ModelSpec:
    """An uploaded or pasted config.json: the one used last wins, and the sidebar says which."""
    up = st.file_uploader("config.json", type=["json"], key="cfg_file", max_upload_size=1,
                          on_change=_mark, args=("file",))
    text = st.text_area("…or paste it", key="cfg_text", height=120, on_change=_mark, args=("text",))
    last = st.session_state.get("cfg_last", "file" if up is not None else "text")
    use_file = up is not None and (last == "file" or not text.strip())
    if up is not None and text.strip():
        st.caption(f"Using the {'uploaded file' if use_file else 'pasted text'} (changed last); the other is ignored.")
    if use_file:
        data = up.getvalue()
        if len(data) > MAX_CONFIG_BYTES:
            raise KvdashError(f"config is {len(data):,} bytes; the limit is {MAX_CONFIG_BYTES:,}")
        cfg = parse_config_text(data)
    elif text.strip():
        cfg = parse_config_text(text)
    else:
        raise KvdashError("upload or paste a config.json to size it (the link cannot carry a file)")
    st.session_state["sel_config"] = cfg  # a saved scenario carries it (the Memory page's JSON)
    return model_from_config(cfg)  # named from the config, not the file


def _hub_model() -> ModelSpec:
    """A model by its Hub id: config.json and the checkpoint's tensor sizes (kvdash.hub), cached."""
    rid = st.text_input("Hugging Face model id", key="hub", bind=Q, placeholder="meta-llama/Llama-3.1-8B",
                        help="an id, id@revision or any Hub URL of the model; reads config.json and the "
                             "safetensors headers (never the weights) through huggingface_hub; set HF_TOKEN on the "
                             "server for gated models")
    if not rid.strip():
        raise KvdashError("type a model id (owner/name) to read its config.json from the Hugging Face Hub")
    note = st.empty()  # what is being read, while it is (a cached answer says nothing)
    cp = load_checkpoint(rid, progress=lambda said: note.caption(f"{said} …"))
    note.empty()
    st.caption(cp.summary())
    st.session_state["sel_checkpoint"] = cp
    return model_from_config(cp.config, name=cp.name)


def render_sidebar() -> None:
    presets, gpus = load_presets(), load_gpus()
    for k, v in st.session_state.pop("_pending_scenario", {}).items():  # a loaded scenario file
        st.session_state[k] = v
    first_run = "_link_checked" not in st.session_state
    link = {k: st.query_params.get(k) for k in FIELDS if first_run and k in st.query_params}
    valid, rejected = clean_link(link)
    _drop_from_link(rejected)
    _SEED.clear()
    _SEED.update(valid)
    _REFUSED.clear()
    model, model_error, kv_default = None, None, "bf16"
    st.session_state["sel_checkpoint"] = st.session_state["sel_config"] = None
    with st.sidebar:
        st.header("Model")
        source = st.radio("Source", SOURCES, horizontal=True, key="source", bind=Q)
        try:
            if source == "preset":
                pid = st.selectbox("Preset", list(presets), index=list(presets).index("llama-3.1-8b"), key="model",
                                   bind=Q, help="the model's real config.json fields, with sources (data/models)",
                                   on_change=_kv_follows_model, args=(presets,))
                model, kv_default = presets[pid].model, _preset_kv(presets, pid)
                st.button("Edit this model", key="edit_preset", on_click=edit_preset, args=(model,),
                          help="a custom architecture with this preset's dimensions, to drag them")
            elif source == "Hub id":
                model = _hub_model()
            elif source == "config.json":
                model = _uploaded_model()
            else:
                model = _custom_model()
        except KvdashError as e:
            model_error = str(e)
            st.error(model_error)
        st.header("Scenario")
        precise_toggle()
        batch = _number("Batch (concurrent sequences)", "batch", 1)
        context = _number("Prompt tokens per sequence", "context", 8192, step=1024)
        new = _number("Generated tokens per sequence", "new", 0, step=256)
        c1, c2 = st.columns(2)
        wdtype = c1.selectbox("Weights", WEIGHT_CHOICES, key="wdtype", bind=Q,
                              help="checkpoint: as the config's quantization_config stores them (else bf16)")
        kvdtype = c2.selectbox("KV cache", list(KV_DTYPES), index=list(KV_DTYPES).index(kv_default),
                               key="kvdtype", bind=Q, on_change=_kv_chosen,
                               help="bf16 unless you choose another (a preset may have its own: the article's "
                                    "example is in fp32)")
        edtype, ep = EXPERTS_CHOICES[0], False
        if model is not None and model.n_experts:
            edtype = st.selectbox("Routed experts' weights", EXPERTS_CHOICES, key="edtype", bind=Q,
                                  help="gpt-oss ships its experts in mxfp4 and the rest in bf16")
        c1, c2 = st.columns(2)
        tp = _number("Tensor parallel", "tp", 1, where=c1)
        pp = _number("Pipeline parallel", "pp", 1, where=c2)
        c1, c2 = st.columns(2)
        block = c1.selectbox("Paged blocks", BLOCK_CHOICES, key="block", bind=Q,
                             help="0: a contiguous cache without block rounding")
        prefix = _number("Shared prefix", "prefix", 0, where=c2,
                                 help="prompt tokens common to every sequence, cached once")
        runtime = RUNTIME_CHOICES[st.radio(
            "Runtime", tuple(RUNTIME_CHOICES), key="runtime", bind=Q,
            help="what runs the model decides the activation peak: a serving engine (fused attention; at most its "
                 "token budget a step, prompts split into chunks to fit), a static batch as the Live run's decoder "
                 "runs it, or Hugging Face generate() (the whole prompt in one forward; SDPA kernels, or eager "
                 "attention that stores every score)")]
        step_tokens = "engine default"
        if runtime in ENGINES:
            step_tokens = st.select_slider(
                "Tokens per engine step", STEP_TOKENS, key="step_tokens", bind=Q,
                help=f"{engine_facts(runtime).budget_name}: the most tokens one step processes (prompt chunks and "
                     "decodes together); the engine's default depends on the GPU")
        spec, accepted, method, draft = 0, 0.0, "", ""
        offered = drafters(model) if runtime in ENGINES and model is not None else ()
        drafts = draft_presets(model) if runtime == "vllm" and model is not None else []
        offered += ("draft",) if drafts else ()
        if offered:
            spec = st.select_slider(
                "Speculative tokens", SPEC_TOKENS, key="spec", bind=Q,
                help="tokens drafted a step; the drafter's weights and cache are then counted, and the Speed and Plan "
                     "pages time the steps")
            if spec:
                labels = [k for k, v in SPEC_DRAFTERS.items() if v in offered]
                method = SPEC_DRAFTERS[st.selectbox(
                    "Drafted by", labels, key="spec_by", bind=Q,
                    help="the model's multi-token-prediction modules, an EAGLE head shaped like its layers (16-bit, "
                         "one layer, in the same KV pool), or a smaller model of the same vocabulary (vLLM)")]
                if method == "draft":
                    draft = st.selectbox("Draft model", drafts, key="spec_draft", bind=Q,
                                         format_func=lambda p: load_presets()[p].model.name,
                                         help="its own weights in its own format, its cache in the same pool")
                accepted = st.select_slider(
                    "Tokens a step yields (0: kvdash's default)", SPEC_ACCEPTED, key="spec_acc", bind=Q,
                    help="on average, the target's own token included (1 to drafted + 1); defaults only where a "
                         "source measured one: MTP 1.85 at 1 token, EAGLE 1.89 / 2.08 at 2 / 4, EAGLE-3 3.53 at 7, a "
                         "draft model 2.79 / 3.12 at 3 / 4")
        if model is not None and model.n_experts:
            ep = st.radio("Routed experts across the TP GPUs", EXPERT_SPLITS, horizontal=True, key="ep", bind=Q,
                          help="sharded: every expert split tp ways; whole: each GPU holds E / tp whole experts, "
                               "as vLLM's --enable-expert-parallel does") == EXPERT_SPLITS[1]
        st.header("Hardware")
        gpu_id = st.selectbox("GPU", list(gpus), index=list(gpus).index("nvidia-h100-sxm5"), key="gpu", bind=Q,
                              help="usable memory as the runtime sees it (data/gpus.csv)")
        unit = st.radio("Units", UNITS, horizontal=True, key="unit", bind=Q,
                        help="GiB = 2^30 bytes, GB = 10^9 bytes")
        if runtime in ENGINES:
            facts = engine_facts(runtime)
            tokens, seqs = facts.step_limits(gpus[gpu_id])
            st.caption(f"{facts.label} on {gpus[gpu_id].name}: " + (
                f"{int(step_tokens):,} tokens a step (set above; its default here is {tokens:,})"
                if step_tokens != STEP_TOKENS[0] else f"{tokens:,} tokens a step (its default {facts.budget_name})")
                + (f", at most {seqs:,} sequences at once" if seqs else ""))
    if first_run:
        st.session_state["_link_checked"] = True
        # a value the parser let through but a widget still did not take (e.g. a model missing from a list
        # shown only for another source) is reported too, so the notice is always true
        for k, raw in link.items():
            if k not in rejected and k in st.session_state and str(st.session_state[k]) != raw:
                rejected[k] = "not applied"
        if rejected:
            st.session_state["_link_notice"] = notice(link, rejected)
    st.session_state["sel_model"] = model
    st.session_state["sel_gpu"] = gpus[gpu_id]
    st.session_state["sel_unit"] = unit
    try:
        if _REFUSED:
            raise KvdashError("; ".join(_REFUSED))
        if model_error:
            raise KvdashError(model_error)
        st.session_state["sel_scenario"] = Scenario(
            batch=int(batch), prompt_tokens=int(context), new_tokens=int(new),
            **weight_formats(model, wdtype, edtype), kv_dtype=kvdtype, tp=int(tp), pp=int(pp), block_size=int(block),
            shared_prefix_tokens=int(prefix), expert_parallel=bool(ep), runtime=runtime,
            max_num_batched_tokens=0 if step_tokens == STEP_TOKENS[0] else int(step_tokens),
            spec_tokens=int(spec), spec_accepted=float(accepted), spec_method=method, spec_draft=draft)
        st.session_state["sel_error"] = None
    except KvdashError as e:
        st.session_state["sel_scenario"] = None
        st.session_state["sel_error"] = str(e)


def selection():
    """(model or None, scenario or None, gpu, unit, error or None), as the sidebar set them this run.
    Shows the notice about an invalid link once, on the page the link opened."""
    s = st.session_state
    notice = s.pop("_link_notice", None)
    if notice:
        st.warning(notice)
    return s["sel_model"], s["sel_scenario"], s["sel_gpu"], s["sel_unit"], s["sel_error"]


def require():
    """(model, scenario, gpu, unit) for a page that needs a valid selection; otherwise it shows the
    problem in an error box and stops the page (the sidebar stays usable)."""
    model, scenario, gpu, unit, error = selection()
    if model is None or scenario is None:
        st.error(error or "choose a model in the sidebar")
        st.stop()
    return model, scenario, gpu, unit
