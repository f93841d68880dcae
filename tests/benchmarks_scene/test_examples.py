"""The three benchmark examples run end to end on fixture data (two steps, tiny models)."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
COMMON = ["--max_steps", "2", "--save_strategy", "no", "--use_cpu", "--seed", "0"]


def load_example(name: str):
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))  # the scene examples share scene_benchmark.py
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_celeba_example(celeba_dir, tmp_path):
    out = tmp_path / "out"
    argv = ["--data_dir", str(celeba_dir), "--output_dir", str(out), "--image_size", "16"]
    argv += ["--model_width", "4", "--per_device_train_batch_size", "2"]
    argv += ["--aggregator", "mgda", "--rho_shared", "0.01", "--rho_task", "0.01"]
    results = load_example("celeba").main(argv + COMMON)
    assert len(results) == 41 and 0.0 <= results["mean_error"] <= 1.0
    assert json.loads((out / "test_results.json").read_text())["mean_error"] == pytest.approx(
        results["mean_error"]
    )


@pytest.mark.parametrize("name", ["nyuv2", "cityscapes"])
def test_scene_examples(name, nyuv2_dir, cityscapes_dir, tmp_path):
    data = nyuv2_dir if name == "nyuv2" else cityscapes_dir
    out = tmp_path / "out"
    argv = ["--data_dir", str(data), "--output_dir", str(out), "--model_width", "4"]
    argv += ["--per_device_train_batch_size", "2", "--aggregator", "cagrad", "--no-flat"]
    if name == "nyuv2":
        argv[-1:] = ["--flat", "--adaptive", "--per_batch_metrics"]
    module = load_example(name)
    results = module.main(argv + COMMON)
    assert results["num_evaluations"] == 1.0  # one epoch of two steps, evaluated once
    assert math.isfinite(results["delta_m"]) and 0.0 <= results["segmentation_miou"] <= 1.0
    assert ("normal_angle_median" in results) == (name == "nyuv2")
    saved = json.loads((out / "last_evaluations_mean.json").read_text())
    assert saved["eval_depth_abs_err"] == pytest.approx(results["depth_abs_err"])
