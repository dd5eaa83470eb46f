"""Wall time of pdlt.theory.ntk_statistics (all first-order tensors) against the number of inputs N and the depth L.

Run: PYTHONPATH=lib JAX_PLATFORMS=cpu .venv/bin/python bench/ntk_stats_bench.py [--quick]
Prints, per (activation, N, L), the first call (compilation included, fresh process state per N)
and a second call (compiled). The chunked scan compiles once per (N, activation), so a new depth
reuses the compilation.
"""
import sys
import time

import jax

jax.config.update("jax_enable_x64", True)
import numpy as np  # noqa: E402

import pdlt  # noqa: E402


def timed(x, act, L, cpu=False):
    """Wall seconds of one call (or, with cpu=True, the process CPU seconds: on a shared, loaded machine
    CPU time / cores is the better estimate of the unloaded wall time)."""
    clock = time.process_time if cpu else time.perf_counter
    t = clock()
    s = pdlt.theory.ntk_statistics(x, C_b=0.1, C_W=1.2, L=L, activation=act, lambda_b=0.5,
                                   lambda_W=1.0)
    jax.block_until_ready(s.A)
    return clock() - t


def main():
    quick = "--quick" in sys.argv
    rng = np.random.default_rng(0)
    if quick:
        x = rng.normal(size=(4, 8))
        print(f"tanh N=4 L=20: first call {timed(x, 'tanh', 20, cpu=True):.2f} CPU s, "
              f"again {timed(x, 'tanh', 20, cpu=True):.2f} CPU s")
        return
    cases = [("tanh", N, 20) for N in (1, 2, 3, 4, 8)] + [("relu", 4, 20)]
    print(f"{'act':6s} {'N':>3s} {'L':>5s} {'first (s)':>10s} {'again (s)':>10s}")
    for act, N, L in cases:
        x = rng.normal(size=(N, 8))
        t1, t2 = timed(x, act, L), timed(x, act, L)
        print(f"{act:6s} {N:3d} {L:5d} {t1:10.2f} {t2:10.2f}", flush=True)
        if not quick and act == "tanh" and N in (2, 4):
            for L2 in (80, 320):
                print(f"{act:6s} {N:3d} {L2:5d} {'':10s} {timed(x, act, L2):10.2f}", flush=True)


if __name__ == "__main__":
    main()
