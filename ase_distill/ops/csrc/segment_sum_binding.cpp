// Torch binding of the CSR segment-sum kernel (compiled with torch.utils.cpp_extension).
//
// Only torch/extension.h and the CUDA runtime headers: the caller (cuda_segment.py) selects the
// device and passes the current stream handle, so this file needs no c10/cuda headers and CI can
// syntax-check it against a CPU build of torch.
#include <cuda_runtime_api.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <torch/extension.h>

#include "segment_sum.h"

namespace ase_distill {
template <typename T, typename Acc>
cudaError_t launch_segment_sum_csr(const T* src, const int64_t* offsets, T* out,
                                   int64_t num_segments, int64_t width, cudaStream_t stream);
}

namespace {

torch::Tensor segment_sum_csr(torch::Tensor src, torch::Tensor offsets, int64_t stream_handle) {
  TORCH_CHECK(src.is_cuda() && offsets.is_cuda(), "segment_sum_csr: tensors must be on CUDA");
  TORCH_CHECK(src.device() == offsets.device(), "segment_sum_csr: src and offsets on one device");
  TORCH_CHECK(offsets.scalar_type() == torch::kLong && offsets.dim() == 1 && offsets.numel() >= 1,
              "segment_sum_csr: offsets must be a 1-D int64 CSR row pointer");
  TORCH_CHECK(src.dim() >= 1, "segment_sum_csr: src needs an edge dimension");
  // The row width is the product of the trailing sizes; reshape({E, -1}) cannot infer it when
  // E == 0 (a graph without edges), so it is computed, and an empty src gives zeros.
  int64_t width = 1;
  for (int64_t d = 1; d < src.dim(); ++d) width *= src.size(d);
  auto src2 = src.contiguous().reshape({src.size(0), width});
  auto off = offsets.contiguous();
  const int64_t num_segments = off.numel() - 1;
  auto sizes = src.sizes().vec();
  sizes[0] = num_segments;
  auto out = torch::empty({num_segments, width}, src2.options());
  if (src2.size(0) == 0 || width == 0) return out.zero_().reshape(sizes);
  cudaStream_t stream = reinterpret_cast<cudaStream_t>(stream_handle);
  cudaError_t err = cudaSuccess;
  const int64_t* o = off.data_ptr<int64_t>();
  switch (src2.scalar_type()) {
    case torch::kFloat:
      err = ase_distill::launch_segment_sum_csr<float, float>(
          src2.data_ptr<float>(), o, out.data_ptr<float>(), num_segments, width, stream);
      break;
    case torch::kDouble:
      err = ase_distill::launch_segment_sum_csr<double, double>(
          src2.data_ptr<double>(), o, out.data_ptr<double>(), num_segments, width, stream);
      break;
    case torch::kHalf:
      err = ase_distill::launch_segment_sum_csr<__half, float>(
          reinterpret_cast<const __half*>(src2.data_ptr<at::Half>()), o,
          reinterpret_cast<__half*>(out.data_ptr<at::Half>()), num_segments, width, stream);
      break;
    case torch::kBFloat16:
      err = ase_distill::launch_segment_sum_csr<__nv_bfloat16, float>(
          reinterpret_cast<const __nv_bfloat16*>(src2.data_ptr<at::BFloat16>()), o,
          reinterpret_cast<__nv_bfloat16*>(out.data_ptr<at::BFloat16>()), num_segments, width,
          stream);
      break;
    default:
      TORCH_CHECK(false, "segment_sum_csr: unsupported dtype ", src2.scalar_type());
  }
  TORCH_CHECK(err == cudaSuccess, "segment_sum_csr launch failed: ", cudaGetErrorString(err));
  return out.reshape(sizes);
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("segment_sum_csr", &segment_sum_csr,
        "Deterministic segment sum over edges sorted by receiver (CSR offsets)");
}
