// CUDA kernel of the deterministic CSR segment sum: out[s, f] = sum_{e in segment s} src[e, f].
//
// One thread per (segment, feature); a warp covers 32 consecutive features of one segment, so
// reads of src rows are coalesced. Each output element is written by exactly one thread that
// adds its segment's rows in edge order: no atomics, bitwise reproducible. Empty segments
// write zero. No torch headers here, so nvcc can compile (and CI can check) this file alone.
#include <cuda_runtime.h>
#include <cuda_fp16.h>
#include <cuda_bf16.h>

#include "segment_sum.h"

namespace ase_distill {

template <typename T, typename Acc>
__global__ void segment_sum_csr_kernel(const T* __restrict__ src,
                                       const int64_t* __restrict__ offsets,
                                       T* __restrict__ out, int64_t num_segments,
                                       int64_t width) {
  int64_t seg, feature;
  if (!thread_target(blockIdx.x, blockIdx.y, threadIdx.x, threadIdx.y, num_segments, width,
                     &seg, &feature)) {
    return;
  }
  const Acc acc = segment_reduce<T, Acc>(src, width, segment_range(offsets, seg), feature);
  out[seg * width + feature] = Convert<Acc, T>::from_acc(acc);
}

template <typename T, typename Acc>
cudaError_t launch_segment_sum_csr(const T* src, const int64_t* offsets, T* out,
                                   int64_t num_segments, int64_t width, cudaStream_t stream) {
  if (num_segments == 0 || width == 0) return cudaSuccess;
  const LaunchShape shape = launch_shape(num_segments, width);
  if (shape.grid_y > 65535) return cudaErrorInvalidConfiguration;
  const dim3 block(kFeatureThreads, kSegmentsPerBlock);
  const dim3 grid(static_cast<unsigned int>(shape.grid_x), static_cast<unsigned int>(shape.grid_y));
  segment_sum_csr_kernel<T, Acc><<<grid, block, 0, stream>>>(src, offsets, out, num_segments,
                                                              width);
  return cudaGetLastError();
}

// Explicit instantiations used by the torch binding.
template cudaError_t launch_segment_sum_csr<float, float>(const float*, const int64_t*, float*,
                                                          int64_t, int64_t, cudaStream_t);
template cudaError_t launch_segment_sum_csr<double, double>(const double*, const int64_t*,
                                                            double*, int64_t, int64_t,
                                                            cudaStream_t);
template cudaError_t launch_segment_sum_csr<__half, float>(const __half*, const int64_t*, __half*,
                                                           int64_t, int64_t, cudaStream_t);
template cudaError_t launch_segment_sum_csr<__nv_bfloat16, float>(const __nv_bfloat16*,
                                                                  const int64_t*, __nv_bfloat16*,
                                                                  int64_t, int64_t,
                                                                  cudaStream_t);

}  // namespace ase_distill
