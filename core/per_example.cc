// File: core/per_example.cc
// Compiled with -ffp-contract=off (core/CMakeLists.txt): every product and sum below is
// rounded on its own, as per_example.h states, whatever the vector width.
#include "core/per_example.h"

#include <cassert>

namespace alignd::core {
namespace {

// The columns the pass visits: x[j] != 0 or next[j] != 0, or all of them when `all`.
int CollectColumns(const float* x, const float* next, Eigen::Index cols, bool all,
                   std::vector<int32_t>& out) {
  if (out.size() < static_cast<size_t>(cols)) out.resize(cols);
  int32_t* o = out.data();
  int k = 0;
  for (Eigen::Index j = 0; j < cols; ++j) {
    o[k] = static_cast<int32_t>(j);
    k += all || x[j] != 0.0f || (next != nullptr && next[j] != 0.0f);
  }
  return k;
}

// z = sum over the listed columns, in order, of x[j] * W[:, j], from z = 0. Four columns
// per pass over z keep z's loads and stores to a quarter; the sums are the same sequence.
void ForwardColumns(const float* __restrict w, Eigen::Index stride, Eigen::Index rows,
                    const float* __restrict x, const int32_t* cols, int count,
                    float* __restrict z) {
  for (Eigen::Index r = 0; r < rows; ++r) z[r] = 0.0f;
  int k = 0;
  for (; k + 4 <= count; k += 4) {
    const float* __restrict w0 = w + cols[k] * stride;
    const float* __restrict w1 = w + cols[k + 1] * stride;
    const float* __restrict w2 = w + cols[k + 2] * stride;
    const float* __restrict w3 = w + cols[k + 3] * stride;
    const float x0 = x[cols[k]], x1 = x[cols[k + 1]], x2 = x[cols[k + 2]], x3 = x[cols[k + 3]];
    for (Eigen::Index r = 0; r < rows; ++r) {
      float s = z[r];
      s = s + x0 * w0[r];
      s = s + x1 * w1[r];
      s = s + x2 * w2[r];
      s = s + x3 * w3[r];
      z[r] = s;
    }
  }
  for (; k < count; ++k) {
    const float* __restrict w0 = w + cols[k] * stride;
    const float x0 = x[cols[k]];
    for (Eigen::Index r = 0; r < rows; ++r) z[r] = z[r] + x0 * w0[r];
  }
}

// One column's weight: t = w * keep, t = t + s * d, t = t * m.
template <bool kKeep, bool kMask>
inline float Updated(float w, float keep, float s, float d, float m) {
  float t = w;
  if constexpr (kKeep) t = t * keep;
  t = t + s * d;
  if constexpr (kMask) t = t * m;
  return t;
}

template <bool kKeep, bool kMask, bool kZ>
void UpdateColumns(float* __restrict w, Eigen::Index stride, Eigen::Index rows,
                   const ColumnUpdate& u, const int32_t* cols, int count, float* __restrict z) {
  const float* __restrict d = u.d;
  const float keep = u.keep;
  if constexpr (kZ)
    for (Eigen::Index r = 0; r < rows; ++r) z[r] = 0.0f;
  auto next_of = [&](int32_t j) { return u.next != nullptr ? u.next[j] : 0.0f; };
  int k = 0;
  for (; k + 4 <= count; k += 4) {
    const int32_t j0 = cols[k], j1 = cols[k + 1], j2 = cols[k + 2], j3 = cols[k + 3];
    float* __restrict w0 = w + j0 * stride;
    float* __restrict w1 = w + j1 * stride;
    float* __restrict w2 = w + j2 * stride;
    float* __restrict w3 = w + j3 * stride;
    const float* __restrict m0 = kMask ? u.mask + j0 * stride : nullptr;
    const float* __restrict m1 = kMask ? u.mask + j1 * stride : nullptr;
    const float* __restrict m2 = kMask ? u.mask + j2 * stride : nullptr;
    const float* __restrict m3 = kMask ? u.mask + j3 * stride : nullptr;
    const float s0 = u.alpha * u.x[j0], s1 = u.alpha * u.x[j1], s2 = u.alpha * u.x[j2],
                s3 = u.alpha * u.x[j3];
    const float n0 = next_of(j0), n1 = next_of(j1), n2 = next_of(j2), n3 = next_of(j3);
    for (Eigen::Index r = 0; r < rows; ++r) {
      const float dr = d[r];
      const float t0 = Updated<kKeep, kMask>(w0[r], keep, s0, dr, kMask ? m0[r] : 1.0f);
      const float t1 = Updated<kKeep, kMask>(w1[r], keep, s1, dr, kMask ? m1[r] : 1.0f);
      const float t2 = Updated<kKeep, kMask>(w2[r], keep, s2, dr, kMask ? m2[r] : 1.0f);
      const float t3 = Updated<kKeep, kMask>(w3[r], keep, s3, dr, kMask ? m3[r] : 1.0f);
      w0[r] = t0, w1[r] = t1, w2[r] = t2, w3[r] = t3;
      if constexpr (kZ) {
        float s = z[r];
        s = s + n0 * t0;
        s = s + n1 * t1;
        s = s + n2 * t2;
        s = s + n3 * t3;
        z[r] = s;
      }
    }
  }
  for (; k < count; ++k) {
    const int32_t j = cols[k];
    float* __restrict w0 = w + j * stride;
    const float* __restrict m0 = kMask ? u.mask + j * stride : nullptr;
    const float s0 = u.alpha * u.x[j], n0 = next_of(j);
    for (Eigen::Index r = 0; r < rows; ++r) {
      const float t0 = Updated<kKeep, kMask>(w0[r], keep, s0, d[r], kMask ? m0[r] : 1.0f);
      w0[r] = t0;
      if constexpr (kZ) z[r] = z[r] + n0 * t0;
    }
  }
}

}  // namespace

void PerExampleForward(ConstMatrixRef w, const float* x, float* z, std::vector<int32_t>& columns) {
  const int count = CollectColumns(x, nullptr, w.cols(), false, columns);
  ForwardColumns(w.data(), w.outerStride(), w.rows(), x, columns.data(), count, z);
}

void PerExampleUpdate(MatrixRef w, const ColumnUpdate& u, float* z, std::vector<int32_t>& columns) {
  assert(z == nullptr || u.next != nullptr);
  const bool keep = u.keep != 1.0f;
  const int count = CollectColumns(u.x, u.next, w.cols(), keep, columns);
  const Eigen::Index rows = w.rows(), stride = w.outerStride();
  const int32_t* cols = columns.data();
  const int kind = (keep ? 4 : 0) | (u.mask != nullptr ? 2 : 0) | (z != nullptr ? 1 : 0);
  switch (kind) {
    case 0:
      return UpdateColumns<false, false, false>(w.data(), stride, rows, u, cols, count, z);
    case 1:
      return UpdateColumns<false, false, true>(w.data(), stride, rows, u, cols, count, z);
    case 2:
      return UpdateColumns<false, true, false>(w.data(), stride, rows, u, cols, count, z);
    case 3:
      return UpdateColumns<false, true, true>(w.data(), stride, rows, u, cols, count, z);
    case 4:
      return UpdateColumns<true, false, false>(w.data(), stride, rows, u, cols, count, z);
    case 5:
      return UpdateColumns<true, false, true>(w.data(), stride, rows, u, cols, count, z);
    case 6:
      return UpdateColumns<true, true, false>(w.data(), stride, rows, u, cols, count, z);
    default:
      return UpdateColumns<true, true, true>(w.data(), stride, rows, u, cols, count, z);
  }
}

}  // namespace alignd::core
