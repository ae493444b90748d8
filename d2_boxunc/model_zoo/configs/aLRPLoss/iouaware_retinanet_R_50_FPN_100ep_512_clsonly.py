"""A0i eval-only: the IoU-aware RetinaNet's checkpoint ranked by the class score alone
(``iou_score_alpha = 0``), to isolate the IoU-aware score (docs/retinanet_heads.md#iou-branch).

    train_net.py --config-file configs/aLRPLoss/iouaware_retinanet_R_50_FPN_100ep_512_clsonly.py \\
        --eval-only train.init_checkpoint=output/iouaware_retinanet_R_50_FPN_100ep_512/model_final.pth

Deviations from the official recipe: those of A0i (its checkpoint).
"""

from .iouaware_retinanet_R_50_FPN_100ep_512 import (
    dataloader,
    lr_multiplier,
    model,
    optimizer,
    train,
)

model.iou_score_alpha = 0.0
train.output_dir = "./output/iouaware_retinanet_R_50_FPN_100ep_512_clsonly"
