// File: core/random.h
// -----------------------------------------------------------------------------
// A small, portable, seedable random number generator (xoshiro256**, seeded by
// splitmix64) with its own uniform and normal draws. The engine does not use
// <random>'s distributions because their output differs between standard
// libraries; this one gives the same numbers on every platform, and its state is
// four words that a checkpoint can store.
#ifndef ALIGND_CORE_RANDOM_H_
#define ALIGND_CORE_RANDOM_H_

#include <array>
#include <cstdint>
#include <vector>

#include "core/matrix.h"

namespace alignd::core {

// Not thread-safe; each training session owns its own.
class Rng {
 public:
  using State = std::array<uint64_t, 4>;

  // A generator for (seed, stream): different streams of one seed are independent.
  explicit Rng(uint64_t seed = 0, uint64_t stream = 0);

  uint64_t Next();
  // Uniform on [0, 1) with 24 random bits (exactly representable in float).
  float Uniform01();
  // Uniform on [lo, hi).
  float Uniform(float lo, float hi) { return lo + (hi - lo) * Uniform01(); }
  // Standard normal (Box-Muller in double precision, one draw per call).
  float Normal();
  // Uniform integer in [0, n), n > 0 (Lemire's multiply-shift, rejection for exactness).
  uint32_t Below(uint32_t n);

  // Fills `m` with U[lo, hi) or N(0, sigma^2), column by column.
  void FillUniform(MatrixRef m, float lo, float hi);
  void FillNormal(MatrixRef m, float sigma);
  // Fisher-Yates shuffle.
  void Shuffle(std::vector<int32_t>& v);

  const State& state() const { return s_; }
  void set_state(const State& s) { s_ = s; }

 private:
  State s_;
};

}  // namespace alignd::core

#endif  // ALIGND_CORE_RANDOM_H_
