"""A plain ``Trainer`` script made a flat multi-task one; changed lines end in ``# flatmtl``.

    python examples/from_trainer.py

The single-task original trained a BERT classifier on one label with ``Trainer``; this version
trains one shared BERT with a sentiment head and a topic head, seeking flat regions for both.
The data come from ``text_multitask.py`` (synthetic sentences, no download).
"""

from __future__ import annotations

import sys

from text_multitask import build_dataset, build_tokenizer

from flatmtl import FlatMTLConfig, FlatMTLTrainer, MultiTaskConfig, MultiTaskModel  # flatmtl
from flatmtl.metrics import classification_metrics  # flatmtl


def main(argv: list[str] | None = None) -> dict[str, float]:
    max_steps = int(argv[0]) if argv else -1
    tokenizer = build_tokenizer()
    train = build_dataset(tokenizer, size=1200, seed=0, max_length=14)
    test = build_dataset(tokenizer, size=300, seed=1, max_length=14)

    encoder = {
        "model_type": "bert",
        "vocab_size": len(tokenizer),
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "pooling": "mean",  # flatmtl
    }
    tasks = [  # flatmtl
        {"name": "sentiment", "type": "classification", "num_labels": 2, "label_key": "sentiment"},
        {"name": "topic", "type": "classification", "num_labels": 3, "label_key": "topic"},
    ]
    model = MultiTaskModel(  # flatmtl
        MultiTaskConfig(tasks=tasks, backbone="transformers", backbone_config=encoder)
    )
    args = FlatMTLConfig(  # flatmtl
        output_dir="outputs/from_trainer",
        aggregator="mgda",  # flatmtl
        rho_shared=0.02,  # flatmtl
        rho_task=0.02,  # flatmtl
        learning_rate=2e-3,
        num_train_epochs=3,
        max_steps=max_steps,
        per_device_train_batch_size=32,
        per_device_eval_batch_size=256,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
    )
    trainer = FlatMTLTrainer(  # flatmtl
        model=model,
        args=args,
        train_dataset=train,
        eval_dataset=test,
        processing_class=tokenizer,
        compute_metrics=classification_metrics(["sentiment", "topic"]),  # flatmtl
    )
    trainer.train()
    metrics = trainer.evaluate()
    print(metrics)
    trainer.create_model_card(dataset_name="Synthetic sentences")
    trainer.save_model()
    return metrics


if __name__ == "__main__":
    main(sys.argv[1:])
