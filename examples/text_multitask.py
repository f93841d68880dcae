"""Train a tiny BERT with two heads (sentiment and topic) on synthetic sentences, offline.

    python examples/text_multitask.py --aggregator mgda --rho_shared 0.02 --rho_task 0.02 \
        --output_dir outputs/text_multitask

Everything is built here: the sentences (each has a sentiment and a topic), a word-level
tokenizer (``tokenizers`` wrapped in ``PreTrainedTokenizerFast``) and a BERT made from a config,
used as the shared encoder through flatmtl's ``"transformers"`` backbone. Every
``TrainingArguments`` / ``FlatMTLConfig`` flag works, ``--push_to_hub`` included.
"""

from __future__ import annotations

import json
import math
import os
import random
import sys
from dataclasses import dataclass, field

import datasets
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import HfArgumentParser, PreTrainedTokenizerFast, set_seed

from flatmtl import FlatMTLConfig, FlatMTLTrainer, MultiTaskConfig, MultiTaskModel
from flatmtl.metrics import classification_metrics

TASKS = ("sentiment", "topic")
SENTIMENT_WORDS = {
    0: ["awful", "boring", "broken", "dull", "terrible", "sad", "worst", "slow"],
    1: ["great", "lovely", "brilliant", "fun", "superb", "happy", "best", "fast"],
}
TOPIC_WORDS = {
    0: ["match", "goal", "team", "coach", "league", "stadium"],
    1: ["laptop", "software", "phone", "chip", "server", "app"],
    2: ["pizza", "recipe", "soup", "chef", "dinner", "bread"],
}
FILLER_WORDS = ["the", "a", "this", "was", "really", "and", "so", "today", "very", "it", "my"]
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]

DEFAULTS = [
    "--output_dir", "outputs/text_multitask",
    "--aggregator", "mgda",
    "--rho_shared", "0.02",
    "--rho_task", "0.02",
    "--num_train_epochs", "3",
    "--per_device_train_batch_size", "32",
    "--per_device_eval_batch_size", "256",
    "--learning_rate", "2e-3",
    "--lr_scheduler_type", "constant",
    "--weight_decay", "0",
    "--logging_steps", "10",
    "--eval_strategy", "no",
    "--save_strategy", "no",
    "--report_to", "none",
    "--remove_unused_columns", "false",
    "--dataloader_num_workers", "0",
    "--use_cpu",
]  # fmt: skip


@dataclass
class ScriptArguments:
    train_size: int = field(default=1200, metadata={"help": "Training sentences."})
    test_size: int = field(default=300, metadata={"help": "Test sentences."})
    max_length: int = field(default=14, metadata={"help": "Tokens per sentence, padded."})
    hidden_size: int = field(default=32, metadata={"help": "Width of the tiny BERT."})
    num_layers: int = field(default=2, metadata={"help": "Transformer layers of the tiny BERT."})
    pooling: str = field(
        default="mean",
        metadata={"help": "Sentence vector.", "choices": ["cls", "mean", "pooler"]},
    )


def make_sentences(size: int, seed: int) -> dict[str, list]:
    """``size`` sentences, each with one or two sentiment words and topic words among fillers."""
    rng = random.Random(seed)
    texts, sentiments, topics = [], [], []
    for _ in range(size):
        sentiment, topic = rng.randrange(2), rng.randrange(3)
        words = rng.sample(SENTIMENT_WORDS[sentiment], rng.randint(1, 2))
        words += rng.sample(TOPIC_WORDS[topic], rng.randint(1, 2))
        words += rng.choices(FILLER_WORDS, k=rng.randint(2, 6))
        rng.shuffle(words)
        texts.append(" ".join(words))
        sentiments.append(sentiment)
        topics.append(topic)
    return {"text": texts, "sentiment": sentiments, "topic": topics}


def build_tokenizer() -> PreTrainedTokenizerFast:
    """A word-level tokenizer over the example's vocabulary, with BERT's special tokens."""
    words = [w for group in SENTIMENT_WORDS.values() for w in group]
    words += [w for group in TOPIC_WORDS.values() for w in group] + FILLER_WORDS
    vocab = {token: index for index, token in enumerate(SPECIAL_TOKENS + sorted(set(words)))}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        model_input_names=["input_ids", "token_type_ids", "attention_mask"],
    )


def build_dataset(
    tokenizer: PreTrainedTokenizerFast, size: int, seed: int, max_length: int
) -> datasets.Dataset:
    raw = make_sentences(size, seed)
    encoded = tokenizer(raw["text"], padding="max_length", truncation=True, max_length=max_length)
    columns = {key: encoded[key] for key in ("input_ids", "attention_mask", "token_type_ids")}
    dataset = datasets.Dataset.from_dict(
        {**columns, "sentiment": raw["sentiment"], "topic": raw["topic"]}
    )
    return dataset.with_format("torch")


def build_model(tokenizer: PreTrainedTokenizerFast, script: ScriptArguments) -> MultiTaskModel:
    encoder = {
        "model_type": "bert",
        "vocab_size": len(tokenizer),
        "hidden_size": script.hidden_size,
        "num_hidden_layers": script.num_layers,
        "num_attention_heads": 2,
        "intermediate_size": 2 * script.hidden_size,
        "max_position_embeddings": max(32, script.max_length),
        "pad_token_id": tokenizer.pad_token_id,
        "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0,
        "pooling": script.pooling,
    }
    tasks = [
        {"name": "sentiment", "type": "classification", "num_labels": 2, "label_key": "sentiment"},
        {"name": "topic", "type": "classification", "num_labels": 3, "label_key": "topic"},
    ]
    return MultiTaskModel(
        MultiTaskConfig(tasks=tasks, backbone="transformers", backbone_config=encoder)
    )


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = HfArgumentParser((ScriptArguments, FlatMTLConfig))
    argv = sys.argv[1:] if argv is None else argv
    script, training = parser.parse_args_into_dataclasses(DEFAULTS + list(argv))
    set_seed(training.seed)

    tokenizer = build_tokenizer()
    train = build_dataset(tokenizer, script.train_size, training.seed, script.max_length)
    test = build_dataset(tokenizer, script.test_size, training.seed + 1, script.max_length)
    model = build_model(tokenizer, script)
    trainer = FlatMTLTrainer(
        model=model,
        args=training,
        train_dataset=train,
        eval_dataset=test,
        processing_class=tokenizer,
        compute_metrics=classification_metrics(TASKS),
        preprocess_logits_for_metrics=lambda logits, labels: tuple(x.argmax(-1) for x in logits),
    )
    trainer.train()
    metrics = trainer.evaluate(metric_key_prefix="test")

    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    results = {f"accuracy_{task}": metrics[f"test_accuracy_{task}"] for task in TASKS}
    results["accuracy_mean"] = metrics["test_accuracy_mean"]
    results["first_loss"] = losses[0] if losses else math.nan
    results["last_loss"] = losses[-1] if losses else math.nan
    if trainer.is_world_process_zero():
        print(f"\ntest accuracy ({len(test)} sentences)")
        for task in TASKS:
            print(f"  {task:<11}{results[f'accuracy_{task}']:.4f}")
        os.makedirs(training.output_dir, exist_ok=True)
        with open(os.path.join(training.output_dir, "test_results.json"), "w") as handle:
            json.dump(results, handle, indent=2)
    # The card first, so that the push `save_model` makes with --push_to_hub uploads it too.
    trainer.create_model_card(
        model_name="flatmtl-text-multitask", dataset_name="Synthetic sentiment and topic sentences"
    )
    trainer.save_model()
    return results


if __name__ == "__main__":
    main()
