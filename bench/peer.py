"""The benchmark workloads run with neural-tangents (NT 0.6.5, JAX 0.4.30) in the peer environment.

Run by ``make bench-peer`` with ``.venv-peer/bin/python bench/peer.py``; writes bench/results/peer.json,
which ``make bench`` reads for the NT ratios. Each dtype runs in its own process (x64 is global).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys

import numpy as np

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))


def run(dtype_name):
    import jax

    if dtype_name == "float64":
        jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import neural_tangents as nt
    from neural_tangents import stax

    import common as C

    dtype = jnp.float64 if dtype_name == "float64" else jnp.float32
    out = {"matmul": C.matmul_peak(dtype)}

    def mlp(width, depth, n_out):
        layers = []
        for _ in range(depth - 1):
            layers += [stax.Dense(width, W_std=np.sqrt(C.C_W), b_std=None), stax.Relu()]
        return stax.serial(*layers, stax.Dense(n_out, W_std=np.sqrt(C.C_W), b_std=None))

    # 1 and 2: Monte Carlo NNGP of the last layer (NT estimates only the output kernel).
    for name, w in (("w1", C.W1), ("w2", C.W2)):
        x = C.inputs(w["n_inputs"], w["n0"], dtype)
        init_fn, apply_fn, _ = mlp(w["width"], w["depth"], w["width"])
        mc = nt.monte_carlo_kernel_fn(init_fn, apply_fn, jax.random.PRNGKey(0), n_samples=w["n_nets"],
                                      device_count=0, trace_axes=(-1,))
        out[name] = {"nt_monte_carlo": C.timeit(lambda: mc(x, None, "nngp"), min_runs=3, max_runs=5, budget_s=30)}
        if name == "w1":
            out[name]["explicit_vmap_baseline"] = C.timeit(
                C.explicit_vmap_baseline(w["n_nets"], w["n_inputs"], w["n0"], w["width"], w["depth"], dtype),
                min_runs=3, max_runs=5, budget_s=30)
    # 3: analytic NNGP + NTK.
    x = C.inputs(C.W3["n_inputs"], C.W3["n0"], dtype)
    for L in C.W3["depths"]:
        _, _, kernel_fn = mlp(C.W3["nt_width"], L, 1)
        kf = jax.jit(kernel_fn, static_argnames="get")
        out[f"w3_L{L}"] = {"nt_kernel_fn": C.timeit(lambda: kf(x, None, get=("nngp", "ntk")), max_runs=11, budget_s=5)}
    # 4: empirical NTK of 64 networks, vmapped over parameters.
    w = C.W4
    x = C.inputs(w["n_inputs"], w["n0"], dtype)
    init_fn, apply_fn, _ = mlp(w["width"], w["depth"], w["n_out"])
    keys = jax.random.split(jax.random.PRNGKey(0), w["n_nets"])
    params = jax.vmap(lambda k: init_fn(k, x.shape)[1])(keys)
    out["w4"] = {}
    for impl in (nt.NtkImplementation.JACOBIAN_CONTRACTION, nt.NtkImplementation.STRUCTURED_DERIVATIVES):
        ntk_fn = nt.empirical_ntk_fn(apply_fn, trace_axes=(), vmap_axes=0, implementation=impl)
        f = jax.jit(jax.vmap(lambda p: ntk_fn(x, None, p)))
        try:
            out["w4"][f"nt_empirical_ntk_{impl.name.lower()}"] = C.timeit(lambda: f(params), max_runs=5, budget_s=20)
        except Exception as e:  # noqa: BLE001  (an NT implementation that fails on this JAX is recorded, not fatal)
            out["w4_errors"] = out.get("w4_errors", {}) | {impl.name.lower(): f"{type(e).__name__}: {e}"[:300]}
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dtype", choices=["float32", "float64"])
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    if a.dtype:  # child: one dtype, JSON on stdout
        print("@@" + json.dumps(run(a.dtype), default=float))
        return
    import common as C

    res = {"machine": None, "neural_tangents": None}
    for dt in ("float32", "float64"):
        p = subprocess.run([sys.executable, __file__, "--dtype", dt], capture_output=True, text=True)
        if p.returncode:
            sys.exit(f"peer benchmark ({dt}) failed:\n{p.stderr[-3000:]}")
        res[dt] = json.loads(p.stdout.split("@@", 1)[1])
        print(f"peer {dt}: done", flush=True)
    import jax
    import neural_tangents as nt

    res["machine"], res["neural_tangents"] = C.machine(), nt.__version__
    C.write_json(a.out or C.PEER_JSON, res)
    print(f"wrote {a.out or C.PEER_JSON}")


if __name__ == "__main__":
    main()
