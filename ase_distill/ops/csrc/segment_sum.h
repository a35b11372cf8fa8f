// Host- and device-callable indexing logic of the CSR segment sum.
//
// Everything that decides *which* elements are summed lives here, so that CPU tests compile this
// header with a plain C++ compiler and execute it (tests/csrc/test_segment_sum_host.cpp), while
// the CUDA kernel (segment_sum_kernel.cu) calls the very same functions on the device.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#endif

#if defined(__CUDACC__)
#define ASE_DISTILL_HD __host__ __device__ __forceinline__
#else
#define ASE_DISTILL_HD inline
#endif

namespace ase_distill {

// Threads of a block along the feature axis (one warp: coalesced reads of a row of src).
constexpr int kFeatureThreads = 32;
// Segments handled by one block (blockDim.y).
constexpr int kSegmentsPerBlock = 8;

ASE_DISTILL_HD int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Edge range [begin, end) of segment `seg` in a CSR row pointer.
struct SegmentRange {
  int64_t begin;
  int64_t end;
};

ASE_DISTILL_HD SegmentRange segment_range(const int64_t* offsets, int64_t seg) {
  return SegmentRange{offsets[seg], offsets[seg + 1]};
}

// Launch geometry: x over segment groups (2^31-1 limit), y over feature tiles.
struct LaunchShape {
  int64_t grid_x;
  int64_t grid_y;
};

ASE_DISTILL_HD LaunchShape launch_shape(int64_t num_segments, int64_t width) {
  return LaunchShape{ceil_div(num_segments, kSegmentsPerBlock), ceil_div(width, kFeatureThreads)};
}

// Which (segment, feature) a thread owns; returns false for threads past the edges.
ASE_DISTILL_HD bool thread_target(int64_t block_x, int64_t block_y, int64_t thread_x,
                                  int64_t thread_y, int64_t num_segments, int64_t width,
                                  int64_t* seg, int64_t* feature) {
  *seg = block_x * kSegmentsPerBlock + thread_y;
  *feature = block_y * kFeatureThreads + thread_x;
  return *seg < num_segments && *feature < width;
}

// Conversions between a stored type T and its accumulator Acc. torch builds extensions with
// __CUDA_NO_HALF_CONVERSIONS__ / __CUDA_NO_BFLOAT16_CONVERSIONS__, which remove the implicit
// casts of __half and __nv_bfloat16, so those go through the explicit intrinsics.
template <typename Acc, typename T>
struct Convert {
  static ASE_DISTILL_HD Acc to_acc(T x) { return static_cast<Acc>(x); }
  static ASE_DISTILL_HD T from_acc(Acc x) { return static_cast<T>(x); }
};

#if defined(__CUDACC__)
template <>
struct Convert<float, __half> {
  static __host__ __device__ __forceinline__ float to_acc(__half x) { return __half2float(x); }
  static __host__ __device__ __forceinline__ __half from_acc(float x) { return __float2half(x); }
};

template <>
struct Convert<float, __nv_bfloat16> {
  static __host__ __device__ __forceinline__ float to_acc(__nv_bfloat16 x) {
    return __bfloat162float(x);
  }
  static __host__ __device__ __forceinline__ __nv_bfloat16 from_acc(float x) {
    return __float2bfloat16(x);
  }
};
#endif

// Deterministic sum of column `feature` over the rows of one segment, in edge order, with an
// accumulator type Acc (float for half / bfloat16 / float, double for double).
template <typename T, typename Acc>
ASE_DISTILL_HD Acc segment_reduce(const T* src, int64_t width, SegmentRange range,
                                  int64_t feature) {
  Acc acc = Acc(0);
  for (int64_t e = range.begin; e < range.end; ++e) {
    acc += Convert<Acc, T>::to_acc(src[e * width + feature]);
  }
  return acc;
}

// First index i at which the row pointer is invalid (offsets[0] != 0, a decrease, or
// offsets[n] != num_edges), or -1 when valid. Host-side validation of the input.
inline int64_t first_invalid_offset(const int64_t* offsets, int64_t num_segments,
                                    int64_t num_edges) {
  if (offsets[0] != 0) return 0;
  for (int64_t i = 1; i <= num_segments; ++i) {
    if (offsets[i] < offsets[i - 1]) return i;
  }
  return offsets[num_segments] == num_edges ? -1 : num_segments;
}

}  // namespace ase_distill
