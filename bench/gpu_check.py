"""`make gpu-check`: one prepared device check that fits in 8 minutes on one GPU.

1. the benchmarks (bench/run.py, streaming section skipped) on the device, reporting each ensemble's
   matmul throughput as a fraction of the device's measured float32 matmul peak;
2. two chapters at full scale (``python -m pdlt.run <ch> --scale full``) into book/results/full/;
3. a summary with provenance (library hash, commit, devices, timings, exit codes) in
   bench/results/gpu-check-<scale>.json.

Each stage runs under its own time limit, taken from what is left of the total budget, so a slow
stage cannot push the whole check past it. ``GPU_CHECK_SCALE=ci`` is the CPU smoke mode: only the
matmul reference of the benchmarks, one chapter at CI scale, outputs under bench/results/gpu-check-ci/.
``--dry-run`` prints the plan and exits.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLANS = {
    # chapters: full-scale sizes sized for one GPU in book/params/<ch>.full.yaml
    "full": dict(budget_s=480, bench_skip=["stream"], bench_share=0.45, chapters=["ch05", "appB"],
                 chapter_scale="full", chapter_out="book/results/full"),
    "ci": dict(budget_s=480, bench_skip=["w1", "stat", "w2", "w3", "w4", "scaling", "stream"], bench_share=0.3,
               chapters=["ch01"], chapter_scale="ci", chapter_out="bench/results/gpu-check-ci/chapters"),
}


def commands(scale: str, py: str = sys.executable):
    p = PLANS[scale]
    tag = f"gpu-check-{scale}"
    bench_out = ROOT / "bench" / "results" / f"{tag}-bench.json"
    cmds = [("bench", [py, str(ROOT / "bench" / "run.py"), "--out", str(bench_out), "--skip", *p["bench_skip"]],
             p["bench_share"])]
    share = (1.0 - p["bench_share"]) / len(p["chapters"])
    for ch in p["chapters"]:
        cmds.append((ch, [py, "-m", "pdlt.run", ch, "--scale", p["chapter_scale"], "--out",
                          str(ROOT / p["chapter_out"])], share))
    return cmds, bench_out, ROOT / "bench" / "results" / f"{tag}.json"


def fractions_of_peak(bench_json: Path):
    """Per benchmark row: GFLOP/s and the fraction of the device's measured float32 matmul peak."""
    if not bench_json.exists():
        return None
    b = json.loads(bench_json.read_text())
    peak = b.get("matmul", {}).get("float32", {}).get("gflops")
    rows = [{"workload": r["workload"], "name": r["name"], "dtype": r["dtype"], "median_s": r["median_s"],
             "gflops": r.get("gflops"), "frac_matmul_f32": (r["gflops"] / peak) if r.get("gflops") and peak else None}
            for r in b.get("rows", [])]
    return {"matmul_gflops": {k: v.get("gflops") for k, v in b.get("matmul", {}).items()}, "rows": rows}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    a = ap.parse_args(argv)
    scale = os.environ.get("GPU_CHECK_SCALE", "full")
    if scale not in PLANS:
        print(f"gpu_check: unknown GPU_CHECK_SCALE {scale!r}; valid: {', '.join(PLANS)}", file=sys.stderr)
        return 2
    cmds, bench_out, summary_out = commands(scale)
    budget = float(os.environ.get("GPU_CHECK_BUDGET_S", PLANS[scale]["budget_s"]))
    if a.dry_run:
        print(json.dumps({"scale": scale, "budget_s": budget,
                          "stages": [{"name": n, "cmd": c, "share": s} for n, c, s in cmds],
                          "summary": str(summary_out)}, indent=1))
        return 0
    env = dict(os.environ, PDLT_PROGRESS="0", PYTHONPATH=f"{ROOT / 'lib'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    t_start, stages = time.monotonic(), []
    for i, (name, cmd, share) in enumerate(cmds):
        left = budget - (time.monotonic() - t_start)
        # what is left, less the shares reserved for the later stages (unused time of earlier stages carries over)
        limit = max(1.0, left - sum(s for *_, s in cmds[i + 1:]) * budget)
        t0 = time.monotonic()
        print(f"[gpu-check] {name}: limit {limit:.0f} s: {' '.join(cmd)}", flush=True)
        try:
            rc = subprocess.run(cmd, cwd=ROOT, env=env, timeout=limit).returncode
        except subprocess.TimeoutExpired:
            rc = 124
        stages.append({"name": name, "cmd": cmd, "rc": rc, "wall_s": time.monotonic() - t0, "limit_s": limit})
        print(f"[gpu-check] {name}: rc={rc} in {stages[-1]['wall_s']:.1f} s", flush=True)
    sys.path.insert(0, str(ROOT / "lib"))
    from pdlt.book import provenance

    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    summary = {"scale": scale, "budget_s": budget, "wall_s": time.monotonic() - t_start, "commit": commit,
               "provenance": provenance(), "stages": stages, "bench": fractions_of_peak(bench_out)}
    summary_out.parent.mkdir(parents=True, exist_ok=True)
    summary_out.write_text(json.dumps(summary, indent=1))
    if summary["bench"]:
        for r in summary["bench"]["rows"]:
            if r["frac_matmul_f32"] is not None:
                print(f"  {r['workload']:6s} {r['name']:44s} {r['dtype']:8s} {100 * r['frac_matmul_f32']:5.1f}% of f32 matmul peak")
    print(f"[gpu-check] wrote {summary_out}")
    return max((s["rc"] for s in stages), default=0)


if __name__ == "__main__":
    sys.exit(main())
