"""Configuration of a multi-head model: a shared backbone and one head per task."""

from __future__ import annotations

from typing import Any

from transformers import PretrainedConfig

__all__ = ["MultiTaskConfig", "TaskSpec"]

_TASK_KEYS = {"name", "type", "num_labels", "label_key", "label_index", "head_config"}


class TaskSpec(dict):
    """One task of a :class:`MultiTaskConfig`, stored as a plain dict so it serialises to JSON.

    Keys: ``name`` (unique), ``type`` (a head type, e.g. ``"classification"``), ``num_labels``
    (classes or output channels), ``label_key`` (the batch key holding the target, default
    ``"labels"``), ``label_index`` (column of that key for this task, or ``None`` when the key
    holds this task's target alone), ``head_config`` (extra head options).
    """

    @property
    def name(self) -> str:
        return self["name"]

    @property
    def type(self) -> str:
        return self["type"]


class MultiTaskConfig(PretrainedConfig):
    """Configuration of :class:`~flatmtl.MultiTaskModel`.

    Args:
        tasks: one dict per task (see :class:`TaskSpec`); order fixes the task order
            everywhere (losses, gradients, metrics).
        backbone: registered backbone name (see ``flatmtl.modeling.BACKBONES``).
        backbone_config: options of that backbone.
        task_loss_weights: optional fixed weight per task for the ``loss`` entry (the plain
            ``Trainer`` objective); the flat step reads the per-task ``losses`` unweighted.
    """

    model_type = "flatmtl"
    keys_to_ignore_at_inference = ["losses"]

    def __init__(
        self,
        tasks: list[dict[str, Any]] | None = None,
        backbone: str = "lenet",
        backbone_config: dict[str, Any] | None = None,
        task_loss_weights: dict[str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        self.tasks = [_normalise_task(task, index) for index, task in enumerate(tasks or [])]
        names = [task["name"] for task in self.tasks]
        if len(set(names)) != len(names):
            raise ValueError(f"`tasks` must have unique names, found {names}.")
        self.backbone = backbone
        self.backbone_config = dict(backbone_config or {})
        self.task_loss_weights = dict(task_loss_weights or {})
        unknown = set(self.task_loss_weights) - set(names)
        if unknown:
            raise ValueError(
                f"`task_loss_weights` names unknown tasks {sorted(unknown)}; tasks are {names}."
            )
        super().__init__(**kwargs)

    @property
    def task_names(self) -> list[str]:
        return [task["name"] for task in self.tasks]

    @property
    def label_keys(self) -> list[str]:
        """Batch keys that hold targets, in first-use order."""
        keys: list[str] = []
        for task in self.tasks:
            if task["label_key"] not in keys:
                keys.append(task["label_key"])
        return keys


def _normalise_task(task: dict[str, Any], index: int) -> TaskSpec:
    if isinstance(task, str):
        raise TypeError(
            f"`tasks[{index}]` must be a dict such as "
            f"{{'name': {task!r}, 'type': 'classification', 'num_labels': 10}}, found a string."
        )
    unknown = set(task) - _TASK_KEYS
    if unknown:
        raise ValueError(
            f"`tasks[{index}]` has unknown keys {sorted(unknown)}; allowed: {sorted(_TASK_KEYS)}."
        )
    for key in ("name", "type"):
        if key not in task:
            raise ValueError(f"`tasks[{index}]` needs a {key!r} entry, found keys {sorted(task)}.")
    spec = TaskSpec(
        name=str(task["name"]),
        type=str(task["type"]),
        num_labels=int(task.get("num_labels", 1)),
        label_key=str(task.get("label_key", "labels")),
        label_index=task.get("label_index"),
        head_config=dict(task.get("head_config") or {}),
    )
    return spec
