"""K7: K1 fine-tuned for another 2x from K0's COCO checkpoint, as the official KL configs do
(their ``TRAIN.WEIGHTS`` is Detectron's COCO-trained 2x Faster R-CNN). The new alpha layer starts
from its init; every other weight from the baseline.

    train_net.py --config-file configs/KLLoss/kl_faster_rcnn_R_50_FPN_2x_ft_from_baseline.py \\
        --num-gpus 8 train.init_checkpoint=output/kl_faster_rcnn_R_50_FPN_2x_baseline/model_final.pth

Deviations from the official recipe: the starting checkpoint is our K0 (detectron2 recipe) rather
than Detectron's COCO model; otherwise K3's list (multi-scale training, 1000-iteration warm-up from
0.001, ROIAlignV2, XYWH RPN, sigma_t 0.02 / voters IoU > 0). The twin
``kl_faster_rcnn_R_50_FPN_2x_official.py`` starts from Detectron's own COCO model in the official
recipe.
"""

from .kl_faster_rcnn_R_50_FPN_2x_varvote_softnms import (
    dataloader,
    lr_multiplier,
    model,
    optimizer,
    train,
)

train.init_checkpoint = "./output/kl_faster_rcnn_R_50_FPN_2x_baseline/model_final.pth"
train.output_dir = "./output/kl_faster_rcnn_R_50_FPN_2x_ft_from_baseline"
