"""Training arguments of :class:`~flatmtl.FlatMTLTrainer`."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from transformers import TrainingArguments

from .aggregation import AGGREGATORS
from .flat import FLAT_STRATEGIES, FlatSettings

__all__ = ["FlatMTLConfig"]


@dataclass
class FlatMTLConfig(TrainingArguments):
    """``TrainingArguments`` plus the options of the flat multi-task step.

    Every field works from the command line through ``HfArgumentParser``
    (``--aggregator mgda --no-flat --rho_shared 0.05 ...``).

    Aggregation:
        aggregator: registered name of the MTL method (``flatmtl.aggregation.AGGREGATORS``).
        aggregator_kwargs: options of that method, e.g. ``{"c": 0.4}``; a JSON string on the
            command line.

    Flatness:
        flat: seek flat regions (``False`` gives the plain ERM version of the aggregator).
        rho_shared, rho_task: perturbation radii of the shared and the task parameters.
        adaptive: ASAM's element-wise scaled perturbation instead of SAM's.
        flat_strategy: how loss and flat gradients are aggregated: ``individual`` (the
            paper's Algorithm 1), ``direct``, ``second`` or ``each``.
        joint_norm: one norm over the shared and the task part (the authors' Multi-MNIST code).
        flat_every: recompute the flat gradients every this many optimizer steps and reuse the
            stored flat part (``A_flat(h)`` and each task's ``k_sam - k``) in between, where a
            step costs as much as a plain one (default 1: every step; ``individual`` only).

    Speed:
        batched_task_grads: take the clean per-task gradients in one batched backward
            (``is_grads_batched``); equal results, faster or slower depending on the model
            (``benchmarks/step_time.py`` measures it).

    Partition:
        shared_patterns: regular expressions of parameter names to treat as shared whatever
            the autograd graph says (e.g. ``["encoder_att", "decoder_att"]`` for MTAN).
    """

    aggregator: str = field(
        default="sum",
        metadata={"help": "MTL aggregation method, one of: " + ", ".join(sorted(AGGREGATORS))},
    )
    aggregator_kwargs: dict[str, Any] | str | None = field(
        default_factory=dict,
        metadata={"help": "Options of the aggregator as JSON, e.g. '{\"c\": 0.4}'."},
    )
    flat: bool = field(
        default=True,
        metadata={"help": "Seek flat regions (--no-flat: the plain version of the aggregator)."},
    )
    rho_shared: float = field(
        default=0.05, metadata={"help": "Perturbation radius of the shared parameters."}
    )
    rho_task: float = field(
        default=0.05, metadata={"help": "Perturbation radius of each task's own parameters."}
    )
    adaptive: bool = field(
        default=False, metadata={"help": "Use ASAM (scale-invariant) perturbations."}
    )
    flat_strategy: str = field(
        default="individual",
        metadata={
            "help": "How loss and flat gradients are aggregated.",
            "choices": list(FLAT_STRATEGIES),
        },
    )
    joint_norm: bool = field(
        default=False,
        metadata={"help": "One norm over shared and task parts with rho_shared (authors' code)."},
    )
    flat_every: int = field(
        default=1,
        metadata={"help": "Recompute the flat gradients every k steps, reuse them in between."},
    )
    batched_task_grads: bool = field(
        default=False,
        metadata={"help": "One batched backward for the clean per-task gradients."},
    )
    shared_patterns: list[str] = field(
        default_factory=list,
        metadata={"help": "Regexes of parameter names to treat as shared."},
    )

    _VALID_DICT_FIELDS = TrainingArguments._VALID_DICT_FIELDS + ["aggregator_kwargs"]

    def __post_init__(self) -> None:
        if self.aggregator_kwargs is None:
            self.aggregator_kwargs = {}
        if isinstance(self.aggregator_kwargs, str):
            try:
                self.aggregator_kwargs = json.loads(self.aggregator_kwargs)
            except json.JSONDecodeError as error:
                raise ValueError(
                    f"`aggregator_kwargs` must be a JSON object, found {self.aggregator_kwargs!r} "
                    f"({error}). Quote keys and strings with double quotes, e.g. '{{\"c\": 0.4}}'."
                ) from None
        super().__post_init__()
        if not isinstance(self.aggregator_kwargs, dict):
            raise ValueError(
                f"`aggregator_kwargs` must be a dict (a JSON object on the command line), found "
                f"{self.aggregator_kwargs!r}."
            )
        key = self.aggregator.lower() if isinstance(self.aggregator, str) else self.aggregator
        if key not in AGGREGATORS:
            raise ValueError(
                f"Unknown `aggregator` {self.aggregator!r}; expected one of: "
                f"{', '.join(sorted(AGGREGATORS))}."
            )
        self.aggregator = key
        for name in ("rho_shared", "rho_task"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(
                    f"`{name}` must be a finite number >= 0, found {value!r}; use 0 to switch "
                    "the perturbation of that part off, or `flat=False` for the plain method."
                )
        self.flat_settings()

    def __getstate__(self) -> dict[str, Any]:
        # The Trainer pickles its arguments into every checkpoint (`training_args.bin`), and
        # checkpoints may be pushed to the Hub: never let the access token travel with them.
        state = dict(self.__dict__)
        state["hub_token"] = None
        return state

    def flat_settings(self) -> FlatSettings:
        """The options of the flat step held by this config."""
        return FlatSettings(
            flat=self.flat,
            rho_shared=float(self.rho_shared),
            rho_task=float(self.rho_task),
            adaptive=self.adaptive,
            strategy=self.flat_strategy,
            joint_norm=self.joint_norm,
            flat_every=self.flat_every,
            batched_task_grads=self.batched_task_grads,
        )
