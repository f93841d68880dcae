"""Pushes through huggingface_hub's real client to a stand-in Hub, then loads them back."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import torch
import yaml
from hub_helpers import FAKE_TOKEN, text_batch, tiny_text_model
from transformers import AutoModel

ROOT = Path(__file__).resolve().parents[2]


def _load_example(name: str):
    spec = importlib.util.spec_from_file_location(f"hub_example_{name}", ROOT / "examples" / name)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _model_index(readme: bytes) -> list[dict]:
    return yaml.safe_load(readme.decode().split("---")[1])["model-index"]


def _assert_token_only_in_auth_headers(hub, logs, captured) -> None:
    authorised = [r for r in hub.requests if r.authorization is not None]
    assert authorised and all(r.authorization == f"Bearer {FAKE_TOKEN}" for r in authorised)
    assert hub.unhandled == []
    for repo in hub.repos.values():
        for path, data in repo.files.items():
            assert FAKE_TOKEN.encode() not in data, path
    assert not any(FAKE_TOKEN in record for record in logs)
    assert FAKE_TOKEN not in captured.out + captured.err


def test_model_push_uploads_a_card_and_loads_back(fake_hub, all_logs, capfd, tmp_path):
    model = tiny_text_model()
    metrics = {"eval_accuracy_sentiment": 0.75, "eval_accuracy_topic": 0.5}
    model.push_to_hub(
        "tester/text-model", token=FAKE_TOKEN, metrics=metrics, dataset_name="Synthetic sentences"
    )

    files = fake_hub.repos["tester/text-model"].files
    assert sorted(files) == ["README.md", "config.json", "model.safetensors"]
    results = _model_index(files["README.md"])[0]["results"]
    assert [(r["task"]["name"], r["metrics"][0]["value"]) for r in results] == [
        ("sentiment", 0.75),
        ("topic", 0.5),
    ]

    loaded = AutoModel.from_pretrained(
        "tester/text-model", token=FAKE_TOKEN, cache_dir=tmp_path / "cache"
    )
    batch = text_batch()
    with torch.no_grad():
        expected, found = model(**batch).logits, loaded.eval()(**batch).logits
    assert all(torch.equal(expected[task], found[task]) for task in expected)
    assert any(
        r.path.endswith(
            "/resolve/" + fake_hub.repos["tester/text-model"].head + "/model.safetensors"
        )
        for r in fake_hub.requests
    )
    _assert_token_only_in_auth_headers(fake_hub, all_logs, capfd.readouterr())


def test_trainer_push_from_the_text_example(fake_hub, all_logs, capfd, tmp_path):
    out = tmp_path / "out"
    argv = ["--output_dir", str(out), "--max_steps", "6", "--train_size", "96"]
    argv += ["--test_size", "32", "--seed", "0", "--aggregator", "pcgrad"]
    argv += ["--push_to_hub", "--hub_model_id", "tester/flat-text", "--hub_token", FAKE_TOKEN]
    argv += ["--hub_strategy", "end"]
    results = _load_example("text_multitask.py").main(argv)

    files = fake_hub.repos["tester/flat-text"].files
    assert {"README.md", "config.json", "model.safetensors", "tokenizer.json"} <= set(files)
    assert not any(
        name.endswith((".bin", ".pt", ".pth")) and name != "training_args.bin" for name in files
    )
    (entry,) = _model_index(files["README.md"])
    assert entry["name"] == "flat-text"
    by_task = {r["task"]["name"]: r for r in entry["results"]}
    assert sorted(by_task) == ["sentiment", "topic"]
    assert by_task["topic"]["metrics"][0]["value"] == results["accuracy_topic"]
    assert by_task["topic"]["dataset"]["name"] == "Synthetic sentiment and topic sentences"
    assert b"| `aggregator` | pcgrad |" in files["README.md"]

    pushed = AutoModel.from_pretrained(
        "tester/flat-text", token=FAKE_TOKEN, cache_dir=tmp_path / "cache"
    )
    local = AutoModel.from_pretrained(out)
    batch = text_batch(length=14)
    batch["token_type_ids"] = torch.zeros_like(batch["input_ids"])
    with torch.no_grad():
        expected, found = local.eval()(**batch).logits, pushed.eval()(**batch).logits
    assert all(torch.equal(expected[task], found[task]) for task in expected)
    _assert_token_only_in_auth_headers(fake_hub, all_logs, capfd.readouterr())
