"""Registration of :class:`MultiTaskConfig` / :class:`MultiTaskModel` with the ``Auto`` classes.

Importing :mod:`flatmtl` is enough for ``AutoConfig.from_pretrained`` and
``AutoModel.from_pretrained`` to open a saved multi-task model: the classes are looked up by
``model_type = "flatmtl"``, so no ``trust_remote_code`` and no copied modeling file are needed.

The module also gives :class:`MultiTaskModel` a ``push_to_hub`` that uploads a model card with
a ``model-index`` (one entry per task) instead of the generic card transformers writes.
"""

from __future__ import annotations

from transformers import AutoConfig, AutoModel

from .configuration import MultiTaskConfig
from .modeling import MultiTaskModel

__all__ = ["register_auto_classes"]


def register_auto_classes() -> None:
    """Map ``model_type = "flatmtl"`` to the flatmtl classes (safe to call more than once)."""
    AutoConfig.register(MultiTaskConfig.model_type, MultiTaskConfig, exist_ok=True)
    AutoModel.register(MultiTaskConfig, MultiTaskModel, exist_ok=True)


register_auto_classes()
