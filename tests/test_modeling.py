from __future__ import annotations

import pytest
import torch

from flatmtl import MultiTaskConfig, MultiTaskModel

TASKS = [
    {"name": "left", "type": "classification", "num_labels": 10, "label_index": 0},
    {"name": "right", "type": "classification", "num_labels": 10, "label_index": 1},
]


@pytest.mark.parametrize("backbone,count", [("lenet", 31_910), ("resnet18", 11_223_560)])
def test_parameter_counts_match_the_reference_networks(backbone, count):
    model = MultiTaskModel(MultiTaskConfig(tasks=TASKS, backbone=backbone))
    assert sum(p.numel() for p in model.parameters()) == count


def test_outputs_losses_and_task_subset():
    torch.manual_seed(0)
    model = MultiTaskModel(MultiTaskConfig(tasks=TASKS))
    x = torch.rand(5, 1, 36, 36)
    labels = torch.randint(0, 10, (5, 2))
    out = model(pixel_values=x, labels=labels)
    assert list(out.losses) == ["left", "right"]
    expected = torch.nn.functional.cross_entropy(out.logits["right"], labels[:, 1])
    torch.testing.assert_close(out.losses["right"], expected)
    torch.testing.assert_close(out.loss, out.losses["left"] + out.losses["right"])
    only = model(pixel_values=x, labels=labels, tasks=["right"])
    assert list(only.losses) == ["right"]
    torch.testing.assert_close(only.losses["right"], out.losses["right"])
    with pytest.raises(ValueError, match=r"unknown tasks \['middle'\]"):
        model(pixel_values=x, tasks=["middle"])


def test_missing_labels_give_zero_connected_loss():
    model = MultiTaskModel(MultiTaskConfig(tasks=TASKS))
    labels = torch.tensor([[3, -100], [1, -100]])
    out = model(pixel_values=torch.rand(2, 1, 36, 36), labels=labels)
    assert float(out.losses["right"]) == 0.0
    grads = torch.autograd.grad(out.losses["right"], list(model.heads["right"].parameters()))
    assert all(torch.count_nonzero(g) == 0 for g in grads)


def test_save_and_load_round_trip_in_safetensors(tmp_path):
    model = MultiTaskModel(MultiTaskConfig(tasks=TASKS, backbone="lenet")).eval()
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    assert not list(tmp_path.glob("*.bin"))
    loaded = MultiTaskModel.from_pretrained(tmp_path).eval()
    assert loaded.config.task_names == ["left", "right"]
    x = torch.rand(3, 1, 36, 36)
    for task in ("left", "right"):
        assert torch.equal(model(pixel_values=x).logits[task], loaded(pixel_values=x).logits[task])


def test_config_validation():
    with pytest.raises(ValueError, match="unique names"):
        MultiTaskConfig(tasks=[TASKS[0], TASKS[0]])
    with pytest.raises(ValueError, match="needs a 'type' entry"):
        MultiTaskConfig(tasks=[{"name": "x"}])
    with pytest.raises(ValueError, match="Unknown `backbone` 'vgg'"):
        MultiTaskModel(MultiTaskConfig(tasks=TASKS, backbone="vgg"))
    with pytest.raises(ValueError, match="`config.tasks` is empty"):
        MultiTaskModel(MultiTaskConfig())
