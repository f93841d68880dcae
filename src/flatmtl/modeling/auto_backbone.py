"""Any ``transformers`` encoder (BERT, RoBERTa, ViT, ...) as the shared backbone.

``MultiTaskConfig(backbone="transformers", backbone_config={...})`` with either

* ``{"model_type": "bert", "hidden_size": 64, ...}``: an encoder built from that config
  (random weights, or the weights of the multi-task checkpoint when loading), or
* ``{"pretrained_name_or_path": "some/encoder"}``: the encoder's own config and weights, from
  the Hub or a local folder (further encoder keys override its config).

Options read by the backbone itself (the other keys are the encoder's config):
``pooling`` (``"cls"``: the first token, default; ``"mean"``: the mean over tokens, masked by
``attention_mask``, or over positions of a feature map; ``"pooler"``: the encoder's own
``pooler_output``) and ``pretrained_name_or_path``.
"""

from __future__ import annotations

import inspect
from typing import Any

from torch import Tensor, nn
from transformers import AutoConfig, AutoModel, PretrainedConfig
from transformers.models.auto.modeling_auto import MODEL_MAPPING

from .backbones import register_backbone
from .configuration import MultiTaskConfig

__all__ = ["POOLINGS", "TransformersBackbone"]

POOLINGS = ("cls", "mean", "pooler")

_OPTION_KEYS = ("pooling", "pretrained_name_or_path", "initialized_from")

# Config attributes that describe this process, not the encoder; kept out of `backbone_config`.
_RUNTIME_KEYS = {
    "_name_or_path",
    "_attn_implementation_autoset",
    "architectures",
    "dtype",
    "torch_dtype",
    "transformers_version",
}


@register_backbone("transformers")
class TransformersBackbone(nn.Module):
    """A ``transformers`` ``AutoModel`` encoder pooled to one feature vector per example.

    ``forward`` passes ``input_ids``, ``attention_mask``, ``token_type_ids``,
    ``pixel_values`` and any other encoder input through, and returns ``(batch, hidden)``.

    .. warning::
        With ``pretrained_name_or_path`` the encoder weights are loaded once, when the model is
        first built; ``config.backbone_config`` is then rewritten to the encoder's full config
        (the name is kept as ``initialized_from``). A model built again from that config, or
        loaded with ``from_pretrained``, takes its weights from its own checkpoint.
    """

    def __init__(self, config: MultiTaskConfig) -> None:
        super().__init__()
        options = dict(config.backbone_config)
        self.pooling = str(options.get("pooling", "cls"))
        if self.pooling not in POOLINGS:
            raise ValueError(
                f"`backbone_config['pooling']` must be one of {POOLINGS}, found "
                f"{self.pooling!r}; use 'cls' for the first token or 'mean' for a masked mean."
            )
        pretrained = options.get("pretrained_name_or_path")
        encoder_options = {k: v for k, v in options.items() if k not in _OPTION_KEYS}
        keep_pooler = self.pooling == "pooler"

        if pretrained is not None:
            encoder_config = AutoConfig.from_pretrained(pretrained, **encoder_options)
            extra = _pooler_kwargs(encoder_config, keep_pooler)
            self.encoder = AutoModel.from_pretrained(pretrained, config=encoder_config, **extra)
        elif "model_type" in encoder_options:
            model_type = encoder_options.pop("model_type")
            encoder_config = AutoConfig.for_model(model_type, **encoder_options)
            extra = _pooler_kwargs(encoder_config, keep_pooler)
            self.encoder = AutoModel.from_config(encoder_config, **extra)
        else:
            raise ValueError(
                "`backbone_config` of the 'transformers' backbone needs a 'model_type' (with the "
                "encoder's config, e.g. {'model_type': 'bert', 'hidden_size': 64}) or a "
                f"'pretrained_name_or_path'; found keys {sorted(options)}."
            )

        self.out_features = _hidden_size(self.encoder.config)
        self._input_names = set(inspect.signature(self.encoder.forward).parameters)
        config.backbone_config = _serialise(self.encoder.config, self.pooling, pretrained, options)

    def forward(
        self,
        pixel_values: Tensor | None = None,
        tasks: list[str] | None = None,
        input_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        **encoder_inputs: Any,
    ) -> Tensor:
        given = {
            "pixel_values": pixel_values,
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "token_type_ids": token_type_ids,
        }
        inputs = {k: v for k, v in given.items() if v is not None}
        inputs.update(encoder_inputs)
        unknown = sorted(set(inputs) - self._input_names)
        if unknown:
            raise ValueError(
                f"The {type(self.encoder).__name__} encoder does not take the batch keys "
                f"{unknown}; it takes {sorted(self._input_names)}. Drop those columns or add "
                "them to the tasks' `label_key`s if they are targets."
            )
        outputs = self.encoder(**inputs, return_dict=True)
        return self._pool(outputs, attention_mask)

    def _pool(self, outputs: Any, attention_mask: Tensor | None) -> Tensor:
        if self.pooling == "pooler":
            pooled = getattr(outputs, "pooler_output", None)
            if pooled is None:
                raise ValueError(
                    f"`pooling='pooler'` needs an encoder with a pooler, but "
                    f"{type(self.encoder).__name__} returned none; use 'cls' or 'mean'."
                )
            return pooled.flatten(1)
        hidden = outputs.last_hidden_state
        if hidden.dim() == 4:
            # A convolutional feature map (batch, channels, height, width).
            if self.pooling == "cls":
                raise ValueError(
                    f"`pooling='cls'` needs token outputs, but {type(self.encoder).__name__} "
                    "returns a feature map; use 'mean' or 'pooler'."
                )
            return hidden.mean(dim=(2, 3))
        if self.pooling == "cls":
            return hidden[:, 0]
        if attention_mask is None or attention_mask.shape[1] != hidden.shape[1]:
            return hidden.mean(dim=1)
        weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)


def _pooler_kwargs(encoder_config: PretrainedConfig, keep_pooler: bool) -> dict[str, Any]:
    # A pooler the heads never read would hold parameters no task trains; drop it when the
    # encoder class lets us.
    model_class = MODEL_MAPPING.get(type(encoder_config), None)
    if model_class is None or keep_pooler:
        return {}
    if "add_pooling_layer" in inspect.signature(model_class.__init__).parameters:
        return {"add_pooling_layer": False}
    return {}


def _hidden_size(encoder_config: PretrainedConfig) -> int:
    if getattr(encoder_config, "hidden_size", None):
        return int(encoder_config.hidden_size)
    sizes = getattr(encoder_config, "hidden_sizes", None)
    if sizes:
        return int(sizes[-1])
    raise ValueError(
        f"Cannot tell the feature size of a {type(encoder_config).__name__}: it has neither "
        "`hidden_size` nor `hidden_sizes`; use an encoder whose config has one of them."
    )


def _serialise(
    encoder_config: PretrainedConfig,
    pooling: str,
    pretrained: str | None,
    options: dict[str, Any],
) -> dict[str, Any]:
    """The encoder's full config plus the backbone options, as plain JSON values."""
    serialised = {k: v for k, v in encoder_config.to_dict().items() if k not in _RUNTIME_KEYS}
    serialised["model_type"] = encoder_config.model_type
    serialised["pooling"] = pooling
    origin = pretrained if pretrained is not None else options.get("initialized_from")
    if origin is not None:
        serialised["initialized_from"] = str(origin)
    return serialised
