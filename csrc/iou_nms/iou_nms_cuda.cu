// CUDA IoU-guided NMS and DIoU-NMS: the mask kernel's two phases (load a tile of column boxes into
// shared memory; test each row box against it) and the host code around it are in iou_nms_grid.h,
// which the CPU test ops `_iou_guided_nms_gridcpu` / `_diou_nms_gridcpu` run too; this file maps
// blocks and threads to them. DIoU-NMS is the same kernel with MaskArgs::diou and key = score.
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
__global__ void iou_mask_kernel(MaskArgs<T> a) {
  const int64_t row_block = blockIdx.y;
  const int64_t col_block = blockIdx.x;
  if (!tile_needed(row_block, col_block)) return;  // the whole block: no thread reaches the sync
  __shared__ MaskTile<T> tile;
  mask_load_tile(col_block, threadIdx.x, a, &tile);
  __syncthreads();
  mask_row(row_block, col_block, threadIdx.x, a, tile);
}

std::tuple<at::Tensor, at::Tensor> mask_nms_cuda(
    const at::Tensor& boxes, const at::Tensor& cls_scores, const at::Tensor& keys,
    const std::optional<at::Tensor>& idxs, double iou_threshold, bool diou) {
  TORCH_CHECK(boxes.is_cuda(), "boxes must be a CUDA tensor");
  c10::cuda::CUDAGuard guard(boxes.device());
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  return iou_guided_nms_grid(
      boxes, cls_scores, keys, idxs, iou_threshold, diou,
      [&]<typename T>(const MaskArgs<T>& a) {
        const dim3 grid(a.col_blocks, a.col_blocks);
        iou_mask_kernel<T><<<grid, kBlock, 0, stream>>>(a);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
}

std::tuple<at::Tensor, at::Tensor> iou_guided_nms_cuda_kernel(
    const at::Tensor& boxes, const at::Tensor& cls_scores, const at::Tensor& keys,
    const std::optional<at::Tensor>& idxs, double iou_threshold) {
  return mask_nms_cuda(boxes, cls_scores, keys, idxs, iou_threshold, /*diou=*/false);
}

at::Tensor diou_nms_cuda_kernel(
    const at::Tensor& boxes, const at::Tensor& scores, const std::optional<at::Tensor>& idxs,
    double iou_threshold) {
  return std::get<0>(mask_nms_cuda(boxes, scores, scores, idxs, iou_threshold, /*diou=*/true));
}

}  // namespace

TORCH_LIBRARY_IMPL(d2_boxunc, CUDA, m) {
  m.impl("iou_guided_nms", &iou_guided_nms_cuda_kernel);
  m.impl("diou_nms", &diou_nms_cuda_kernel);
}

}  // namespace iou_nms
}  // namespace d2_boxunc
