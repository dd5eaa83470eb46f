"""Workload w3 (analytic K and Θ for 256 inputs, ReLU, depth 10 and 50) timed alternately with
neural-tangents and with pdlt, in fresh processes, so both see the same machine state.

On a shared 2-core machine the time of one and the same program swings by up to 80% between
minutes, which makes a ratio of two separate benchmark runs unreliable near 1. Here each round runs
NT and then pdlt within a few seconds of each other, and the per-round ratios are reported.

    .venv/bin/python bench/interleave_w3.py --peer-python .venv-peer/bin/python --rounds 6

Writes bench/results/w3-interleaved.json.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

CHILD = r"""
import json, sys
sys.path.insert(0, {bench!r})
import jax
jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp
import numpy as np
import common as C
x = C.inputs(C.W3["n_inputs"], C.W3["n0"], jnp.float64)
out = {{}}
for L in C.W3["depths"]:
    if {impl!r} == "nt":
        from neural_tangents import stax
        layers = []
        for _ in range(L - 1):
            layers += [stax.Dense(C.W3["nt_width"], W_std=np.sqrt(C.C_W), b_std=None), stax.Relu()]
        kf = jax.jit(stax.serial(*layers, stax.Dense(1, W_std=np.sqrt(C.C_W), b_std=None))[2], static_argnames="get")
        f = lambda: kf(x, None, get=("nngp", "ntk"))
    else:
        import pdlt
        f = lambda: pdlt.ntk_recursion(x, C_b=C.C_B, C_W=C.C_W, L=L, activation="relu")
    t = C.timeit(f, max_runs=21, budget_s=8)
    out[L] = {{"median_ms": t["median_s"] * 1e3, "min_ms": t["min_s"] * 1e3}}
print("@@" + json.dumps(out))
"""


def _time(python, impl):
    env = dict(os.environ)
    if impl == "nt":
        env["PYTHONPATH"] = ""
    p = subprocess.run([python, "-c", CHILD.format(bench=str(HERE), impl=impl)], capture_output=True, text=True,
                       env=env)
    if p.returncode:
        sys.exit(f"{impl} timing failed:\n{p.stderr[-2000:]}")
    return {int(k): v for k, v in json.loads(p.stdout.split("@@", 1)[1]).items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--peer-python", default=str(HERE.parent / ".venv-peer" / "bin" / "python"))
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--out", default=str(HERE / "results" / "w3-interleaved.json"))
    a = ap.parse_args()
    import common as C

    rounds = []
    for r in range(a.rounds):
        nt, ours = _time(a.peer_python, "nt"), _time(sys.executable, "pdlt")
        rounds.append({"nt": nt, "pdlt": ours})
        print(f"round {r + 1}: " + ", ".join(
            f"L={L} NT {nt[L]['median_ms']:.1f} ms, pdlt {ours[L]['median_ms']:.1f} ms "
            f"(x{nt[L]['median_ms'] / ours[L]['median_ms']:.2f})" for L in nt), flush=True)
    summary = {}
    for L in rounds[0]["nt"]:
        ratios = sorted(r["nt"][L]["median_ms"] / r["pdlt"][L]["median_ms"] for r in rounds)
        summary[L] = {"ratio_min": ratios[0], "ratio_median": ratios[len(ratios) // 2], "ratio_max": ratios[-1],
                      "rounds_pdlt_faster": sum(x > 1 for x in ratios), "rounds": len(ratios)}
        print(f"L={L}: pdlt/NT speed ratio median {summary[L]['ratio_median']:.2f} "
              f"(range {ratios[0]:.2f}-{ratios[-1]:.2f}); pdlt faster in {summary[L]['rounds_pdlt_faster']}/{len(ratios)}")
    C.write_json(Path(a.out), {"machine": C.machine(), "workload": C.W3, "dtype": "float64", "rounds": rounds,
                               "summary": summary})
    print(f"wrote {a.out}")


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    main()
