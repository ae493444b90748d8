// Schema of the KL-Loss inference loop (He et al., CVPR 2019, Alg. 1;
// docs/design.md#variance-voting-and-soft-nms):
// greedy selection, variance voting and hard or Gaussian soft suppression.
#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(d2_boxunc, m) {
  // boxes (N, 4) xyxy; scores (N,); log_vars (N, 4) alpha = log sigma^2 per coordinate, or None
  // for no voting; idxs (N,) int64 class ids or None (one class). Voters of a selected box m are m
  // and the not-yet-selected boxes with IoU > vote_iou_threshold, weight
  // exp(-(1 - IoU)^2 / sigma_t - alpha). Suppression: soft=False removes IoU > iou_threshold;
  // soft=True multiplies scores by exp(-IoU^2 / soft_sigma); then scores < score_threshold are
  // pruned. Returns keep (K,) int64, voted boxes (K, 4) and the score of each kept box at its
  // selection; with idxs, classes in ascending id order, each in selection order.
  m.def(
      "kl_nms(Tensor boxes, Tensor scores, Tensor? log_vars, Tensor? idxs, float iou_threshold, "
      "float score_threshold, float sigma_t, float vote_iou_threshold, bool soft, "
      "float soft_sigma) -> (Tensor, Tensor, Tensor)");
}
