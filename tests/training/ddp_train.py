"""Training scenarios run by every process of a ``torchrun`` launch (and in one process by
the tests, as references). Each process saves what it ended with to ``<out>/rank<r>.pt``.

    torchrun --nproc_per_node 2 --master_addr 127.0.0.1 --master_port PORT \
        tests/training/ddp_train.py OUT_DIR
"""

from __future__ import annotations

import os
import sys
import tempfile
from typing import Any

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # helpers

from tiny import TinyNet, make_trainer, state, toy_data  # noqa: E402

#: name -> (model options, data options, trainer options)
SCENARIOS: dict[str, tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = {
    "mgda_plain": ({}, {}, {"aggregator": "mgda", "flat": False}),
    "mgda_flat": ({}, {}, {"aggregator": "mgda", "flat": True}),
    "pcgrad_flat": ({}, {}, {"aggregator": "pcgrad", "flat": True}),
    "rlw_flat": ({}, {}, {"aggregator": "rlw", "flat": True}),
    "graddrop_flat": ({}, {}, {"aggregator": "graddrop", "flat": True}),
    "famo_flat": ({}, {}, {"aggregator": "famo", "flat": True}),
    "batch_norm": ({"batch_norm": True}, {}, {"aggregator": "mgda", "flat": True}),
    # Sample 5 holds a NaN: with 2 processes of 4 it is on one process only at step 1.
    "nan_one_rank": ({}, {"nan_index": 5}, {"aggregator": "mgda", "flat": True}),
}


def run(name: str, batch_size: int, output_dir: str) -> dict[str, Any]:
    model_options, data_options, trainer_options = SCENARIOS[name]
    model = TinyNet(**model_options)
    trainer = make_trainer(
        model,
        output_dir,
        toy_data(**data_options),
        per_device_train_batch_size=batch_size,
        **trainer_options,
    )
    trainer.train()
    return {"state": state(model), "skipped": trainer._skipped_steps}


def main(out_dir: str) -> None:
    rank = int(os.environ.get("RANK", "0"))
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in SCENARIOS:
            results[name] = run(name, 4, os.path.join(tmp, name))
    results["world_size"] = torch.distributed.get_world_size()
    torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))


if __name__ == "__main__":
    main(sys.argv[1])
