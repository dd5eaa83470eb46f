"""`make bench`: the performance benchmarks of issue 8 (CPU or GPU), a table on stdout and a JSON file.

Every timing excludes compilation (one warm-up call, reported apart as ``first_s``) and is the median
of several runs. Ratios are against baselines measured in the same run (a plain explicit-weights
``vmap`` ensemble; the float32 matmul throughput), and against neural-tangents when
bench/results/peer.json (from ``make bench-peer``) is present -- those NT timings come from a separate
process, so their ratios carry the load difference between the two runs.

Usage: python bench/run.py [--out FILE] [--skip-stream] [--stream N ...]
       python bench/run.py --stream-one N   (one streaming run: peak memory of this process)
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as C  # noqa: E402
import pdlt  # noqa: E402
from pdlt.ensembles import enable_compilation_cache  # noqa: E402
from pdlt.ensembles import fast_ensemble_moments, fast_ensemble_metrics  # noqa: E402

F32, F64 = jnp.float32, jnp.float64
STREAM = dict(n_inputs=4, n0=32, width=256, depth=16, chunk=4096)


def _kw(w):
    return dict(widths=(w["width"],) * w["depth"], C_b=C.C_B, C_W=C.C_W, activation="relu", n_nets=w["n_nets"])


def row(rows, workload, name, dtype, t, **extra):
    r = {"workload": workload, "name": name, "dtype": np.dtype(dtype).name, **t, **extra}
    rows.append(r)
    print(f"  {workload:6s} {name:44s} {r['dtype']:8s} {1e3 * t['median_s']:10.1f} ms", flush=True)
    return r


def ours_w12(w, name, dtype, method, rng, compute="conditional"):
    x = C.inputs(w["n_inputs"], w["n0"], dtype)
    key = jax.random.key(0)
    if name.startswith("pdlt.ensemble_metrics"):
        return lambda: pdlt.ensemble_metrics(key, x, **_kw(w), method=method, progress=False)
    return lambda: fast_ensemble_metrics(key, x, **_kw(w), method=method, rng=rng, dtype=dtype, outputs=False,
                                         progress=False)


def flops_w(w, method):
    """Matmul flops of one ensemble pass (metrics of every layer; the last layer is not sampled)."""
    N, n0, n, L = w["n_inputs"], w["n0"], w["width"], w["depth"]
    f = 2 * N * N * n0                                   # G^(1)
    fan = n0
    for _ in range(L - 1):
        if method == "explicit" or N > fan:              # feature factor / explicit weights: (N, fan[+1]) @ (fan[+1], n)
            f += 2 * N * fan * n
        else:                                             # Cholesky factor: N^3/3 + (N, N) @ (N, n)
            f += N**3 // 3 + 2 * N * N * n
        f += 2 * N * N * n                                # the Gram matrix of layer ell+1
        fan = n
    return f * w["n_nets"]


def bench_w1(rows):
    w = C.W1
    for dt in (F64, F32):
        base = row(rows, "w1", "baseline: explicit-weights vmap", dt,
                   C.timeit(C.explicit_vmap_baseline(w["n_nets"], w["n_inputs"], w["n0"], w["width"], w["depth"], dt),
                            max_runs=5, budget_s=20), baseline=True)
        variants = [("fast conditional, threefry", "conditional", "threefry"),
                    ("fast conditional, splitmix", "conditional", "splitmix"),
                    ("fast explicit, splitmix", "explicit", "splitmix")]
        if dt == F64:
            variants = [("pdlt.ensemble_metrics conditional", "conditional", None),
                        ("pdlt.ensemble_metrics explicit", "explicit", None)] + variants
        for name, method, rng in variants:
            t = C.timeit(ours_w12(w, name, dt, method, rng), max_runs=5, budget_s=15)
            row(rows, "w1", name, dt, t, method=method, vs_baseline=base["median_s"] / t["median_s"])


def stat_check_w1():
    """Max |z| over (layer 2..L, a, b) of the differences of means and of variances: fast (splitmix, float32) vs
    pdlt (threefry, float64), independent seeds. Layer 1 is deterministic (no spread) and left out."""
    w = dict(C.W1, n_nets=1024)
    x = C.inputs(w["n_inputs"], w["n0"], F64)
    G0, _ = pdlt.ensemble_metrics(jax.random.key(11), x, **_kw(w), progress=False)
    G1 = fast_ensemble_metrics(jax.random.key(12), x, **_kw(w), rng="splitmix", dtype=F32, outputs=False,
                               progress=False)
    G0, G1 = np.asarray(G0)[:, 1:], np.asarray(G1, dtype=np.float64)[:, 1:]
    m0, s0 = pdlt.mean_and_se(G0)
    m1, s1 = pdlt.mean_and_se(G1)
    z = np.abs(m0 - m1) / np.sqrt(s0**2 + s1**2)
    v0, e0 = pdlt.variance_and_se(G0)
    v1, e1 = pdlt.variance_and_se(G1)
    zv = np.abs(v0 - v1) / np.sqrt(e0**2 + e1**2)
    return {"n_nets": 1024, "max_abs_z_mean": float(z.max()), "max_abs_z_var": float(zv.max()), "n_tests": int(z.size)}


def bench_w2(rows, peak32):
    w = C.W2
    for name, method, rng, dt in (("fast conditional, splitmix", "conditional", "splitmix", F32),
                                  ("fast conditional, splitmix", "conditional", "splitmix", F64)):
        t = C.timeit(ours_w12(w, name, dt, method, rng), min_runs=3, max_runs=3, budget_s=10)
        gf = flops_w(w, method) / t["median_s"] / 1e9
        row(rows, "w2", name, dt, t, gflops=gf, frac_matmul_f32=gf / peak32)
    # the estimate itself, streamed: mean and variance (with standard errors) of every entry of every
    # layer's metric, without returning the per-network metrics (0.5 GB per 64 networks in float32)
    x = C.inputs(w["n_inputs"], w["n0"], F32)
    f = lambda: fast_ensemble_moments(jax.random.key(0), x, **_kw(w), method="conditional", rng="splitmix",  # noqa: E731
                                      dtype=F32, progress=False)
    t = C.timeit(f, min_runs=3, max_runs=3, budget_s=10)
    gf = flops_w(w, "conditional") / t["median_s"] / 1e9
    row(rows, "w2", "fast_ensemble_moments (mean, variance and SEs, streamed), splitmix", F32, t, gflops=gf,
        frac_matmul_f32=gf / peak32)


def bench_w3(rows):
    x = C.inputs(C.W3["n_inputs"], C.W3["n0"], F64)
    for L in C.W3["depths"]:
        for dt in (F64, F32):
            xd = x.astype(dt)
            f = lambda: pdlt.ntk_recursion(xd, C_b=C.C_B, C_W=C.C_W, L=L, activation="relu")  # noqa: E731
            row(rows, f"w3_L{L}", "pdlt.ntk_recursion (K and Theta, all layers)", dt,
                C.timeit(f, max_runs=11, budget_s=5))


def bench_w4(rows):
    w = C.W4
    impl, name = pdlt.empirical_ntk, "pdlt.empirical_ntk (vmap over params)"
    for dt in (F64, F32):
        x = C.inputs(w["n_inputs"], w["n0"], dt)
        widths = (w["width"],) * (w["depth"] - 1) + (w["n_out"],)
        keys = jax.random.split(jax.random.key(0), w["n_nets"])
        params = jax.vmap(lambda k: pdlt.ensembles.init_mlp(k, w["n0"], widths, C_b=0.0, C_W=C.C_W, dtype=dt))(keys)
        f = jax.jit(jax.vmap(lambda p: impl(p, x, "relu")))
        row(rows, "w4", name, dt, C.timeit(lambda: f(params), max_runs=5, budget_s=15))


def bench_scaling(rows):
    """Time against ensemble size (depth 8) and depth (256 networks): the fitted log-log slopes."""
    w = dict(C.W1)
    x = C.inputs(w["n_inputs"], w["n0"], F64)
    key = jax.random.key(0)
    out = {}
    for axis, values in (("n_nets", (64, 128, 256, 512)), ("depth", (2, 4, 8, 16))):
        ts = []
        for v in values:
            ww = dict(w, **{axis: v})
            t = C.timeit(lambda: fast_ensemble_metrics(key, x, **_kw(ww), rng="threefry", outputs=False,
                                                        progress=False), max_runs=5, budget_s=5)
            row(rows, f"w5_{axis}", f"fast conditional, threefry, {axis}={v}", F64, t, **{axis: v})
            ts.append(t["median_s"])
        slope = np.polyfit(np.log(values), np.log(ts), 1)[0]
        out[axis] = {"values": list(values), "median_s": ts, "loglog_slope": float(slope)}
    return out


def peak_rss_mb():
    """This process's peak resident memory (VmHWM; ru_maxrss on Linux also counts the parent's peak before exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def stream_one(n_nets):
    """One streaming run in this process: time and peak resident memory (the process's high-water mark)."""
    s = STREAM
    x = C.inputs(s["n_inputs"], s["n0"], F64)
    kw = dict(widths=(s["width"],) * s["depth"], C_b=C.C_B, C_W=C.C_W, rng="splitmix", dtype=F32, vertex=True,
              chunk=s["chunk"], progress=None)
    fast_ensemble_moments(jax.random.key(5), x, **kw, n_nets=2 * s["chunk"])     # compile (full and partial chunk)
    rss0 = peak_rss_mb()
    t0 = time.perf_counter()
    m = fast_ensemble_moments(jax.random.key(0), x, **kw, n_nets=n_nets)
    dt = time.perf_counter() - t0
    rss = peak_rss_mb()
    K = pdlt.kernel_recursion(pdlt.theory.input_kernel(x, C_b=C.C_B, C_W=C.C_W), C_b=C.C_B, C_W=C.C_W, L=s["depth"])
    # ReLU, C_b = 0: E[G_aa^(ell+1)] = (C_W/2) E[G_aa^(ell)] exactly at any width, so the diagonal of the
    # last layer's mean metric must match the infinite-width K_aa^(L) within its SE (off-diagonal: O(L/n) bias)
    d = np.arange(x.shape[0])
    z = float(np.max(np.abs(m["mean"][-1][d, d] - np.asarray(K[-1])[d, d]) / m["mean_se"][-1][d, d]))
    return {"n_nets": n_nets, "wall_s": dt, "nets_per_s": n_nets / dt, "peak_rss_mb": rss,
            "peak_rss_after_compile_mb": rss0, "mean_G_L_11": float(m["mean"][-1, 0, 0]),
            "K_L_11_infinite_width": float(K[-1, 0, 0]), "max_z_diagonal_vs_infinite_width": z}


def bench_stream(sizes):
    out = []
    for n in sizes:
        p = subprocess.run([sys.executable, __file__, "--stream-one", str(n)], capture_output=True, text=True,
                           env=dict(os.environ, PDLT_PROGRESS="0"))
        if p.returncode:
            raise RuntimeError(p.stderr[-3000:])
        r = json.loads(p.stdout.split("@@", 1)[1])
        print(f"  stream n_nets={n:>8d}: {r['wall_s']:8.1f} s, {r['nets_per_s']:9.0f} nets/s, "
              f"peak RSS {r['peak_rss_mb']:.0f} MB", flush=True)
        out.append(r)
    return out


def nt_ratios(rows, peer):
    """Attach NT's median time (same workload, same dtype, from peer.json) and our speed-up over it."""
    for r in rows:
        p = peer.get(r["dtype"], {}).get(r["workload"], {})
        nt = [v["median_s"] for k, v in p.items() if k.startswith("nt_")]
        if nt:
            r["nt_median_s"] = min(nt)
            r["vs_nt"] = min(nt) / r["median_s"]


def table(rows):
    head = f"| workload | implementation | dtype | median ms | runs | × baseline | × NT |"
    lines = [head, "|---|---|---|---:|---:|---:|---:|"]
    for r in rows:
        b = f"{r['vs_baseline']:.1f}" if "vs_baseline" in r else ("1 (baseline)" if r.get("baseline") else "")
        n = f"{r['vs_nt']:.1f}" if "vs_nt" in r else ""
        extra = f" ({r['gflops']:.0f} GFLOP/s, {100 * r['frac_matmul_f32']:.0f}% of f32 matmul)" if "gflops" in r else ""
        lines.append(f"| {r['workload']} | {r['name']}{extra} | {r['dtype']} | {1e3 * r['median_s']:.1f} | "
                     f"{r['runs']} | {b} | {n} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=None, help="JSON file (default bench/results/<backend>-<host>.json)")
    ap.add_argument("--stream", type=int, nargs="*", default=[20_000, 100_000], help="streaming ensemble sizes")
    ap.add_argument("--skip", nargs="*", default=[], help="sections to skip: w1 stat w2 w3 w4 scaling stream")
    ap.add_argument("--stream-one", type=int, default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    cache = enable_compilation_cache(os.environ.get("JAX_COMPILATION_CACHE_DIR") or C.ROOT / "_build" / ".jax_cache")
    if a.stream_one:
        print("@@" + json.dumps(stream_one(a.stream_one)))
        return
    res = {"machine": C.machine(), "compilation_cache": str(cache), "rows": []}
    rows = res["rows"]
    print(f"device: {res['machine']['devices']}  load average at start: {res['machine']['loadavg_start']}")
    res["matmul"] = {np.dtype(dt).name: C.matmul_peak(dt) for dt in (F32, F64)}
    peak32 = res["matmul"]["float32"]["gflops"]
    print(f"  matmul 1024^3: float32 {peak32:.1f} GFLOP/s, float64 {res['matmul']['float64']['gflops']:.1f} GFLOP/s")
    if "w1" not in a.skip:
        bench_w1(rows)
    if "stat" not in a.skip:
        res["w1_statistical_check"] = stat_check_w1()
        print(f"  w1 statistical check (fast splitmix f32 vs pdlt): {res['w1_statistical_check']}")
    if "w2" not in a.skip:
        bench_w2(rows, peak32)
    if "w3" not in a.skip:
        bench_w3(rows)
    if "w4" not in a.skip:
        bench_w4(rows)
    if "scaling" not in a.skip:
        res["scaling"] = bench_scaling(rows)
        print(f"  log-log slopes: " + ", ".join(f"{k} {v['loglog_slope']:.2f}" for k, v in res["scaling"].items()))
    if "stream" not in a.skip and a.stream:
        res["stream"] = bench_stream(a.stream)
    if C.PEER_JSON.exists():
        peer = json.loads(C.PEER_JSON.read_text())
        res["peer"] = {"file": str(C.PEER_JSON.relative_to(C.ROOT)), "machine": peer.get("machine"),
                       "neural_tangents": peer.get("neural_tangents")}
        nt_ratios(rows, peer)
    res["machine"]["loadavg_end"] = os.getloadavg()
    out = Path(a.out) if a.out else C.RESULTS / f"{jax.default_backend()}-{os.uname().nodename}.json"
    C.write_json(out, res)
    print()
    print(table(rows))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
