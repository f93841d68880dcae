"""Train SegNet-MTAN on CityScapes (7-class segmentation, disparity) with FlatMTLTrainer.

    python examples/cityscapes.py --data_dir data/cityscapes --aggregator cagrad --flat \
        --rho_shared 0.05 --rho_task 0.05 --output_dir outputs/cityscapes

The defaults are the protocol of the paper and its references: Adam (AdamW with no weight
decay) at lr 1e-4 halved every 100 epochs, 200 epochs, batch 8, scale-crop and flip
augmentation, evaluation on the test split ("val") after every epoch, and the report of the
mean of the last 10 evaluations (``last_evaluations_mean.json``) with Delta_m against the STL
baseline. Without ``--data_dir`` the data comes from the Hub (``--hub_id``, default
``tanganke/cityscapes``, whose schema is assumed; see ``flatmtl.data.scenes``). Every
``TrainingArguments`` / ``FlatMTLConfig`` flag works (``--aggregator``, ``--no-flat``,
``--adaptive``, ``--num_train_epochs``, ``--bf16``, ...).
"""

from __future__ import annotations

import json
import math
import os
import sys
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import HfArgumentParser, set_seed

from flatmtl import FlatMTLConfig, FlatMTLTrainer, MultiTaskModel
from flatmtl.data.scenes import load_scene
from flatmtl.metrics import LastEvaluationsMean, delta_m, multitask_metrics
from flatmtl.metrics.multitask import CITYSCAPES_STL
from flatmtl.modeling.presets import cityscapes_config

BENCHMARK = "cityscapes"
BASELINE = CITYSCAPES_STL

# The paper's protocol; any flag given on the command line wins.
DEFAULTS = [
    "--output_dir", "outputs/cityscapes",
    "--aggregator", "cagrad",
    # MTAN's per-task attention modules take part in the aggregation, as in the F-MTL and
    # Nash-MTL code (the graph alone would make them task parameters).
    "--shared_patterns", r"backbone\.(encoder|decoder)_attention\.",
    "--num_train_epochs", "200",
    "--per_device_train_batch_size", "8",
    "--per_device_eval_batch_size", "8",
    "--learning_rate", "1e-4",
    "--weight_decay", "0",
    "--max_grad_norm", "0",
    "--logging_steps", "50",
    "--eval_strategy", "epoch",
    "--save_strategy", "epoch",
    "--save_total_limit", "1",
    "--batch_eval_metrics", "True",
    "--remove_unused_columns", "False",
    "--report_to", "none",
]  # fmt: skip


@dataclass
class ScriptArguments:
    data_dir: str | None = field(
        default=None, metadata={"help": "Folder with {train,val}/{image,label,depth}/N.npy."}
    )
    hub_id: str = field(default="tanganke/cityscapes", metadata={"help": "Hub data set id."})
    augment: bool = field(default=True, metadata={"help": "Scale-crop and flip the train split."})
    lr_step_epochs: int = field(
        default=100,
        metadata={"help": "Multiply the lr by lr_gamma every this many epochs (0: off)."},
    )
    lr_gamma: float = field(default=0.5, metadata={"help": "Step decay factor of the lr."})
    last_epochs: int = field(default=10, metadata={"help": "Report the mean of this many evals."})
    per_batch_metrics: bool = field(
        default=False, metadata={"help": "Average depth/normal metrics per batch (reference)."}
    )
    model_width: int = field(
        default=64, metadata={"help": "Channels of SegNet's first stage (64 in the paper)."}
    )
    train_limit: int | None = field(default=None, metadata={"help": "Use the first N train."})
    eval_limit: int | None = field(default=None, metadata={"help": "Use the first N test."})


class StepDecayTrainer(FlatMTLTrainer):
    """FlatMTLTrainer with the papers' StepLR schedule, counted in optimizer steps."""

    def __init__(self, *args: Any, lr_step_size: int, lr_gamma: float, **kwargs: Any) -> None:
        self.lr_step_size = lr_step_size
        self.lr_gamma = lr_gamma
        super().__init__(*args, **kwargs)

    def create_scheduler(
        self, num_training_steps: int, optimizer: torch.optim.Optimizer | None = None
    ) -> Any:
        if self.lr_step_size <= 0:  # --lr_step_epochs 0: use --lr_scheduler_type instead
            return super().create_scheduler(num_training_steps, optimizer)
        if self.lr_scheduler is None:
            self.lr_scheduler = torch.optim.lr_scheduler.StepLR(
                optimizer or self.optimizer, step_size=self.lr_step_size, gamma=self.lr_gamma
            )
        return self.lr_scheduler


def steps_per_epoch(num_samples: int, training: FlatMTLConfig) -> int:
    batch = training.per_device_train_batch_size * max(1, training.world_size)
    batches = (
        num_samples // batch if training.dataloader_drop_last else math.ceil(num_samples / batch)
    )
    return max(1, math.ceil(batches / training.gradient_accumulation_steps))


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = HfArgumentParser((ScriptArguments, FlatMTLConfig))
    argv = sys.argv[1:] if argv is None else argv
    script, training = parser.parse_args_into_dataclasses(DEFAULTS + list(argv))
    set_seed(training.seed)

    source = script.data_dir or script.hub_id
    train = load_scene(
        BENCHMARK, source, "train", augment=script.augment, seed=training.seed,
        limit=script.train_limit,
    )  # fmt: skip
    test = load_scene(BENCHMARK, source, "val", augment=False, limit=script.eval_limit)
    width = script.model_width
    config = cityscapes_config(filters=[width, 2 * width, 4 * width, 8 * width, 8 * width])
    model = MultiTaskModel(config)

    report = LastEvaluationsMean(last=script.last_epochs)
    trainer = StepDecayTrainer(
        model=model,
        args=training,
        train_dataset=train,
        eval_dataset=test,
        compute_metrics=multitask_metrics(
            config, baseline=BASELINE, per_batch=script.per_batch_metrics
        ),
        callbacks=[report],
        lr_step_size=script.lr_step_epochs * steps_per_epoch(len(train), training),
        lr_gamma=script.lr_gamma,
    )
    trainer.train()
    if not report.history:
        report.on_evaluate(training, trainer.state, trainer.control, trainer.evaluate())
        report.on_train_end(training, trainer.state, trainer.control)

    results = {key.removeprefix("eval_"): value for key, value in report.result.items()}
    results["delta_m"] = delta_m(results, BASELINE)
    if trainer.is_world_process_zero():
        n = int(results["num_evaluations"])
        print(f"\n{BENCHMARK} test metrics, mean of the last {n} evaluations ({len(test)} images)")
        for key in BASELINE:
            print(f"  {key:<30}{results[key]:.4f}")
        print(f"  {'delta_m (%)':<30}{results['delta_m']:.2f}")
        os.makedirs(training.output_dir, exist_ok=True)
        with open(os.path.join(training.output_dir, "test_results.json"), "w") as handle:
            json.dump(results, handle, indent=2)
    trainer.save_model()
    return results


if __name__ == "__main__":
    main()
