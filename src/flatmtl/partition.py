"""Which parameters are shared by the tasks and which belong to one task.

A parameter is *shared* when two or more task losses depend on it and *task-specific* when
exactly one does. The dependence is read off the autograd graph of one forward pass (no
gradient is computed), once, from the first training batch. Patterns can override it, e.g.
to treat MTAN's task attention modules as shared as the Nash-MTL and F-MTL code does.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

__all__ = ["ParameterPartition", "parameters_reached"]


@dataclass
class ParameterPartition:
    """Parameter names grouped as shared, per task, and unused.

    Attributes:
        shared: names of the parameters shared by the tasks (the aggregated part).
        tasks: task name -> names of the parameters only that task uses.
        unused: names of trainable parameters that no task loss reaches; they are left alone.
    """

    shared: list[str]
    tasks: dict[str, list[str]]
    unused: list[str] = field(default_factory=list)

    @property
    def task_names(self) -> list[str]:
        return list(self.tasks)

    @classmethod
    def infer(
        cls,
        model: nn.Module,
        losses: Mapping[str, Tensor],
        shared_patterns: Iterable[str] = (),
    ) -> ParameterPartition:
        """Partition ``model``'s trainable parameters from the graphs of ``losses``.

        Args:
            model: the (unwrapped) model whose parameter names are used.
            losses: task name -> scalar loss of one forward pass, graphs intact.
            shared_patterns: regular expressions; a parameter whose name matches one
                (``re.search``) is shared whatever the graph says.
        """
        named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
        if not named:
            raise ValueError("`model` has no trainable parameters to partition.")
        users: dict[int, list[str]] = {id(p): [] for _, p in named}
        for task, loss in losses.items():
            for param_id in parameters_reached(loss):
                if param_id in users:
                    users[param_id].append(task)
        patterns = [_compile(pattern) for pattern in shared_patterns]

        shared: list[str] = []
        tasks: dict[str, list[str]] = {task: [] for task in losses}
        unused: list[str] = []
        for name, param in named:
            reached_by = users[id(param)]
            if any(pattern.search(name) for pattern in patterns) or len(reached_by) > 1:
                shared.append(name)
            elif len(reached_by) == 1:
                tasks[reached_by[0]].append(name)
            else:
                unused.append(name)
        return cls(shared=shared, tasks=tasks, unused=unused)

    def describe(self, model: nn.Module | None = None) -> str:
        """One line per group with its parameter count (sizes when ``model`` is given)."""
        sizes = {n: p.numel() for n, p in model.named_parameters()} if model is not None else {}

        def size(names: list[str]) -> str:
            return f" ({sum(sizes.get(n, 0) for n in names):,} values)" if sizes else ""

        lines = [f"shared: {len(self.shared)} tensors{size(self.shared)}"]
        lines += [f"task {t!r}: {len(n)} tensors{size(n)}" for t, n in self.tasks.items()]
        if self.unused:
            lines.append(f"unused (no task loss reaches them, left untouched): {self.unused}")
        return "; ".join(lines)

    def to_dict(self) -> dict[str, object]:
        return {"shared": list(self.shared), "tasks": dict(self.tasks), "unused": list(self.unused)}

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> ParameterPartition:
        return cls(
            shared=list(data["shared"]),  # type: ignore[arg-type]
            tasks={k: list(v) for k, v in dict(data["tasks"]).items()},  # type: ignore[arg-type]
            unused=list(data.get("unused", [])),  # type: ignore[arg-type]
        )

    def resolve(self, model: nn.Module) -> tuple[list[nn.Parameter], dict[str, list[nn.Parameter]]]:
        """The parameter objects of ``model`` for the shared group and for each task."""
        by_name = dict(model.named_parameters())
        missing = [n for n in self.shared + sum(self.tasks.values(), []) if n not in by_name]
        if missing:
            raise ValueError(
                f"The partition names parameters the model does not have: {missing[:5]}; "
                "infer the partition again for this model."
            )
        shared = [by_name[n] for n in self.shared]
        tasks = {task: [by_name[n] for n in names] for task, names in self.tasks.items()}
        return shared, tasks


def parameters_reached(output: Tensor) -> set[int]:
    """``id``s of the leaf tensors the autograd graph of ``output`` accumulates into."""
    reached: set[int] = set()
    if output.grad_fn is None:
        if output.requires_grad:
            reached.add(id(output))
        return reached
    stack = [output.grad_fn]
    seen: set[int] = set()
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        variable = getattr(node, "variable", None)
        if isinstance(variable, torch.Tensor):
            reached.add(id(variable))
        stack.extend(next_node for next_node, _ in node.next_functions)
    return reached


def _compile(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as error:
        raise ValueError(
            f"`shared_patterns` holds {pattern!r}, which is not a regular expression ({error}). "
            "Escape special characters, e.g. '\\.' for a literal dot."
        ) from None
