"""Gradient aggregators for multi-task learning, one method per module, and their registry.

Each aggregator is called as ``aggregator(grads, losses=None) -> direction`` with ``grads`` the
``m x d`` matrix of task gradients over the shared parameters. Loss-weighting methods (RLW,
DWA, UW, SI, IMTL-L, FAMO, GradNorm) are expressed as weights on the task gradients.
"""

from ._aligned_mtl import AlignedMTL
from ._base import Aggregator, WeightedAggregator
from ._cagrad import CAGrad
from ._dbmtl import DBMTL
from ._dwa import DWA
from ._fairgrad import FairGrad
from ._famo import FAMO
from ._graddrop import GradDrop
from ._gradnorm import GradNorm
from ._imtl import IMTLG
from ._imtl_l import IMTLL
from ._linear import Mean, Sum
from ._mgda import MGDA
from ._nashmtl import NashMTL
from ._pcgrad import PCGrad
from ._registry import AGGREGATORS, get_aggregator, register_aggregator
from ._rlw import RLW
from ._si import SI
from ._upgrad import UPGrad
from ._uw import UW

__all__ = [
    "AGGREGATORS",
    "Aggregator",
    "AlignedMTL",
    "CAGrad",
    "DBMTL",
    "DWA",
    "FAMO",
    "FairGrad",
    "GradDrop",
    "GradNorm",
    "IMTLG",
    "IMTLL",
    "MGDA",
    "Mean",
    "NashMTL",
    "PCGrad",
    "RLW",
    "SI",
    "Sum",
    "UPGrad",
    "UW",
    "WeightedAggregator",
    "get_aggregator",
    "register_aggregator",
]
