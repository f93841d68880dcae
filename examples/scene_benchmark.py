"""The scene-understanding protocol shared by ``nyuv2.py`` and ``cityscapes.py``.

SegNet-MTAN trained with FlatMTLTrainer as the paper and its references do: Adam (AdamW with no
weight decay) at lr 1e-4 halved every 100 epochs, 200 epochs, batch 2 (NYUv2) or 8
(CityScapes), scale-crop and flip augmentation, evaluation on the test split ("val") after
every epoch, and the mean of the last 10 evaluations (``last_evaluations_mean.json``) with
Delta_m against the STL baseline. Without ``--data_dir`` the data come from the benchmark's
Hub mirror (``--hub_id``). Every ``TrainingArguments`` / ``FlatMTLConfig`` flag works.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from typing import Any

from transformers import HfArgumentParser, set_seed

from flatmtl import FlatMTLConfig, MultiTaskModel
from flatmtl.data.scenes import load_scene
from flatmtl.metrics import LastEvaluationsMean, delta_m, multitask_metrics
from flatmtl.metrics.multitask import CITYSCAPES_STL, NYUV2_STL
from flatmtl.modeling.presets import cityscapes_config, nyuv2_config
from flatmtl.schedules import StepDecayTrainer, steps_per_epoch

BENCHMARKS: dict[str, dict[str, Any]] = {
    "nyuv2": {
        "config": nyuv2_config, "baseline": NYUV2_STL, "batch_size": 2, "hub_id": "tanganke/nyuv2",
    },
    "cityscapes": {
        "config": cityscapes_config, "baseline": CITYSCAPES_STL, "batch_size": 8,
        "hub_id": "tanganke/cityscapes",
    },
}  # fmt: skip

# The paper's protocol; any flag given on the command line wins.
DEFAULTS = [
    "--aggregator", "cagrad",
    # MTAN's per-task attention modules take part in the aggregation, as in the F-MTL and
    # Nash-MTL code (the graph alone would make them task parameters).
    "--shared_patterns", r"backbone\.(encoder|decoder)_attention\.",
    "--num_train_epochs", "200",
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
        default=None,
        metadata={"help": "Folder with {train,val}/{image,label,depth[,normal]}/N.npy."},
    )
    hub_id: str | None = field(
        default=None, metadata={"help": "Hub data set id (default: the benchmark's mirror)."}
    )
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


def main(benchmark: str, argv: list[str] | None = None) -> dict[str, float]:
    """Run the protocol of ``benchmark`` (``nyuv2`` or ``cityscapes``); flags override it."""
    spec = BENCHMARKS[benchmark]
    parser = HfArgumentParser((ScriptArguments, FlatMTLConfig))
    argv = sys.argv[1:] if argv is None else argv
    defaults = DEFAULTS + ["--output_dir", f"outputs/{benchmark}"]
    defaults += ["--per_device_train_batch_size", str(spec["batch_size"])]
    defaults += ["--per_device_eval_batch_size", str(spec["batch_size"])]
    script, training = parser.parse_args_into_dataclasses(defaults + list(argv))
    baseline = spec["baseline"]
    set_seed(training.seed)

    source = script.data_dir or script.hub_id or spec["hub_id"]
    train = load_scene(
        benchmark, source, "train", augment=script.augment, seed=training.seed,
        limit=script.train_limit,
    )  # fmt: skip
    test = load_scene(benchmark, source, "val", augment=False, limit=script.eval_limit)
    width = script.model_width
    config = spec["config"](filters=[width, 2 * width, 4 * width, 8 * width, 8 * width])
    model = MultiTaskModel(config)

    report = LastEvaluationsMean(last=script.last_epochs)
    trainer = StepDecayTrainer(
        model=model,
        args=training,
        train_dataset=train,
        eval_dataset=test,
        compute_metrics=multitask_metrics(
            config, baseline=baseline, per_batch=script.per_batch_metrics
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
    results["delta_m"] = delta_m(results, baseline)
    if trainer.is_world_process_zero():
        n = int(results["num_evaluations"])
        print(f"\n{benchmark} test metrics, mean of the last {n} evaluations ({len(test)} images)")
        for key in baseline:
            print(f"  {key:<30}{results[key]:.4f}")
        print(f"  {'delta_m (%)':<30}{results['delta_m']:.2f}")
        os.makedirs(training.output_dir, exist_ok=True)
        with open(os.path.join(training.output_dir, "test_results.json"), "w") as handle:
            json.dump(results, handle, indent=2)
    trainer.save_model()
    return results
