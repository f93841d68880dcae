"""The model card: model-index per task, settings, data, loading, citation, no secrets."""

from __future__ import annotations

import pytest
import yaml
from hub_helpers import FAKE_TOKEN, tiny_text_model

from flatmtl import FlatMTLConfig, FlatMTLTrainer, MultiTaskConfig
from flatmtl.hub import CITATION, build_model_card, split_task_metrics

MNIST_TASKS = [
    {"name": name, "type": "classification", "num_labels": 10, "label_index": index}
    for index, name in enumerate(("top_left", "bottom_right"))
]
SCENE_TASKS = [
    {"name": "segmentation", "type": "segmentation", "num_labels": 13, "label_key": "seg"},
    {"name": "depth", "type": "depth", "num_labels": 1, "label_key": "depth"},
    {"name": "normal", "type": "normal", "num_labels": 3, "label_key": "normal"},
]


def _metadata(card) -> dict:
    return yaml.safe_load(str(card).split("---")[1])


def _args(tmp_path, **overrides) -> FlatMTLConfig:
    options = {"aggregator": "pcgrad", "rho_shared": 0.03, "rho_task": 0.01, "seed": 7}
    options.update(overrides)
    return FlatMTLConfig(output_dir=str(tmp_path), report_to="none", use_cpu=True, **options)


def test_split_task_metrics_reads_suffixes_prefixes_and_drops_run_statistics(caplog):
    config = MultiTaskConfig(tasks=SCENE_TASKS, backbone="segnet_mtan")
    metrics = {
        "eval_segmentation_miou": 0.4,
        "eval_depth_abs_err": 0.6,
        "eval_angle_mean_normal": 30.0,
        "eval_loss": 1.0,
        "eval_runtime": 3.0,
        "eval_delta_m": 2.0,
        "eval_segmentation_pixel_acc": float("nan"),
        "eval_depth_rel_err": "high",
    }
    with caplog.at_level("WARNING", logger="flatmtl.hub"):
        per_task, split = split_task_metrics(config, metrics)
    assert "eval_segmentation_pixel_acc=nan" in caplog.text
    assert "eval_depth_rel_err='high'" in caplog.text
    assert per_task == {
        "segmentation": {"miou": 0.4},
        "depth": {"abs_err": 0.6},
        "normal": {"angle_mean": 30.0},
    }
    assert split == "validation"


def test_card_has_one_model_index_entry_per_task_with_hub_task_types(tmp_path):
    config = MultiTaskConfig(tasks=SCENE_TASKS, backbone="segnet_mtan")
    metrics = {"test_segmentation_miou": 0.41, "test_depth_abs_err": 0.55}
    metrics["test_normal_angle_mean"] = 24.0
    card = build_model_card(
        config,
        model_name="scene",
        metrics=metrics,
        dataset_name="NYUv2",
        dataset="tanganke/nyuv2",
        training_args=_args(tmp_path),
    )
    (entry,) = _metadata(card)["model-index"]
    results = {r["task"]["name"]: r for r in entry["results"]}
    assert entry["name"] == "scene" and list(results) == ["segmentation", "depth", "normal"]
    assert results["segmentation"]["task"]["type"] == "image-segmentation"
    assert results["depth"]["task"]["type"] == "depth-estimation"
    assert results["normal"]["task"]["type"] == "other"
    assert results["depth"]["metrics"] == [
        {"type": "abs_err", "value": 0.55, "name": "abs_err (depth)"}
    ]
    assert all(
        r["dataset"] == {"name": "NYUv2", "type": "tanganke/nyuv2", "split": "test"}
        for r in results.values()
    )
    assert _metadata(card)["datasets"] == ["tanganke/nyuv2"]


def test_two_classification_heads_on_one_dataset_stay_two_entries(tmp_path):
    config = MultiTaskConfig(tasks=MNIST_TASKS)
    metrics = {"test_accuracy_top_left": 0.9, "test_accuracy_bottom_right": 0.8}
    card = build_model_card(config, model_name="mm", metrics=metrics, dataset_name="MultiMNIST")
    results = _metadata(card)["model-index"][0]["results"]
    assert [(r["task"]["name"], r["task"]["type"]) for r in results] == [
        ("top_left", "image-classification"),
        ("bottom_right", "image-classification"),
    ]
    assert [r["metrics"][0]["value"] for r in results] == [0.9, 0.8]
    card.save(tmp_path / "README.md")  # saving keeps the entries apart too
    saved = yaml.safe_load((tmp_path / "README.md").read_text().split("---")[1])
    assert len(saved["model-index"][0]["results"]) == 2


def test_card_text_shows_settings_data_loading_and_citation(tmp_path):
    model = tiny_text_model()
    card = build_model_card(
        model.config,
        repo_id="tester/text-mtl",
        metrics={"eval_accuracy_sentiment": 0.75, "eval_accuracy_topic": 0.5},
        dataset_name="Synthetic sentences",
        training_args=_args(tmp_path, aggregator_kwargs={"reduction": "mean"}),
    )
    text = str(card)
    metadata = _metadata(card)
    assert metadata["library_name"] == "transformers" and "flatmtl" in metadata["tags"]
    assert {r["task"]["type"] for r in metadata["model-index"][0]["results"]} == {
        "text-classification"
    }
    for line in (
        "| `aggregator` | pcgrad |",
        "| `rho_shared` | 0.03 |",
        "| `rho_task` | 0.01 |",
        "| `flat_strategy` | individual |",
        "| `flat_every` | 1 |",
        "| `adaptive` | False |",
        "| `seed` | 7 |",
        "{'reduction': 'mean'}",
        "Synthetic sentences",
        "import flatmtl",
        'AutoModel.from_pretrained("tester/text-mtl")',
        "input_ids=input_ids, attention_mask=attention_mask",
        "| `sentiment` | text-classification | 2 | accuracy 0.7500 |",
        CITATION,
    ):
        assert line in text, line
    assert "arXiv:2211.13723" in CITATION and "Phan, Hoang" in CITATION


def test_card_lists_shared_patterns_only_when_set(tmp_path):
    config = MultiTaskConfig(tasks=MNIST_TASKS)
    plain = str(build_model_card(config, model_name="m", training_args=_args(tmp_path)))
    assert "shared_patterns" not in plain
    overridden = _args(tmp_path, shared_patterns=["^backbone\\."], flat_every=2)
    text = str(build_model_card(config, model_name="m", training_args=overridden))
    assert "| `shared_patterns` | ['^backbone\\\\.'] |" in text and "| `flat_every` | 2 |" in text


@pytest.mark.parametrize("name", ["tasks", "dataset_args"])
def test_trainer_card_refuses_arguments_it_would_not_use(tmp_path, name):
    trainer = FlatMTLTrainer(model=tiny_text_model(), args=_args(tmp_path))
    with pytest.raises(ValueError, match=f"`{name}` is not used on a flatmtl model card"):
        trainer.create_model_card(**{name: "text-classification"})
    assert not (tmp_path / "README.md").exists()


def test_card_without_metrics_has_no_model_index(tmp_path):
    card = build_model_card(MultiTaskConfig(tasks=MNIST_TASKS), model_name="bare")
    assert "model-index" not in _metadata(card)
    assert "No evaluation results were recorded." in str(card)


def test_tokens_never_reach_the_card(tmp_path):
    args = _args(tmp_path, hub_token=FAKE_TOKEN, push_to_hub=False)
    card = build_model_card(
        MultiTaskConfig(tasks=MNIST_TASKS),
        model_name=f"name-{FAKE_TOKEN}",
        metrics={"test_accuracy_top_left": 0.5},
        dataset_name="MultiMNIST",
        training_args=args,
        secrets=[FAKE_TOKEN],
    )
    assert FAKE_TOKEN not in str(card)
    assert "name-<redacted>" in str(card)
    clean = build_model_card(MultiTaskConfig(tasks=MNIST_TASKS), training_args=args)
    assert FAKE_TOKEN not in str(clean) and "hub_token" not in str(clean)


def test_trainer_card_arguments_are_keyword_only(tmp_path):
    trainer = FlatMTLTrainer(model=tiny_text_model(), args=_args(tmp_path))
    with pytest.raises(TypeError):
        trainer.create_model_card("en")  # Trainer's first positional is `language`
    assert not (tmp_path / "README.md").exists()
