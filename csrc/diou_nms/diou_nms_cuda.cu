// CUDA DIoU-NMS: the suppression-mask kernel of iou_nms/iou_nms_grid.h with the DIoU overlap
// (MaskArgs::diou) and key = score; this file maps blocks and threads to its two phases.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "iou_nms/iou_nms_grid.h"

namespace d2_boxunc {
namespace iou_nms {
namespace {

template <typename T>
__global__ void diou_mask_kernel(MaskArgs<T> a) {
  const int64_t row_block = blockIdx.y;
  const int64_t col_block = blockIdx.x;
  if (!tile_needed(row_block, col_block)) return;  // the whole block: no thread reaches the sync
  __shared__ MaskTile<T> tile;
  mask_load_tile(col_block, threadIdx.x, a, &tile);
  __syncthreads();
  mask_row(row_block, col_block, threadIdx.x, a, tile);
}

at::Tensor diou_nms_cuda_kernel(
    const at::Tensor& boxes, const at::Tensor& scores, const std::optional<at::Tensor>& idxs,
    double iou_threshold) {
  TORCH_CHECK(boxes.is_cuda(), "boxes must be a CUDA tensor");
  c10::cuda::CUDAGuard guard(boxes.device());
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  return std::get<0>(iou_guided_nms_grid(
      boxes, scores, scores, idxs, iou_threshold, /*diou=*/true,
      [&]<typename T>(const MaskArgs<T>& a) {
        const dim3 grid(a.col_blocks, a.col_blocks);
        diou_mask_kernel<T><<<grid, kBlock, 0, stream>>>(a);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      }));
}

}  // namespace

TORCH_LIBRARY_IMPL(d2_boxunc, CUDA, m) {
  m.impl("diou_nms", &diou_nms_cuda_kernel);
}

}  // namespace iou_nms
}  // namespace d2_boxunc
