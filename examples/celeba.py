"""Train a CIFAR-style ResNet-18 on the 40 CelebA attributes with FlatMTLTrainer.

    python examples/celeba.py --data_dir data/celeba --aggregator mgda --flat \
        --rho_shared 0.05 --rho_task 0.05 --output_dir outputs/celeba

The defaults are the protocol of the paper and its references: 64x64 aligned faces, Adam
(AdamW with no weight decay) at lr 5e-4 multiplied by 0.85 every 10 epochs, batch 256, 100
epochs, evaluation on the validation split after every epoch, and the test error per attribute
and averaged over the 40 at the end. Without ``--data_dir`` the data comes from the Hub
(``--hub_id``, default ``flwrlabs/celeba``). Every ``TrainingArguments`` / ``FlatMTLConfig``
flag works (``--aggregator``, ``--no-flat``, ``--adaptive``, ``--num_train_epochs``, ...).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field

from transformers import HfArgumentParser, set_seed

from flatmtl import FlatMTLConfig, MultiTaskModel
from flatmtl.data.celeba import load_celeba
from flatmtl.metrics import multitask_metrics
from flatmtl.modeling.presets import CELEBA_ATTRIBUTES, celeba_config
from flatmtl.schedules import StepDecayTrainer, steps_per_epoch

# The paper's protocol; any flag given on the command line wins.
DEFAULTS = [
    "--output_dir", "outputs/celeba",
    "--aggregator", "mgda",
    "--num_train_epochs", "100",
    "--per_device_train_batch_size", "256",
    "--per_device_eval_batch_size", "256",
    "--learning_rate", "5e-4",
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
        metadata={"help": "Folder with img_align_celeba/, list_attr_celeba.txt, partition file."},
    )
    hub_id: str = field(default="flwrlabs/celeba", metadata={"help": "Hub data set id."})
    image_size: int = field(default=64, metadata={"help": "Side of the resized faces."})
    model_width: int = field(
        default=64, metadata={"help": "Channels of the ResNet's first stage (64 in the paper)."}
    )
    lr_step_epochs: int = field(
        default=10,
        metadata={"help": "Multiply the lr by lr_gamma every this many epochs (0: off)."},
    )
    lr_gamma: float = field(default=0.85, metadata={"help": "Step decay factor of the lr."})
    train_limit: int | None = field(default=None, metadata={"help": "Use the first N train."})
    eval_limit: int | None = field(
        default=None, metadata={"help": "Use the first N validation and test images."}
    )


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = HfArgumentParser((ScriptArguments, FlatMTLConfig))
    argv = sys.argv[1:] if argv is None else argv
    script, training = parser.parse_args_into_dataclasses(DEFAULTS + list(argv))
    set_seed(training.seed)

    source = script.data_dir or script.hub_id
    data = {
        split: load_celeba(
            source,
            split,
            image_size=script.image_size,
            limit=script.train_limit if split == "train" else script.eval_limit,
        )
        for split in ("train", "valid", "test")
    }
    config = celeba_config(width=script.model_width)
    model = MultiTaskModel(config)
    trainer = StepDecayTrainer(
        model=model,
        args=training,
        train_dataset=data["train"],
        eval_dataset=data["valid"],
        compute_metrics=multitask_metrics(config),
        lr_step_size=script.lr_step_epochs * steps_per_epoch(len(data["train"]), training),
        lr_gamma=script.lr_gamma,
    )
    trainer.train()
    metrics = trainer.evaluate(data["test"], metric_key_prefix="test")

    results = {f"{name}_error": metrics[f"test_{name}_error"] for name in CELEBA_ATTRIBUTES}
    results["mean_error"] = metrics["test_mean_error"]
    if trainer.is_world_process_zero():
        print(f"\nCelebA test error ({len(data['test'])} images)")
        for name in CELEBA_ATTRIBUTES:
            print(f"  {name:<22}{results[f'{name}_error']:.4f}")
        print(f"  {'mean':<22}{results['mean_error']:.4f}")
        os.makedirs(training.output_dir, exist_ok=True)
        with open(os.path.join(training.output_dir, "test_results.json"), "w") as handle:
            json.dump(results, handle, indent=2)
    trainer.save_model()
    return results


if __name__ == "__main__":
    main()
