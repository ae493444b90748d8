"""``configs/quick_schedules/*_instant_test.py``: the real paper model (full widths, ResNet-50,
the paper's heads, losses and test settings) run for a couple of iterations at a small image size,
as detectron2's ``quick_schedules`` do, on the synthetic COCO-format set so that no download is
needed (``D2_BOXUNC_DATA`` says where it is generated).

    python train_net.py --config-file configs/quick_schedules/kl_faster_rcnn_R_50_FPN_instant_test.py
    # add train.device=cpu without a GPU

What changes from the paper config: the data (``boxunc_synth_train``, 8 validation images),
``num_classes`` (the synthetic classes), the image size (short side 160, at most 256; the SSD
rows crop to 160 x 160), the batch (2 images), ``train.max_iter`` (2), no initial weights, so
the backbone's FrozenBN becomes GroupNorm and nothing is frozen (a frozen BN with no ImageNet
statistics normalises nothing, and a randomly initialised ResNet-50 then diverges at once), and
the periods (evaluate and checkpoint at the end, log every iteration), and the test score
threshold (0: an untrained model's scores are all low). The lr schedule is the
paper's, which detectron2 scales to ``max_iter``.
"""

import detectron2.data.transforms as T
from detectron2.config import LazyCall as L

from d2_boxunc.config.synthetic import set_num_classes
from d2_boxunc.data.synthetic import CLASS_NAMES

TRAIN_SET = "boxunc_synth_train"
TEST_SET = "boxunc_synth_val8"  # registered on use (d2_boxunc.data.register)


def make_instant(dataloader, model, train, max_iter: int = 2, size: int = 160, max_size: int = 256):
    """Shrink a paper config in place to an instant test (see the module docstring)."""
    dataloader.train.dataset.names = TRAIN_SET
    dataloader.train.total_batch_size = 2
    dataloader.train.num_workers = 0
    augs = dataloader.train.mapper.augmentations
    if "size" in augs:  # the SSD pipeline of the aLRP rows: a size x size crop
        augs.size = size
    else:
        dataloader.train.mapper.augmentations = [
            L(T.ResizeShortestEdge)(short_edge_length=size, max_size=max_size),
            L(T.RandomFlip)(horizontal=True),
        ]
    dataloader.test.dataset.names = TEST_SET
    dataloader.test.num_workers = 0
    dataloader.test.mapper.augmentations = [
        L(T.ResizeShortestEdge)(short_edge_length=size, max_size=max_size)
    ]
    set_num_classes(model, len(CLASS_NAMES))
    bottom_up = model.backbone.bottom_up
    bottom_up.stem.norm = "GN"
    bottom_up.stages.norm = "GN"
    bottom_up.freeze_at = 0
    # an untrained model scores about 1 / (classes + 1): keep every detection, so the evaluation
    # has an AP to report (train_net.py refuses a NaN AP, the sign of a model that found nothing)
    roi_heads = model.get("roi_heads", {})
    predictors = list(roi_heads.get("box_predictors", []))  # Cascade R-CNN: one per stage
    predictors.append(roi_heads.get("box_predictor", None))
    for predictor in predictors:
        if predictor is not None and "test_score_thresh" in predictor:
            predictor.test_score_thresh = 0.0
    if "head" in model:  # RetinaNet
        model.test_score_thresh = 0.0
    train.max_iter = max_iter
    train.init_checkpoint = ""
    train.eval_period = max_iter
    train.checkpointer.period = max_iter
    train.log_period = 1
