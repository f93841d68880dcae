"""The flat step: per-task SAM perturbations, re-taken gradients, and their decomposition.

One call of :class:`FlatStep` on a micro-batch (Phan et al., *Improving Multi-task Learning
via Seeking Task-based Flat Regions*, arXiv 2211.13723, Algorithm 1):

1. a clean forward; per-task gradients ``g_i`` (shared part) and ``k_i`` (task ``i``'s part);
2. perturbations ``e_i = rho_shared g_i / ||g_i||`` and ``f_i = rho_task k_i / ||k_i||``, one
   joint L2 norm over all tensors of a part (ASAM: ``w^2 g / ||w g||`` per part);
3. per task, a forward at ``(s + e_i, t_i + f_i)`` and the gradients ``g_i^SAM``, ``k_i^SAM``;
   the exact original weights are copied back afterwards, also when the pass raises;
4. flat gradients ``h_i = g_i^SAM - g_i``;
5. the shared direction by ``strategy`` (``individual``: ``A_loss(g) + A_flat(h)``), the task
   parameters get ``k_i^SAM``.

Cost: one clean forward and ``m`` per-task backwards, then per task one forward of that task
only (when ``forward`` honours ``tasks``) and one backward: ``(m + 1) F + 2m B``. The weights
are saved once per step as one flat vector (each task's own parameters per task). For the
``individual``, ``second`` and ``direct`` strategies the loss gradients are aggregated before
the perturbed passes, and row ``i`` of the one ``m x d`` matrix is overwritten in place by
``h_i`` (``g_i^SAM`` for ``direct``) once pass ``i`` is done, so the step holds a single task
gradient matrix; ``each`` needs ``g`` and ``h`` side by side and holds two.

``flat_every = k > 1`` (``individual`` only) recomputes the flat part on steps
``step % k == 0`` and reuses it in between, where a step costs the plain ``F + m B``: the
shared direction is ``A_loss(g) + A_flat(h)`` with the stored ``A_flat(h)``, and task ``i``'s
parameters get ``k_i + (k_i^SAM - k_i)`` with the stored flat part. Under gradient
accumulation the stored parts are the mean over the micro-batches of the refreshing step.
The ``flat`` aggregator runs on refreshing steps only, the ``loss`` one on every step.

It is plain PyTorch: the trainer hands it a ``forward(tasks)`` callable and writes the result
into ``.grad``. BatchNorm running statistics change in the clean pass only; dropout draws
fresh masks in each perturbed pass.

Distributed runs pass ``reduce`` (the all-reduce mean over processes). It is applied to the
task losses, to the ``m x d`` gradient matrices and to the task parameters' gradients
*before* any aggregation or perturbation, and to the BatchNorm running statistics after the
clean pass, so every process computes the same perturbation and the same direction and
decides a skip alike. Under fp16 loss scaling, ``grad_scale`` is the scaler's current scale
and ``propagate_nonfinite=True``: a non-finite loss or gradient then yields a NaN direction
(no perturbation, no aggregator call) so that the scaler skips the optimizer step and lowers
its scale.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from .aggregation import Aggregator, WeightedAggregator

__all__ = ["FLAT_STRATEGIES", "FlatSettings", "FlatStep", "FlatStepOutput", "NonFiniteLossError"]

FLAT_STRATEGIES = ("individual", "direct", "second", "each")
_EPS = 1e-12

ForwardFn = Callable[[Sequence[str] | None], Mapping[str, Tensor]]
ReduceFn = Callable[[Tensor], Tensor]


class NonFiniteLossError(RuntimeError):
    """A task loss or gradient was NaN or infinite; nothing was written or changed."""


@dataclass(frozen=True)
class FlatSettings:
    """Options of :class:`FlatStep` (the trainer builds them from ``FlatMTLConfig``).

    Attributes:
        flat: ``False`` gives the plain aggregator step ``A(g)``, task parts ``k_i``.
        rho_shared: radius of the shared perturbation.
        rho_task: radius of each task's own perturbation.
        adaptive: ASAM (Kwon et al., ICML 2021) instead of SAM.
        strategy: one of :data:`FLAT_STRATEGIES`.
        joint_norm: one norm over ``[g_i, k_i]`` with ``rho_shared`` for both parts, as the
            authors' Multi-MNIST code does (the paper normalises each part on its own).
        flat_every: recompute the flat part every this many optimizer steps and reuse the last
            one in between (``individual`` strategy only; 1 recomputes it every step).
        batched_task_grads: take the ``m`` clean per-task gradients in one batched backward
            (``torch.autograd.grad(..., is_grads_batched=True)``) instead of ``m`` backwards.
            Equal results; measured slower than the loop on every model benchmarked (LeNet,
            ResNet18, MTAN), see ``benchmarks/step_time.py``.
    """

    flat: bool = True
    rho_shared: float = 0.05
    rho_task: float = 0.05
    adaptive: bool = False
    strategy: str = "individual"
    joint_norm: bool = False
    flat_every: int = 1
    batched_task_grads: bool = False

    def __post_init__(self) -> None:
        for name in ("rho_shared", "rho_task"):
            value = getattr(self, name)
            if not (value >= 0.0) or value == float("inf"):
                raise ValueError(
                    f"`{name}` must be a finite number >= 0, found {value}; use 0 to disable "
                    "the perturbation of that part."
                )
        if self.strategy not in FLAT_STRATEGIES:
            raise ValueError(
                f"`flat_strategy` must be one of {FLAT_STRATEGIES}, found {self.strategy!r}."
            )
        if isinstance(self.flat_every, bool) or not isinstance(self.flat_every, int):
            raise ValueError(
                f"`flat_every` must be an integer >= 1, found {self.flat_every!r}; use 1 to "
                "recompute the flat gradients on every step."
            )
        if self.flat_every < 1:
            raise ValueError(
                f"`flat_every` must be >= 1, found {self.flat_every}; use 1 to recompute the "
                "flat gradients on every step."
            )
        if self.flat and self.flat_every > 1 and self.strategy != "individual":
            raise ValueError(
                f"`flat_every={self.flat_every}` needs `flat_strategy='individual'`, found "
                f"{self.strategy!r}: only the individual strategy has a flat part "
                "`A_flat(h)` that can be stored and reused; use `flat_every=1` with this "
                "strategy."
            )


@dataclass
class FlatStepOutput:
    """What one flat step computed (all gradients unscaled).

    Attributes:
        shared_direction: aggregated direction over the shared parameters, flat ``(d,)``.
        task_grads: task -> one gradient per task parameter (``None`` where the loss does not
            reach that tensor).
        losses: task -> clean loss (detached).
        stats: diagnostics (per-task gradient norms, aggregator weights, perturbation norms,
            whether the task gradients conflict).
        skipped: a loss or gradient was non-finite (``propagate_nonfinite=True`` only); the
            direction is NaN so that a loss scaler skips the optimizer step.
    """

    shared_direction: Tensor
    task_grads: dict[str, list[Tensor | None]]
    losses: dict[str, Tensor]
    stats: dict[str, float] = field(default_factory=dict)
    skipped: bool = False


def build_aggregators(
    factory: Callable[[], Aggregator], settings: FlatSettings, num_tasks: int
) -> dict[str, Aggregator]:
    """The aggregator instances a strategy needs, each with its own state and seed."""
    if not settings.flat or settings.strategy == "direct":
        names = ["main"]
    elif settings.strategy == "individual":
        names = ["loss", "flat"]
    elif settings.strategy == "second":
        names = ["loss", "flat", "second"]
    else:
        names = [f"each_{i}" for i in range(num_tasks)] + ["outer"]
    aggregators = {}
    for offset, name in enumerate(names):
        aggregator = factory()
        aggregator.reseed(aggregator.seed + offset)
        aggregators[name] = aggregator
    return aggregators


class FlatStep:
    """Computes the flat (or plain) multi-task gradient of one micro-batch.

    Args:
        model: the module whose BatchNorm statistics are protected in the perturbed passes.
        shared_params: the shared parameters, in a fixed order.
        task_params: task -> its own parameters; its keys fix the task order.
        aggregators: instances from :func:`build_aggregators`.
        settings: the options.
    """

    def __init__(
        self,
        model: nn.Module,
        shared_params: Sequence[nn.Parameter],
        task_params: Mapping[str, Sequence[nn.Parameter]],
        aggregators: Mapping[str, Aggregator],
        settings: FlatSettings,
    ) -> None:
        if not shared_params:
            raise ValueError(
                "No shared parameters: no parameter is reached by two or more task losses. "
                "A model with one task, or a task whose loss reaches no parameter, has none. "
                "Check that every task uses the backbone, or pass `shared_patterns`."
            )
        self.model = model
        self.shared_params = list(shared_params)
        self.task_params = {task: list(params) for task, params in task_params.items()}
        self.task_names = list(self.task_params)
        self.aggregators = dict(aggregators)
        self.settings = settings
        self._shared_numel = [p.numel() for p in self.shared_params]
        self.num_shared = sum(self._shared_numel)
        # The flat part reused between refreshes under `flat_every > 1`.
        self._stored_direction: Tensor | None = None
        self._stored_task: dict[str, list[Tensor | None]] = {}
        self._stored_step: int | None = None
        self._stored_count = 0

    # ------------------------------------------------------------------ public

    def __call__(
        self,
        forward: ForwardFn,
        clean_losses: Mapping[str, Tensor] | None = None,
        grad_scale: float = 1.0,
        reduce: ReduceFn | None = None,
        propagate_nonfinite: bool = False,
        step: int | None = None,
    ) -> FlatStepOutput:
        """Run the step.

        Args:
            forward: ``forward(tasks)`` runs the model (only ``tasks`` when not ``None``) and
                returns task -> scalar loss.
            clean_losses: losses of a clean forward already run on this batch (graphs intact),
                so it is not run twice.
            grad_scale: the losses are differentiated times this (fp16 loss scaling); every
                gradient is divided by it before any MTL math or perturbation.
            reduce: applied to the losses, every gradient and the BatchNorm statistics before
                they are used (the all-reduce mean of a distributed run).
            propagate_nonfinite: on a non-finite loss or gradient, return a NaN direction
                with ``skipped=True`` instead of raising (for a loss scaler to detect).
            step: the optimizer step this micro-batch belongs to; with ``flat_every = k > 1``
                the flat part is recomputed when ``step % k == 0`` (or when none is stored,
                or ``step`` is ``None``) and reused otherwise.

        Raises:
            NonFiniteLossError: a loss or gradient is NaN or infinite (on any process) and
                ``propagate_nonfinite`` is ``False``; no weight or state was changed.
        """
        settings = self.settings
        # A skipped batch must not move the BatchNorm statistics either: kept when this call
        # runs the clean pass itself.
        before_clean = _batch_norm_buffers(self.model) if clean_losses is None else []
        losses = dict(clean_losses) if clean_losses is not None else dict(forward(None))
        losses = self._ordered(losses)
        loss_vector = torch.stack([losses[t].detach().float().reshape(()) for t in self.task_names])
        if reduce is not None:
            # One collective: every process sees the same losses (loss-weighting methods) and
            # a NaN on any process reaches all of them, so the skip is decided alike.
            loss_vector = reduce(loss_vector.clone())
        detached = dict(zip(self.task_names, loss_vector.unbind()))
        if not bool(torch.isfinite(loss_vector).all()):
            _restore_batch_norm(before_clean)
            if reduce is not None and clean_losses is not None:
                _reduce_batch_norm(self.model, reduce)
            return self._non_finite(
                "non-finite task loss: "
                + ", ".join(f"{t}={float(v)}" for t, v in detached.items()),
                detached,
                propagate_nonfinite,
            )

        shared_grads, task_grads = self._task_gradients(losses, grad_scale, reduce)
        if reduce is not None:
            # After the clean gradients: their graph reads the buffers' version counters.
            _reduce_batch_norm(self.model, reduce)
        # The last backward frees only the graph it visits: the other tasks' heads (MTAN's
        # attention branches) would stay alive through the perturbed passes with the losses.
        del losses
        if not _all_finite(shared_grads, task_grads):
            # An fp16 overflow of the scaled gradients: no perturbation from it.
            return self._non_finite(
                "non-finite gradient of the clean pass", detached, propagate_nonfinite
            )
        stats = _gradient_stats(shared_grads, self.task_names)

        if not settings.flat:
            direction = self._aggregate("main", shared_grads, loss_vector, stats)
            return FlatStepOutput(direction, task_grads, detached, stats)
        if self._reuses_flat(step):
            return self._reused_step(shared_grads, task_grads, loss_vector, detached, stats)

        strategy = settings.strategy
        loss_direction = None
        if strategy in ("individual", "second"):
            # Aggregated before the perturbed passes: row i of the matrix then becomes h_i.
            loss_direction = self._aggregate("loss", shared_grads, loss_vector, stats)
        clean_task = task_grads if settings.flat_every > 1 else None
        if strategy == "each":
            flat_grads = torch.empty_like(shared_grads)
            sam_task = self._perturbed_gradients(
                forward, shared_grads, task_grads, grad_scale, reduce, stats, flat_grads, True
            )
        else:
            # In place: h_i (g_i^SAM for `direct`) overwrites g_i once pass i is done.
            flat_grads = shared_grads
            sam_task = self._perturbed_gradients(
                forward, shared_grads, task_grads, grad_scale, reduce, stats, flat_grads,
                strategy != "direct",
            )  # fmt: skip
        if not _all_finite(flat_grads, sam_task):
            return self._non_finite(
                "non-finite gradient in a perturbed pass", detached, propagate_nonfinite
            )

        if strategy == "direct":
            direction = self._aggregate("main", flat_grads, loss_vector, stats)
        elif strategy == "individual":
            flat_direction = self._aggregate("flat", flat_grads, loss_vector, stats)
            if clean_task is not None:
                self._store_flat(step, flat_direction, sam_task, clean_task)
            direction = loss_direction.add_(flat_direction)
        elif strategy == "second":
            flat_direction = self._aggregate("flat", flat_grads, loss_vector, stats)
            parts = torch.stack([loss_direction, flat_direction])
            direction = self._aggregate("second", parts, None, stats)
        else:
            direction = self._combine_each(shared_grads, flat_grads, loss_vector, stats)
        if settings.flat_every > 1:
            stats["flat_refresh"] = 1.0
        return FlatStepOutput(direction, sam_task, detached, stats)

    @torch.no_grad()
    def write_gradients(self, output: FlatStepOutput, scale: float = 1.0) -> None:
        """Add ``scale`` times the step's gradients into ``.grad`` (accumulating, so that
        gradient accumulation over micro-batches works); unreached tensors stay untouched.

        With ``scale == 1`` a shared parameter without a gradient gets a view into
        ``output.shared_direction`` as its ``.grad`` (no copy): the direction belongs to the
        gradients from then on, and in-place clipping changes it too."""
        offset = 0
        direction = output.shared_direction
        for param, numel in zip(self.shared_params, self._shared_numel):
            segment = direction[offset : offset + numel].view_as(param)
            if scale == 1.0 and param.grad is None and segment.dtype == param.dtype:
                param.grad = segment
            else:
                _accumulate(param, segment, scale)
            offset += numel
        for task, params in self.task_params.items():
            for param, grad in zip(params, output.task_grads.get(task, [])):
                if grad is not None:
                    _accumulate(param, grad, scale)

    def parameters(self) -> list[nn.Parameter]:
        """Learned parameters of the aggregators (trained by the Trainer's optimizer)."""
        return [p for aggregator in self.aggregators.values() for p in aggregator.parameters()]

    def reuse_state_dict(self) -> dict[str, Any]:
        """The stored flat part reused under ``flat_every > 1`` (empty until one is stored)."""
        if self._stored_direction is None:
            return {}
        return {
            "direction": self._stored_direction.detach().clone(),
            "task": {t: [_clone(g) for g in gs] for t, gs in self._stored_task.items()},
            "step": self._stored_step,
            "count": self._stored_count,
        }

    def load_reuse_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`reuse_state_dict` saved."""
        if not state:
            self._stored_direction, self._stored_task = None, {}
            self._stored_step, self._stored_count = None, 0
            return
        direction = state["direction"]
        if direction.shape != (self.num_shared,) or set(state["task"]) != set(self.task_names):
            raise ValueError(
                f"The saved flat part covers {direction.numel()} shared values and tasks "
                f"{sorted(state['task'])}, but this model has {self.num_shared} and "
                f"{sorted(self.task_names)}; resume with the same model and partition."
            )
        device = self.shared_params[0].device
        self._stored_direction = direction.to(device)
        self._stored_task = {
            task: [_to_device(g, p.device) for g, p in zip(gs, self.task_params[task])]
            for task, gs in state["task"].items()
        }
        self._stored_step, self._stored_count = state["step"], int(state["count"])

    # ------------------------------------------------------------------ internals

    def _non_finite(
        self, message: str, losses: dict[str, Tensor], propagate: bool
    ) -> FlatStepOutput:
        if not propagate:
            raise NonFiniteLossError(message)
        device = self.shared_params[0].device
        direction = torch.full((self.num_shared,), float("nan"), device=device)
        no_grads: dict[str, list[Tensor | None]] = {t: [] for t in self.task_names}
        return FlatStepOutput(direction, no_grads, losses, {}, skipped=True)

    def _ordered(self, losses: Mapping[str, Tensor]) -> dict[str, Tensor]:
        missing = [task for task in self.task_names if task not in losses]
        if missing:
            raise ValueError(
                f"The model's `losses` lack tasks {missing}; found {list(losses)}. Every batch "
                "must carry a target for every task (mark missing labels with the ignore value "
                "instead of dropping the key)."
            )
        return {task: losses[task] for task in self.task_names}

    def _task_gradients(
        self, losses: Mapping[str, Tensor], grad_scale: float, reduce: ReduceFn | None
    ) -> tuple[Tensor, dict[str, list[Tensor | None]]]:
        """``m x d`` matrix of shared gradients and each task's own gradients."""
        m = len(self.task_names)
        reference = self.shared_params[0]
        # Every row is written in full by `_write_row`: no zero fill needed.
        shared = torch.empty(m, self.num_shared, dtype=torch.float32, device=reference.device)
        if self.settings.batched_task_grads and m > 1:
            task_grads = self._batched_task_gradients(losses, grad_scale, shared)
        else:
            task_grads = self._looped_task_gradients(losses, grad_scale, shared)
        if reduce is not None:
            shared = reduce(shared)
            task_grads = {t: self._reduce_own(t, gs, reduce) for t, gs in task_grads.items()}
        return shared, task_grads

    def _looped_task_gradients(
        self, losses: Mapping[str, Tensor], grad_scale: float, shared: Tensor
    ) -> dict[str, list[Tensor | None]]:
        """One backward per task (the clean graph is kept until the last one)."""
        task_grads: dict[str, list[Tensor | None]] = {}
        last = len(self.task_names) - 1
        for index, task in enumerate(self.task_names):
            own = self.task_params[task]
            grads = torch.autograd.grad(
                losses[task] * grad_scale if grad_scale != 1.0 else losses[task],
                self.shared_params + own,
                retain_graph=index < last,
                allow_unused=True,
            )
            self._write_row(shared[index], grads[: len(self.shared_params)], grad_scale)
            task_grads[task] = [_unscale(g, grad_scale) for g in grads[len(self.shared_params) :]]
        return task_grads

    def _batched_task_gradients(
        self, losses: Mapping[str, Tensor], grad_scale: float, shared: Tensor
    ) -> dict[str, list[Tensor | None]]:
        """All ``m`` clean backwards as one batched backward (one-hot cotangents); fills
        ``shared`` and returns each task's own gradients (zero where the task does not reach
        a tensor that another task's loss reaches)."""
        stacked = torch.stack([losses[task].reshape(()) for task in self.task_names])
        if grad_scale != 1.0:
            stacked = stacked * grad_scale
        own = [p for task in self.task_names for p in self.task_params[task]]
        cotangents = torch.eye(len(self.task_names), dtype=stacked.dtype, device=stacked.device)
        grads = torch.autograd.grad(
            stacked,
            self.shared_params + own,
            grad_outputs=cotangents,
            is_grads_batched=True,
            allow_unused=True,
        )
        num_shared = len(self.shared_params)
        task_grads: dict[str, list[Tensor | None]] = {}
        offset = num_shared
        for index, task in enumerate(self.task_names):
            self._write_row(
                shared[index], [g if g is None else g[index] for g in grads[:num_shared]],
                grad_scale,
            )  # fmt: skip
            count = len(self.task_params[task])
            task_grads[task] = [
                None if g is None else _unscale(g[index].clone(), grad_scale)
                for g in grads[offset : offset + count]
            ]
            offset += count
        return task_grads

    def _reduce_own(
        self, task: str, grads: Sequence[Tensor | None], reduce: ReduceFn
    ) -> list[Tensor | None]:
        """All-reduce one task's own gradients in one collective; a tensor that no process
        reached stays ``None``, one reached on some process only counts as zero elsewhere
        (so every process issues the same collective whatever its graph)."""
        own = self.task_params[task]
        if not own:
            return []
        device = own[0].device
        present = torch.tensor([g is not None for g in grads], dtype=torch.float32, device=device)
        values = [
            (g if g is not None else torch.zeros_like(p)).reshape(-1).float()
            for g, p in zip(grads, own)
        ]
        packed = reduce(torch.cat([present, *values]))
        reached, offset, result = packed[: len(own)] > 0, len(own), []
        for param, was_reached in zip(own, reached.tolist()):
            chunk = packed[offset : offset + param.numel()].view_as(param).to(param.dtype)
            result.append(chunk if was_reached else None)
            offset += param.numel()
        return result

    def _write_row(self, row: Tensor, grads: Sequence[Tensor | None], grad_scale: float) -> None:
        """Copy (unscaled) gradients into ``row``; a tensor the loss does not reach gets 0."""
        offset = 0
        for grad, numel in zip(grads, self._shared_numel):
            target = row[offset : offset + numel]
            if grad is None:
                target.zero_()
            else:
                target.copy_(grad.reshape(-1))
                if grad_scale != 1.0:
                    target.div_(grad_scale)
            offset += numel

    def _perturbed_gradients(
        self,
        forward: ForwardFn,
        shared_grads: Tensor,
        task_grads: Mapping[str, list[Tensor | None]],
        grad_scale: float,
        reduce: ReduceFn | None,
        stats: dict[str, float],
        out: Tensor,
        subtract: bool,
    ) -> dict[str, list[Tensor | None]]:
        """Per task: perturb, forward that task, re-take its gradients, restore the weights.

        Row ``i`` of ``out`` receives ``g_i^SAM - g_i`` (``subtract``) or ``g_i^SAM``; ``out``
        may be ``shared_grads`` itself, as row ``i`` is read only before pass ``i`` ends.
        Returns each task's ``k_i^SAM``.
        """
        sam_task: dict[str, list[Tensor | None]] = {}
        saved_shared = _flatten([p.detach() for p in self.shared_params])
        batch_norm_state = _batch_norm_buffers(self.model)
        try:
            for index, task in enumerate(self.task_names):
                own = self.task_params[task]
                saved_own = [p.detach().clone() for p in own]
                try:
                    e_norm, f_norm = self._perturb(
                        saved_shared, shared_grads[index], own, task_grads[task]
                    )
                    stats[f"perturbation_norm/shared/{task}"] = e_norm
                    stats[f"perturbation_norm/task/{task}"] = f_norm
                    loss = forward([task])[task]
                    grads = torch.autograd.grad(
                        loss * grad_scale if grad_scale != 1.0 else loss,
                        self.shared_params + own,
                        allow_unused=True,
                    )
                finally:
                    self._restore(saved_shared, own, saved_own)
                shared_part = grads[: len(self.shared_params)]
                if subtract:
                    if out is not shared_grads:
                        out[index].copy_(shared_grads[index])
                    self._subtract_from_row(out[index], shared_part, grad_scale)
                else:
                    self._write_row(out[index], shared_part, grad_scale)
                sam_task[task] = [_unscale(g, grad_scale) for g in grads[len(self.shared_params) :]]
                del loss, grads, shared_part
        finally:
            _restore_batch_norm(batch_norm_state)
        if reduce is not None:
            reduced = reduce(out)
            if reduced is not out:
                out.copy_(reduced)
            sam_task = {t: self._reduce_own(t, gs, reduce) for t, gs in sam_task.items()}
        return sam_task

    def _subtract_from_row(
        self, row: Tensor, grads: Sequence[Tensor | None], grad_scale: float
    ) -> None:
        """``row <- grad - row`` per segment, bit-equal to the subtraction (``-(a - b)`` is
        ``b - a`` exactly); an unreached segment becomes ``-row``."""
        offset = 0
        for grad, numel in zip(grads, self._shared_numel):
            target = row[offset : offset + numel]
            if grad is None:
                target.neg_()
            else:
                value = grad.reshape(-1)
                if grad_scale != 1.0:
                    value = value / grad_scale
                target.sub_(value).neg_()
            offset += numel

    def _reuses_flat(self, step: int | None) -> bool:
        every = self.settings.flat_every
        if every == 1 or step is None or self._stored_direction is None:
            return False
        return step % every != 0

    def _store_flat(
        self,
        step: int | None,
        flat_direction: Tensor,
        sam_task: Mapping[str, list[Tensor | None]],
        clean_task: Mapping[str, list[Tensor | None]],
    ) -> None:
        """Keep ``A_flat(h)`` and ``k_i^SAM - k_i``; the running mean over the micro-batches
        of one optimizer step."""
        task_parts = {
            task: [_difference(sam, clean) for sam, clean in zip(sam_task[task], clean_task[task])]
            for task in self.task_names
        }
        if step is None or step != self._stored_step or self._stored_direction is None:
            self._stored_direction, self._stored_task = flat_direction, task_parts
            self._stored_step, self._stored_count = step, 1
            return
        count = self._stored_count + 1
        self._stored_direction = _running_mean(self._stored_direction, flat_direction, count)
        self._stored_task = {
            task: [
                _running_mean(old, new, count)
                for old, new in zip(self._stored_task[task], task_parts[task])
            ]
            for task in self.task_names
        }
        self._stored_count = count

    def _reused_step(
        self,
        shared_grads: Tensor,
        task_grads: Mapping[str, list[Tensor | None]],
        loss_vector: Tensor,
        losses: dict[str, Tensor],
        stats: dict[str, float],
    ) -> FlatStepOutput:
        """A step between refreshes: ``A_loss(g)`` plus the stored flat parts."""
        direction = self._aggregate("loss", shared_grads, loss_vector, stats)
        direction.add_(self._stored_direction)
        combined = {
            task: [_sum(k, part) for k, part in zip(task_grads[task], self._stored_task[task])]
            for task in self.task_names
        }
        stats["flat_refresh"] = 0.0
        return FlatStepOutput(direction, combined, losses, stats)

    @torch.no_grad()
    def _perturb(
        self,
        saved_shared: Tensor,
        shared_grad: Tensor,
        own: Sequence[nn.Parameter],
        own_grads: Sequence[Tensor | None],
    ) -> tuple[float, float]:
        """Move the shared parameters by ``e_i`` and the task's own by ``f_i``; their norms."""
        settings = self.settings
        own_present = [(p, g) for p, g in zip(own, own_grads) if g is not None]
        own_weights = [p.detach() for p, _ in own_present]
        own_g = [g for _, g in own_present]

        if settings.adaptive:
            scaled_shared = saved_shared.abs() * shared_grad
            scaled_own = [w.abs() * g for w, g in zip(own_weights, own_g)]
        else:
            scaled_shared = shared_grad
            scaled_own = own_g
        # Squared in place on a float64 copy: one d-sized temporary, not two.
        shared_sq = _float64_copy(scaled_shared).pow_(2).sum()
        own_sq = sum(
            (_float64_copy(g).pow_(2).sum() for g in scaled_own),
            torch.zeros((), device=shared_sq.device, dtype=torch.float64),
        )

        if settings.joint_norm:
            joint = float((shared_sq + own_sq).sqrt())
            shared_coef = settings.rho_shared / (joint + _EPS)
            own_coef = settings.rho_shared / (joint + _EPS)
        else:
            shared_coef = settings.rho_shared / (float(shared_sq.sqrt()) + _EPS)
            own_coef = settings.rho_task / (float(own_sq.sqrt()) + _EPS)

        shared_step = scaled_shared * saved_shared.abs() if settings.adaptive else shared_grad
        shared_step = shared_step * shared_coef
        offset = 0
        for param, numel in zip(self.shared_params, self._shared_numel):
            param.add_(shared_step[offset : offset + numel].view_as(param))
            offset += numel
        own_norm_sq = 0.0
        for weight, param, scaled, grad in zip(
            own_weights, [p for p, _ in own_present], scaled_own, own_g
        ):
            step = (scaled * weight.abs() if settings.adaptive else grad) * own_coef
            own_norm_sq += float(step.double().pow(2).sum())
            param.add_(step)
        # A diagnostic: the float32 norm spares a float64 copy of the whole step.
        return float(torch.linalg.vector_norm(shared_step)), own_norm_sq**0.5

    @torch.no_grad()
    def _restore(
        self, saved_shared: Tensor, own: Sequence[nn.Parameter], saved_own: Sequence[Tensor]
    ) -> None:
        offset = 0
        for param, numel in zip(self.shared_params, self._shared_numel):
            param.copy_(saved_shared[offset : offset + numel].view_as(param))
            offset += numel
        for param, value in zip(own, saved_own):
            param.copy_(value)

    def _aggregate(
        self, name: str, grads: Tensor, losses: Tensor | None, stats: dict[str, float]
    ) -> Tensor:
        aggregator = self.aggregators[name]
        direction = aggregator(grads, losses)
        if isinstance(aggregator, WeightedAggregator) and aggregator.weights is not None:
            if aggregator.weights.numel() == len(self.task_names) and not name.startswith("each"):
                for task, weight in zip(self.task_names, aggregator.weights.tolist()):
                    stats[f"weight/{name}/{task}"] = weight
        return direction

    def _combine_each(
        self, grads: Tensor, flat_grads: Tensor, losses: Tensor, stats: dict[str, float]
    ) -> Tensor:
        per_task = torch.stack(
            [
                self._aggregate(f"each_{i}", torch.stack([grads[i], flat_grads[i]]), None, stats)
                for i in range(len(self.task_names))
            ]
        )
        return self._aggregate("outer", per_task, losses, stats)


def _accumulate(param: nn.Parameter, grad: Tensor, scale: float) -> None:
    update = grad.to(dtype=param.dtype) * scale if scale != 1.0 else grad.to(param.dtype, copy=True)
    if param.grad is None:
        param.grad = update
    else:
        param.grad.add_(update)


def _flatten(tensors: Sequence[Tensor]) -> Tensor:
    # `cat` always returns new memory: the one saved copy of the weights.
    return torch.cat([t.reshape(-1) for t in tensors])


def _to_device(tensor: Tensor | None, device: torch.device) -> Tensor | None:
    return None if tensor is None else tensor.to(device)


def _float64_copy(tensor: Tensor) -> Tensor:
    return tensor.to(torch.float64, copy=True)


def _clone(tensor: Tensor | None) -> Tensor | None:
    return None if tensor is None else tensor.detach().clone()


def _difference(sam: Tensor | None, clean: Tensor | None) -> Tensor | None:
    if sam is None:
        return None if clean is None else -clean
    return sam if clean is None else sam - clean


def _sum(first: Tensor | None, second: Tensor | None) -> Tensor | None:
    if first is None:
        return second
    return first if second is None else first + second


def _running_mean(mean: Tensor | None, value: Tensor | None, count: int) -> Tensor | None:
    if mean is None or value is None:
        return value if mean is None else mean
    return mean + (value - mean) / count


def _unscale(grad: Tensor | None, grad_scale: float) -> Tensor | None:
    if grad is None or grad_scale == 1.0:
        return grad
    return grad / grad_scale


def _gradient_stats(shared_grads: Tensor, task_names: Sequence[str]) -> dict[str, float]:
    gram = (shared_grads @ shared_grads.T).double()
    stats = {
        f"grad_norm/{t}": float(gram[i, i].clamp_min(0).sqrt()) for i, t in enumerate(task_names)
    }
    off_diagonal = gram[~torch.eye(len(task_names), dtype=torch.bool, device=gram.device)]
    # 1.0 when some pair of task gradients conflicts (g_i . g_j < 0); averaged over the steps
    # of a logging window it is the share of conflicting steps.
    stats["conflict"] = float(bool((off_diagonal < 0).any()))
    return stats


def _all_finite(shared: Tensor, task_grads: Mapping[str, Sequence[Tensor | None]]) -> bool:
    tensors = [shared] + [g for gs in task_grads.values() for g in gs if g is not None]
    # A NaN or an infinity makes a sum non-finite, so one reduction per tensor settles the
    # common case; only a non-finite sum (which a finite tensor can reach by overflow) needs
    # the element-wise check.
    if bool(torch.isfinite(torch.stack([t.sum().float() for t in tensors])).all()):
        return True
    return bool(torch.stack([torch.isfinite(t).all() for t in tensors]).all())


def _batch_norm_buffers(model: nn.Module) -> list[tuple[Tensor, Tensor]]:
    saved = []
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.training:
            for buffer in (module.running_mean, module.running_var, module.num_batches_tracked):
                if buffer is not None:
                    saved.append((buffer, buffer.detach().clone()))
    return saved


@torch.no_grad()
def _restore_batch_norm(saved: Sequence[tuple[Tensor, Tensor]]) -> None:
    for buffer, value in saved:
        buffer.copy_(value)


@torch.no_grad()
def _reduce_batch_norm(model: nn.Module, reduce: ReduceFn) -> None:
    """Average the running statistics over processes (one collective), so that every process
    holds the same buffers; each one's clean pass updated them from its own shard. The mean
    over processes of the running means is the running mean of the whole batch."""
    buffers = [
        buffer
        for module in model.modules()
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.training
        for buffer in (module.running_mean, module.running_var)
        if buffer is not None and buffer.is_floating_point()
    ]
    if not buffers:
        return
    packed = reduce(torch.cat([b.reshape(-1).float() for b in buffers]))
    offset = 0
    for buffer in buffers:
        buffer.copy_(packed[offset : offset + buffer.numel()].view_as(buffer))
        offset += buffer.numel()
