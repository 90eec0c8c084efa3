// File: core/per_example.cc
// Compiled with -ffp-contract=off (core/CMakeLists.txt): every product and sum below is
// rounded on its own, as per_example.h states, whatever the vector width.
#include "core/per_example.h"

#include <cassert>
#include <cstdint>

#if defined(__AVX512F__) && defined(__FMA__)
#define ALIGND_NARROW_AVX512 1
#include <immintrin.h>
#endif

namespace alignd::core {
namespace {

// a * b + c: rounded once where the CPU has FMA (the build's -march), twice otherwise. Every
// product-and-sum below goes through it, so the passes agree within a build.
inline float MulAdd(float a, float b, float c) {
#if defined(__FMA__)
  return __builtin_fmaf(a, b, c);
#else
  return a * b + c;
#endif
}

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
      s = MulAdd(x0, w0[r], s);
      s = MulAdd(x1, w1[r], s);
      s = MulAdd(x2, w2[r], s);
      s = MulAdd(x3, w3[r], s);
      z[r] = s;
    }
  }
  for (; k < count; ++k) {
    const float* __restrict w0 = w + cols[k] * stride;
    const float x0 = x[cols[k]];
    for (Eigen::Index r = 0; r < rows; ++r) z[r] = MulAdd(x0, w0[r], z[r]);
  }
}

// One column's weight: t = w * keep, t = t + s * d, t = t * m.
template <bool kKeep, bool kMask>
inline float Updated(float w, float keep, float s, float d, float m) {
  float t = w;
  if constexpr (kKeep) t = t * keep;
  t = MulAdd(s, d, t);
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
        s = MulAdd(n0, t0, s);
        s = MulAdd(n1, t1, s);
        s = MulAdd(n2, t2, s);
        s = MulAdd(n3, t3, s);
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
      if constexpr (kZ) z[r] = MulAdd(n0, t0, z[r]);
    }
  }
}

#if defined(ALIGND_NARROW_AVX512)
// A layer of at most 16 rows (an output layer: 10 x 1000 on MNIST). Column by column its
// loops would be all remainder; instead 16 columns at a time are `rows` whole vectors of
// W's storage (no masks, no remainders), each weight's x[j] and d[r] laid beside it by
// permutes, and the forward sums kept per lane: lane l of vector v adds to row
// (16 v + l) % rows, so `period` accumulators hold each row's partial sums in fixed slots,
// added up row by row at the end, then the last cols % 16 columns one by one. Every column
// is visited (no skipping). Forward (update = false) and the update with its forward make
// the same sums in the same order: the same bits, as the wide path's.
template <bool kUpdate, bool kKeep, bool kMask, bool kZ>
void NarrowPass(float* w, Eigen::Index rows, Eigen::Index cols, const ColumnUpdate* u,
                const float* next, float* z) {
  const int gcd =
      rows % 16 == 0 ? 16 : (rows % 8 == 0 ? 8 : (rows % 4 == 0 ? 4 : (rows % 2 == 0 ? 2 : 1)));
  const int period = static_cast<int>(rows) / gcd;  // vectors before the row pattern repeats
  const int vectors = static_cast<int>(rows);       // per block of 16 columns
  __m512i column_of[16];                            // lane -> the block's column
  __m512 d_pattern[16], acc[16];
  alignas(64) int32_t idx[16];
  alignas(64) float dp[16];
  for (int v = 0; v < vectors; ++v) {
    for (int l = 0; l < 16; ++l) idx[l] = (16 * v + l) / static_cast<int>(rows);
    column_of[v] = _mm512_load_si512(idx);
    if (v < period) {
      for (int l = 0; l < 16; ++l) dp[l] = kUpdate ? u->d[(16 * v + l) % rows] : 0.0f;
      d_pattern[v] = _mm512_load_ps(dp);
      acc[v] = _mm512_setzero_ps();
    }
  }
  const __m512 keep = _mm512_set1_ps(kUpdate ? u->keep : 1.0f);
  const Eigen::Index blocks = cols / 16;
  for (Eigen::Index b = 0; b < blocks; ++b) {
    float* wb = w + b * 16 * rows;
    __m512 s16 = _mm512_setzero_ps(), n16 = _mm512_setzero_ps();
    if constexpr (kUpdate)
      s16 = _mm512_mul_ps(_mm512_set1_ps(u->alpha), _mm512_loadu_ps(u->x + b * 16));
    if constexpr (kZ) n16 = _mm512_loadu_ps(next + b * 16);
    for (int v = 0, a = 0; v < vectors; ++v, a = a + 1 == period ? 0 : a + 1) {
      __m512 t = _mm512_loadu_ps(wb + 16 * v);
      if constexpr (kUpdate) {
        if constexpr (kKeep) t = _mm512_mul_ps(t, keep);
        t = _mm512_fmadd_ps(_mm512_permutexvar_ps(column_of[v], s16), d_pattern[a], t);
        if constexpr (kMask)
          t = _mm512_mul_ps(t, _mm512_loadu_ps(u->mask + b * 16 * rows + 16 * v));
        _mm512_storeu_ps(wb + 16 * v, t);
      }
      if constexpr (kZ)
        acc[a] = _mm512_fmadd_ps(_mm512_permutexvar_ps(column_of[v], n16), t, acc[a]);
    }
  }
  if constexpr (kZ) {
    alignas(64) float slots[16 * 16];
    for (int a = 0; a < period; ++a) _mm512_store_ps(slots + 16 * a, acc[a]);
    for (Eigen::Index r = 0; r < rows; ++r) z[r] = 0.0f;
    for (int e = 0; e < 16 * period; ++e) z[e % rows] += slots[e];
  }
  // The last columns, one by one.
  for (Eigen::Index j = blocks * 16; j < cols; ++j) {
    float* wj = w + j * rows;
    const float s = kUpdate ? u->alpha * u->x[j] : 0.0f;
    for (Eigen::Index r = 0; r < rows; ++r) {
      float t = wj[r];
      if constexpr (kUpdate) {
        if constexpr (kKeep) t = t * u->keep;
        t = MulAdd(s, u->d[r], t);
        if constexpr (kMask) t = t * u->mask[j * rows + r];
        wj[r] = t;
      }
      if constexpr (kZ) z[r] = MulAdd(next[j], t, z[r]);
    }
  }
}
#endif

template <bool kKeep, bool kMask, bool kZ>
void Update(float* w, Eigen::Index stride, Eigen::Index rows, Eigen::Index cols,
            const ColumnUpdate& u, std::vector<int32_t>& columns, float* z) {
#if defined(ALIGND_NARROW_AVX512)
  if (rows <= 16 && stride == rows)
    return NarrowPass<true, kKeep, kMask, kZ>(w, rows, cols, &u, u.next, z);
#endif
  const int count = CollectColumns(u.x, u.next, cols, kKeep, columns);
  UpdateColumns<kKeep, kMask, kZ>(w, stride, rows, u, columns.data(), count, z);
}

}  // namespace

void PerExampleForward(ConstMatrixRef w, const float* x, float* z, std::vector<int32_t>& columns) {
#if defined(ALIGND_NARROW_AVX512)
  if (w.rows() <= 16 && w.outerStride() == w.rows())
    return NarrowPass<false, false, false, true>(const_cast<float*>(w.data()), w.rows(), w.cols(),
                                                 nullptr, x, z);
#endif
  const int count = CollectColumns(x, nullptr, w.cols(), false, columns);
  ForwardColumns(w.data(), w.outerStride(), w.rows(), x, columns.data(), count, z);
}

void PerExampleUpdate(MatrixRef w, const ColumnUpdate& u, float* z, std::vector<int32_t>& columns) {
  assert(z == nullptr || u.next != nullptr);
  const bool keep = u.keep != 1.0f;
  float* wd = w.data();
  const Eigen::Index rows = w.rows(), cols = w.cols(), stride = w.outerStride();
  const int kind = (keep ? 4 : 0) | (u.mask != nullptr ? 2 : 0) | (z != nullptr ? 1 : 0);
  switch (kind) {
    case 0:
      return Update<false, false, false>(wd, stride, rows, cols, u, columns, z);
    case 1:
      return Update<false, false, true>(wd, stride, rows, cols, u, columns, z);
    case 2:
      return Update<false, true, false>(wd, stride, rows, cols, u, columns, z);
    case 3:
      return Update<false, true, true>(wd, stride, rows, cols, u, columns, z);
    case 4:
      return Update<true, false, false>(wd, stride, rows, cols, u, columns, z);
    case 5:
      return Update<true, false, true>(wd, stride, rows, cols, u, columns, z);
    case 6:
      return Update<true, true, false>(wd, stride, rows, cols, u, columns, z);
    default:
      return Update<true, true, true>(wd, stride, rows, cols, u, columns, z);
  }
}

}  // namespace alignd::core
