// File: core/parallel.h
// -----------------------------------------------------------------------------
// The elementwise work around the products, split over a session's threads.
//
// A step at batch 128 on two threads spends ~90 % of its time in products that oneDNN
// splits over the threads (core/gemm.h); the rest (the gather of the batch, bias and
// activation, the derivative, the bias gradient, weight decay and the optimiser) ran on
// the calling thread alone while the other one waited. ParallelFor runs that work on the
// same threads as the products: the calling thread's OpenMP team (libgomp, which oneDNN's
// primitives already keep warm), with GemmThreads() threads.
//
// Deterministic and thread-count independent: [0, n) is cut into at most GemmThreads()
// contiguous ranges, each whole multiple of `align` long but the last, and fn runs once per
// range. A caller whose fn computes each index alone (elementwise, per column, per row)
// gets the same bits on one thread as on several: no reduction crosses a range. Each thread
// that runs a range has flush-to-zero on (core/cpu.h), as the calling thread has.
//
// Serial (fn(0, n) on the calling thread) when GemmThreads() is 1, when the work is smaller
// than two ranges of `min_per_range`, in a build without oneDNN or OpenMP (clang's fuzzing
// build), and under ThreadSanitizer, which cannot see libgomp's (uninstrumented) barriers and
// would report the ranges' writes as races; the sanitizer run then checks the serial path.
#ifndef ALIGND_CORE_PARALLEL_H_
#define ALIGND_CORE_PARALLEL_H_

#include <cstdint>

#include "absl/functional/function_ref.h"

namespace alignd::core {

// Elementwise work below this many floats per range stays on one thread: a fork and join of
// a warm team costs about as much as a few thousand tanh or exp.
inline constexpr int64_t kMinFloatsPerRange = 8192;
// Copies from memory that is likely not in cache (the gather of a shuffled batch) wait on
// latency, not arithmetic: worth splitting at a quarter of that.
inline constexpr int64_t kMinCopyFloatsPerRange = 2048;
// Element ranges that start on 64-byte boundaries: every range but the last is whole vectors,
// so each float takes the same instructions whatever the split.
inline constexpr int64_t kFloatsPerCacheLine = 16;

void ParallelFor(int64_t n, int64_t min_per_range, int64_t align,
                 absl::FunctionRef<void(int64_t begin, int64_t end)> fn);

// ParallelFor over n floats of elementwise work: ranges of at least kMinFloatsPerRange, each
// starting on a 64-byte boundary.
inline void ParallelForFloats(int64_t n, absl::FunctionRef<void(int64_t begin, int64_t end)> fn) {
  ParallelFor(n, kMinFloatsPerRange, kFloatsPerCacheLine, fn);
}
// The fewest columns of `rows` floats worth a range of their own (at least one).
inline int64_t MinColumnsPerRange(int64_t rows, int64_t min_floats = kMinFloatsPerRange) {
  return rows > 0 ? (min_floats / rows > 1 ? min_floats / rows : 1) : min_floats;
}

// The ranges ParallelFor cuts [0, n) into on `threads` threads (ranges.size() <= threads):
// the split itself, for tests and for callers that must know it.
struct Range {
  int64_t begin, end;
};
int SplitRanges(int64_t n, int64_t min_per_range, int64_t align, int threads, Range* ranges);

// Whether ParallelFor can run on more than one thread in this build.
bool ParallelForIsThreaded();

}  // namespace alignd::core

#endif  // ALIGND_CORE_PARALLEL_H_
