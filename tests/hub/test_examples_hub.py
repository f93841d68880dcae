"""The main job's saved model opens with AutoModel and its card reports every task; the text
example trains offline and learns both tasks."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from transformers import AutoModel

from flatmtl import MultiTaskModel

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _load_example(name: str):
    spec = importlib.util.spec_from_file_location(f"hub_example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def _single_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _model_index(folder: Path) -> list[dict]:
    return yaml.safe_load((folder / "README.md").read_text().split("---")[1])["model-index"]


def test_multi_mnist_model_loads_with_auto_model_and_its_card_lists_every_task(tmp_path):
    out = tmp_path / "multi_mnist"
    argv = ["--output_dir", str(out), "--max_steps", "2", "--train_limit", "200"]
    argv += ["--test_limit", "100", "--seed", "0"]
    results = _load_example("multi_mnist").main(argv)

    model = AutoModel.from_pretrained(out)
    assert isinstance(model, MultiTaskModel) and model.task_names == ["top_left", "bottom_right"]
    assert (out / "model.safetensors").is_file() and not (out / "pytorch_model.bin").exists()
    (entry,) = _model_index(out)
    assert entry["name"] == "flatmtl-multi_mnist"
    by_task = {r["task"]["name"]: r for r in entry["results"]}
    assert sorted(by_task) == ["bottom_right", "top_left"]
    for task, result in by_task.items():
        assert result["task"]["type"] == "image-classification"
        assert result["dataset"]["split"] == "test"
        assert result["metrics"] == [
            {"type": "accuracy", "value": results[f"accuracy_{task}"], "name": f"accuracy ({task})"}
        ]
    assert "| `aggregator` | mgda |" in (out / "README.md").read_text()


def test_text_example_trains_offline_and_learns_both_tasks(tmp_path):
    out = tmp_path / "text"
    start = time.monotonic()
    results = _load_example("text_multitask").main(
        ["--output_dir", str(out), "--seed", "0", "--disable_tqdm", "true"]
    )
    assert time.monotonic() - start < 60

    assert all(math.isfinite(value) for value in results.values())
    assert results["last_loss"] < 0.8 * results["first_loss"]
    # Chance is 1/2 and 1/3; each sentence holds words that give both labels away.
    assert results["accuracy_sentiment"] >= 0.8
    assert results["accuracy_topic"] >= 0.5
    assert json.loads((out / "test_results.json").read_text()) == pytest.approx(results)
    by_task = {r["task"]["name"]: r for r in _model_index(out)[0]["results"]}
    assert sorted(by_task) == ["sentiment", "topic"]
    assert by_task["sentiment"]["task"]["type"] == "text-classification"
    assert type(AutoModel.from_pretrained(out).backbone.encoder).__name__ == "BertModel"


def test_from_trainer_example_runs_and_saves_a_loadable_model(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLES))  # it imports the data builders of text_multitask
    monkeypatch.chdir(tmp_path)
    metrics = _load_example("from_trainer").main(["4"])
    assert {"eval_accuracy_sentiment", "eval_accuracy_topic"} <= set(metrics)
    out = tmp_path / "outputs" / "from_trainer"
    assert AutoModel.from_pretrained(out).task_names == ["sentiment", "topic"]
    assert len(_model_index(out)[0]["results"]) == 2
