"""Bad input gets a clear error; a failure never leaves weights perturbed or changed."""

from __future__ import annotations

import gzip

import pytest
import torch

from flatmtl import FlatMTLConfig, FlatMTLTrainer, FlatSettings, FlatStep, get_aggregator
from flatmtl.data import load_idx_folder, load_multi_mnist
from flatmtl.flat import NonFiniteLossError, build_aggregators
from flatmtl.trainer import extract_losses
from helpers import TwoHeadNet, toy_data


def _args(tmp_path, **kwargs):
    defaults = dict(
        output_dir=str(tmp_path),
        per_device_train_batch_size=8,
        max_steps=1,
        learning_rate=0.1,
        optim="sgd",
        report_to="none",
        save_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
    )
    defaults.update(kwargs)
    return FlatMTLConfig(**defaults)


class NoLosses(TwoHeadNet):
    def forward(self, x, labels=None, tasks=None):
        out = super().forward(x, labels, tasks)
        return {"loss": out["loss"], "logits": out["logits"]}


def test_model_output_without_losses(tmp_path):
    trainer = FlatMTLTrainer(model=NoLosses(), args=_args(tmp_path), train_dataset=toy_data())
    with pytest.raises(
        ValueError, match=r"no `losses` mapping.*found the keys \[.loss., .logits.\]"
    ):
        trainer.train()


def test_unknown_aggregator_lists_known_names(tmp_path):
    with pytest.raises(ValueError, match="Unknown `aggregator` 'mgdaa'.*cagrad.*mgda.*pcgrad"):
        _args(tmp_path, aggregator="mgdaa")
    with pytest.raises(ValueError, match="Unknown aggregator 'nope'; expected one of: .*sum"):
        get_aggregator("nope")


@pytest.mark.parametrize("field", ["rho_shared", "rho_task"])
@pytest.mark.parametrize("value", [-0.1, float("nan"), float("inf")])
def test_negative_or_non_finite_rho(field, value, tmp_path):
    with pytest.raises(ValueError, match=f"`{field}` must be a finite number >= 0"):
        _args(tmp_path, **{field: value})


def test_bad_flat_strategy(tmp_path):
    with pytest.raises(ValueError, match="`flat_strategy` must be one of"):
        FlatSettings(strategy="sideways")


def _write_idx(path, magic, shape, payload):
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + payload)


def test_idx_folder_missing_and_corrupt_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_idx_folder(tmp_path / "absent", "train")
    _write_idx(tmp_path / "train-images-idx3-ubyte.gz", 2051, (2, 28, 28), bytes(2 * 784))
    with pytest.raises(FileNotFoundError, match="lacks train-labels-idx1-ubyte"):
        load_idx_folder(tmp_path, "train")
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", 2049, (2,), bytes(1))  # one byte short
    with pytest.raises(ValueError, match=r"truncated or corrupt.*shape \(2,\)"):
        load_idx_folder(tmp_path, "train")
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", 1234, (2,), bytes(2))
    with pytest.raises(ValueError, match="expected magic number 2051"):
        load_idx_folder(tmp_path, "train")
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match="Cannot read IDX file"):
        load_idx_folder(tmp_path, "train")
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", 2049, (2,), bytes([3, 7]))
    images, labels = load_idx_folder(tmp_path, "train")
    assert images.shape == (2, 28, 28) and labels.tolist() == [3, 7]
    with pytest.raises(ValueError, match="`source='idx'` needs `mnist_dir`"):
        load_multi_mnist(source="idx")


class NaNLoss(TwoHeadNet):
    def forward(self, x, labels=None, tasks=None):
        out = super().forward(x, labels, tasks)
        if labels is not None:
            out["losses"]["b"] = out["losses"]["b"] * float("nan")
        return out


def test_non_finite_loss_skips_step_and_keeps_weights(tmp_path, caplog):
    model = NaNLoss()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer = FlatMTLTrainer(
        model=model, args=_args(tmp_path, max_steps=2), train_dataset=toy_data()
    )
    trainer.train()
    for name, param in model.named_parameters():
        assert torch.equal(param, before[name]), name
    assert trainer._skipped_steps == 2


def _flat_step(model, aggregator="mgda", **settings):
    shared = [model.trunk.weight, model.trunk.bias]
    tasks = {"a": list(model.head_a.parameters()), "b": list(model.head_b.parameters())}
    config = FlatSettings(rho_shared=0.5, rho_task=0.5, **settings)
    aggregators = build_aggregators(lambda: get_aggregator(aggregator), config, 2)
    return FlatStep(model, shared, tasks, aggregators, config)


def test_weights_restored_exactly_when_perturbed_pass_raises():
    model = TwoHeadNet()
    data = toy_data()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    calls = []

    def forward(tasks):
        calls.append(tasks)
        if tasks == ["b"]:
            # The weights are perturbed right now; the failure must not leave them so.
            assert not torch.equal(model.trunk.weight, before["trunk.weight"])
            raise RuntimeError("boom in the perturbed pass")
        return model(data.x, data.labels, tasks)["losses"]

    step = _flat_step(model)
    with pytest.raises(RuntimeError, match="boom"):
        step(forward)
    assert calls == [None, ["a"], ["b"]]
    for name, param in model.named_parameters():
        assert torch.equal(param, before[name]), name


def test_batch_norm_statistics_follow_the_clean_pass_only():
    data = toy_data()
    reference = TwoHeadNet(batch_norm=True)
    reference.train()
    reference(data.x, data.labels)  # one clean forward
    model = TwoHeadNet(batch_norm=True)
    model.train()
    step = _flat_step(model)
    step(lambda tasks: model(data.x, data.labels, tasks)["losses"])
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        assert torch.equal(getattr(model.norm, name), getattr(reference.norm, name)), name
    assert not torch.equal(model.norm.running_mean, torch.zeros(3))


def test_flat_step_raises_on_non_finite_loss_before_touching_anything():
    model = NaNLoss()
    data = toy_data()
    step = _flat_step(model)
    with pytest.raises(NonFiniteLossError, match="b=nan"):
        step(lambda tasks: model(data.x, data.labels, tasks)["losses"])
    assert all(p.grad is None for p in model.parameters())


def test_missing_task_in_losses(tmp_path):
    model = TwoHeadNet()
    data = toy_data()
    step = _flat_step(model)
    with pytest.raises(ValueError, match=r"lack tasks \['b'\]"):
        step(lambda tasks: {"a": model(data.x, data.labels)["losses"]["a"]})


def test_trainer_refuses_plain_training_arguments(tmp_path):
    from transformers import TrainingArguments

    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none")
    with pytest.raises(TypeError, match="`args` must be a flatmtl.FlatMTLConfig"):
        FlatMTLTrainer(model=TwoHeadNet(), args=args)


def test_learned_aggregator_needs_task_names_up_front(tmp_path):
    args = _args(tmp_path, aggregator="uw")
    trainer = FlatMTLTrainer(model=TwoHeadNet(), args=args, train_dataset=toy_data())
    with pytest.raises(ValueError, match="Pass `task_names=\\[...\\]`"):
        trainer.train()
    model = TwoHeadNet()
    trainer = FlatMTLTrainer(
        model=model,
        args=_args(tmp_path, aggregator="uw", max_steps=2),
        train_dataset=toy_data(),
        task_names=["a", "b"],
    )
    trainer.train()
    log_variances = [p for a in trainer._aggregators.values() for p in a.parameters()]
    stepped = {id(p) for g in trainer.optimizer.param_groups for p in g["params"]}
    assert log_variances and all(id(p) in stepped for p in log_variances)
    assert all(not torch.equal(p.detach(), torch.zeros_like(p)) for p in log_variances)


def test_losses_that_are_not_a_mapping_are_described():
    with pytest.raises(ValueError, match=r"found `losses` of type list"):
        extract_losses({"loss": torch.tensor(1.0), "losses": [torch.tensor(1.0)]})
