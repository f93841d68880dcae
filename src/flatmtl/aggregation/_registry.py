from __future__ import annotations

from typing import Any

from ._aligned_mtl import AlignedMTL
from ._base import Aggregator
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
from ._rlw import RLW
from ._si import SI
from ._upgrad import UPGrad
from ._uw import UW

__all__ = ["AGGREGATORS", "get_aggregator", "register_aggregator"]

#: Registry name -> aggregator class.
AGGREGATORS: dict[str, type[Aggregator]] = {
    "mean": Mean,
    "sum": Sum,
    "mgda": MGDA,
    "pcgrad": PCGrad,
    "cagrad": CAGrad,
    "imtl": IMTLG,
    "nashmtl": NashMTL,
    "fairgrad": FairGrad,
    "graddrop": GradDrop,
    "upgrad": UPGrad,
    "aligned_mtl": AlignedMTL,
    "dbmtl": DBMTL,
    "rlw": RLW,
    "dwa": DWA,
    "uw": UW,
    "si": SI,
    "imtl_l": IMTLL,
    "famo": FAMO,
    "gradnorm": GradNorm,
}


def register_aggregator(name: str, cls: type[Aggregator]) -> None:
    """Make ``cls`` available to :func:`get_aggregator` and the ``aggregator`` config field."""
    if not (isinstance(cls, type) and issubclass(cls, Aggregator)):
        raise TypeError(f"`cls` must be a subclass of Aggregator, found {cls!r}.")
    AGGREGATORS[name.lower()] = cls


def get_aggregator(name: str, **kwargs: Any) -> Aggregator:
    """Build the aggregator registered as ``name`` with ``kwargs``."""
    key = name.lower() if isinstance(name, str) else name
    if key not in AGGREGATORS:
        known = ", ".join(sorted(AGGREGATORS))
        raise ValueError(
            f"Unknown aggregator {name!r}; expected one of: {known}. Pick one of these names or "
            "add yours with `register_aggregator`."
        )
    try:
        return AGGREGATORS[key](**kwargs)
    except TypeError as error:
        raise TypeError(
            f"`aggregator_kwargs` {kwargs} do not fit aggregator {name!r} "
            f"({AGGREGATORS[key].__name__}): {error}"
        ) from error
