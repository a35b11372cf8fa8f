// Executes the kernel's indexing logic (ase_distill/ops/csrc/segment_sum.h) on the CPU:
// launch geometry covers every (segment, feature) exactly once, and the per-thread reduction
// equals a naive scatter, including empty segments and one huge segment.
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "segment_sum.h"

using namespace ase_distill;

static int failures = 0;
#define CHECK(cond, msg)                              \
  do {                                                \
    if (!(cond)) {                                    \
      std::printf("FAIL: %s (%s)\n", msg, #cond);     \
      ++failures;                                     \
    }                                                 \
  } while (0)

// Emulates the CUDA launch: every block/thread runs thread_target + segment_reduce.
static std::vector<double> emulate(const std::vector<double>& src, const std::vector<int64_t>& off,
                                   int64_t width, std::vector<int>* hits) {
  const int64_t nseg = static_cast<int64_t>(off.size()) - 1;
  std::vector<double> out(nseg * width, -999.0);
  const LaunchShape shape = launch_shape(nseg, width);
  for (int64_t bx = 0; bx < shape.grid_x; ++bx)
    for (int64_t by = 0; by < shape.grid_y; ++by)
      for (int64_t ty = 0; ty < kSegmentsPerBlock; ++ty)
        for (int64_t tx = 0; tx < kFeatureThreads; ++tx) {
          int64_t seg, f;
          if (!thread_target(bx, by, tx, ty, nseg, width, &seg, &f)) continue;
          out[seg * width + f] =
              segment_reduce<double, double>(src.data(), width, segment_range(off.data(), seg), f);
          (*hits)[seg * width + f] += 1;
        }
  return out;
}

static void run_case(const char* name, const std::vector<int64_t>& counts, int64_t width,
                     std::mt19937& rng) {
  std::vector<int64_t> off(counts.size() + 1, 0);
  for (size_t i = 0; i < counts.size(); ++i) off[i + 1] = off[i] + counts[i];
  const int64_t edges = off.back();
  std::normal_distribution<double> normal;
  std::vector<double> src(edges * width);
  for (auto& x : src) x = normal(rng);
  std::vector<double> ref(counts.size() * width, 0.0);
  for (size_t s = 0; s < counts.size(); ++s)
    for (int64_t e = off[s]; e < off[s + 1]; ++e)
      for (int64_t f = 0; f < width; ++f) ref[s * width + f] += src[e * width + f];
  std::vector<int> hits(counts.size() * width, 0);
  auto out = emulate(src, off, width, &hits);
  for (size_t k = 0; k < ref.size(); ++k) {
    if (hits[k] != 1) { std::printf("FAIL %s: element %zu written %d times\n", name, k, hits[k]); ++failures; break; }
    if (std::fabs(out[k] - ref[k]) > 1e-12) { std::printf("FAIL %s: element %zu\n", name, k); ++failures; break; }
  }
  CHECK(first_invalid_offset(off.data(), counts.size(), edges) == -1, name);
}

int main() {
  std::mt19937 rng(0);
  run_case("regular", {3, 1, 4, 1, 5, 9, 2, 6}, 64, rng);
  run_case("empty segments", {0, 2, 0, 0, 3, 0}, 17, rng);
  run_case("all empty", {0, 0, 0}, 5, rng);
  run_case("one huge segment", {1, 20000, 1}, 3, rng);
  run_case("width 1", {2, 2, 2}, 1, rng);
  run_case("wide", {1, 2}, 257, rng);
  std::vector<int64_t> many(1000);
  for (auto& c : many) c = rng() % 7;
  run_case("many segments", many, 33, rng);
  // invalid row pointers are found
  std::vector<int64_t> bad_start = {1, 2, 3};
  std::vector<int64_t> decreasing = {0, 3, 2, 4};
  std::vector<int64_t> bad_end = {0, 1, 2};
  CHECK(first_invalid_offset(bad_start.data(), 2, 3) == 0, "nonzero start");
  CHECK(first_invalid_offset(decreasing.data(), 3, 4) == 2, "decrease found");
  CHECK(first_invalid_offset(bad_end.data(), 2, 5) == 2, "wrong end");
  CHECK(ceil_div(10, 3) == 4 && ceil_div(9, 3) == 3 && ceil_div(0, 3) == 0, "ceil_div");
  if (failures == 0) std::printf("1 passed, 0 failed\n");
  return failures == 0 ? 0 : 1;
}
