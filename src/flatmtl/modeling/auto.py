"""Registration of :class:`MultiTaskConfig` / :class:`MultiTaskModel` with the ``Auto`` classes.

Importing :mod:`flatmtl` is enough for ``AutoConfig.from_pretrained`` and
``AutoModel.from_pretrained`` to open a saved multi-task model: the classes are looked up by
``model_type = "flatmtl"``, so no ``trust_remote_code`` and no copied modeling file are needed.

The module also gives :class:`MultiTaskModel` a ``push_to_hub`` that uploads a model card with
a ``model-index`` (one entry per task) instead of the generic card transformers writes.
"""

from __future__ import annotations

from typing import Any

from transformers import AutoConfig, AutoModel

from .configuration import MultiTaskConfig
from .modeling import MultiTaskModel

__all__ = ["register_auto_classes"]


def register_auto_classes() -> None:
    """Map ``model_type = "flatmtl"`` to the flatmtl classes (safe to call more than once)."""
    AutoConfig.register(MultiTaskConfig.model_type, MultiTaskConfig, exist_ok=True)
    AutoModel.register(MultiTaskConfig, MultiTaskModel, exist_ok=True)


def _push_to_hub(
    self: MultiTaskModel,
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
    """Upload the model (``config.json`` + ``model.safetensors``) and a flatmtl model card.

    Takes the arguments of ``PreTrainedModel.push_to_hub``; the card options
    (``metrics``, ``dataset_name``, ``dataset``, ``model_name``, ``training_args``, ...) are
    those of :func:`flatmtl.hub.build_model_card`. Metrics default to the ones the last
    ``FlatMTLTrainer.create_model_card`` call recorded on this model.
    """
    from ..hub import push_model_to_hub

    return push_model_to_hub(
        self,
        repo_id,
        commit_message=commit_message,
        commit_description=commit_description,
        private=private,
        token=token,
        revision=revision,
        create_pr=create_pr,
        max_shard_size=max_shard_size,
        tags=tags,
        **card_kwargs,
    )


register_auto_classes()
# Assigned here rather than in the class body so that the Hub integration lives in one place;
# `MultiTaskModel.push_to_hub` is the public entry point either way.
MultiTaskModel.push_to_hub = _push_to_hub  # type: ignore[method-assign]
