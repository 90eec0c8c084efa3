// File: core/gemm.cc
#include "core/gemm.h"

#include <algorithm>
#include <cassert>
#include <cstdlib>
#include <fstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

#ifdef ALIGND_HAVE_ONEDNN
#include <omp.h>
#include <oneapi/dnnl/dnnl.h>
#endif

namespace alignd::core {
namespace {

template <typename A, typename B>
void Accumulate(float alpha, const A& a, const B& b, float beta, MatrixRef c) {
  if (beta == 0.0f) {
    c.noalias() = alpha * a * b;
  } else {
    if (beta != 1.0f) c *= beta;
    c.noalias() += alpha * a * b;
  }
}

// What this thread asked for, and what its OpenMP runtime was last told. oneDNN
// (OpenMP build) runs omp_get_max_threads() threads, a per-thread setting whose
// default is the machine's core count: every thread sets it before its first
// product, so the default is 1 whatever OMP_NUM_THREADS says.
thread_local int requested_threads = 1;
thread_local int applied_threads = 0;

}  // namespace

const ComputeInfo& DescribeCompute() {
  static const ComputeInfo* info = [] {
    auto* i = new ComputeInfo;
#ifdef ALIGND_HAVE_ONEDNN
    const dnnl_version_t* v = dnnl_version();
    i->library = absl::StrCat("oneDNN ", v->major, ".", v->minor, ".", v->patch);
    switch (dnnl_get_effective_cpu_isa()) {
      case dnnl_cpu_isa_sse41:
        i->isa = "sse41";
        break;
      case dnnl_cpu_isa_avx:
        i->isa = "avx";
        break;
      case dnnl_cpu_isa_avx2:
        i->isa = "avx2";
        break;
      case dnnl_cpu_isa_avx2_vnni:
        i->isa = "avx2_vnni";
        break;
      case dnnl_cpu_isa_avx512_mic:
        i->isa = "avx512_mic";
        break;
      case dnnl_cpu_isa_avx512_mic_4ops:
        i->isa = "avx512_mic_4ops";
        break;
      case dnnl_cpu_isa_avx512_core:
        i->isa = "avx512_core";
        break;
      case dnnl_cpu_isa_avx512_core_vnni:
        i->isa = "avx512_core_vnni";
        break;
      case dnnl_cpu_isa_avx512_core_bf16:
        i->isa = "avx512_core_bf16";
        break;
      case dnnl_cpu_isa_avx512_core_amx:
        i->isa = "avx512_core_amx";
        break;
      default:
        i->isa = "unknown";
        break;
    }
#else
    i->library = absl::StrCat("Eigen ", EIGEN_WORLD_VERSION, ".", EIGEN_MAJOR_VERSION, ".",
                              EIGEN_MINOR_VERSION);
    i->isa = Eigen::SimdInstructionSetsInUse();
#endif
    std::ifstream cpuinfo("/proc/cpuinfo");
    for (std::string line; std::getline(cpuinfo, line);) {
      if (!absl::StartsWith(line, "model name")) continue;
      const auto colon = line.find(':');
      if (colon != std::string::npos)
        i->cpu_model = std::string(absl::StripAsciiWhitespace(line.substr(colon + 1)));
      break;
    }
    return i;
  }();
  return *info;
}

void SetGemmThreads(int threads) { requested_threads = std::clamp(threads, 1, 256); }
int GemmThreads() { return requested_threads; }

void ApplyGemmThreads() {
#ifdef ALIGND_HAVE_ONEDNN
  if (applied_threads != requested_threads) {
    omp_set_num_threads(requested_threads);
    applied_threads = requested_threads;
  }
#else
  (void)applied_threads;  // used with oneDNN only
#endif
}

void GemmEigen(bool trans_a, bool trans_b, float alpha, ConstMatrixRef a, ConstMatrixRef b,
               float beta, MatrixRef c) {
  if (!trans_a && !trans_b)
    Accumulate(alpha, a, b, beta, c);
  else if (trans_a && !trans_b)
    Accumulate(alpha, a.transpose(), b, beta, c);
  else if (!trans_a && trans_b)
    Accumulate(alpha, a, b.transpose(), beta, c);
  else
    Accumulate(alpha, a.transpose(), b.transpose(), beta, c);
}

void Gemm(bool trans_a, bool trans_b, float alpha, ConstMatrixRef a, ConstMatrixRef b, float beta,
          MatrixRef c) {
  const Eigen::Index m = c.rows(), n = c.cols();
  const Eigen::Index k = trans_a ? a.rows() : a.cols();
  assert((trans_a ? a.cols() : a.rows()) == m);
  assert((trans_b ? b.rows() : b.cols()) == n);
  assert((trans_b ? b.cols() : b.rows()) == k);
#ifdef ALIGND_HAVE_ONEDNN
  if (m > 1 && n > 1 && k > 1) {
    ApplyGemmThreads();
    // oneDNN's SGEMM is row-major; a column-major C = op(A) op(B) is the row-major
    // C^T = op(B)^T op(A)^T, i.e. the same call with A and B swapped.
    const dnnl_status_t st =
        dnnl_sgemm(trans_b ? 'T' : 'N', trans_a ? 'T' : 'N', n, m, k, alpha, b.data(),
                   b.outerStride(), a.data(), a.outerStride(), beta, c.data(), c.outerStride());
    // Only bad arguments fail, and the shapes were asserted above.
    if (st != dnnl_success) std::abort();
    return;
  }
#endif
  (void)m, (void)n, (void)k;
  GemmEigen(trans_a, trans_b, alpha, a, b, beta, c);
}

const char* GemmBackend() {
#ifdef ALIGND_HAVE_ONEDNN
  return "onednn";
#else
  return "eigen";
#endif
}

}  // namespace alignd::core
