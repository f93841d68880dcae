"""Auto-class registration, the "transformers" backbone and the packaged card template."""

from __future__ import annotations

import filecmp
import json
import shutil
from pathlib import Path

import pytest
import torch
from hub_helpers import TEXT_TASKS, TINY_BERT, text_batch, tiny_text_model
from transformers import AutoConfig, AutoModel, BertConfig, BertModel

from flatmtl import MultiTaskConfig, MultiTaskModel
from flatmtl.hub import template_path

ROOT = Path(__file__).resolve().parents[2]
TINY_VIT = {
    "model_type": "vit",
    "image_size": 16,
    "patch_size": 8,
    "num_channels": 1,
    "hidden_size": 16,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "intermediate_size": 32,
}


def _equal_logits(a: MultiTaskModel, b: MultiTaskModel, **batch: torch.Tensor) -> bool:
    with torch.no_grad():
        first, second = a.eval()(**batch).logits, b.eval()(**batch).logits
    return first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


def test_auto_classes_open_a_saved_lenet_model(tmp_path):
    torch.manual_seed(0)
    tasks = [{"name": n, "type": "classification", "num_labels": 10} for n in ("a", "b")]
    model = MultiTaskModel(MultiTaskConfig(tasks=tasks))
    model.save_pretrained(tmp_path)

    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "flatmtl"
    assert type(AutoConfig.from_pretrained(tmp_path)) is MultiTaskConfig
    loaded = AutoModel.from_pretrained(tmp_path)
    assert type(loaded) is MultiTaskModel
    assert _equal_logits(model, loaded, pixel_values=torch.rand(3, 1, 36, 36))


def test_bert_backbone_round_trips_with_its_encoder_config(tmp_path):
    model = tiny_text_model()
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())["backbone_config"]
    assert saved["model_type"] == "bert" and saved["hidden_size"] == 16
    assert saved["pooling"] == "mean"

    loaded = AutoModel.from_pretrained(tmp_path)
    assert type(loaded.backbone.encoder).__name__ == "BertModel"
    batch = text_batch()
    assert _equal_logits(model, loaded, **batch)
    with torch.no_grad():
        out = loaded(**batch, sentiment=torch.zeros(6, dtype=torch.long), topic=torch.ones(6))
    assert sorted(out.losses) == ["sentiment", "topic"] and torch.isfinite(out.loss)


def test_pooling_modes_differ_and_mean_ignores_padding():
    torch.manual_seed(0)
    model = tiny_text_model()
    batch = text_batch()
    with torch.no_grad():
        mean = model.backbone(**batch)
        padded = dict(batch)
        padded["input_ids"] = batch["input_ids"].clone()
        padded["input_ids"][batch["attention_mask"] == 0] = 7  # change only masked tokens
        mean_other_padding = model.backbone(**padded)
        model.backbone.pooling = "cls"
        cls = model.backbone(**batch)
    assert mean.shape == cls.shape == (6, 16)
    assert not torch.allclose(mean, cls)
    # Masked tokens are neither attended to nor averaged, so their ids do not matter.
    assert torch.allclose(mean, mean_other_padding, atol=1e-6)


def test_vit_backbone_takes_pixel_values(tmp_path):
    torch.manual_seed(0)
    tasks = [{"name": "shape", "type": "classification", "num_labels": 4}]
    config = MultiTaskConfig(tasks=tasks, backbone="transformers", backbone_config=TINY_VIT)
    model = MultiTaskModel(config)
    pixels = torch.rand(2, 1, 16, 16)
    out = model(pixel_values=pixels, labels=torch.tensor([1, 3]))
    assert out.logits["shape"].shape == (2, 4) and torch.isfinite(out.loss)
    model.save_pretrained(tmp_path)
    assert _equal_logits(model, AutoModel.from_pretrained(tmp_path), pixel_values=pixels)


def test_pretrained_encoder_weights_are_used_then_stored_in_the_checkpoint(tmp_path):
    torch.manual_seed(0)
    encoder = BertModel(BertConfig(**{k: v for k, v in TINY_BERT.items() if k != "model_type"}))
    encoder.save_pretrained(tmp_path / "encoder")
    config = MultiTaskConfig(
        tasks=TEXT_TASKS,
        backbone="transformers",
        backbone_config={"pretrained_name_or_path": str(tmp_path / "encoder")},
    )
    model = MultiTaskModel(config)
    weights = model.backbone.encoder.embeddings.word_embeddings.weight
    assert torch.equal(weights, encoder.embeddings.word_embeddings.weight)
    assert "pretrained_name_or_path" not in config.backbone_config
    assert config.backbone_config["initialized_from"] == str(tmp_path / "encoder")
    assert config.backbone_config["model_type"] == "bert"

    model.save_pretrained(tmp_path / "multi")
    shutil.rmtree(tmp_path / "encoder")  # loading must not need the original encoder
    loaded = AutoModel.from_pretrained(tmp_path / "multi")
    assert torch.equal(loaded.backbone.encoder.embeddings.word_embeddings.weight, weights)


def test_backbone_options_are_checked():
    def build(options):
        return MultiTaskModel(
            MultiTaskConfig(tasks=TEXT_TASKS, backbone="transformers", backbone_config=options)
        )

    with pytest.raises(ValueError, match=r"`backbone_config\['pooling'\]` must be one of"):
        build(dict(TINY_BERT, pooling="max"))
    with pytest.raises(ValueError, match="needs a 'model_type'"):
        build({"hidden_size": 16})
    model = build(dict(TINY_BERT))
    with pytest.raises(ValueError, match="does not take the batch keys"):
        model(input_ids=torch.ones(1, 4, dtype=torch.long), pixel_mask=torch.ones(1, 4))


def test_packaged_template_is_the_top_level_one():
    top_level = ROOT / "model_cards" / "flatmtl.jinja"
    assert Path(template_path()).is_file()
    assert filecmp.cmp(top_level, template_path(), shallow=False), (
        "model_cards/flatmtl.jinja is the source of truth: copy it to "
        "src/flatmtl/model_cards/flatmtl.jinja"
    )
