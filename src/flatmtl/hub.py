"""Model cards and Hub uploads for multi-task models.

:func:`build_model_card` renders the packaged Jinja template with ``huggingface_hub``'s
``ModelCard`` / ``ModelCardData``: one ``model-index`` entry per task (with the Hub task type
of its head), the aggregator and flat settings, the training data, how to load the model and
the paper's citation. ``FlatMTLTrainer.create_model_card`` and ``MultiTaskModel.push_to_hub``
(through :func:`push_model_to_hub`) both use it.

Cards only ever show whitelisted settings, never the training arguments as a whole, so access
tokens cannot reach them; any secret passed in ``secrets`` is redacted as a second guard.
"""

from __future__ import annotations

import importlib.metadata
import math
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from importlib import resources
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData
from transformers.utils import logging

from .modeling.configuration import MultiTaskConfig

__all__ = [
    "CITATION",
    "TEMPLATE_NAME",
    "CardContext",
    "build_model_card",
    "hub_task_type",
    "push_model_to_hub",
    "split_task_metrics",
    "task_eval_results",
    "template_path",
    "training_summary",
]

logger = logging.get_logger(__name__)

TEMPLATE_NAME = "flatmtl.jinja"

CITATION = """@article{phan2022improving,
  title   = {Improving Multi-task Learning via Seeking Task-based Flat Regions},
  author  = {Phan, Hoang and Tran, Lam and Tran, Quyen and Tran, Ngoc N. and Truong, Tuan and
             Lei, Qi and Ho, Nhat and Phung, Dinh and Le, Trung},
  journal = {arXiv preprint arXiv:2211.13723},
  year    = {2022}
}"""

#: Head type -> Hub task id; classification depends on the input (image or text).
HEAD_TASK_TYPES = {
    "segmentation": "image-segmentation",
    "depth": "depth-estimation",
    "normal": "other",
}

#: Settings of the flat step shown on the card.
METHOD_FIELDS = (
    "aggregator",
    "aggregator_kwargs",
    "flat",
    "rho_shared",
    "rho_task",
    "adaptive",
    "flat_strategy",
    "joint_norm",
    "flat_every",
    "shared_patterns",
)

#: Optimisation settings shown on the card (nothing else of the arguments is ever read).
HYPERPARAMETER_FIELDS = (
    "learning_rate",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "num_train_epochs",
    "max_steps",
    "optim",
    "lr_scheduler_type",
    "weight_decay",
    "max_grad_norm",
    "seed",
)

# Metric names that describe the evaluation run, not a task.
_RUN_METRICS = {"loss", "runtime", "samples_per_second", "steps_per_second", "epoch"}
_SPLITS = {"test": "test", "eval": "validation"}

# Attribute on a MultiTaskModel where the trainer leaves the context of its last card.
CARD_CONTEXT_ATTRIBUTE = "flatmtl_card_context"


@dataclass
class CardContext:
    """What a card says about how a model was trained and evaluated (no secrets)."""

    metrics: dict[str, float] | None = None
    dataset_name: str | None = None
    dataset: list[str] | None = None
    dataset_split: str | None = None
    training: dict[str, dict[str, Any]] | None = None


def template_path() -> str:
    """Path of the packaged model-card template."""
    return str(resources.files("flatmtl") / "model_cards" / TEMPLATE_NAME)


def hub_task_type(config: MultiTaskConfig, task: Mapping[str, Any]) -> str:
    """The Hub task id of one task: from its head type and, for classification, the input."""
    if task["type"] == "classification":
        return "text-classification" if _takes_text(config) else "image-classification"
    return HEAD_TASK_TYPES.get(task["type"], "other")


def split_task_metrics(
    config: MultiTaskConfig, metrics: Mapping[str, Any]
) -> tuple[dict[str, dict[str, float]], str | None]:
    """Per-task metrics from flat metric names, and the split their prefix names.

    ``test_accuracy_top_left`` or ``eval_segmentation_miou`` belong to task ``top_left`` /
    ``segmentation`` (the task name is the suffix or the prefix of the metric name, after an
    ``eval_`` / ``test_`` prefix). Run statistics are left out; so are values that are not
    finite numbers, with a warning naming them (a card cannot show them as results).
    """
    per_task: dict[str, dict[str, float]] = {name: {} for name in config.task_names}
    names = sorted(config.task_names, key=len, reverse=True)
    split = None
    unusable = []
    for key, value in metrics.items():
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not numeric or not math.isfinite(float(value)):
            unusable.append(f"{key}={value!r}")
            continue
        base = key
        for prefix, split_name in _SPLITS.items():
            if key.startswith(prefix + "_"):
                base, split = key[len(prefix) + 1 :], split_name
                break
        if base in _RUN_METRICS:
            continue
        for name in names:
            if base.endswith("_" + name) and len(base) > len(name) + 1:
                per_task[name][base[: -len(name) - 1]] = float(value)
                break
            if base.startswith(name + "_") and len(base) > len(name) + 1:
                per_task[name][base[len(name) + 1 :]] = float(value)
                break
    if unusable:
        logger.warning(
            "Model card: metrics left out because they are not finite numbers: %s.",
            ", ".join(unusable),
        )
    return per_task, split


class _TaskEvalResult(EvalResult):
    """An ``EvalResult`` whose grouping key includes the task name.

    The Hub groups results by task type and data set; two classification heads on one data set
    are still two tasks, so each gets its own ``model-index`` entry.
    """

    @property
    def unique_identifier(self) -> tuple:
        return (self.task_name, *super().unique_identifier)


def task_eval_results(
    config: MultiTaskConfig,
    metrics: Mapping[str, Any],
    dataset_name: str,
    dataset_type: str,
    dataset_split: str | None = None,
) -> list[EvalResult]:
    """One ``EvalResult`` per (task, metric) of ``metrics``; tasks without metrics are skipped."""
    per_task, split = split_task_metrics(config, metrics)
    results: list[EvalResult] = []
    for task in config.tasks:
        for metric, value in per_task[task["name"]].items():
            results.append(
                _TaskEvalResult(
                    task_type=hub_task_type(config, task),
                    task_name=task["name"],
                    dataset_type=dataset_type,
                    dataset_name=dataset_name,
                    dataset_split=dataset_split or split,
                    metric_type=metric,
                    metric_name=f"{metric} ({task['name']})",
                    metric_value=value,
                )
            )
    return results


def training_summary(training_args: Any) -> dict[str, dict[str, Any]]:
    """The whitelisted method and optimisation settings of ``training_args``.

    ``training_args`` is a ``FlatMTLConfig`` / ``TrainingArguments`` or a mapping with the same
    field names; only :data:`METHOD_FIELDS` and :data:`HYPERPARAMETER_FIELDS` are read.
    """
    if training_args is None:
        return {"method": {}, "hyperparameters": {}}
    if isinstance(training_args, Mapping):
        source = dict(training_args)
    else:
        fields = METHOD_FIELDS + HYPERPARAMETER_FIELDS
        source = {name: getattr(training_args, name, None) for name in fields}
    method = {k: _plain(source[k]) for k in METHOD_FIELDS if source.get(k) not in (None, [], ())}
    hyper = {k: _plain(source[k]) for k in HYPERPARAMETER_FIELDS if source.get(k) is not None}
    if hyper.get("max_steps", 0) in (0, -1):
        hyper.pop("max_steps", None)
    return {"method": method, "hyperparameters": hyper}


def build_model_card(
    config: MultiTaskConfig,
    *,
    model_name: str | None = None,
    repo_id: str | None = None,
    metrics: Mapping[str, Any] | None = None,
    dataset_name: str | None = None,
    dataset: str | Sequence[str] | None = None,
    dataset_split: str | None = None,
    training_args: Any = None,
    tags: str | Sequence[str] | None = None,
    language: str | Sequence[str] | None = None,
    license: str | None = None,
    finetuned_from: str | None = None,
    secrets: Sequence[str | None] = (),
) -> ModelCard:
    """Render the flatmtl model card of a multi-task model.

    Args:
        config: the model's :class:`MultiTaskConfig` (tasks, backbone).
        model_name: name in the title and the ``model-index``; defaults to the repository name.
        repo_id: repository shown in the loading snippet.
        metrics: flat metrics as the Trainer reports them (``test_accuracy_top_left``, ...).
        dataset_name: readable name of the training / evaluation data.
        dataset: Hub data set id(s), listed under ``datasets`` and used as the result's type.
        dataset_split: split the metrics were computed on (default: from the metric prefix).
        training_args: the run's ``FlatMTLConfig`` or a mapping (see :func:`training_summary`).
        tags, language, license, finetuned_from: card metadata.
        secrets: strings that must not appear in the card (access tokens); redacted if found.
    """
    dataset_ids = [dataset] if isinstance(dataset, str) else list(dataset or [])
    readable_name = dataset_name or (dataset_ids[0] if dataset_ids else None)
    model_name = model_name or (repo_id.split("/")[-1] if repo_id else "flatmtl-model")
    summary = training_summary(training_args)
    base_model = finetuned_from or config.backbone_config.get("initialized_from")

    results: list[EvalResult] = []
    if metrics and readable_name:
        dataset_type = dataset_ids[0] if dataset_ids else _slug(readable_name)
        results = task_eval_results(config, metrics, readable_name, dataset_type, dataset_split)
    elif metrics:
        logger.warning(
            "The model card has no `model-index`: metrics were given but no data set; pass "
            "`dataset_name=` (and `dataset=` with the Hub id) to report them."
        )
    per_task, split = split_task_metrics(config, metrics or {})

    card_data = ModelCardData(
        model_name=model_name,
        library_name="transformers",
        tags=_merge_tags(tags, config),
        datasets=dataset_ids or None,
        language=language,
        license=license,
        base_model=base_model if isinstance(base_model, str) and "/" in base_model else None,
        eval_results=results or None,
    )
    card = ModelCard.from_template(
        card_data,
        template_path=template_path(),
        model_name=model_name,
        repo_id=repo_id or model_name,
        backbone_summary=_backbone_summary(config),
        tasks=_task_rows(config, per_task),
        metric_header=f"metrics ({dataset_split or split or 'evaluation'})",
        evaluation_note=None if results else "No evaluation results were recorded.",
        dataset_text=_dataset_text(readable_name, dataset_ids),
        training={
            "aggregator": summary["method"].get("aggregator", "unknown"),
            "method": summary["method"],
            "hyperparameters": summary["hyperparameters"],
        },
        input_example=_input_example(config),
        label_keys=", ".join(f"`{key}`" for key in config.label_keys),
        versions=_versions(),
        citation=CITATION,
    )
    _keep_task_entries(card, results)
    redacted = _redact(card.content, secrets)
    if redacted != card.content:
        card = ModelCard(redacted)
    return card


def push_model_to_hub(
    model: Any,
    repo_id: str,
    *,
    commit_message: str | None = None,
    commit_description: str | None = None,
    private: bool | None = None,
    token: bool | str | None = None,
    revision: str | None = None,
    create_pr: bool = False,
    max_shard_size: int | str | None = "50GB",
    tags: list[str] | None = None,
    **card_kwargs: Any,
) -> Any:
    """Upload ``model`` (safetensors weights and config) with its flatmtl card to ``repo_id``.

    ``card_kwargs`` go to :func:`build_model_card`; missing ones come from the context the last
    ``FlatMTLTrainer.create_model_card`` call recorded on the model (metrics, data, settings).
    Returns the ``CommitInfo`` of the upload.
    """
    from transformers.utils.hub import hf_api

    unknown = set(card_kwargs) - _CARD_KWARGS
    if unknown:
        raise TypeError(
            f"`push_to_hub` got unexpected arguments {sorted(unknown)}; the card options are "
            f"{sorted(_CARD_KWARGS)}."
        )
    context: CardContext = getattr(model, CARD_CONTEXT_ATTRIBUTE, None) or CardContext()
    card_kwargs.setdefault("metrics", context.metrics)
    card_kwargs.setdefault("dataset_name", context.dataset_name)
    card_kwargs.setdefault("dataset", context.dataset)
    card_kwargs.setdefault("dataset_split", context.dataset_split)
    if "training_args" not in card_kwargs and context.training is not None:
        training = context.training
        card_kwargs["training_args"] = {**training["method"], **training["hyperparameters"]}

    api = hf_api()
    repo_id = api.create_repo(repo_id, private=private, token=token, exist_ok=True).repo_id
    secrets = [token] if isinstance(token, str) else []
    card = build_model_card(
        model.config, repo_id=repo_id, tags=tags, secrets=secrets, **card_kwargs
    )
    if revision is not None and not revision.startswith("refs/pr"):
        api.create_branch(repo_id=repo_id, branch=revision, token=token, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder, max_shard_size=max_shard_size)
        card.save(os.path.join(folder, "README.md"))
        return api.upload_folder(
            repo_id=repo_id,
            folder_path=folder,
            commit_message=commit_message or f"Upload {type(model).__name__}",
            commit_description=commit_description,
            token=token,
            revision=revision,
            create_pr=create_pr,
        )


_CARD_KWARGS = {
    "model_name",
    "metrics",
    "dataset_name",
    "dataset",
    "dataset_split",
    "training_args",
    "language",
    "license",
    "finetuned_from",
}


def _keep_task_entries(card: ModelCard, results: list[EvalResult]) -> None:
    # Parsing the rendered YAML turns the results back into plain `EvalResult`s, which the Hub
    # client groups by task type and data set; the task-keyed ones keep one entry per task.
    if results:
        card.data.eval_results = results


def _takes_text(config: MultiTaskConfig) -> bool:
    options = config.backbone_config
    return (
        config.backbone == "transformers"
        and "vocab_size" in options
        and not ("num_channels" in options or "image_size" in options)
    )


def _plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)


def _merge_tags(tags: str | Sequence[str] | None, config: MultiTaskConfig) -> list[str]:
    merged = ["flatmtl", "multi-task-learning", "sharpness-aware-minimization"]
    extra = [tags] if isinstance(tags, str) else list(tags or [])
    for tag in extra + [hub_task_type(config, task) for task in config.tasks]:
        if tag not in merged and tag != "other":
            merged.append(tag)
    return merged


def _backbone_summary(config: MultiTaskConfig) -> str:
    if config.backbone == "transformers":
        options = config.backbone_config
        origin = options.get("initialized_from")
        text = f"`{options.get('model_type', 'transformers')}` encoder"
        text += f" (from `{origin}`)" if origin else ""
        return text + f" with `{options.get('pooling', 'cls')}` pooling"
    return f"`{config.backbone}` backbone"


def _task_rows(
    config: MultiTaskConfig, per_task: Mapping[str, Mapping[str, float]]
) -> list[dict[str, Any]]:
    rows = []
    for task in config.tasks:
        values = per_task.get(task["name"], {})
        text = ", ".join(f"{name} {value:.4f}" for name, value in values.items()) or "n/a"
        rows.append(
            {
                "name": task["name"],
                "hub_task": hub_task_type(config, task),
                "num_labels": task["num_labels"],
                "metrics_text": text,
            }
        )
    return rows


def _dataset_text(name: str | None, ids: Sequence[str]) -> str:
    if not name and not ids:
        return "Not recorded; pass `dataset_name=` (and `dataset=`) when creating the card."
    links = ", ".join(f"[{i}](https://huggingface.co/datasets/{i})" for i in ids)
    if name and links and name not in ids:
        return f"{name} (built from {links})."
    return f"{links or name}."


def _input_example(config: MultiTaskConfig) -> str:
    if _takes_text(config):
        return "input_ids=input_ids, attention_mask=attention_mask"
    return "pixel_values=pixel_values"


def _versions() -> dict[str, str]:
    versions = {}
    for package in ("flatmtl", "transformers", "torch", "huggingface_hub"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "dataset"


def _redact(content: str, secrets: Sequence[str | None]) -> str:
    for secret in secrets:
        if isinstance(secret, str) and len(secret) >= 8 and secret in content:
            logger.warning("A secret passed to the model card was found in it and redacted.")
            content = content.replace(secret, "<redacted>")
    return content
