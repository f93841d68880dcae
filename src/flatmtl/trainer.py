"""``FlatMTLTrainer``: a ``transformers.Trainer`` whose training step is the flat MTL step.

The trainer stays thin: it wires the model's per-task losses, Accelerate (autocast, loss
scaling, distributed reduction) and the Trainer's hooks (optimizer, checkpoints, logging) to
:class:`~flatmtl.flat.FlatStep`, which holds the algorithm.
"""

from __future__ import annotations

import inspect
import os
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn
from transformers import Trainer, TrainerCallback
from transformers.utils import logging

from .aggregation import AGGREGATORS, Aggregator, get_aggregator
from .config import FlatMTLConfig
from .flat import FlatStep, NonFiniteLossError, build_aggregators
from .partition import ParameterPartition

__all__ = ["FlatMTLTrainer", "extract_losses"]

logger = logging.get_logger(__name__)

STATE_FILE = "flatmtl_state.pt"


def extract_losses(outputs: Any) -> dict[str, Tensor]:
    """The ``losses`` entry of a model output (a mapping task -> scalar loss)."""
    losses = outputs.get("losses") if isinstance(outputs, Mapping) else None
    if losses is None and not isinstance(outputs, Mapping):
        losses = getattr(outputs, "losses", None)
    if not isinstance(losses, Mapping) or not losses:
        if losses is not None:
            found = f"`losses` of type {type(losses).__name__}: {losses!r}"
        elif isinstance(outputs, Mapping):
            found = f"the keys {list(outputs.keys())}"
        else:
            found = type(outputs).__name__
        raise ValueError(
            "The model output has no `losses` mapping (task name -> scalar loss); found "
            f"{found}. Return e.g. `{{'loss': sum, 'losses': {{'task_a': loss_a, ...}}}}` "
            "from `forward`, as flatmtl.MultiTaskModel does."
        )
    for task, loss in losses.items():
        if not isinstance(loss, Tensor) or loss.numel() != 1:
            raise ValueError(
                f"`losses[{task!r}]` must be a scalar tensor, found "
                f"{tuple(loss.shape) if isinstance(loss, Tensor) else type(loss).__name__}."
            )
    return {task: loss.reshape(()) for task, loss in losses.items()}


class FlatMTLTrainer(Trainer):
    """A ``Trainer`` for multi-head models that seeks flat regions of every task's loss.

    The model returns per-task losses under ``"losses"`` (see :func:`extract_losses`); each
    training step runs :class:`~flatmtl.flat.FlatStep` and writes the result into ``.grad``,
    which the Trainer then clips and steps as usual.

    Args:
        args: a :class:`~flatmtl.FlatMTLConfig`.
        partition: a fixed :class:`~flatmtl.partition.ParameterPartition`; by default it is
            inferred from the first training batch.
        aggregator: an aggregator to use in place of ``args.aggregator``: an ``Aggregator``
            subclass or a zero-argument callable returning a new instance (one is built per
            sub-problem, so an instance is refused).
        task_names: the task names in the order of the model's ``losses``; read from
            ``model.config.task_names`` when present. Needed up front by methods with learned
            parameters (``uw``, ``imtl_l``, ``gradnorm``), which must join the optimizer.
        Other arguments are those of ``transformers.Trainer``.
    """

    # The step divides by the accumulation steps itself, exactly once.
    loss_is_scaled_for_ga = True

    def __init__(
        self,
        model: nn.Module | None = None,
        args: FlatMTLConfig | None = None,
        *trainer_args: Any,
        partition: ParameterPartition | None = None,
        aggregator: Any = None,
        task_names: list[str] | None = None,
        **trainer_kwargs: Any,
    ) -> None:
        if args is not None and not isinstance(args, FlatMTLConfig):
            raise TypeError(
                f"`args` must be a flatmtl.FlatMTLConfig, found {type(args).__name__}; build it "
                "as FlatMTLConfig(output_dir=..., aggregator=..., ...) (it accepts every "
                "TrainingArguments field)."
            )
        super().__init__(model, args, *trainer_args, **trainer_kwargs)
        if self.is_deepspeed_enabled or self.is_fsdp_enabled:
            backend = "DeepSpeed" if self.is_deepspeed_enabled else "FSDP"
            raise ValueError(
                f"FlatMTLTrainer does not support {backend}: the flat step writes `.grad` itself "
                "and all-reduces task gradients, which sharded engines own. Supported: one "
                "process, or DDP through `accelerate launch` / `torchrun` (CPU or GPU), "
                "with fp32, bf16 or fp16."
            )
        self.model_accepts_loss_kwargs = False
        unwrapped = self.accelerator.unwrap_model(self.model)
        config = getattr(unwrapped, "config", None)
        if self.args.label_names is None and getattr(config, "label_keys", None):
            self.label_names = list(config.label_keys)
        self._accepts_tasks = "tasks" in inspect.signature(unwrapped.forward).parameters
        self._aggregator_override = aggregator
        self.partition = partition
        self.flat_step: FlatStep | None = None
        self._pending_state: dict[str, Any] | None = None
        self._pending_reuse_state: dict[str, Any] | None = None
        if task_names is None:
            task_names = list(getattr(config, "task_names", []) or []) or None
        self._task_names: list[str] | None = list(task_names) if task_names else None
        self._log_sums: dict[str, float] = defaultdict(float)
        self._log_count = 0
        # Per key: under `flat_every > 1` the perturbation norms exist on refreshing steps only.
        self._log_counts: dict[str, int] = defaultdict(int)
        self._skipped_steps = 0
        self.add_callback(_EpochEndCallback(self))
        if self._task_names is not None:
            # Built now so that learned aggregator parameters join the optimizer.
            self._aggregators = self._build_aggregators(len(self._task_names))
        else:
            self._aggregators = None

    # ------------------------------------------------------------------ setup

    def _aggregator_factory(self, num_tasks: int) -> Any:
        override = self._aggregator_override
        if override is not None:
            if isinstance(override, Aggregator):
                raise TypeError(
                    "`aggregator` must be a class or a zero-argument callable that returns a "
                    "new Aggregator (the flat step needs one instance per sub-problem), found "
                    "an instance; pass e.g. `aggregator=lambda: MGDA()`."
                )
            return override
        kwargs = dict(self.args.aggregator_kwargs or {})
        name = self.args.aggregator

        if "num_tasks" in inspect.signature(AGGREGATORS[name]).parameters:
            kwargs.setdefault("num_tasks", num_tasks)

        def factory() -> Aggregator:
            return get_aggregator(name, **kwargs)

        return factory

    def _build_aggregators(self, num_tasks: int) -> dict[str, Aggregator]:
        factory = self._aggregator_factory(num_tasks)
        aggregators = build_aggregators(factory, self.args.flat_settings(), num_tasks)
        seed = self.args.seed
        for offset, aggregator in enumerate(aggregators.values()):
            aggregator.reseed(seed + offset)
        return aggregators

    def _build_flat_step(self, losses: Mapping[str, Tensor]) -> FlatStep:
        unwrapped = self.accelerator.unwrap_model(self.model)
        task_names = list(losses)
        if self._task_names is not None and task_names != self._task_names:
            raise ValueError(
                f"The model returned losses for {task_names}, but its config lists tasks "
                f"{self._task_names}; the `losses` mapping must hold every task, in that order."
            )
        if self.partition is None:
            self.partition = ParameterPartition.infer(
                unwrapped, losses, shared_patterns=self.args.shared_patterns
            )
            logger.info(f"flatmtl parameter partition: {self.partition.describe(unwrapped)}")
            if self.partition.unused:
                logger.warning(
                    f"{len(self.partition.unused)} trainable parameters receive no gradient from "
                    f"any task and are left untouched: {self.partition.unused[:10]}"
                )
        if self._aggregators is None:
            self._aggregators = self._build_aggregators(len(task_names))
            learned = [a for a in self._aggregators.values() if a.parameters()]
            if learned:
                raise ValueError(
                    f"`aggregator` {self.args.aggregator!r} learns parameters that the optimizer "
                    "must step, but the tasks of this model were unknown when the optimizer was "
                    "built. Pass `task_names=[...]` to FlatMTLTrainer (or give the model a "
                    "`config.task_names`)."
                )
        shared, tasks = self.partition.resolve(unwrapped)
        step = FlatStep(unwrapped, shared, tasks, self._aggregators, self.args.flat_settings())
        if self._pending_state is not None:
            self._load_aggregator_state(self._pending_state)
            self._pending_state = None
        if self._pending_reuse_state is not None:
            step.load_reuse_state_dict(self._pending_reuse_state)
            self._pending_reuse_state = None
        return step

    def create_optimizer(self, model: nn.Module | None = None) -> torch.optim.Optimizer:
        optimizer = super().create_optimizer(model)
        extra = [p for a in (self._aggregators or {}).values() for p in a.parameters()]
        if extra and not any(
            p is q for g in optimizer.param_groups for p in g["params"] for q in extra
        ):
            optimizer.add_param_group({"params": extra, "weight_decay": 0.0})
        return optimizer

    def _set_signature_columns_if_needed(self) -> None:
        # A MultiTaskModel takes its targets and its backbone's inputs through `**inputs`, which
        # the Trainer's signature inspection cannot see: keep exactly those columns.
        super()._set_signature_columns_if_needed()
        model = self.accelerator.unwrap_model(self.model)
        config = getattr(model, "config", None)
        backbone = getattr(model, "backbone", None)
        if getattr(config, "label_keys", None) is None or backbone is None:
            return
        names = list(inspect.signature(backbone.forward).parameters)
        extra = [n for n in names if n not in ("self", "tasks")] + list(config.label_keys)
        self._signature_columns = list(dict.fromkeys(self._signature_columns + extra))

    # ------------------------------------------------------------------ training

    def training_step(
        self,
        model: nn.Module,
        inputs: dict[str, Any],
        num_items_in_batch: Tensor | int | None = None,
    ) -> Tensor:
        """One micro-batch of the flat step, added into ``.grad``.

        Under gradient accumulation each micro-batch is aggregated on its own (its own
        perturbation and aggregator call) and the directions are averaged: ``.grad`` receives
        ``A(G_j) / N`` for micro-batch ``j`` of ``N``. For linear methods (``sum``, ``mean``,
        fixed weights) that equals the large-batch step; for nonlinear ones (MGDA, PCGrad,
        Nash-MTL, ...) it is the mean of micro-batch directions, not ``A`` of the mean
        gradient, because the perturbed passes need each micro-batch's graph and no ``m x d``
        matrix is kept across micro-batches. Across processes, by contrast, the gradient
        matrices are all-reduced before aggregation. Returns the summed task losses divided
        by ``N`` (the Trainer's loss accounting).
        """
        model.train()
        inputs = self._prepare_inputs(inputs)
        accumulation = self.current_gradient_accumulation_steps

        def forward(tasks: list[str] | None, module: nn.Module = model) -> dict[str, Tensor]:
            kwargs = dict(inputs)
            if tasks is not None and self._accepts_tasks:
                kwargs["tasks"] = list(tasks)
            with self.compute_loss_context_manager():
                outputs = module(**kwargs)
            return extract_losses(outputs)

        # DDP's reducer never sees `torch.autograd.grad`: every forward runs under `no_sync`
        # and the flat step all-reduces the task gradients itself, before aggregating.
        with self._no_sync(model):
            clean = None
            if self.flat_step is None:
                # The first batch's clean pass also yields the partition; later ones run
                # inside the flat step, which then also undoes them on a skipped batch. It
                # bypasses the DDP wrapper, whose output hook joins every task's graph to
                # every parameter (all would look shared).
                clean = forward(None, self.accelerator.unwrap_model(model))
                self.flat_step = self._build_flat_step(clean)
            scaler = getattr(self.accelerator, "scaler", None)
            grad_scale = 1.0
            if scaler is not None:
                # `scale()` (not `get_scale()`) so that the scaler initialises its scale tensor,
                # which its `step` requires; the flat step multiplies the losses by the value.
                grad_scale = float(scaler.scale(torch.ones((), device=self.args.device)))
            try:
                result = self.flat_step(
                    forward,
                    clean,
                    grad_scale=grad_scale,
                    reduce=self._reduce_fn(),
                    propagate_nonfinite=scaler is not None,
                    step=self.state.global_step,
                )
            except NonFiniteLossError as error:
                self._skipped_steps += 1
                logger.warning(
                    f"Skipping the update of this batch: {error}. Every weight is left "
                    f"unchanged ({self._skipped_steps} skipped so far)."
                )
                return torch.tensor(float("nan"), device=self.args.device)

        # Written times the loss scale (the scaler unscales, checks for inf and skips) and
        # divided by the accumulation steps: the only place the loss is scaled for them.
        self.flat_step.write_gradients(result, scale=grad_scale / accumulation)
        if result.skipped:
            self._skipped_steps += 1
            logger.warning_once(
                "A loss or gradient was non-finite under fp16 loss scaling: the gradient "
                "scaler skips this optimizer step and lowers its scale."
            )
        else:
            self._record(result)
        total = torch.stack(list(result.losses.values())).sum()
        return total.detach() / accumulation

    def _no_sync(self, model: nn.Module) -> Any:
        if self.accelerator.num_processes > 1:
            return self.accelerator.no_sync(model)
        return _NullContext()

    def _reduce_fn(self) -> Any:
        if self.accelerator.num_processes <= 1:
            return None
        world = self.accelerator.num_processes

        def reduce(tensor: Tensor) -> Tensor:
            torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.SUM)
            return tensor.div_(world)

        return reduce

    def _record(self, result: Any) -> None:
        for task, loss in result.losses.items():
            self._log_sums[f"loss/{task}"] += float(loss)
            self._log_counts[f"loss/{task}"] += 1
        for key, value in result.stats.items():
            name = "conflict_share" if key == "conflict" else key
            self._log_sums[name] += value
            self._log_counts[name] += 1
        self._log_count += 1

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Add the flat step's diagnostics to the training logs, as means over the micro-batches
        since the last log: ``loss/<task>`` (mean over processes), ``grad_norm/<task>`` (clean
        shared gradient), ``weight/<sub-problem>/<task>`` (weight-based aggregators),
        ``perturbation_norm/{shared,task}/<task>`` (flat runs), ``conflict_share`` (share of
        micro-batches where some ``g_i . g_j < 0``), ``flat_refresh`` (share of micro-batches
        that recomputed the flat part, ``flat_every > 1``) and ``skipped_steps`` (cumulative)."""
        if "loss" in logs and self._log_count:
            for key, total in self._log_sums.items():
                logs[key] = total / self._log_counts[key]
            self._log_sums.clear()
            self._log_counts.clear()
            self._log_count = 0
        if "loss" in logs:
            logs["skipped_steps"] = self._skipped_steps
        super().log(logs, start_time)

    # ------------------------------------------------------------------ evaluation

    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Tensor | int | None = None,
    ) -> Tensor | tuple[Tensor, Any]:
        outputs = model(**inputs)
        losses = extract_losses(outputs)
        loss = outputs.get("loss") if isinstance(outputs, Mapping) else None
        if loss is None:
            loss = torch.stack(list(losses.values())).sum()
        return (loss, outputs) if return_outputs else loss

    def prediction_step(
        self,
        model: nn.Module,
        inputs: dict[str, Any],
        prediction_loss_only: bool,
        ignore_keys: list[str] | None = None,
    ) -> tuple[Tensor | None, Any, Any]:
        inputs = self._prepare_inputs(inputs)
        labels = tuple(inputs.get(name) for name in self.label_names)
        has_labels = bool(labels) and all(label is not None for label in labels)
        with torch.no_grad():
            outputs = model(**inputs)
        loss = None
        if has_labels:
            loss = torch.stack(list(extract_losses(outputs).values())).sum().detach()
        if prediction_loss_only:
            return loss, None, None
        logits = outputs.get("logits") if isinstance(outputs, Mapping) else None
        if isinstance(logits, Mapping):
            predictions = tuple(logits.values())
        else:
            skip = set(ignore_keys or []) | {"loss", "losses"}
            predictions = tuple(v for k, v in outputs.items() if k not in skip)
        if len(predictions) == 1:
            predictions = predictions[0]
        if not has_labels:
            return loss, predictions, None
        return loss, predictions, labels[0] if len(labels) == 1 else labels

    # ------------------------------------------------------------------ checkpoints

    def flat_state_dict(self) -> dict[str, Any]:
        """Aggregator states, the partition and the flat part reused under ``flat_every > 1``,
        saved beside every checkpoint."""
        if self.flat_step is not None:
            reused = self.flat_step.reuse_state_dict()
        else:
            reused = self._pending_reuse_state or {}
        return {
            "aggregators": {k: a.state_dict() for k, a in (self._aggregators or {}).items()},
            "partition": self.partition.to_dict() if self.partition is not None else None,
            "skipped_steps": self._skipped_steps,
            "reused_flat": reused,
        }

    def _save_optimizer_and_scheduler(self, output_dir: str) -> None:
        super()._save_optimizer_and_scheduler(output_dir)
        if self.args.should_save:
            torch.save(self.flat_state_dict(), os.path.join(output_dir, STATE_FILE))

    def _load_optimizer_and_scheduler(self, checkpoint: str | None) -> None:
        super()._load_optimizer_and_scheduler(checkpoint)
        if checkpoint is None:
            return
        path = os.path.join(checkpoint, STATE_FILE)
        if not os.path.isfile(path):
            logger.warning(
                f"{path} is missing: the checkpoint holds no aggregator state, so stateful "
                "aggregators restart from scratch."
            )
            return
        state = torch.load(path, weights_only=False)
        if state.get("partition") is not None and self.partition is None:
            self.partition = ParameterPartition.from_dict(state["partition"])
        self._skipped_steps = int(state.get("skipped_steps", 0))
        reused = state.get("reused_flat", {})
        if self.flat_step is not None:
            self.flat_step.load_reuse_state_dict(reused)
        else:
            self._pending_reuse_state = reused
        if self._aggregators is not None:
            self._load_aggregator_state(state)
        else:
            self._pending_state = state

    def _load_aggregator_state(self, state: Mapping[str, Any]) -> None:
        saved = state.get("aggregators", {})
        if set(saved) != set(self._aggregators or {}):
            raise ValueError(
                f"The checkpoint's aggregator state covers {sorted(saved)}, but this run builds "
                f"{sorted(self._aggregators or {})}; resume with the same `aggregator`, `flat` and "
                "`flat_strategy` settings."
            )
        for name, aggregator in self._aggregators.items():
            aggregator.load_state_dict(saved[name])

    # ------------------------------------------------------------------ hub

    def create_model_card(
        self,
        *,
        model_name: str | None = None,
        dataset_name: str | None = None,
        tags: str | list[str] | None = None,
        metrics: dict[str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        """Write the flatmtl model card (``README.md``) into ``args.output_dir``.

        Every argument is keyword-only: ``Trainer.create_model_card`` takes ``language`` first,
        so positions would silently mean something else here.

        The card lists every task with its metrics in ``model-index`` (by default those of the
        last evaluation in the logs), the aggregator and flat settings, the training data and
        how to load the model. ``kwargs`` take ``dataset`` (Hub id or ids; ``dataset_tags`` is
        an alias), ``dataset_split``, ``language``, ``license`` and ``finetuned_from``;
        ``tasks`` and ``dataset_args`` (``Trainer``'s) are refused for flatmtl models. The
        context is also recorded on the model, so a later ``model.push_to_hub`` uploads the
        same card.
        """
        from .hub import CARD_CONTEXT_ATTRIBUTE, CardContext, build_model_card, training_summary

        if not self.is_world_process_zero():
            return
        allowed = {"dataset", "dataset_tags", "dataset_split", "language", "license"}
        allowed |= {"finetuned_from", "tasks", "dataset_args"}
        unknown = set(kwargs) - allowed
        if unknown:
            raise TypeError(
                f"`create_model_card` got unexpected arguments {sorted(unknown)}; it takes "
                f"model_name, dataset_name, tags, metrics and {sorted(allowed)} (`tasks` and "
                "`dataset_args` only for models other than flatmtl's), all by keyword."
            )
        model = self.accelerator.unwrap_model(self.model)
        config = getattr(model, "config", None)
        if getattr(config, "model_type", None) != "flatmtl":
            # Not a flatmtl MultiTaskModel: the Trainer's own card is the best we can write.
            kwargs.pop("dataset_split", None)
            super().create_model_card(model_name=model_name, tags=tags, **kwargs)
            return

        for name, reason in (
            ("tasks", "each head's Hub task type is taken from the model config"),
            ("dataset_args", "the card names the data through `dataset` and `dataset_name`"),
        ):
            if kwargs.get(name) is not None:
                raise ValueError(
                    f"`{name}` is not used on a flatmtl model card ({reason}); found "
                    f"{kwargs[name]!r}. Drop the argument."
                )
        # A card written earlier (e.g. before `save_model` pushes) supplies what is not given.
        previous = getattr(model, CARD_CONTEXT_ATTRIBUTE, None) or CardContext()
        if metrics is None:
            metrics = _last_evaluation(self.state.log_history) or previous.metrics
        dataset = kwargs.get("dataset") or kwargs.get("dataset_tags") or previous.dataset
        dataset_ids = [dataset] if isinstance(dataset, str) else list(dataset or [])
        dataset_name = (
            dataset_name
            or previous.dataset_name
            or _dataset_name(self.eval_dataset or self.train_dataset)
        )
        card = build_model_card(
            config,
            model_name=model_name,
            repo_id=self.hub_model_id or model_name,
            metrics=metrics,
            dataset_name=dataset_name,
            dataset=dataset_ids,
            dataset_split=kwargs.get("dataset_split") or previous.dataset_split,
            training_args=self.args,
            tags=tags,
            language=kwargs.get("language"),
            license=kwargs.get("license"),
            finetuned_from=kwargs.get("finetuned_from"),
            secrets=[self.args.hub_token, getattr(self, "_push_token", None)],
        )
        os.makedirs(self.args.output_dir, exist_ok=True)
        card.save(os.path.join(self.args.output_dir, "README.md"))
        context = CardContext(
            metrics=dict(metrics or {}),
            dataset_name=dataset_name,
            dataset=dataset_ids or None,
            dataset_split=kwargs.get("dataset_split") or previous.dataset_split,
            training=training_summary(self.args),
        )
        setattr(model, CARD_CONTEXT_ATTRIBUTE, context)

    def push_to_hub(
        self,
        commit_message: str | None = "End of training",
        blocking: bool = True,
        token: str | None = None,
        revision: str | None = None,
        private: bool | None = None,
        **kwargs: Any,
    ) -> Any:
        """``Trainer.push_to_hub`` that keeps the access token out of the uploaded files.

        ``Trainer`` pickles the training arguments into ``training_args.bin`` and uploads it;
        the token is taken off the arguments while they are saved and passed to the upload
        directly instead.
        """
        token = token if token is not None else self.args.hub_token
        args_token = self.args.hub_token
        self.args.hub_token = None
        self._push_token = token
        try:
            return super().push_to_hub(
                commit_message=commit_message,
                blocking=blocking,
                token=token,
                revision=revision,
                private=private,
                **kwargs,
            )
        finally:
            self.args.hub_token = args_token
            self._push_token = None


def _last_evaluation(log_history: list[dict[str, Any]]) -> dict[str, float]:
    """The metrics of the last evaluation (``eval_*`` / ``test_*``) in the Trainer's logs."""
    for entry in reversed(log_history):
        if any(k.endswith("_runtime") and not k.startswith("train") for k in entry):
            return {k: v for k, v in entry.items() if isinstance(v, (int, float))}
    return {}


def _dataset_name(dataset: Any) -> str | None:
    """A readable name of a data set: its ``datasets`` info, a ``name``, or its class."""
    if dataset is None:
        return None
    info = getattr(dataset, "info", None)
    for name in (getattr(info, "dataset_name", None), getattr(dataset, "dataset_name", None)):
        if isinstance(name, str) and name:
            return name
    class_name = type(dataset).__name__
    trimmed = class_name[: -len("Dataset")] if class_name.endswith("Dataset") else class_name
    return trimmed or class_name


class _EpochEndCallback(TrainerCallback):
    """Tells epoch-level aggregators (DWA) that an epoch ended."""

    def __init__(self, trainer: FlatMTLTrainer) -> None:
        self.trainer = trainer

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        for aggregator in (self.trainer._aggregators or {}).values():
            aggregator.on_epoch_end()


class _NullContext:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None
