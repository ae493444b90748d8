"""The synthetic switch keeps every detector trainable: each object gets a positive anchor; it
shrinks sampling, except aLRP's keep-everything sampling."""

import numpy as np
import pytest
import torch
from detectron2.config import LazyConfig, instantiate
from detectron2.data import DatasetCatalog
from detectron2.structures import Boxes, BoxMode, pairwise_iou

from d2_boxunc.config import to_synthetic
from d2_boxunc.config.cli import load_config, resolve_config_file
from d2_boxunc.config.synthetic import MIN_ANCHOR_PER_STRIDE, TRAIN_DATASET
from d2_boxunc.modeling import SAMPLE_ALL

CONFIGS = {
    "rpn": "configs/Baselines/faster_rcnn_R_50_FPN_1x.py",
    "retinanet": "configs/aLRPLoss/focal_retinanet_R_50_FPN_100ep_512.py",
    "retinanet_atss": "configs/aLRPLoss/alrp_retinanet_R_50_FPN_100ep_512_atss.py",
}
# mean anchors at IoU >= 0.5 per training object: the RPN's 6.7 feed a second stage; a one-stage
# detector learns from these alone (RetinaNet: 19.5, and 5.0 under the old halving rule)
A7 = "configs/aLRPLoss/alrp_faster_rcnn_R_50_FPN_100ep_512.py"
MIN_POSITIVES = {"rpn": 5.0, "retinanet": 10.0, "retinanet_atss": 6.0}  # ATSS: 2 anchors a place


def _anchor_generator(cfg):
    model = cfg.model
    node = model.get("anchor_generator", None) or model.proposal_generator.anchor_generator
    return node


@pytest.mark.parametrize("name", list(CONFIGS))
def test_anchors_stay_dense_enough_for_the_matcher(name):
    """Every level's smallest anchor is >= 4x its stride, every synthetic training object has an
    anchor at IoU >= 0.5 (the matcher's positive threshold), and the objects get enough positive
    anchors.  The switch once halved RetinaNet's anchors to 2x stride: objects then had 5
    positives each, on coarse levels, and RetinaNet trained to 18 AP instead of 43."""
    cfg = load_config(CONFIGS[name], synthetic=True)
    node = _anchor_generator(cfg)
    for level, stride in zip(node.sizes, node.strides):
        assert min(level) >= MIN_ANCHOR_PER_STRIDE * stride
    generator = instantiate(node)
    dicts = DatasetCatalog.get(TRAIN_DATASET)[:40]
    positives = []
    for d in dicts:
        h, w = d["height"], d["width"]
        strides = generator.strides
        # feature maps as the backbone makes them (image padded to the largest stride)
        pad = max(strides)
        hp, wp = -(-h // pad) * pad, -(-w // pad) * pad
        feats = [torch.zeros(1, 1, hp // s, wp // s) for s in strides]
        anchors = Boxes.cat(generator(feats))
        gt = Boxes(
            torch.tensor(
                [
                    BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS)
                    for a in d["annotations"]
                ]
            )
        )
        positives += (pairwise_iou(gt, anchors) >= 0.5).sum(dim=1).tolist()
    positives = np.array(positives)
    assert len(positives) > 100 and (positives > 0).all()
    assert positives.mean() >= MIN_POSITIVES[name], positives.mean()


def test_retinanet_head_gets_group_norm_and_rpn_anchors_still_halve():
    retina = load_config(CONFIGS["retinanet"], synthetic=True)
    assert retina.model.head.norm == "GN"
    rpn = _anchor_generator(load_config(CONFIGS["rpn"], synthetic=True))
    np.testing.assert_allclose([s[0] for s in rpn.sizes], [16, 32, 64, 128, 256])


def test_sampling_shrinks_except_where_every_candidate_is_kept():
    """detectron2's RPN / ROI sample sizes become 128; aLRP's heads (the class default
    SAMPLE_ALL, or SAMPLE_ALL set in a config) keep every anchor and RoI."""
    base = load_config(CONFIGS["rpn"], synthetic=True).model
    assert base.proposal_generator.batch_size_per_image == 128
    assert base.roi_heads.batch_size_per_image == 128
    a7 = load_config(A7, synthetic=True).model
    assert "batch_size_per_image" not in a7.proposal_generator  # the class default: SAMPLE_ALL
    assert "batch_size_per_image" not in a7.roi_heads
    cfg = LazyConfig.load(resolve_config_file(A7))
    cfg.model.proposal_generator.batch_size_per_image = SAMPLE_ALL
    cfg.model.roi_heads.batch_size_per_image = SAMPLE_ALL
    a7 = to_synthetic(cfg).model
    assert a7.proposal_generator.batch_size_per_image == SAMPLE_ALL
    assert a7.roi_heads.batch_size_per_image == SAMPLE_ALL
