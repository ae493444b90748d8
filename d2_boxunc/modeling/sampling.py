"""A ``batch_size_per_image`` that samples nothing away.

detectron2's public ``subsample_labels`` (used by its ``RPN`` and ``ROIHeads``) keeps
``min(#positives, int(batch_size_per_image * positive_fraction))`` positives and
``min(#negatives, batch_size_per_image - kept positives)`` negatives, so a size that no image's
number of anchors or RoIs reaches keeps every labelled candidate (anchors: each keeps its label;
RoIs: positives first, then negatives, each group in a random order; ignored RoIs, label -1, are
dropped as always). aLRP Loss ranks all of them (the official code's ``PseudoSampler``).
"""

__all__ = ["SAMPLE_ALL"]

SAMPLE_ALL = 2**31 - 1
