"""COCO 2017 data for box-only detectors: no instance masks are loaded."""

from .coco import dataloader

dataloader.train.mapper.use_instance_mask = False
