"""``visualize``: the label pictures and PLYs of segmentation models."""

import numpy as np
import pytest
import torch
from torch import nn
from torch_geometric.data import Data

from pointsam.viz import read_ply, visualize

#: two categories: 0 owns parts {0, 1}, 1 owns parts {2, 3, 4}
CATEGORY_PARTS = [[0, 1], [2, 3, 4]]


class FavoursPartZero(nn.Module):
    """Per-point part logits ``[N, 5]`` whose plain argmax is part 0 everywhere;
    among parts 2..4 the point's x coordinate decides (2 for x < 0, else 3)."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, data: Data) -> torch.Tensor:
        n = data.pos.size(0)
        z = torch.zeros(n, 5)
        z[:, 0] = 10.0  # a part of category 0
        z[:, 2] = -data.pos[:, 0]
        z[:, 3] = data.pos[:, 0]
        return self.scale * z  # [N, 5]


@pytest.fixture
def shape():
    g = torch.Generator().manual_seed(0)
    pos = torch.randn(40, 3, generator=g)
    y = torch.where(pos[:, 0] < 0, 2, 3)
    return Data(pos=pos, y=y, category=torch.tensor([1]))


def test_partseg_predictions_are_restricted_to_the_category(shape, tmp_path):
    paths = visualize(FavoursPartZero(), shape, tmp_path, task="partseg",
                      category_parts=CATEGORY_PARTS, size=(200, 160),
                      views=("iso",), backend="numpy")
    assert {p.name for p in paths} == {"labels.png", "labels.ply"}
    pred = read_ply(tmp_path / "labels.ply")["pred"]
    assert set(pred.tolist()) <= {2, 3, 4}  # never part 0 of category 0
    np.testing.assert_array_equal(pred, shape.y.numpy())  # argmax over {2, 3, 4}
    # without a table the argmax is over all parts, as for semantic segmentation
    visualize(FavoursPartZero(), shape, tmp_path / "plain", size=(200, 160),
              views=("iso",), backend="numpy")
    assert set(read_ply(tmp_path / "plain" / "labels.ply")["pred"].tolist()) == {0}


def test_partseg_bad_input(shape, tmp_path):
    kw = dict(size=(200, 160), views=("iso",), backend="numpy")
    m = FavoursPartZero()
    with pytest.raises(ValueError, match="needs category_parts"):
        visualize(m, shape, tmp_path, task="partseg", **kw)
    with pytest.raises(ValueError, match="task must be"):
        visualize(m, shape, tmp_path, task="parts", **kw)
    with pytest.raises(ValueError, match=r"category must be in 0\.\.1, got 7"):
        visualize(m, Data(pos=shape.pos, category=torch.tensor([7])), tmp_path,
                  category_parts=CATEGORY_PARTS, **kw)
    with pytest.raises(ValueError, match="data.category"):
        visualize(m, Data(pos=shape.pos), tmp_path, category_parts=CATEGORY_PARTS,
                  **kw)
    with pytest.raises(ValueError, match="names part 6 but the model gives 5"):
        visualize(m, shape, tmp_path, category_parts=[[0, 1], [2, 6]], **kw)


def test_figures_in_svg_and_pdf(shape, tmp_path):
    kw = dict(size=(240, 160), views=("iso",), backend="numpy", ply=False)
    paths = visualize(FavoursPartZero(), shape, tmp_path, fmt="svg", **kw)
    assert [p.name for p in paths] == ["labels.svg"]
    assert b"<svg" in paths[0].read_bytes()[:2000]
    paths = visualize(FavoursPartZero(), shape, tmp_path, fmt="pdf", **kw)
    assert paths[0].read_bytes()[:5] == b"%PDF-"
    with pytest.raises(ValueError, match="fmt must be 'png', 'svg' or 'pdf'"):
        visualize(FavoursPartZero(), shape, tmp_path, fmt="gif", **kw)
