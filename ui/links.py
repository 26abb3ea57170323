"""What a shared link may carry: every URL-bound input with its type, range or choices, parsed before
any widget reads it. Pure (no streamlit): the sidebar uses the same table for the widgets' ranges.

A link is someone else's text: `batch=1e309`, `tp=inf`, a 400-digit number or an unknown choice must
not reach a widget (Streamlit would raise, or silently apply something else). Each invalid value is
dropped, the widget shows its default, and the notice names exactly what was dropped and why.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from kvdash.dtypes import DTYPES, KV_DTYPES
from kvdash.errors import KvdashError
from kvdash.hub import parse_repo_id
from kvdash.scenario import MAX_BATCH, MAX_TOKENS
from kvdash.startup import FAMILIES

WEIGHT_CHOICES = ("checkpoint", *DTYPES)
EXPERTS_CHOICES = ("as the weights", *DTYPES)
EXPERT_SPLITS = ("sharded", "whole (EP)")
SOURCES = ("preset", "Hub id", "config.json", "custom")
ATTENTION_CHOICES = ("full", "sliding", "latent (MLA)")
BLOCK_CHOICES = (0, 16, 32, 64, 128)
# what runs the model (kvdash.runtimes): a serving engine, whose steps hold at most its token budget (its
# default on the sidebar's GPU, or one of STEP_TOKENS), a static batch (the Live run's decoder), or Hugging
# Face generate(); the last two prefill every prompt of the batch at once
RUNTIME_CHOICES = {
    "vLLM": "vllm",
    "SGLang": "sglang",
    "TensorRT-LLM": "trtllm",
    "static batch (Live run)": "static",
    "HF generate(), SDPA": "hf-sdpa",
    "HF generate(), eager": "hf-eager",
}
STEP_TOKENS = ("engine default", "512", "1024", "2048", "4096", "8192", "16384", "32768")
SPEC_TOKENS = tuple(range(9))  # tokens drafted a step (0: no speculation)
SPEC_DRAFTERS = {"its MTP modules": "mtp", "an EAGLE-3 head": "eagle3", "an EAGLE head": "eagle",
                 "a draft model": "draft"}
# tokens a speculative step yields on average; 0.0: kvdash's sourced default for the drafted tokens
SPEC_ACCEPTED = (0.0, *(round(1 + 0.05 * i, 2) for i in range(81)))
UNITS = ("GiB", "GB")
CONCURRENCIES = tuple(2**i for i in range(10))  # the Speed page's requests in flight, 1 to 512
# the Plan page's requests per second and its TTFT and TPOT targets (ms)
PLAN_RATES = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0)
PLAN_TTFT_MS = (100, 200, 300, 500, 1000, 2000, 5000, 10000)
PLAN_TPOT_MS = (5, 10, 15, 20, 25, 30, 50, 75, 100, 200)
PLAN_RANKS = ("cost per million output tokens", "fewest GPUs")
PLAN_MODES = ("aggregated or disaggregated", "aggregated", "disaggregated")
PLAN_LINKS = (12.5, 25.0, 50.0, 100.0, 200.0, 400.0, 900.0)  # GB/s one way per GPU: 100 Gb/s ports .. NVLink 5
PLAN_BURSTS = (1.0, 1.25, 1.5, 2.0, 3.0, 5.0, 10.0)  # pools sized for this many times the rate
PLAN_TRAFFIC = ("a steady request rate", "users in a closed loop")
PLAN_USERS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)


def _lengths(raw: str, what: str):
    from kvdash.traffic import parse_lengths

    return parse_lengths(raw, what) if raw.strip() else None


def _prices(raw: str) -> dict[str, float]:
    from kvdash.prices import parse_overrides

    return parse_overrides([p for p in raw.split(",") if p.strip()])


COMPARE_ATTENTION = ("as configured", "multi-head (MHA)", "multi-query (MQA)", "latent (MLA, 512 + 64)")

# A number as people type it: 131072, 131,072, 131_072, 1e6, 1.5e3 (no inf, nan or hex); it must still be whole
_NUMBER = re.compile(r"[+-]?(\d{1,3}(,\d{3})+|\d[\d_]{0,400})(\.\d{0,400})?([eE][+-]?\d{1,3})?")


@dataclass(frozen=True)
class Field:
    """One URL-bound input: an integer in [lo, hi], or one of `choices` (a tuple, or a function
    returning one for choices read from data, like the preset ids)."""

    lo: int = 0
    hi: int = 0
    choices: tuple | Callable[[], tuple] | None = None
    pattern: str | None = None  # free text that must match this
    check: Callable[[str], object] | None = None  # ... and that this accepts (raises KvdashError otherwise)
    what: str = "a model id (owner/name, or a Hub URL)"  # what free text must be, for the notice

    @property
    def value_type(self) -> type:
        """int for numbers and integer choices (block sizes), str for named choices and text."""
        if self.pattern:
            return str
        fixed = self.choices if isinstance(self.choices, tuple) else ("",)
        return int if self.choices is None or isinstance(fixed[0], int) else float if isinstance(fixed[0], float) \
            else str

    def options(self) -> tuple:
        return self.choices() if callable(self.choices) else self.choices

    def parse(self, raw: str):
        """The value `raw` stands for, or ValueError with the reason."""
        if self.pattern:
            if not re.fullmatch(self.pattern, raw):
                raise ValueError(f"not {self.what}")
            if self.check is not None:
                try:
                    self.check(raw)
                except KvdashError:
                    raise ValueError(f"not {self.what}") from None
            return raw
        if self.choices is not None:
            opts = self.options()
            for o in opts:
                if str(o) == raw:
                    return o
            raise ValueError("not one of the choices")
        text = raw.strip()
        if not _NUMBER.fullmatch(text):
            raise ValueError("not a number")
        d = Decimal(text.replace(",", "").replace("_", ""))
        if d != d.to_integral_value():
            raise ValueError("not a whole number")
        v = int(d)
        if not self.lo <= v <= self.hi:
            raise ValueError(f"outside {self.lo:,} to {self.hi:,}")
        return v


def _presets() -> tuple:
    from kvdash.presets import load_presets

    return tuple(load_presets())


SIDEBAR_MODEL = "the sidebar's model"  # the Compare page's first choice of model for scenarios B to D


def _compare_models() -> tuple:
    return (SIDEBAR_MODEL, *_presets())


def _gpus() -> tuple:
    from kvdash.gpus import load_gpus

    return tuple(load_gpus())


def _engines() -> tuple:
    from kvdash.engines import ENGINES

    return ENGINES


FIELDS: dict[str, Field] = {
    "source": Field(choices=SOURCES),
    "model": Field(choices=_presets),
    "hub": Field(pattern=r"[^\x00-\x1f\x7f]{1,300}", check=lambda raw: parse_repo_id(raw)),  # an id or a Hub URL
    "batch": Field(1, MAX_BATCH),
    "context": Field(1, MAX_TOKENS),
    "new": Field(0, MAX_TOKENS),
    "wdtype": Field(choices=WEIGHT_CHOICES),
    "edtype": Field(choices=EXPERTS_CHOICES),
    "ep": Field(choices=EXPERT_SPLITS),
    "kvdtype": Field(choices=KV_DTYPES),
    "tp": Field(1, 1024),
    "pp": Field(1, 1024),
    "block": Field(choices=BLOCK_CHOICES),
    "runtime": Field(choices=tuple(RUNTIME_CHOICES)),
    "step_tokens": Field(choices=STEP_TOKENS),
    "spec": Field(choices=SPEC_TOKENS),
    "spec_acc": Field(choices=SPEC_ACCEPTED),
    "spec_by": Field(choices=tuple(SPEC_DRAFTERS)),
    "spec_draft": Field(choices=_presets),
    "prefix": Field(0, MAX_TOKENS),
    "gpu": Field(choices=_gpus),
    "unit": Field(choices=UNITS),
    # the Speed page (the GPUs on its curve, a multiselect, are checked by Streamlit against the catalog;
    # the static-batch runtime is not bound: fitted runtimes exist only in the session that fitted them)
    "serving_engine": Field(choices=_engines),
    "speed_new": Field(1, 1 << 20),
    # the Plan page
    "plan_rate": Field(choices=PLAN_RATES),
    "plan_ttft": Field(choices=PLAN_TTFT_MS),
    "plan_tpot": Field(choices=PLAN_TPOT_MS),
    "plan_rank": Field(choices=PLAN_RANKS),
    "plan_mode": Field(choices=PLAN_MODES),
    "plan_link": Field(choices=PLAN_LINKS),
    # the user's prices per GPU-hour, as the CLI's --price takes them: GPU=USD, comma-separated
    "plan_burst": Field(choices=PLAN_BURSTS),
    "plan_traffic": Field(choices=PLAN_TRAFFIC),
    "plan_users": Field(choices=PLAN_USERS),
    # lengths as kvdash.traffic.parse_lengths takes them: 1024, 512-2048, 512:0.7,4096:0.3 ("": the sidebar's)
    **{f"plan_{what}": Field(pattern=r"[0-9:.,\- ]{0,200}", check=lambda raw, w=what: _lengths(raw, w),
                             what="token lengths: 1024, 512-2048 or 512:0.7,4096:0.3") for what in ("isl", "osl")},
    "plan_prices": Field(pattern=r"[A-Za-z0-9._=, -]{0,400}", check=lambda raw: _prices(raw),
                         what="prices as GPU=USD per GPU-hour, comma-separated"),
    # the Serving capacity page (vLLM's settings)
    "serve_util": Field(choices=tuple(round(0.001 * i, 3) for i in range(100, 1000))),  # SGLang's has 3 decimals
    "serve_block": Field(choices=(16, 32, 64)),
    "serve_len": Field(1, 1 << 24),
    "serve_batched": Field(1, 1 << 20),
    "serve_seqs": Field(0, 1 << 20),  # 0: the engine's own rule
    "serve_version": Field(choices=tuple(FAMILIES)),
    # the Compare page: how many scenarios, and each one's model, attention scheme and formats
    "cmp_n": Field(choices=(2, 3, 4)),
    # (scenario A is the sidebar's own; B to D are derived from it)
    **{f"cmp_{what}_{i}": Field(choices=choices) for i in range(1, 4) for what, choices in (
        ("model", _compare_models), ("attn", COMPARE_ATTENTION), ("kv", tuple(DTYPES)), ("w", tuple(DTYPES)))},
    # the custom architecture (bounds of kvdash.model.LIMITS); its name and trained context come from the
    # preset it was edited from ("Edit this model")
    "c_name": Field(pattern=r"[^\x00-\x1f\x7f]{1,120}"),
    "c_ctx": Field(0, 1 << 34),
    "c_layers": Field(1, 10_000),
    "c_hidden": Field(1, 1_000_000),
    "c_heads": Field(1, 100_000),
    "c_kv": Field(1, 100_000),
    "c_hd": Field(1, 65_536),
    "c_inter": Field(1, 10_000_000),
    "c_vocab": Field(1, 100_000_000),
    "c_attn": Field(choices=ATTENTION_CHOICES),
    "c_window": Field(1, MAX_TOKENS),
    "c_latent": Field(1, 1_000_000),
    "c_rope": Field(1, 65_536),
    "c_experts": Field(0, 100_000),
    "c_topk": Field(1, 100_000),
    "c_expert_inter": Field(1, 10_000_000),
}


def parses(key: str, value) -> bool:
    """Whether the field for `key` takes `value` (given as it would appear in a link)."""
    try:
        FIELDS[key].parse(str(value)[:200])
    except (KeyError, ValueError):
        return False
    return True


def scenario_values(data) -> dict:
    """The bound values of a loaded scenario file, or ValueError naming every invalid one: a file is
    applied whole or not at all (each value must be one a link could carry, of the widget's type)."""
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    bad = []
    for key, v in data.items():
        field = FIELDS.get(key)
        if field is None:
            continue
        try:
            ok = type(v) is field.value_type and field.parse(str(v)[:200]) == v
        except ValueError:
            ok = False
        if not ok:
            bad.append(f"{key}={v!r}"[:60])
    if bad:
        raise ValueError("invalid " + ", ".join(bad[:6]) + (f" and {len(bad) - 6} more" if len(bad) > 6 else ""))
    return {k: v for k, v in data.items() if k in FIELDS}


def clean_link(params: Mapping[str, str]) -> tuple[dict, dict[str, str]]:
    """(the valid bound values, {key: why} for each invalid one). Keys the app does not bind are ignored."""
    valid, rejected = {}, {}
    for key, raw in params.items():
        field = FIELDS.get(key)
        if field is None:
            continue
        try:
            valid[key] = field.parse(str(raw)[:200])
        except ValueError as e:
            rejected[key] = str(e)
    return valid, rejected


def notice(params: Mapping[str, str], rejected: dict[str, str]) -> str:
    """The sentence the page shows: exactly which values were replaced, and why."""
    parts = [f"{k}={_short(params[k])!r} ({why})" for k, why in rejected.items()]
    return "Some values in the link were not valid and were replaced by defaults: " + "; ".join(parts)


def _short(raw: str) -> str:
    raw = str(raw)
    return raw if len(raw) <= 24 else raw[:21] + "..."
