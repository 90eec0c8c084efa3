// File: core/parallel.cc
#include "core/parallel.h"

#include <algorithm>

#include "core/cpu.h"
#include "core/gemm.h"

#if defined(_OPENMP) && !defined(__SANITIZE_THREAD__)
#include <omp.h>
#define ALIGND_PARALLEL_FOR_OPENMP 1
#endif

namespace alignd::core {

int SplitRanges(int64_t n, int64_t min_per_range, int64_t align, int threads, Range* ranges) {
  align = std::max<int64_t>(align, 1);
  min_per_range = std::max<int64_t>(min_per_range, 1);
  const int64_t units = (n + align - 1) / align;  // whole aligned blocks (the last may be short)
  int64_t parts = std::min<int64_t>({threads, n / min_per_range, units});
  if (parts < 1) parts = 1;
  int count = 0;
  for (int64_t p = 0, begin = 0; p < parts; ++p) {
    // Blocks shared out as evenly as whole blocks allow: the first (units % parts) get one more.
    const int64_t blocks = units / parts + (p < units % parts ? 1 : 0);
    const int64_t end = std::min(n, begin + blocks * align);
    if (end > begin) ranges[count++] = {begin, end};
    begin = end;
  }
  return count;
}

bool ParallelForIsThreaded() {
#ifdef ALIGND_PARALLEL_FOR_OPENMP
  return true;
#else
  return false;
#endif
}

void ParallelFor(int64_t n, int64_t min_per_range, int64_t align,
                 absl::FunctionRef<void(int64_t, int64_t)> fn) {
  if (n <= 0) return;
#ifdef ALIGND_PARALLEL_FOR_OPENMP
  const int threads = GemmThreads();
  if (threads > 1 && n >= 2 * min_per_range) {
    constexpr int kMaxRanges = 256;  // GemmThreads()'s clamp
    Range ranges[kMaxRanges];
    const int count = SplitRanges(n, min_per_range, align, threads, ranges);
    if (count > 1) {
      ApplyGemmThreads();  // the same team as the products
#pragma omp parallel num_threads(count)
      {
        // A team smaller than asked for (OMP_THREAD_LIMIT, nesting) still runs every range.
        EnableFlushToZero();
        for (int r = omp_get_thread_num(); r < count; r += omp_get_num_threads())
          fn(ranges[r].begin, ranges[r].end);
      }
      return;
    }
  }
#else
  (void)min_per_range, (void)align;
#endif
  fn(0, n);
}

}  // namespace alignd::core
