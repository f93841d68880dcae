"""Train a two-head model on MultiMNIST, MultiFashion or MultiFashion+MNIST with FlatMTLTrainer.

    python examples/multi_mnist.py --variant multi_mnist --aggregator mgda --flat \
        --rho_shared 0.05 --rho_task 0.05 --output_dir outputs/multi_mnist

Every ``TrainingArguments`` / ``FlatMTLConfig`` flag works (``--num_train_epochs``,
``--no-flat``, ``--adaptive``, ``--flat_strategy direct``, ``--push_to_hub``, ...). By default it
trains LeNet on the real MNIST sample bundled with flatmtl (no download); ``--source idx
--mnist_dir DIR`` uses full IDX files and ``--source hub`` the Hugging Face Hub.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field

from transformers import HfArgumentParser, set_seed

from flatmtl import FlatMTLConfig, FlatMTLTrainer, MultiTaskConfig, MultiTaskModel
from flatmtl.data import MULTI_MNIST_TASKS, load_multi_mnist
from flatmtl.metrics import classification_metrics

# Defaults of this script (a quick, useful CPU run); any flag given on the command line wins.
DEFAULTS = [
    "--output_dir", "outputs/multi_mnist",
    "--aggregator", "mgda",
    "--num_train_epochs", "5",
    "--per_device_train_batch_size", "128",
    "--per_device_eval_batch_size", "1000",
    "--learning_rate", "4e-3",
    "--lr_scheduler_type", "cosine",
    "--warmup_steps", "100",
    "--weight_decay", "0",
    "--max_grad_norm", "0",
    "--logging_steps", "20",
    "--eval_strategy", "no",
    "--save_strategy", "no",
    "--report_to", "none",
    "--dataloader_num_workers", "0",
    "--use_cpu",
]  # fmt: skip


@dataclass
class ScriptArguments:
    variant: str = field(
        default="multi_mnist",
        metadata={
            "help": "Data set.",
            "choices": ["multi_mnist", "multi_fashion", "multi_fashion_and_mnist"],
        },
    )
    source: str = field(
        default="sample",
        metadata={"help": "Where the images come from.", "choices": ["sample", "idx", "hub"]},
    )
    mnist_dir: str | None = field(default=None, metadata={"help": "Folder of MNIST IDX files."})
    fashion_dir: str | None = field(
        default=None, metadata={"help": "Folder of Fashion-MNIST IDX files."}
    )
    backbone: str = field(
        default="lenet", metadata={"help": "Shared network.", "choices": ["lenet", "resnet18"]}
    )
    train_limit: int | None = field(
        default=None, metadata={"help": "Use only the first N training source images."}
    )
    copies: int | None = field(
        default=None,
        metadata={
            "help": "Composites per training source image; default 8 for the bundled sample, "
            "2 otherwise (2 gives the usual 120k from full MNIST)."
        },
    )
    test_limit: int | None = field(
        default=None, metadata={"help": "Use only the first N test source images."}
    )


def build_model(backbone: str) -> MultiTaskModel:
    tasks = [
        {"name": name, "type": "classification", "num_labels": 10, "label_index": index}
        for index, name in enumerate(MULTI_MNIST_TASKS)
    ]
    return MultiTaskModel(MultiTaskConfig(tasks=tasks, backbone=backbone))


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = HfArgumentParser((ScriptArguments, FlatMTLConfig))
    argv = sys.argv[1:] if argv is None else argv
    script, training = parser.parse_args_into_dataclasses(DEFAULTS + list(argv))
    set_seed(training.seed)

    train_copies = script.copies or (8 if script.source == "sample" else 2)
    data = {
        split: load_multi_mnist(
            script.variant,
            split,
            source=script.source,
            mnist_dir=script.mnist_dir,
            fashion_dir=script.fashion_dir,
            seed=training.seed,
            limit=script.train_limit if split == "train" else script.test_limit,
            copies=train_copies if split == "train" else 2,
        )
        for split in ("train", "test")
    }
    model = build_model(script.backbone)
    trainer = FlatMTLTrainer(
        model=model,
        args=training,
        train_dataset=data["train"],
        eval_dataset=data["test"],
        compute_metrics=classification_metrics(MULTI_MNIST_TASKS),
        preprocess_logits_for_metrics=lambda logits, labels: tuple(x.argmax(-1) for x in logits),
    )
    trainer.train()
    metrics = trainer.evaluate(metric_key_prefix="test")

    results = {f"accuracy_{t}": metrics[f"test_accuracy_{t}"] for t in MULTI_MNIST_TASKS}
    results["accuracy_mean"] = metrics["test_accuracy_mean"]
    if trainer.is_world_process_zero():
        width = max(len(t) for t in MULTI_MNIST_TASKS) + 2
        print(f"\n{script.variant} test accuracy ({len(data['test'])} images)")
        for task in MULTI_MNIST_TASKS:
            print(f"  {task:<{width}}{results[f'accuracy_{task}']:.4f}")
        print(f"  {'mean':<{width}}{results['accuracy_mean']:.4f}")
        os.makedirs(training.output_dir, exist_ok=True)
        with open(os.path.join(training.output_dir, "test_results.json"), "w") as handle:
            json.dump(results, handle, indent=2)
    trainer.save_model()
    trainer.create_model_card(model_name=f"flatmtl-{script.variant}", dataset_name=script.variant)
    return results


if __name__ == "__main__":
    main()
