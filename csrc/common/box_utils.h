// Box helpers shared by the CPU and CUDA kernels, so both devices compute bit-identical IoUs.
// Boxes are (x1, y1, x2, y2) with no "+1": width = x2 - x1. Inverted boxes have area 0.
#pragma once

#include "common/host_device.h"

namespace d2_boxunc {

template <typename T>
HOST_DEVICE inline T box_min(T a, T b) {
  return a < b ? a : b;
}

template <typename T>
HOST_DEVICE inline T box_max(T a, T b) {
  return a < b ? b : a;
}

template <typename T>
HOST_DEVICE inline T box_area(T x1, T y1, T x2, T y2) {
  const T w = x2 - x1;
  const T h = y2 - y1;
  return (w > T(0) && h > T(0)) ? w * h : T(0);
}

// IoU of a and b given their precomputed areas. Evaluated as inter / ((area_a + area_b) - inter),
// the same order as the PyTorch references; returns 0 when the boxes do not overlap or the union
// is empty. Written with selects rather than early returns: in the NMS loops whether a box
// overlaps the selection is a coin flip, which a branch would mispredict.
template <typename T>
HOST_DEVICE inline T box_iou(
    T ax1, T ay1, T ax2, T ay2, T area_a, T bx1, T by1, T bx2, T by2, T area_b) {
  const T iw = box_min(ax2, bx2) - box_max(ax1, bx1);
  const T ih = box_min(ay2, by2) - box_max(ay1, by1);
  const bool overlap = (iw > T(0)) & (ih > T(0));
  const T inter = overlap ? iw * ih : T(0);
  const T uni = area_a + area_b - inter;
  const bool valid = overlap & (uni > T(0));
  return (valid ? inter : T(0)) / (valid ? uni : T(1));  // an unconditional divide vectorises
}

}  // namespace d2_boxunc

#include <math.h>

namespace d2_boxunc {

HOST_DEVICE inline float box_exp(float x) {
  return expf(x);
}

HOST_DEVICE inline double box_exp(double x) {
  return exp(x);
}

}  // namespace d2_boxunc
