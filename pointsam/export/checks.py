"""What exports and what does not: the declared refusals, named errors."""

from __future__ import annotations

from torch import nn

from ..models.base import PointModel

__all__ = ["ExportError", "META_KEY", "check_exportable", "takes_inputs", "explain"]

#: key of the JSON metadata in the ONNX file / the ``.pt2`` archive
META_KEY = "pointsam"


class ExportError(ValueError):
    """A model or option that cannot be exported: names the op and the way around."""


def _check_exportable(model: nn.Module) -> PointModel:
    """``model`` as a :class:`~pointsam.models.PointModel` whose network exports;
    an :class:`ExportError` with its declared reason otherwise."""
    if not isinstance(model, PointModel):
        raise ExportError(f"{type(model).__name__} is not a pointsam model "
                          "(PointModel, with a plan()/network() split); only the "
                          "registered models export")
    why = model.export_blocker
    if why:
        raise ExportError(why)
    return model


def _takes(model: nn.Module) -> tuple[bool, bool]:
    """Whether the model takes features ``x`` and a ``category`` (declared)."""
    m = _check_exportable(model)
    return m.in_channels > 0, m.num_categories > 0


def _explain(e: Exception) -> ExportError:
    msg = str(e).strip().splitlines()
    first = next((ln for ln in msg if ln.strip()), type(e).__name__)
    where = next((ln.strip() for ln in msg if "pointsam/" in ln), "")
    return ExportError(f"the network could not be traced ({type(e).__name__}: "
                       f"{first[:300]}){' at ' + where if where else ''}. Export a "
                       f"model whose attention is none/cbam/local/local_global/axial "
                       f"(set POINTSAM_DEBUG=1 for the exporter's traceback)")


check_exportable = _check_exportable
takes_inputs = _takes
explain = _explain
