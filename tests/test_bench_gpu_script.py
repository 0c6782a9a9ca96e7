"""scripts/bench_gpu.py runs end to end at toy sizes on a CPU (its GPU figures need a CUDA machine)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_bench_gpu_quick_on_cpu(tmp_path):
    out = tmp_path / "gpu.json"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_gpu.py"), "--device", "cpu", "--quick",
                    "--pack", "1,2", "--out", str(out)], check=True, capture_output=True, timeout=900)
    result = json.loads(out.read_text())
    assert result["meta"]["quick"] is True and result["left_out"] == []
    epoch = result["epochs"]["td3bc"]
    assert epoch["update_ms"] > 0 and epoch["epoch_s"] > epoch["eval_s"] > 0
    assert result["adm"]["adm_train_step_ms"] > 0 and result["adm"]["adm_rollout_s"] > 0
    compiled = result["compile"]  # eager against each compile mode (aot_eager backend under --quick)
    assert compiled["backend"] == "aot_eager" and set(compiled) == {"backend", "sac", "td3bc"}
    assert set(compiled["sac"]) == {"off", "default", "reduce-overhead"}
    assert compiled["td3bc"]["default"]["update_ms"] > 0 and compiled["sac"]["off"]["speedup_vs_eager"] == 1.0
    assert compiled["sac"]["default"]["update_cpu_ms"] > 0  # on a CPU: thread CPU time too
    assert set(result["packing"]) == {"1", "2"}
    assert result["packing"]["2"]["updates_per_s_total"] > 0
    assert result["packing"]["1"]["slowdown_vs_alone"] == 1.0


def test_bench_gpu_refuses_a_missing_cuda_device(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_gpu.py"), "--device", "cuda",
                          "--out", str(tmp_path / "x.json")], capture_output=True, text=True, timeout=120)
    assert run.returncode != 0
    assert "no CUDA device" in run.stderr and not (tmp_path / "x.json").exists()
