"""I1a (eval-only of I1): the IoU branch off at test time, plain NMS on the cls score.

Paper 37.0; OpenMMLab-IoUNet 37.8.

    train_net.py --config-file configs/IoUNet/iounet_faster_rcnn_R_50_FPN_1x_nohead.py --eval-only \\
        train.init_checkpoint=output/iounet_faster_rcnn_R_50_FPN_1x/model_final.pth

Deviations from the official recipe: those of I1 (its checkpoint: multi-scale training,
1000-iteration warm-up, MSRA R-50, PrRoIPool ``aligned=True``); the twin
``iounet_faster_rcnn_R_50_FPN_1x_nohead_official.py`` follows OpenMMLab-IoUNet's recipe.
"""

from .iounet_faster_rcnn_R_50_FPN_1x import dataloader, lr_multiplier, model, optimizer, train

model.roi_heads.test_iou_head = False
train.output_dir = "./output/iounet_faster_rcnn_R_50_FPN_1x_nohead"
