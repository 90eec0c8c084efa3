// gemm_bench: the engine's product (core::Gemm, oneDNN) against Eigen's on the shapes of
// the 784-1000-10 step, interleaved in one run (the machine's speed drifts 20-40 %
// between runs: compare within a run), one thread; the machine's FMA peak, measured by a
// register loop, that the products are compared with; then two threads multiplying at
// once, as two sessions side by side do, and one product split over two threads, as one
// session with TrainingConfig.threads = 2 does. Prints GFLOP/s (median of 7 rounds) and
// writes them as JSON with --out FILE.
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "core/cpu.h"
#include "core/gemm.h"
#include "core/layers.h"
#include "core/random.h"

#ifdef ALIGND_HAVE_ONEDNN
#include <oneapi/dnnl/dnnl.h>
#endif

namespace {

using alignd::core::Matrix;

struct Shape {
  const char* what;
  int m, n, k;
  bool ta, tb;
};

double Seconds(const std::function<void()>& f, int reps) {
  const auto t0 = std::chrono::steady_clock::now();
  for (int r = 0; r < reps; ++r) f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// The core's fused multiply-add peak: N independent accumulators (enough to cover the
// FMA latency on every pipe), each updated `iters` times. GFLOP/s, 2 per lane per FMA.
template <int N>
__attribute__((target("avx512f"))) double FmaPeak512(long iters) {
  __m512 acc[N];
  for (int i = 0; i < N; ++i) acc[i] = _mm512_set1_ps(0.001f * i);
  __m512 a = _mm512_set1_ps(0.9999f), b = _mm512_set1_ps(1e-4f);
  asm("" : "+v"(a), "+v"(b));  // registers, not constants the FMAs would load from memory
  const auto t0 = std::chrono::steady_clock::now();
  for (long it = 0; it < iters; ++it) {
#pragma GCC unroll 16
    for (int i = 0; i < N; ++i) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  float sink = 0;
  for (int i = 0; i < N; ++i) sink += _mm512_reduce_add_ps(acc[i]);
  if (sink == 1234.5f) std::puts("");  // keeps the loop
  return 32.0 * N * iters / s / 1e9;
}

template <int N>
__attribute__((target("avx2,fma"))) double FmaPeak256(long iters) {
  __m256 acc[N];
  for (int i = 0; i < N; ++i) acc[i] = _mm256_set1_ps(0.001f * i);
  __m256 a = _mm256_set1_ps(0.9999f), b = _mm256_set1_ps(1e-4f);
  asm("" : "+v"(a), "+v"(b));
  const auto t0 = std::chrono::steady_clock::now();
  for (long it = 0; it < iters; ++it) {
#pragma GCC unroll 16
    for (int i = 0; i < N; ++i) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  float out[8], sink = 0;
  for (int i = 0; i < N; ++i) _mm256_storeu_ps(out, acc[i]), sink += out[0];
  if (sink == 1234.5f) std::puts("");
  return 16.0 * N * iters / s / 1e9;
}

// The best of the widest vectors the CPU has, 8, 12 and 16 accumulators, 5 rounds.
double FmaPeak(const char** isa) {
  const bool avx512 = __builtin_cpu_supports("avx512f");
  *isa = avx512 ? "AVX-512" : "AVX2";
  double best = 0;
  for (int round = 0; round < 5; ++round) {
    best = std::max(best, avx512 ? FmaPeak512<8>(40'000'000) : FmaPeak256<8>(40'000'000));
    best = std::max(best, avx512 ? FmaPeak512<12>(30'000'000) : FmaPeak256<12>(30'000'000));
    best = std::max(best, avx512 ? FmaPeak512<16>(20'000'000) : FmaPeak256<16>(20'000'000));
  }
  return best;
}

}  // namespace

#ifdef ALIGND_HAVE_ONEDNN
#define DNNL_OK(call)                         \
  do {                                        \
    if ((call) != dnnl_success) std::abort(); \
  } while (0)

// a = tanh(W x + b) for column-major W (m x k), x (k x n), a (m x n) as one oneDNN matmul
// primitive with the bias and a tanh eltwise post-op: the forward product with its
// elementwise work fused into the kernel's epilogue.
class MatmulBiasTanh {
 public:
  MatmulBiasTanh(const Matrix& w, const Matrix& x, const alignd::core::Vector& b, Matrix& a) {
    // Column-major (m x n) is row-major (n x m): dst(n x m) = src(n x k) . weights(k x m).
    const int64_t m = w.rows(), k = w.cols(), n = x.cols();
    alignd::core::ApplyGemmThreads();  // the primitive takes its thread count when created
    dnnl_memory_desc_t src_md, w_md, b_md, dst_md;
    dnnl_dims_t sd = {n, k}, wd = {k, m}, bd = {1, m}, dd = {n, m};
    DNNL_OK(dnnl_memory_desc_init_by_tag(&src_md, 2, sd, dnnl_f32, dnnl_ab));
    DNNL_OK(dnnl_memory_desc_init_by_tag(&w_md, 2, wd, dnnl_f32, dnnl_ab));
    DNNL_OK(dnnl_memory_desc_init_by_tag(&b_md, 2, bd, dnnl_f32, dnnl_ab));
    DNNL_OK(dnnl_memory_desc_init_by_tag(&dst_md, 2, dd, dnnl_f32, dnnl_ab));
    DNNL_OK(dnnl_engine_create(&engine_, dnnl_cpu, 0));
    DNNL_OK(dnnl_stream_create(&stream_, engine_, dnnl_stream_default_flags));
    dnnl_matmul_desc_t desc;
    DNNL_OK(dnnl_matmul_desc_init(&desc, &src_md, &w_md, &b_md, &dst_md));
    dnnl_post_ops_t po;
    DNNL_OK(dnnl_post_ops_create(&po));
    DNNL_OK(dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_tanh, 0.0f, 0.0f));
    dnnl_primitive_attr_t attr;
    DNNL_OK(dnnl_primitive_attr_create(&attr));
    DNNL_OK(dnnl_primitive_attr_set_post_ops(attr, po));
    dnnl_primitive_desc_t pd;
    DNNL_OK(dnnl_primitive_desc_create(&pd, &desc, attr, engine_, nullptr));
    DNNL_OK(dnnl_primitive_create(&prim_, pd));
    DNNL_OK(dnnl_primitive_desc_destroy(pd));
    DNNL_OK(dnnl_primitive_attr_destroy(attr));
    DNNL_OK(dnnl_post_ops_destroy(po));
    DNNL_OK(dnnl_memory_create(&mem_[0], &src_md, engine_, const_cast<float*>(x.data())));
    DNNL_OK(dnnl_memory_create(&mem_[1], &w_md, engine_, const_cast<float*>(w.data())));
    DNNL_OK(dnnl_memory_create(&mem_[2], &b_md, engine_, const_cast<float*>(b.data())));
    DNNL_OK(dnnl_memory_create(&mem_[3], &dst_md, engine_, a.data()));
  }
  ~MatmulBiasTanh() {
    for (dnnl_memory_t m : mem_) dnnl_memory_destroy(m);
    dnnl_primitive_destroy(prim_);
    dnnl_stream_destroy(stream_);
    dnnl_engine_destroy(engine_);
  }
  void Run() {
    alignd::core::ApplyGemmThreads();
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, mem_[0]},
                               {DNNL_ARG_WEIGHTS, mem_[1]},
                               {DNNL_ARG_BIAS, mem_[2]},
                               {DNNL_ARG_DST, mem_[3]}};
    DNNL_OK(dnnl_primitive_execute(prim_, stream_, 4, args));
    DNNL_OK(dnnl_stream_wait(stream_));
  }

 private:
  dnnl_engine_t engine_ = nullptr;
  dnnl_stream_t stream_ = nullptr;
  dnnl_primitive_t prim_ = nullptr;
  dnnl_memory_t mem_[4] = {};
};

// The forward layer with its bias and tanh, two ways on 1 and 2 threads: SGEMM then our
// fused pass over z (core::Activate, split over the threads), against oneDNN's matmul with
// the bias and tanh as post-ops. Microseconds per call, median of 7 interleaved rounds.
void CompareFusedForward(nlohmann::json& rows) {
  std::printf(
      "\nforward with bias and tanh, us per call (median of 7 interleaved rounds):\n%-30s %7s "
      "%12s %12s %12s %7s\n",
      "shape", "threads", "product", "+our pass", "post-ops", "ours/po");
  alignd::core::Rng rng(2);
  for (int n : {32, 128}) {
    for (int threads : {1, 2}) {
      Matrix w(1000, 784), x(784, n), z(1000, n), a(1000, n), fused(1000, n);
      alignd::core::Vector b(1000);
      rng.FillUniform(w, -0.05f, 0.05f);
      rng.FillUniform(x, 0, 1);
      rng.FillUniform(b, -0.1f, 0.1f);
      alignd::core::SetGemmThreads(threads);
      MatmulBiasTanh po(w, x, b, fused);
      auto product = [&] { alignd::core::Gemm(false, false, 1.0f, w, x, 0.0f, z); };
      auto ours = [&] {
        product();
        alignd::core::Activate(alignd::core::Activation::kTanh, &b, z, a);
      };
      ours(), po.Run();
      const float diff = (a - fused).cwiseAbs().maxCoeff();
      if (diff > 1e-4f) {
        std::fprintf(stderr, "gemm_bench: post-op forward differs from ours by %g\n", diff);
        std::exit(1);
      }
      const int reps = 200;
      std::vector<double> tp, to, tf;
      for (int round = 0; round < 7; ++round) {
        tp.push_back(Seconds(product, reps) / reps * 1e6);
        to.push_back(Seconds(ours, reps) / reps * 1e6);
        tf.push_back(Seconds([&] { po.Run(); }, reps) / reps * 1e6);
      }
      alignd::core::SetGemmThreads(1);
      char what[64];
      std::snprintf(what, sizeof what, "1000x784 . 784x%d", n);
      std::printf("%-30s %7d %12.1f %12.1f %12.1f %6.2fx\n", what, threads, Median(tp), Median(to),
                  Median(tf), Median(to) / Median(tf));
      rows.push_back({{"what", "fused_forward"},
                      {"batch", n},
                      {"threads", threads},
                      {"product_us", Median(tp)},
                      {"product_and_our_pass_us", Median(to)},
                      {"onednn_post_ops_us", Median(tf)}});
    }
  }
}
#endif

int main(int argc, char** argv) {
  std::string out_path;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--out" && i + 1 < argc) {
      out_path = argv[++i];
    } else {
      std::fprintf(stderr, "usage: %s [--out FILE]\n", argv[0]);
      return 2;
    }
  }
  alignd::core::EnableFlushToZero();
  const char* isa = "";
  const double peak = FmaPeak(&isa);
  std::printf("FMA peak, one core (%s register loop): %.1f GFLOP/s\n", isa, peak);
  nlohmann::json rows = nlohmann::json::array();
  rows.push_back({{"what", "fma_peak"}, {"isa", isa}, {"gflops", peak}});

  const Shape kShapes[] = {
      {"forward   W(1000x784) X(784x128)", 1000, 128, 784, false, false},
      {"backward  W1^T(1000x10) d(10x128)", 1000, 128, 10, true, false},
      {"update    d(1000x128) X^T(128x784)", 1000, 784, 128, false, true},
      {"forward   batch 32", 1000, 32, 784, false, false},
  };
  alignd::core::Rng rng(1);
  std::printf("products: %s vs Eigen %d.%d.%d, GFLOP/s (median of 7 interleaved rounds)\n",
              alignd::core::GemmBackend(), EIGEN_WORLD_VERSION, EIGEN_MAJOR_VERSION,
              EIGEN_MINOR_VERSION);
  std::printf("%-38s %8s %8s %7s %8s %14s %14s\n", "shape (m x n x k)", "library", "eigen", "ratio",
              "of peak", "2 at once each", "1 on 2 threads");
  for (const Shape& s : kShapes) {
    Matrix a = s.ta ? Matrix(s.k, s.m) : Matrix(s.m, s.k);
    Matrix b = s.tb ? Matrix(s.n, s.k) : Matrix(s.k, s.n);
    Matrix c(s.m, s.n);
    rng.FillUniform(a, -1, 1);
    rng.FillUniform(b, -1, 1);
    const double flop = 2.0 * s.m * s.n * s.k;
    const int reps = std::max(5, static_cast<int>(2e9 / flop));
    auto lib = [&] { alignd::core::Gemm(s.ta, s.tb, 1.0f, a, b, 0.0f, c); };
    auto eig = [&] { alignd::core::GemmEigen(s.ta, s.tb, 1.0f, a, b, 0.0f, c); };
    auto split = [&] {
      alignd::core::SetGemmThreads(2);
      alignd::core::Gemm(s.ta, s.tb, 1.0f, a, b, 0.0f, c);
      alignd::core::SetGemmThreads(1);
    };
    lib(), eig(), split();  // warm up
    std::vector<double> gl, ge, g2, gs;
    for (int round = 0; round < 7; ++round) {
      gl.push_back(flop * reps / Seconds(lib, reps) / 1e9);
      ge.push_back(flop * reps / Seconds(eig, reps) / 1e9);
      gs.push_back(flop * reps / Seconds(split, reps) / 1e9);
      // Two threads at once, each its own output (two sessions side by side).
      std::vector<std::thread> th;
      std::vector<double> secs(2);
      for (int t = 0; t < 2; ++t)
        th.emplace_back([&, t] {
          alignd::core::EnableFlushToZero();
          Matrix out(s.m, s.n);
          secs[t] = Seconds([&] { alignd::core::Gemm(s.ta, s.tb, 1.0f, a, b, 0.0f, out); }, reps);
        });
      for (auto& x : th) x.join();
      g2.push_back(flop * reps / std::max(secs[0], secs[1]) / 1e9);
    }
    std::printf("%-38s %8.1f %8.1f %6.2fx %7.0f%% %14.1f %14.1f\n", s.what, Median(gl), Median(ge),
                Median(gl) / Median(ge), 100 * Median(gl) / peak, Median(g2), Median(gs));
    rows.push_back({{"what", s.what},
                    {"library", alignd::core::GemmBackend()},
                    {"gflops", Median(gl)},
                    {"eigen_gflops", Median(ge)},
                    {"fraction_of_peak", Median(gl) / peak},
                    {"two_at_once_each_gflops", Median(g2)},
                    {"two_threads_gflops", Median(gs)}});
  }
#ifdef ALIGND_HAVE_ONEDNN
  CompareFusedForward(rows);
#endif
  if (!out_path.empty()) std::ofstream(out_path) << rows.dump(1) << "\n";
  return 0;
}
