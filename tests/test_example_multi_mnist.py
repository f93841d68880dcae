"""The main job runs end to end and writes what it promises."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "multi_mnist.py"


def _load_example():
    spec = importlib.util.spec_from_file_location("multi_mnist_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    "extra",
    [
        ["--aggregator", "mgda", "--flat", "--rho_shared", "0.05", "--rho_task", "0.05"],
        ["--aggregator", "pcgrad", "--no-flat", "--variant", "multi_fashion"],
        [
            "--aggregator",
            "cagrad",
            "--adaptive",
            "--variant",
            "multi_fashion_and_mnist",
            "--flat_strategy",
            "direct",
        ],
    ],
)
def test_main_job_trains_evaluates_and_saves(extra, tmp_path):
    out = tmp_path / "run"
    results = _load_example().main(
        [
            "--output_dir",
            str(out),
            "--max_steps",
            "3",
            "--train_limit",
            "300",
            "--test_limit",
            "100",
            "--disable_tqdm",
            "true",
            *extra,
        ]
    )
    saved = json.loads((out / "test_results.json").read_text())
    assert set(saved) == {"accuracy_top_left", "accuracy_bottom_right", "accuracy_mean"}
    assert saved == pytest.approx(results)
    assert all(0.0 <= v <= 1.0 and math.isfinite(v) for v in saved.values())
    assert (out / "model.safetensors").is_file() and (out / "config.json").is_file()
    assert (out / "README.md").is_file()
