// gemm_bench: the engine's product (core::Gemm, oneDNN) against Eigen's on the shapes of
// the 784-1000-10 step, interleaved in one run (the machine's speed drifts 20-40 %
// between runs: compare within a run), one thread; then two threads multiplying at
// once, as two sessions side by side do. Prints GFLOP/s (median of 7 rounds).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <thread>
#include <vector>

#include "core/gemm.h"
#include "core/random.h"

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

}  // namespace

int main() {
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
  std::printf("%-42s %10s %10s %8s %14s\n", "shape (m x n x k)", "library", "eigen", "ratio",
              "2 threads each");
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
    lib(), eig();  // warm up
    std::vector<double> gl, ge, g2;
    for (int round = 0; round < 7; ++round) {
      gl.push_back(flop * reps / Seconds(lib, reps) / 1e9);
      ge.push_back(flop * reps / Seconds(eig, reps) / 1e9);
      // Two threads at once, each its own output (two sessions side by side).
      double t2 = 0;
      std::vector<std::thread> th;
      std::vector<double> secs(2);
      for (int t = 0; t < 2; ++t)
        th.emplace_back([&, t] {
          Matrix out(s.m, s.n);
          secs[t] = Seconds([&] { alignd::core::Gemm(s.ta, s.tb, 1.0f, a, b, 0.0f, out); }, reps);
        });
      for (auto& x : th) x.join();
      t2 = std::max(secs[0], secs[1]);
      g2.push_back(flop * reps / t2 / 1e9);
    }
    auto median = [](std::vector<double> v) {
      std::sort(v.begin(), v.end());
      return v[v.size() / 2];
    };
    std::printf("%-42s %10.1f %10.1f %7.2fx %14.1f\n", s.what, median(gl), median(ge),
                median(gl) / median(ge), median(g2));
  }
  return 0;
}
