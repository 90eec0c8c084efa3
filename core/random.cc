// File: core/random.cc
#include "core/random.h"

#include <cmath>
#include <utility>

namespace alignd::core {
namespace {

uint64_t SplitMix64(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

inline uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

}  // namespace

Rng::Rng(uint64_t seed, uint64_t stream) {
  uint64_t x = seed ^ (0x6a09e667f3bcc909ULL * (stream + 1));
  for (auto& w : s_) w = SplitMix64(x);
}

uint64_t Rng::Next() {
  const uint64_t result = Rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = Rotl(s_[3], 45);
  return result;
}

float Rng::Uniform01() { return static_cast<float>(Next() >> 40) * 0x1.0p-24f; }

float Rng::Normal() {
  // u1 in (0, 1] so that log(u1) is finite.
  const double u1 = (static_cast<double>(Next() >> 11) + 1.0) * 0x1.0p-53;
  const double u2 = static_cast<double>(Next() >> 11) * 0x1.0p-53;
  return static_cast<float>(std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2));
}

uint32_t Rng::Below(uint32_t n) {
  uint64_t m = (Next() >> 32) * n;
  uint32_t low = static_cast<uint32_t>(m);
  if (low < n) {
    const uint32_t threshold = static_cast<uint32_t>(-n) % n;
    while (low < threshold) {
      m = (Next() >> 32) * n;
      low = static_cast<uint32_t>(m);
    }
  }
  return static_cast<uint32_t>(m >> 32);
}

void Rng::FillUniform(MatrixRef m, float lo, float hi) {
  for (Eigen::Index j = 0; j < m.cols(); ++j)
    for (Eigen::Index i = 0; i < m.rows(); ++i) m(i, j) = Uniform(lo, hi);
}

void Rng::FillNormal(MatrixRef m, float sigma) {
  for (Eigen::Index j = 0; j < m.cols(); ++j)
    for (Eigen::Index i = 0; i < m.rows(); ++i) m(i, j) = sigma * Normal();
}

void Rng::Shuffle(std::vector<int32_t>& v) {
  for (size_t i = v.size(); i > 1; --i) {
    const uint32_t j = Below(static_cast<uint32_t>(i));
    std::swap(v[i - 1], v[j]);
  }
}

}  // namespace alignd::core
