"""The multi-head model: one shared backbone, one head per task, per-task losses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

from .backbones import BACKBONES
from .configuration import MultiTaskConfig
from .heads import HEADS

__all__ = ["MultiTaskModel", "MultiTaskOutput"]


@dataclass
class MultiTaskOutput(ModelOutput):
    """Output of :class:`MultiTaskModel`.

    Attributes:
        loss: the (optionally weighted) sum of the task losses, for plain ``Trainer`` use.
        losses: task name -> scalar loss, in task order (the flat step reads this).
        logits: task name -> predictions of that head.
    """

    loss: Tensor | None = None
    losses: dict[str, Tensor] | None = None
    logits: dict[str, Tensor] | None = None


class MultiTaskModel(PreTrainedModel):
    """A shared backbone with one head per task.

    ``model(pixel_values, **targets)`` returns :class:`MultiTaskOutput`; the targets are the
    batch keys named by the tasks' ``label_key``. With ``tasks=[...]`` only those heads run.
    """

    config_class = MultiTaskConfig
    base_model_prefix = "flatmtl"
    main_input_name = "pixel_values"
    # The flat step writes `.grad` itself and scales for gradient accumulation once.
    accepts_loss_kwargs = False

    def __init__(self, config: MultiTaskConfig) -> None:
        super().__init__(config)
        if not config.tasks:
            raise ValueError(
                "`config.tasks` is empty; a MultiTaskModel needs at least one task, e.g. "
                "MultiTaskConfig(tasks=[{'name': 'digit', 'type': 'classification', "
                "'num_labels': 10}])."
            )
        if config.backbone not in BACKBONES:
            raise ValueError(
                f"Unknown `backbone` {config.backbone!r}; expected one of {sorted(BACKBONES)}."
            )
        self.backbone = BACKBONES[config.backbone](config)
        heads = {}
        for task in config.tasks:
            if task["type"] not in HEADS:
                raise ValueError(
                    f"Task {task['name']!r} has unknown `type` {task['type']!r}; "
                    f"expected one of {sorted(HEADS)}."
                )
            heads[task["name"]] = HEADS[task["type"]](self.backbone.out_features, task)
        self.heads = nn.ModuleDict(heads)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        # Every submodule is initialised when it is built (PyTorch's defaults, or the
        # backbone library's own scheme); nothing is re-drawn here.
        return

    @property
    def task_names(self) -> list[str]:
        return self.config.task_names

    def forward(
        self,
        pixel_values: Tensor | None = None,
        tasks: list[str] | None = None,
        return_dict: bool | None = None,
        **inputs: Any,
    ) -> MultiTaskOutput:
        label_keys = set(self.config.label_keys)
        targets = {key: value for key, value in inputs.items() if key in label_keys}
        backbone_inputs = {key: value for key, value in inputs.items() if key not in label_keys}
        selected = self._select_tasks(tasks)

        if pixel_values is not None:
            features = self.backbone(pixel_values, tasks=selected, **backbone_inputs)
        else:
            features = self.backbone(tasks=selected, **backbone_inputs)

        logits: dict[str, Tensor] = {}
        losses: dict[str, Tensor] = {}
        for name in selected:
            task = self.heads[name].task
            task_features = features[name] if isinstance(features, dict) else features
            logits[name] = self.heads[name](task_features)
            target = targets.get(task["label_key"])
            if target is not None:
                if task["label_index"] is not None:
                    target = target[:, task["label_index"]]
                losses[name] = self.heads[name].loss(logits[name], target)

        loss = None
        if losses:
            weights = self.config.task_loss_weights
            loss = torch.stack([losses[n] * weights.get(n, 1.0) for n in losses]).sum()
        return MultiTaskOutput(loss=loss, losses=losses or None, logits=logits)

    def push_to_hub(self, repo_id: str, **kwargs: Any) -> Any:
        """Upload the model (``config.json`` + ``model.safetensors``) with a flatmtl model card.

        Takes the arguments of ``PreTrainedModel.push_to_hub`` (``commit_message``, ``private``,
        ``token``, ``revision``, ``create_pr``, ``max_shard_size``, ``tags``) and the card
        options of :func:`flatmtl.hub.build_model_card` (``metrics``, ``dataset_name``, ...);
        metrics default to those the last ``FlatMTLTrainer.create_model_card`` recorded.
        """
        from ..hub import push_model_to_hub

        return push_model_to_hub(self, repo_id, **kwargs)

    def _select_tasks(self, tasks: list[str] | None) -> list[str]:
        if tasks is None:
            return list(self.config.task_names)
        unknown = [name for name in tasks if name not in self.heads]
        if unknown:
            raise ValueError(
                f"`tasks` names unknown tasks {unknown}; this model has {self.config.task_names}."
            )
        return [name for name in self.config.task_names if name in tasks]
