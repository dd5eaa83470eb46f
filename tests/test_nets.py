

def test_gpu_check_plan():
    """`make gpu-check` (bench/gpu_check.py): the plan in both modes, without running it."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    for scale, chapter_scale in (("full", "full"), ("ci", "ci")):
        out = subprocess.run([sys.executable, str(root / "bench" / "gpu_check.py"), "--dry-run"], capture_output=True,
                             text=True, env=dict(os.environ, GPU_CHECK_SCALE=scale), check=True).stdout
        plan = json.loads(out)
        assert plan["budget_s"] <= 480
        names = [s["name"] for s in plan["stages"]]
        assert names[0] == "bench" and len(names) >= 2
        for s in plan["stages"][1:]:
            assert s["cmd"][1:4] == ["-m", "pdlt.run", s["name"]] and s["cmd"][s["cmd"].index("--scale") + 1] == chapter_scale
            assert (root / "book" / "params" / f"{s['name']}.full.yaml").exists()
        assert abs(sum(s["share"] for s in plan["stages"]) - 1.0) < 1e-12
    bad = subprocess.run([sys.executable, str(root / "bench" / "gpu_check.py"), "--dry-run"], capture_output=True,
                         text=True, env=dict(os.environ, GPU_CHECK_SCALE="huge"))
    assert bad.returncode == 2 and "GPU_CHECK_SCALE" in bad.stderr
