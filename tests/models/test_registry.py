"""The model registry, and the checks that run over every registered model."""

from __future__ import annotations

import pytest
import torch

from pointsam.models import create_model, list_models
from pointsam.models.registry import register_model
from tests.models._models_tiny import build_tiny as _build
from tests.models._models_tiny import model_data as _data
from tests.models._models_tiny import num_classes_for as _num_classes
from tests.models._models_tiny import output_rows as _rows

MODELS = list_models()
CLS = [n for n in MODELS if n.endswith("_cls")]
REQUIRED = ["pointnet2_ssg_cls", "pointnet2_msg_cls", "pointnet2_ssg_partseg",
            "pointnet2_msg_partseg", "pointnet2_ssg_semseg", "dgcnn_cls",
            "dgcnn_partseg", "dgcnn_semseg", "pointnet2_lite_cls", "dgcnn_lite_cls",
            "pointnet2_lite_semseg", "dgcnn_lite_semseg", "pointnet2_lite_partseg",
            "dgcnn_lite_partseg"]

def test_required_names_registered():
    assert set(REQUIRED) <= set(MODELS)


def test_duplicate_registration_raises():
    def dgcnn_cls():  # noqa: ANN202
        return None
    with pytest.raises(ValueError, match="registered twice"):
        register_model(dgcnn_cls)


def test_unknown_model_lists_known():
    with pytest.raises(ValueError, match="known: .*dgcnn_cls"):
        create_model("dgcnn_clss")


@pytest.mark.parametrize("name", MODELS)
def test_forward_backward_every_param_gets_grad(name):
    m = _build(name).train()
    data = _data(name)
    out = m(data)
    rows = data.num_graphs if name.endswith("_cls") else _rows(name, data)[-1][1]
    assert out.shape == (rows, _num_classes(name))
    assert torch.isfinite(out).all()
    (out * torch.randn_like(out)).sum().backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None]
    assert not missing, f"no grad for {missing}"
    assert all(torch.isfinite(p.grad).all() for p in m.parameters())


@pytest.mark.parametrize("name", CLS)
def test_cls_logits_invariant_to_point_order(name):
    m = _build(name).eval()
    data = _data(name)
    g = torch.Generator().manual_seed(1)
    perm = torch.cat([torch.randperm(int(c), generator=g) + int(s) for s, c in
                      zip(data.ptr[:-1], data.ptr[1:] - data.ptr[:-1])])
    with torch.no_grad():
        a = m(data)
        b = m(pos=data.pos[perm], batch=data.batch)
    assert torch.allclose(a, b, atol=1e-4)


@pytest.mark.parametrize("name", MODELS)
def test_cloud_alone_equals_cloud_in_batch(name):
    m = _build(name).eval()
    data = _data(name)
    with torch.no_grad():
        full = m(data)
        alone = m(data.get_example(1))
    if name.endswith("_cls"):
        assert torch.allclose(full[1:2], alone, atol=1e-4)
    else:
        s, e = _rows(name, data)[1]
        assert alone.shape[0] == e - s
        assert torch.allclose(full[s:e], alone, atol=1e-4)


@pytest.mark.parametrize("name", ["pointnet2_lite_semseg", "dgcnn_lite_partseg",
                                  "pointnet2_ssg_partseg"])
def test_seg_logits_equivariant_to_point_order(name):
    m = _build(name).eval()
    data = _data(name)
    g = torch.Generator().manual_seed(2)
    perm = torch.cat([torch.randperm(int(c), generator=g) + int(s) for s, c in
                      zip(data.ptr[:-1], data.ptr[1:] - data.ptr[:-1])])
    kw = {"category": data.category} if "partseg" in name else {}
    with torch.no_grad():
        a = m(pos=data.pos, batch=data.batch, **kw)
        b = m(pos=data.pos[perm], batch=data.batch, **kw)
    assert torch.allclose(a[perm], b, atol=1e-4)


@pytest.mark.parametrize("name", ["dgcnn_lite_cls", "pointnet2_lite_semseg"])
def test_forward_on_device(name, device):
    m = _build(name).to(device).eval()
    data = _data(name).to(device)
    with torch.no_grad():
        out = m(data)
        ref = _build(name).eval()
        ref.load_state_dict(m.state_dict())
        assert torch.allclose(out.cpu(), ref(_data(name)), atol=1e-4)


def test_reference_parameter_counts():
    def count(name: str) -> int:
        return sum(p.numel() for p in create_model(name, num_classes=40).parameters())
    # published: PointNet++ SSG cls 1.47M (yanx27 port: 1,475,688), DGCNN 1.81M
    assert abs(count("pointnet2_ssg_cls") / 1.47e6 - 1) < 0.05
    assert abs(count("dgcnn_cls") / 1.81e6 - 1) < 0.05
    # the reference part segmenter (with its 3x3 transform net): ~1.46M
    parts = sum(p.numel() for p in create_model("dgcnn_partseg").parameters())
    assert abs(parts / 1.46e6 - 1) < 0.05
