"""Reporting as the scene benchmarks do: the mean of the last evaluations of a run.

MTAN, Nash-MTL and F-MTL (Phan et al., arXiv 2211.13723) report on NYUv2 and CityScapes the
test metrics averaged over the last 10 epochs. ``Delta_m`` is affine in every metric, so the
mean of the per-epoch ``delta_m`` equals ``delta_m`` of the mean metrics.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

__all__ = ["LastEvaluationsMean"]


class LastEvaluationsMean(TrainerCallback):
    """Keeps every evaluation's metrics and, at the end of training, averages the last
    ``last`` of them (fewer when the run had fewer) into :attr:`result`, also written to
    ``<output_dir>/last_evaluations_mean.json`` by the main process.

    Evaluate once per epoch (``eval_strategy="epoch"``) to get the papers' protocol.
    """

    def __init__(self, last: int = 10, file_name: str = "last_evaluations_mean.json") -> None:
        if last < 1:
            raise ValueError(f"`last` must be a positive int, found {last}.")
        self.last = last
        self.file_name = file_name
        self.history: list[dict[str, float]] = []
        self.result: dict[str, float] = {}

    def on_evaluate(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        metrics: dict[str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        if metrics:
            entry = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}
            entry["epoch"] = float(state.epoch or 0.0)
            self.history.append(entry)

    def on_train_end(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        **kwargs: Any,
    ) -> None:
        self.result = self.summarise()
        if self.result and state.is_world_process_zero:
            os.makedirs(args.output_dir, exist_ok=True)
            with open(os.path.join(args.output_dir, self.file_name), "w") as handle:
                json.dump(self.result, handle, indent=2, sort_keys=True)

    def summarise(self) -> dict[str, float]:
        """Mean of each metric over the last ``last`` evaluations, plus ``num_evaluations``."""
        window = self.history[-self.last :]
        if not window:
            return {}
        keys = [key for key in window[-1] if key != "epoch"]
        result = {}
        for key in keys:
            values = [entry[key] for entry in window if key in entry]
            finite = [value for value in values if not math.isnan(value)]
            result[key] = sum(finite) / len(finite) if finite else math.nan
        result["num_evaluations"] = float(len(window))
        result["first_epoch"] = window[0]["epoch"]
        result["last_epoch"] = window[-1]["epoch"]
        return result
