"""Every registered model: shapes, gradients, order invariance, cloud isolation."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.data import Batch, Data

from pointsam import ops
from pointsam.models import create_model, list_models
from pointsam.models.registry import register_model
from tests.models._models_tiny import ragged, tiny

MODELS = list_models()
CLS = [n for n in MODELS if n.endswith("_cls")]
REQUIRED = ["pointnet2_ssg_cls", "pointnet2_msg_cls", "pointnet2_ssg_partseg",
            "pointnet2_msg_partseg", "pointnet2_ssg_semseg", "dgcnn_cls",
            "dgcnn_partseg", "dgcnn_semseg", "pointnet2_lite_cls", "dgcnn_lite_cls",
            "pointnet2_lite_semseg", "dgcnn_lite_semseg", "pointnet2_lite_partseg",
            "dgcnn_lite_partseg"]


def _data(name: str, sizes: tuple[int, ...] = (9, 14, 20), seed: int = 0) -> Batch:
    pos, batch = ragged(sizes, seed)
    clouds = []
    for b in range(len(sizes)):
        d = Data(pos=pos[batch == b])
        if "partseg" in name:
            d.category = torch.tensor([(3 * b + 1) % 16])
        clouds.append(d)
    return Batch.from_data_list(clouds)


def _num_classes(name: str) -> int:
    return 50 if "partseg" in name else 5


def _build(name: str) -> torch.nn.Module:
    return create_model(name, num_classes=_num_classes(name), **tiny(name))


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
    rows = data.num_graphs if name.endswith("_cls") else data.num_nodes
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
        s, e = int(data.ptr[1]), int(data.ptr[2])
        assert alone.shape[0] == e - s
        assert torch.allclose(full[s:e], alone, atol=1e-4)


def test_changing_one_cloud_leaves_the_others():
    m = _build("dgcnn_lite_semseg").eval()
    data = _data("dgcnn_lite_semseg")
    pos2 = data.pos.clone()
    pos2[data.batch == 0] *= 3.0
    with torch.no_grad():
        a = m(data)
        b = m(pos=pos2, batch=data.batch)
    keep = data.batch != 0
    assert torch.allclose(a[keep], b[keep], atol=1e-5)
    assert not torch.allclose(a[~keep], b[~keep])


def test_reference_parameter_counts():
    def count(name: str) -> int:
        return sum(p.numel() for p in create_model(name, num_classes=40).parameters())
    # published: PointNet++ SSG cls 1.47M (yanx27 port: 1,475,688), DGCNN 1.81M
    assert abs(count("pointnet2_ssg_cls") / 1.47e6 - 1) < 0.05
    assert abs(count("dgcnn_cls") / 1.81e6 - 1) < 0.05
    # the reference part segmenter (with its 3x3 transform net): ~1.46M
    parts = sum(p.numel() for p in create_model("dgcnn_partseg").parameters())
    assert abs(parts / 1.46e6 - 1) < 0.05


def test_spatial_transform_starts_as_identity_and_is_per_cloud():
    from pointsam.models.dgcnn import SpatialTransform

    g = torch.Generator().manual_seed(6)
    pos = torch.randn(40, 3, generator=g)
    batch = torch.tensor([0] * 15 + [1] * 25)
    t = SpatialTransform().eval()
    idx = ops.knn(pos, 6, batch)[0]
    out, m = t(pos, idx, batch, 2)
    assert torch.equal(out, pos) and torch.equal(m, torch.eye(3).expand(2, 3, 3))
    torch.nn.init.normal_(t.transform.weight, std=0.1, generator=g)
    out, m = t(pos, idx, batch, 2)
    # p'_i = p_i T_b, and cloud 0's transform ignores cloud 1's points
    assert torch.allclose(out[:15], pos[:15] @ m[0], atol=1e-6)
    pos2 = pos.clone()
    pos2[15:] += 3.0
    _, m2 = t(pos2, ops.knn(pos2, 6, batch)[0], batch, 2)
    assert torch.allclose(m2[0], m[0], atol=1e-6)
    assert not torch.allclose(m2[1], m[1])


def test_partseg_needs_category():
    m = _build("pointnet2_lite_partseg").eval()
    pos, batch = ragged()
    with pytest.raises(ValueError, match="category"):
        m(pos=pos, batch=batch)
    with pytest.raises(ValueError, match=r"in \[0, 16\)"):
        m(pos=pos, batch=batch, category=torch.tensor([0, 1, 16]))
    with pytest.raises(ValueError, match="one per cloud"):
        m(pos=pos, batch=batch, category=torch.tensor([0, 1]))


def test_partseg_uses_the_category():
    m = _build("dgcnn_lite_partseg").eval()
    pos, batch = ragged()
    with torch.no_grad():
        a = m(pos=pos, batch=batch, category=torch.tensor([0, 1, 2]))
        b = m(pos=pos, batch=batch, category=torch.tensor([5, 1, 2]))
    first = batch == 0
    assert not torch.allclose(a[first], b[first])
    assert torch.allclose(a[~first], b[~first], atol=1e-5)


def test_features_required_when_in_channels():
    m = create_model("dgcnn_lite_cls", in_channels=3, **tiny("dgcnn_lite_cls")).eval()
    pos, batch = ragged()
    with pytest.raises(ValueError, match="in_channels=3"):
        m(pos=pos, batch=batch)
    with pytest.raises(ValueError, match="channels, expected 3"):
        m(pos=pos, batch=batch, x=torch.randn(pos.size(0), 4))
    assert m(pos=pos, batch=batch, x=torch.randn(pos.size(0), 3)).shape == (3, 10)


def test_bad_input_is_named():
    m = _build("pointnet2_lite_cls").eval()
    pos, batch = ragged()
    pos[3, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        m(pos=pos, batch=batch)
    with pytest.raises(ValueError, match="no pos"):
        m(Data(x=torch.randn(3, 3)))


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
