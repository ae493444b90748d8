// IoU-guided NMS and DIoU-NMS on a device: the key sort and the pairwise suppression bitmask (bit
// k of word (i, w) set when box i precedes box w * 64 + k in key order, both share a class and
// their overlap > threshold) are computed in parallel; the greedy pass over the mask, which is
// sequential, runs on the host after one copy, like torchvision's nms. The overlap is the IoU, or
// with `diou` IoU - rho^2 / c^2 (DIoU-NMS, Zheng et al., AAAI 2020, with key = score;
// csrc/diou_nms).
//
// The mask kernel has two phases per block (64 x 64 tile of box pairs), separated by
// __syncthreads: each thread loads one column box into shared memory, then each thread tests its
// row box against the tile. Both phases are HOST_DEVICE bodies of (block, thread) here, run by the
// CUDA kernel and, phase by phase, by the CPU launcher of the `_iou_guided_nms_gridcpu` test op
// (docs/gpu.md). The host code around the launch is shared the same way.
#pragma once

#include <ATen/ATen.h>

#include <bit>
#include <vector>

#include "common/box_utils.h"
#include "common/grid.h"
#include "common/nms_common.h"

namespace d2_boxunc {
namespace iou_nms {

constexpr int kBlock = 64;  // boxes per tile; one bit of a uint64 mask word each

template <typename T>
struct MaskArgs {
  int64_t n;
  const T* boxes;  // (n, 4) in key order
  const int64_t* cls;  // (n,) in key order, or nullptr for one class
  T iou_threshold;
  bool diou;  // overlap = IoU - box_diou_penalty (DIoU-NMS) instead of IoU
  int64_t col_blocks;
  unsigned long long* mask;  // (n, col_blocks)
};

// The shared memory of one block: the tile's column boxes (x1, y1, x2, y2, area) and classes.
template <typename T>
struct MaskTile {
  T boxes[kBlock * 5];
  int64_t cls[kBlock];
};

// Only tiles on or above the diagonal are computed: the greedy pass reads (i, w) for w >= i / 64.
HOST_DEVICE inline bool tile_needed(int64_t row_block, int64_t col_block) {
  return row_block <= col_block;
}

// Phase 1, thread `tid` of block (row_block, col_block): load column box tid into the tile.
template <typename T>
HOST_DEVICE inline void mask_load_tile(
    int64_t col_block, int tid, const MaskArgs<T>& a, MaskTile<T>* tile) {
  const int64_t col_size = box_min<int64_t>(a.n - col_block * kBlock, kBlock);
  if (tid >= col_size) return;
  const T* b = a.boxes + 4 * (col_block * kBlock + tid);
  T* s = tile->boxes + 5 * tid;
  s[0] = b[0];
  s[1] = b[1];
  s[2] = b[2];
  s[3] = b[3];
  s[4] = box_area(b[0], b[1], b[2], b[3]);
  tile->cls[tid] = a.cls ? a.cls[col_block * kBlock + tid] : 0;
}

// Phase 2, thread `tid`: the mask word of row box row_block * 64 + tid against the tile.
template <typename T>
HOST_DEVICE inline void mask_row(
    int64_t row_block, int64_t col_block, int tid, const MaskArgs<T>& a,
    const MaskTile<T>& tile) {
  const int64_t row_size = box_min<int64_t>(a.n - row_block * kBlock, kBlock);
  const int col_size = static_cast<int>(box_min<int64_t>(a.n - col_block * kBlock, kBlock));
  if (tid >= row_size) return;
  const int64_t i = row_block * kBlock + tid;
  const T* b = a.boxes + 4 * i;
  const T area = box_area(b[0], b[1], b[2], b[3]);
  const int64_t cls = a.cls ? a.cls[i] : 0;
  unsigned long long bits = 0;
  for (int k = row_block == col_block ? tid + 1 : 0; k < col_size; ++k) {
    const T* s = tile.boxes + 5 * k;
    T overlap = box_iou(b[0], b[1], b[2], b[3], area, s[0], s[1], s[2], s[3], s[4]);
    if (a.diou) overlap -= box_diou_penalty(b[0], b[1], b[2], b[3], s[0], s[1], s[2], s[3]);
    if (tile.cls[k] == cls && overlap > a.iou_threshold) bits |= 1ULL << k;
  }
  a.mask[i * a.col_blocks + col_block] = bits;
}

// The CPU launcher of the mask kernel: every block of the (col_blocks, col_blocks) grid, phase 1
// for all its threads, then phase 2 for all its threads.
template <typename T>
void mask_gridcpu(const MaskArgs<T>& a) {
  MaskTile<T> tile;
  for (int64_t row_block = 0; row_block < a.col_blocks; ++row_block) {
    for (int64_t col_block = 0; col_block < a.col_blocks; ++col_block) {
      if (!tile_needed(row_block, col_block)) continue;
      for (int tid = 0; tid < kBlock; ++tid) mask_load_tile(col_block, tid, a, &tile);
      for (int tid = 0; tid < kBlock; ++tid) mask_row(row_block, col_block, tid, a, tile);
    }
  }
}

// The whole op around the mask launch: `launch(args)` fills args.mask (a CUDA launch, or
// mask_gridcpu). `diou` selects the DIoU overlap. Returns (keep, out_scores) on the boxes' device.
template <typename Launch>
std::tuple<at::Tensor, at::Tensor> iou_guided_nms_grid(
    const at::Tensor& boxes, const at::Tensor& cls_scores, const at::Tensor& keys,
    const std::optional<at::Tensor>& idxs, double iou_threshold, bool diou, Launch&& launch) {
  check_boxes_arg(boxes, "boxes");
  const int64_t n = boxes.size(0);
  check_per_box_arg(cls_scores, "cls_scores", boxes, n);
  check_per_box_arg(keys, "keys", boxes, n);
  check_idxs_arg(idxs, boxes);
  if (n == 0) {
    return {at::empty({0}, boxes.options().dtype(at::kLong)), at::empty({0}, boxes.options())};
  }
  const at::Tensor order = std::get<1>(keys.sort(/*stable=*/true, /*dim=*/0, /*descending=*/true));
  const at::Tensor sorted_boxes = boxes.index_select(0, order).contiguous();
  at::Tensor sorted_cls;
  if (idxs.has_value()) sorted_cls = idxs->index_select(0, order).contiguous();
  const int64_t col_blocks = (n + kBlock - 1) / kBlock;
  at::Tensor mask = at::empty({n * col_blocks}, boxes.options().dtype(at::kLong));
  AT_DISPATCH_FLOATING_TYPES(boxes.scalar_type(), "iou_guided_nms_grid", [&] {
    MaskArgs<scalar_t> a{
        n,
        sorted_boxes.data_ptr<scalar_t>(),
        idxs.has_value() ? sorted_cls.data_ptr<int64_t>() : nullptr,
        static_cast<scalar_t>(iou_threshold),
        diou,
        col_blocks,
        reinterpret_cast<unsigned long long*>(mask.data_ptr<int64_t>())};
    launch(a);
  });

  // The one device -> host copy (a sync on CUDA): mask, order and the sorted cls scores.
  const at::Tensor mask_cpu = mask.cpu();
  const at::Tensor order_cpu = order.cpu();
  const at::Tensor cls_cpu = cls_scores.index_select(0, order).cpu();
  const auto* m = reinterpret_cast<const unsigned long long*>(mask_cpu.data_ptr<int64_t>());
  const int64_t* ord = order_cpu.data_ptr<int64_t>();

  at::Tensor keep_t, scores_t;
  AT_DISPATCH_FLOATING_TYPES(boxes.scalar_type(), "iou_guided_nms_grid_host", [&] {
    const scalar_t* c = cls_cpu.data_ptr<scalar_t>();
    std::vector<unsigned long long> removed(col_blocks, 0);
    std::vector<int64_t> keep;
    std::vector<scalar_t> out;
    for (int64_t i = 0; i < n; ++i) {
      if (removed[i / kBlock] & (1ULL << (i % kBlock))) continue;
      scalar_t best = c[i];
      const unsigned long long* row = m + i * col_blocks;
      for (int64_t w = i / kBlock; w < col_blocks; ++w) {
        unsigned long long fresh = row[w] & ~removed[w];
        removed[w] |= fresh;
        while (fresh) {
          const int bit = std::countr_zero(fresh);
          best = box_max(best, c[w * kBlock + bit]);
          fresh &= fresh - 1;
        }
      }
      keep.push_back(ord[i]);
      out.push_back(best);
    }
    const int64_t k = static_cast<int64_t>(keep.size());
    keep_t = at::empty({k}, at::kLong);
    scores_t = at::empty({k}, cls_cpu.options());
    std::copy(keep.begin(), keep.end(), keep_t.data_ptr<int64_t>());
    std::copy(out.begin(), out.end(), scores_t.data_ptr<scalar_t>());
  });
  return {keep_t.to(boxes.device()), scores_t.to(boxes.device())};
}

}  // namespace iou_nms
}  // namespace d2_boxunc
