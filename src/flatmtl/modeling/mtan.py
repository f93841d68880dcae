"""SegNet with task attention (MTAN) for the NYUv2 and CityScapes benchmarks.

Multi-Task Attention Network (Liu, Johns and Davison, CVPR 2019), the dense-prediction model of
CAGrad, Nash-MTL and F-MTL (Phan et al., arXiv 2211.13723): a SegNet encoder-decoder (13 conv
layers each way, max-pool indices reused by the unpooling) shared by all tasks, and for every
task a chain of soft attention masks, one per encoder and decoder stage, that picks that task's
features out of the shared ones.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .backbones import register_backbone
from .configuration import MultiTaskConfig

__all__ = ["SegNetMTAN", "attention_layer", "conv_layer", "init_mtan_weights"]

_DEFAULT_FILTERS = (64, 128, 256, 512, 512)


def conv_layer(in_channels: int, out_channels: int) -> nn.Sequential:
    """3x3 convolution, batch norm and ReLU: the SegNet building block."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


def attention_layer(in_channels: int, mid_channels: int, out_channels: int) -> nn.Sequential:
    """Two 1x1 conv-BN layers ending in a sigmoid: one soft attention mask of MTAN."""
    return nn.Sequential(
        nn.Conv2d(in_channels, mid_channels, 1),
        nn.BatchNorm2d(mid_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(mid_channels, out_channels, 1),
        nn.BatchNorm2d(out_channels),
        nn.Sigmoid(),
    )


def init_mtan_weights(module: nn.Module) -> None:
    """Xavier-normal convolutions and linears with zero bias, unit batch norms (as MTAN)."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_normal_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, nn.BatchNorm2d):
            nn.init.ones_(layer.weight)
            nn.init.zeros_(layer.bias)


@register_backbone("segnet_mtan")
class SegNetMTAN(nn.Module):
    """SegNet with MTAN attention (Liu et al., CVPR 2019); returns one feature map per task.

    ``forward(pixel_values, tasks)`` runs the shared SegNet once and the attention chain of each
    requested task, and returns ``{task: (B, filters[0], H, W)}``. Inputs need ``H`` and ``W``
    divisible by 32 (five 2x2 poolings); the benchmarks use 288x384 (NYUv2) and 128x256
    (CityScapes).

    Options (``backbone_config``): ``filters`` (``[64, 128, 256, 512, 512]``), ``in_channels``
    (3), ``log_sigma`` (False).

    .. note:: The per-task attention modules receive gradient from their task only, so the
       inferred partition treats them as task parameters (as CAGrad's code does). Nash-MTL's and
       the F-MTL code count them as shared; override the partition to reproduce that.

    .. note:: ``log_sigma=True`` adds the per-task log-variance vector (initialised to -0.5) of
       the reference MTAN module, which only its uncertainty weighting reads. The model here
       never uses it (it gets no gradient); it exists to reproduce the reference count:
       44,229,076 parameters on NYUv2 with it, 44,229,073 (the Nash-MTL and F-MTL module)
       without.
    """

    def __init__(self, config: MultiTaskConfig) -> None:
        super().__init__()
        options = config.backbone_config
        filters = [int(value) for value in options.get("filters", _DEFAULT_FILTERS)]
        if len(filters) != 5 or min(filters) < 1:
            raise ValueError(
                "`backbone_config['filters']` must be 5 positive channel counts such as "
                f"[64, 128, 256, 512, 512], found {filters}."
            )
        self.task_names = list(config.task_names)
        self.out_features = filters[0]
        in_channels = int(options.get("in_channels", 3))
        # Channels leaving decoder level k (level 0 is full resolution).
        decoder_out = [filters[0]] + filters[:-1]
        # Conv layers after the first one of each stage: one at the two top levels, two below.
        extra_convs = [1, 1, 2, 2, 2]

        self.encoder_blocks = nn.ModuleList(
            conv_layer(in_channels if k == 0 else filters[k - 1], filters[k]) for k in range(5)
        )
        self.encoder_convs = nn.ModuleList(
            nn.Sequential(*(conv_layer(filters[k], filters[k]) for _ in range(extra_convs[k])))
            for k in range(5)
        )
        self.decoder_blocks = nn.ModuleList(
            conv_layer(filters[k], decoder_out[k]) for k in range(5)
        )
        self.decoder_convs = nn.ModuleList(
            nn.Sequential(
                *(conv_layer(decoder_out[k], decoder_out[k]) for _ in range(extra_convs[k]))
            )
            for k in range(5)
        )

        # Shared convolutions of the attention branch, between the per-task masks.
        self.encoder_attention_convs = nn.ModuleList(
            conv_layer(filters[k], filters[min(k + 1, 4)]) for k in range(5)
        )
        self.decoder_attention_convs = nn.ModuleList(
            conv_layer(filters[k], decoder_out[k]) for k in range(5)
        )

        def encoder_masks() -> nn.ModuleList:
            return nn.ModuleList(
                attention_layer(filters[0] if k == 0 else 2 * filters[k], filters[k], filters[k])
                for k in range(5)
            )

        def decoder_masks() -> nn.ModuleList:
            return nn.ModuleList(
                attention_layer(filters[k] + decoder_out[k], decoder_out[k], decoder_out[k])
                for k in range(5)
            )

        self.encoder_attention = nn.ModuleDict({name: encoder_masks() for name in self.task_names})
        self.decoder_attention = nn.ModuleDict({name: decoder_masks() for name in self.task_names})
        init_mtan_weights(self)

        if options.get("log_sigma", False):
            self.log_sigma = nn.Parameter(torch.full((len(self.task_names),), -0.5))

    def forward(self, pixel_values: Tensor, tasks: list[str] | None = None) -> dict[str, Tensor]:
        height, width = pixel_values.shape[-2:]
        if height % 32 or width % 32:
            raise ValueError(
                f"`pixel_values` must have height and width divisible by 32 for SegNet's five "
                f"poolings, found {height}x{width}; crop or resize the images (e.g. 288x384)."
            )

        # Shared encoder: keep each stage's first-conv output (attention input), last-conv
        # output (attention target) and the pooling indices for the decoder.
        first, last, indices = [], [], []
        hidden = pixel_values
        for k in range(5):
            hidden = self.encoder_blocks[k](hidden)
            first.append(hidden)
            hidden = self.encoder_convs[k](hidden)
            last.append(hidden)
            hidden, index = F.max_pool2d(hidden, 2, 2, return_indices=True)
            indices.append(index)

        # Shared decoder, from the deepest level up.
        unpooled: list[Tensor] = [hidden] * 5
        decoded: list[Tensor] = [hidden] * 5
        for k in reversed(range(5)):
            hidden = F.max_unpool2d(hidden, indices[k], 2, 2)
            unpooled[k] = hidden
            hidden = self.decoder_convs[k](self.decoder_blocks[k](hidden))
            decoded[k] = hidden

        names = self.task_names if tasks is None else [n for n in self.task_names if n in tasks]
        return {name: self._attend(name, first, last, unpooled, decoded) for name in names}

    def _attend(
        self,
        name: str,
        first: list[Tensor],
        last: list[Tensor],
        unpooled: list[Tensor],
        decoded: list[Tensor],
    ) -> Tensor:
        encoder_masks = self.encoder_attention[name]
        decoder_masks = self.decoder_attention[name]
        branch = None
        for k in range(5):
            mask_input = first[k] if branch is None else torch.cat([first[k], branch], dim=1)
            attended = encoder_masks[k](mask_input) * last[k]
            branch = F.max_pool2d(self.encoder_attention_convs[k](attended), 2, 2)
        for k in reversed(range(5)):
            branch = F.interpolate(
                branch, size=unpooled[k].shape[-2:], mode="bilinear", align_corners=True
            )
            branch = self.decoder_attention_convs[k](branch)
            mask = decoder_masks[k](torch.cat([unpooled[k], branch], dim=1))
            branch = mask * decoded[k]
        return branch
