from __future__ import annotations

import pytest
import torch

from flatmtl import FlatMTLConfig
from flatmtl.schedules import StepDecayTrainer, steps_per_epoch
from helpers import TwoHeadNet, toy_data


def _config(tmp_path, **kwargs):
    return FlatMTLConfig(output_dir=str(tmp_path), use_cpu=True, report_to="none", **kwargs)


def test_steps_per_epoch(tmp_path):
    assert steps_per_epoch(20, _config(tmp_path, per_device_train_batch_size=8)) == 3
    drop = _config(tmp_path, per_device_train_batch_size=8, dataloader_drop_last=True)
    assert steps_per_epoch(20, drop) == 2
    accumulate = _config(tmp_path, per_device_train_batch_size=4, gradient_accumulation_steps=2)
    assert steps_per_epoch(20, accumulate) == 3  # 5 batches -> 3 optimizer steps


def test_step_decay_multiplies_the_rate_every_k_steps(tmp_path):
    args = _config(
        tmp_path,
        per_device_train_batch_size=2,
        max_steps=5,
        learning_rate=0.1,
        save_strategy="no",
        disable_tqdm=True,
        logging_steps=1,
    )
    trainer = StepDecayTrainer(
        model=TwoHeadNet(), args=args, train_dataset=toy_data(), lr_step_size=2, lr_gamma=0.5
    )
    trainer.train()
    rates = [entry["learning_rate"] for entry in trainer.state.log_history if "loss" in entry]
    assert rates == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025])
    assert isinstance(trainer.lr_scheduler, torch.optim.lr_scheduler.StepLR)
    with pytest.raises(ValueError, match="`lr_gamma` must be positive"):
        StepDecayTrainer(model=TwoHeadNet(), args=args, lr_step_size=2, lr_gamma=0.0)
