"""Diagnostics reach ``Trainer.log`` with the right values; the plot script draws them."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import torch
from tiny import TinyNet, make_trainer, toy_data

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(tmp_path, **options):
    model = TinyNet()
    settings = dict(
        per_device_train_batch_size=8,
        max_steps=4,
        logging_steps=2,
        aggregator="mgda",
        flat=True,
        save_strategy="steps",
        save_steps=4,
    )
    settings.update(options)  # fmt: skip
    trainer = make_trainer(model, str(tmp_path), toy_data(16), **settings)
    trainer.train()
    return trainer, [entry for entry in trainer.state.log_history if "loss" in entry]


def test_logged_diagnostics_names_and_values(tmp_path):
    trainer, logs = _run(tmp_path, logging_steps=1, max_steps=2)
    assert len(logs) == 2
    first = logs[0]
    for task in ("a", "b"):
        for key in (f"loss/{task}", f"grad_norm/{task}", f"weight/loss/{task}",
                    f"weight/flat/{task}", f"perturbation_norm/shared/{task}",
                    f"perturbation_norm/task/{task}"):  # fmt: skip
            assert key in first and np.isfinite(first[key]), key
        # SAM: every perturbation has the radius exactly (its gradient is not zero).
        assert abs(first[f"perturbation_norm/shared/{task}"] - 0.3) < 1e-6
        assert abs(first[f"perturbation_norm/task/{task}"] - 0.2) < 1e-6
    assert 0.0 <= first["conflict_share"] <= 1.0 and first["skipped_steps"] == 0
    assert abs(first["weight/loss/a"] + first["weight/loss/b"] - 1.0) < 1e-9  # MGDA: simplex
    # The per-task loss and the gradient norm of the first window, recomputed by hand.
    model = TinyNet()
    batches = list(
        make_trainer(
            TinyNet(), str(tmp_path / "o"), toy_data(16), per_device_train_batch_size=8
        ).get_train_dataloader()
    )
    losses = model(batches[0]["x"], batches[0]["labels"])["losses"]
    grad = torch.autograd.grad(losses["a"], [model.trunk.weight, model.trunk.bias])
    norm = float(torch.sqrt(sum((g**2).sum() for g in grad)))
    assert abs(first["grad_norm/a"] - norm) <= 1e-5 * norm
    assert abs(first["loss/a"] - float(losses["a"].detach())) <= 1e-6
    assert abs(first["loss/a"] + first["loss/b"] - first["loss"]) < 1e-4


def test_plot_script_draws_png_from_a_real_run(tmp_path):
    _run(tmp_path / "run")
    out = tmp_path / "diagnostics.png"
    done = subprocess.run(
        [sys.executable, os.path.join(ROOT, "scripts", "plot_diagnostics.py"),
         str(tmp_path / "run"), "--out", str(out)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert out.stat().st_size > 20_000
    import matplotlib.image

    pixels = matplotlib.image.imread(str(out))
    assert pixels.shape[0] > 300 and pixels.shape[1] > 600
    assert float(pixels[..., :3].std()) > 0.05  # curves and text, not a blank canvas
    state = json.loads((tmp_path / "run" / "checkpoint-4" / "trainer_state.json").read_text())
    assert any("grad_norm/a" in entry for entry in state["log_history"])
