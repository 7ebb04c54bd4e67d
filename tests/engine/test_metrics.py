"""Metrics against hand-computed examples."""

import math

import pytest
import torch

from pointsam.engine.metrics import (
    ClsMetrics,
    PartSegMetrics,
    SemSegMetrics,
    category_part_mask,
    restrict_to_category,
)


def test_cls_hand_computed():
    m = ClsMetrics(3)
    # truth:      0 0 0 1 1 2
    # prediction: 0 0 1 1 0 2
    m.update(torch.tensor([0, 0, 1]), torch.tensor([0, 0, 0]))
    m.update(torch.tensor([1, 0, 2]), torch.tensor([1, 1, 2]))
    r = m.compute()
    assert m.confusion.tolist() == [[2, 1, 0], [1, 1, 0], [0, 0, 1]]
    assert r["oa"] == pytest.approx(4 / 6)
    assert r["macc"] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)


def test_cls_macc_skips_absent_classes():
    m = ClsMetrics(4)
    m.update(torch.tensor([0, 1]), torch.tensor([0, 0]))
    assert m.compute()["macc"] == pytest.approx(0.5)  # only class 0 is present


def test_cls_bad_input():
    m = ClsMetrics(3)
    with pytest.raises(ValueError, match="same shape"):
        m.update(torch.tensor([0, 1]), torch.tensor([0]))
    with pytest.raises(ValueError, match="outside"):
        m.update(torch.tensor([3]), torch.tensor([0]))


def test_partseg_shapenet_rule():
    # category 0: parts {0, 1}; category 1: parts {2, 3, 4}
    m = PartSegMetrics([[0, 1], [2, 3, 4]], num_parts=5)
    # shape A (cat 0): truth 0 0 1 1, pred 0 1 1 1
    #   part 0: I=1 U=2 -> 1/2; part 1: I=2 U=3 -> 2/3; shape = 7/12
    # shape B (cat 1): truth 2 2 3, pred 2 2 3 (part 4 absent from both -> IoU 1)
    #   shape = (1 + 1 + 1) / 3 = 1
    # shape C (cat 1): truth 2 3 3, pred 3 3 3
    #   part 2: I=0 U=1 -> 0; part 3: I=2 U=3 -> 2/3; part 4 -> 1; shape = 5/9
    pred = torch.tensor([0, 1, 1, 1, 2, 2, 3, 3, 3, 3])
    true = torch.tensor([0, 0, 1, 1, 2, 2, 3, 2, 3, 3])
    batch = torch.tensor([0, 0, 0, 0, 1, 1, 1, 2, 2, 2])
    m.update(pred, true, category=torch.tensor([0, 1, 1]), batch=batch)
    r = m.compute()
    a, b, c = 7 / 12, 1.0, 5 / 9
    assert r["instance_miou"] == pytest.approx((a + b + c) / 3)
    assert r["class_miou"] == pytest.approx((a + (b + c) / 2) / 2)


def test_partseg_accumulates_over_batches():
    m1 = PartSegMetrics([[0, 1]], 2)
    m2 = PartSegMetrics([[0, 1]], 2)
    p, t = torch.tensor([0, 1, 1, 0, 0, 1]), torch.tensor([0, 1, 0, 0, 1, 1])
    b = torch.tensor([0, 0, 0, 1, 1, 1])
    m1.update(p, t, torch.tensor([0, 0]), b)
    m2.update(p[:3], t[:3], torch.tensor([0]), b[:3])
    m2.update(p[3:], t[3:], torch.tensor([0]), b[3:] - 1)
    assert m1.compute() == m2.compute()


def test_restrict_to_category():
    mask = category_part_mask([[0, 1], [2, 3, 4]], 5)
    logits = torch.tensor([[0.0, 1, 5, 0, 0], [9.0, 0, 1, 2, 0]])
    out = restrict_to_category(logits, torch.tensor([0, 1]), torch.tensor([0, 1]), mask)
    assert out.argmax(-1).tolist() == [1, 3]  # 5 and 9 are outside the category


def test_semseg_ignore_and_absent_class():
    m = SemSegMetrics(4, ignore_index=255)
    # truth 0 0 1 1 255 2 ; pred 0 1 1 1 3 0  (class 3 only predicted on ignored)
    m.update(torch.tensor([0, 1, 1, 1, 3, 0]), torch.tensor([0, 0, 1, 1, 255, 2]))
    r = m.compute()
    # class 0: TP 1, FP 1 (the 2 predicted 0), FN 1 -> 1/3
    # class 1: TP 2, FP 1, FN 0 -> 2/3 ; class 2: TP 0, FN 1 -> 0 ; class 3: NaN
    assert r["iou"][:3] == pytest.approx([1 / 3, 2 / 3, 0.0])
    assert math.isnan(r["iou"][3])
    assert r["miou"] == pytest.approx((1 / 3 + 2 / 3 + 0) / 3)
    assert r["oa"] == pytest.approx(3 / 5)


def test_semseg_rejects_out_of_range_labels():
    m = SemSegMetrics(3, ignore_index=-1)
    with pytest.raises(ValueError, match="ignore label"):
        m.update(torch.tensor([0]), torch.tensor([7]))


def test_partseg_rejects_out_of_range_input():
    m = PartSegMetrics([[0, 1], [2, 3, 4]], num_parts=5)
    cat, batch = torch.tensor([0]), torch.zeros(3, dtype=torch.long)
    pred = torch.tensor([0, 1, 1])

    def update(target, category=cat, b=batch, p=pred):
        m.update(p, torch.tensor(target), category, b)

    with pytest.raises(ValueError, match=r"outside 0\.\.4 .*no ignore label"):
        update([0, 1, 5])  # >= num_parts
    with pytest.raises(ValueError, match=r"outside 0\.\.4"):
        update([0, -1, 1])  # there is no ignore index in part segmentation
    with pytest.raises(ValueError, match="not a part of its shape's category 0"):
        update([0, 3, 1])  # a part of category 1 in a shape of category 0
    with pytest.raises(ValueError, match=r"category outside 0\.\.1"):
        update([0, 1, 1], category=torch.tensor([2]))
    with pytest.raises(ValueError, match=r"shapes outside 0\.\.0"):
        update([0, 1, 1], b=torch.tensor([0, 0, 1]))
    with pytest.raises(ValueError, match="shape of target"):
        update([0, 1, 1], b=torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match=r"pred holds a class outside 0\.\.4"):
        update([0, 1, 1], p=torch.tensor([0, 1, 7]))
    assert m.count.sum() == 0  # nothing was added by the rejected updates
    update([0, 0, 1])  # pred 0 1 1: parts 0 and 1 each I=1, U=2
    assert m.compute()["instance_miou"] == pytest.approx(0.5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_semseg_miou_equals_torchmetrics_jaccard(seed):
    """The one mIoU against an independent implementation: torchmetrics'
    MulticlassJaccardIndex (macro), whose convention is ours: a class with no
    true, no predicted point (TP + FP + FN = 0) is left out of the mean; a class
    predicted but absent from the ground truth counts with IoU 0."""
    tm = pytest.importorskip("torchmetrics.classification")
    from pointsam.engine.metrics import SemSegMetrics

    g = torch.Generator().manual_seed(seed)
    c = 7
    target = torch.randint(0, 5, (4000,), generator=g)  # classes 5, 6 absent
    target[torch.rand(4000, generator=g) < 0.1] = -1  # unlabeled
    pred = torch.where(torch.rand(4000, generator=g) < 0.6, target.clamp(min=0),
                       torch.randint(0, 6, (4000,), generator=g))  # 5 predicted
    m = SemSegMetrics(c, ignore_index=-1)
    for chunk in range(4):  # accumulated over batches
        sl = slice(chunk * 1000, (chunk + 1) * 1000)
        m.update(pred[sl], target[sl])
    got = m.compute()
    ref = tm.MulticlassJaccardIndex(c, average="macro", ignore_index=-1)(pred, target)
    per = tm.MulticlassJaccardIndex(c, average="none", ignore_index=-1)(pred, target)
    acc = tm.MulticlassAccuracy(c, average="micro", ignore_index=-1)(pred, target)
    assert got["miou"] == pytest.approx(float(ref), abs=1e-6)
    assert got["oa"] == pytest.approx(float(acc), abs=1e-6)
    assert got["iou"][5] == 0.0 and math.isnan(got["iou"][6])  # predicted-only, none
    assert got["iou"][:6] == pytest.approx(per[:6].tolist(), abs=1e-6)
