"""Tiny models and batches shared by the Hub tests."""

from __future__ import annotations

import torch

import flatmtl  # noqa: F401  (registers the flatmtl model type)
from flatmtl import MultiTaskConfig, MultiTaskModel

FAKE_TOKEN = "hf_FakeTokenForTests0123456789abcdef"

TINY_BERT = {
    "model_type": "bert",
    "vocab_size": 40,
    "hidden_size": 16,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "intermediate_size": 32,
    "max_position_embeddings": 32,
}

TEXT_TASKS = [
    {"name": "sentiment", "type": "classification", "num_labels": 2, "label_key": "sentiment"},
    {"name": "topic", "type": "classification", "num_labels": 3, "label_key": "topic"},
]


def tiny_text_model(seed: int = 0) -> MultiTaskModel:
    torch.manual_seed(seed)
    config = MultiTaskConfig(
        tasks=TEXT_TASKS, backbone="transformers", backbone_config=dict(TINY_BERT, pooling="mean")
    )
    return MultiTaskModel(config).eval()


def text_batch(size: int = 6, length: int = 8, seed: int = 1) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(1, TINY_BERT["vocab_size"], (size, length), generator=generator)
    attention_mask = torch.ones(size, length, dtype=torch.long)
    attention_mask[: size // 2, length - 3 :] = 0
    return {"input_ids": input_ids, "attention_mask": attention_mask}
