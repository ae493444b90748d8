// CUDA IoU-guided NMS: the key sort and the pairwise suppression bitmask (bit j of row i set when
// i precedes j in key order, both share a class and IoU > threshold) run on the GPU; the greedy
// pass over the mask, which is sequential, runs on the host after one copy, like torchvision's nms.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <vector>

#include "common/box_utils.h"
#include "common/nms_common.h"

namespace d2_boxunc {

namespace {

constexpr int kBlock = 64;  // boxes per tile; one bit of a uint64 mask word each

template <typename T>
__global__ void iou_mask_kernel(
    int64_t n,
    const T* __restrict__ boxes,  // (n, 4) in key order
    const int64_t* __restrict__ cls,  // (n,) in key order, or nullptr for one class
    T iou_threshold,
    int64_t col_blocks,
    unsigned long long* __restrict__ mask) {
  const int64_t row_block = blockIdx.y;
  const int64_t col_block = blockIdx.x;
  if (row_block > col_block) return;  // only j > i is ever read
  const int row_size = static_cast<int>(box_min<int64_t>(n - row_block * kBlock, kBlock));
  const int col_size = static_cast<int>(box_min<int64_t>(n - col_block * kBlock, kBlock));

  __shared__ T col_boxes[kBlock * 5];
  __shared__ int64_t col_cls[kBlock];
  if (threadIdx.x < col_size) {
    const T* b = boxes + 4 * (col_block * kBlock + threadIdx.x);
    T* s = col_boxes + 5 * threadIdx.x;
    s[0] = b[0];
    s[1] = b[1];
    s[2] = b[2];
    s[3] = b[3];
    s[4] = box_area(b[0], b[1], b[2], b[3]);
    col_cls[threadIdx.x] = cls ? cls[col_block * kBlock + threadIdx.x] : 0;
  }
  __syncthreads();
  if (threadIdx.x >= row_size) return;

  const int64_t i = row_block * kBlock + threadIdx.x;
  const T* a = boxes + 4 * i;
  const T area_a = box_area(a[0], a[1], a[2], a[3]);
  const int64_t cls_a = cls ? cls[i] : 0;
  unsigned long long bits = 0;
  for (int k = row_block == col_block ? threadIdx.x + 1 : 0; k < col_size; ++k) {
    const T* s = col_boxes + 5 * k;
    if (col_cls[k] == cls_a &&
        box_iou(a[0], a[1], a[2], a[3], area_a, s[0], s[1], s[2], s[3], s[4]) > iou_threshold) {
      bits |= 1ULL << k;
    }
  }
  mask[i * col_blocks + col_block] = bits;
}

std::tuple<at::Tensor, at::Tensor> iou_guided_nms_cuda_kernel(
    const at::Tensor& boxes,
    const at::Tensor& cls_scores,
    const at::Tensor& keys,
    const std::optional<at::Tensor>& idxs,
    double iou_threshold) {
  TORCH_CHECK(boxes.is_cuda(), "boxes must be a CUDA tensor");
  check_boxes_arg(boxes, "boxes");
  const int64_t n = boxes.size(0);
  check_per_box_arg(cls_scores, "cls_scores", boxes, n);
  check_per_box_arg(keys, "keys", boxes, n);
  check_idxs_arg(idxs, boxes);
  if (n == 0) {
    return {at::empty({0}, boxes.options().dtype(at::kLong)), at::empty({0}, boxes.options())};
  }
  c10::cuda::CUDAGuard guard(boxes.device());
  const at::Tensor order = std::get<1>(keys.sort(/*stable=*/true, /*dim=*/0, /*descending=*/true));
  const at::Tensor sorted_boxes = boxes.index_select(0, order).contiguous();
  at::Tensor sorted_cls;
  if (idxs.has_value()) sorted_cls = idxs->index_select(0, order).contiguous();
  const int64_t col_blocks = (n + kBlock - 1) / kBlock;
  at::Tensor mask = at::empty({n * col_blocks}, boxes.options().dtype(at::kLong));

  const dim3 grid(col_blocks, col_blocks);
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(boxes.scalar_type(), "iou_guided_nms_cuda", [&] {
    iou_mask_kernel<scalar_t><<<grid, kBlock, 0, stream>>>(
        n, sorted_boxes.data_ptr<scalar_t>(),
        idxs.has_value() ? sorted_cls.data_ptr<int64_t>() : nullptr,
        static_cast<scalar_t>(iou_threshold), col_blocks,
        reinterpret_cast<unsigned long long*>(mask.data_ptr<int64_t>()));
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();

  const at::Tensor mask_cpu = mask.cpu();
  const at::Tensor order_cpu = order.cpu();
  const at::Tensor cls_cpu = cls_scores.index_select(0, order).cpu();
  const auto* m = reinterpret_cast<const unsigned long long*>(mask_cpu.data_ptr<int64_t>());
  const int64_t* ord = order_cpu.data_ptr<int64_t>();

  at::Tensor keep_t, scores_t;
  AT_DISPATCH_FLOATING_TYPES(boxes.scalar_type(), "iou_guided_nms_cuda_host", [&] {
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
          const int bit = __builtin_ctzll(fresh);
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

}  // namespace

TORCH_LIBRARY_IMPL(d2_boxunc, CUDA, m) {
  m.impl("iou_guided_nms", &iou_guided_nms_cuda_kernel);
}

}  // namespace d2_boxunc
