"""`python -m kvdash.live`: the live benchmark, headless.

    python -m kvdash.live (--preset NAME | --shape tiny|small|1b) [--layers N] [--batch B]
        [--prompt T] [--new N] [--device auto|cpu|cuda] [--graph] [--json] [--no-store]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace

from kvdash.errors import KvdashError
from kvdash.live.shapes import SHAPES, scaled_copy


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        print(f"kvdash.live: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def main(argv: list[str] | None = None) -> int:
    p = _Parser(prog="python -m kvdash.live", description="Run a small KV-cached decoder and measure it.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--shape", choices=list(SHAPES), help="a built-in small shape")
    src.add_argument("--preset", metavar="NAME", help="a scaled-down copy of this preset (same layer shape)")
    p.add_argument("--layers", type=int, metavar="N", help="number of layers (scaled copy / override)")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--prompt", type=int, default=128, help="prompt tokens")
    p.add_argument("--new", type=int, default=32, help="generated tokens")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--graph", action="store_true", help="capture the decode step in a CUDA graph")
    p.add_argument("--compile", action="store_true", help="torch.compile the decode step")
    p.add_argument("--json", action="store_true", help="print the whole result as JSON")
    p.add_argument("--no-store", action="store_true", help="do not add the run to the history")
    try:
        args = p.parse_args(argv)
        from kvdash.live.runner import run_exclusive, torch_status

        if not torch_status()["torch"]:
            raise KvdashError("PyTorch is not installed; `pip install torch==2.13.0` (see requirements.txt)")
        from kvdash.live.bench import LiveConfig

        if args.shape:
            spec = SHAPES[args.shape]
            if args.layers:
                spec = replace(spec, n_layers=args.layers)
        else:
            from kvdash.presets import preset_model

            spec = scaled_copy(preset_model(args.preset), args.layers or 4)
        cfg = LiveConfig(spec=spec, batch=args.batch, prompt_tokens=args.prompt, new_tokens=args.new,
                         device=args.device, graph=args.graph, compile=args.compile)
        result = run_exclusive(cfg)
        if not args.no_store:
            from kvdash.live.store import RunStore

            RunStore().add(result)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 2
    except KvdashError as e:
        print(f"kvdash.live: error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(summary(result))
    return 0


def summary(r: dict) -> str:
    m, pr, c, s = r["measured"], r["predicted"], r["checks"], r["shape"]
    lines = [
        f"{r['device']['name']} ({r['device']['dtype']}, torch {r['device']['torch']}, CUDA {r['device']['cuda']})",
        f"{s['name']}: {s['params']:,} params, batch {s['batch']}, prompt {s['prompt_tokens']}, new {s['new_tokens']}",
        f"weights   measured {m['weights_bytes']:,} B  predicted {pr['weights_bytes']:,} B  "
        f"exact: {c['weights_exact']}",
        f"KV cache  measured {m['kv_cache_bytes']:,} B  predicted {pr['kv_cache_bytes']:,} B  "
        f"exact: {c['kv_cache_exact']}",
        f"prefill {m['ttft_s'] * 1e3:.2f} ms (floor {pr['prefill_floor_s'] * 1e3:.3f} ms); decode "
        f"{m['tpot_s'] * 1e3:.3f} ms/token (floor {pr['decode_floor_s'] * 1e3:.3f} ms), "
        f"{m['tokens_per_s']:,.0f} tok/s",
        f"cached decode is {c['cached_speedup_at_longest']:.1f}x faster than recomputing at position "
        f"{c['longest_position']:,}",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
