// micro_bench: Google Benchmark on the small things the service does per request or per
// event, so a change to one of them shows up on its own: the forward pass Predict serves
// (core::Network, one MNIST-sized example), the products against Eigen's, the upload
// path's SHA-256 and payload checks, resource-name parsing, and the metric ring a stream
// follows. `make bench` runs it (short); run it alone for more (--benchmark_min_time=2).
#include <benchmark/benchmark.h>

#include <memory>
#include <string>

#include "core/gemm.h"
#include "core/network.h"
#include "core/random.h"
#include "formats/formats.h"
#include "server/api/resource_names.h"
#include "server/sessions/live_session.h"

namespace {

using alignd::core::Matrix;

// Network::Predict of n examples on 784-1000-10 (tanh, softmax): what Predict costs once the
// network is cached, without the RPC.
void BM_NetworkPredict(benchmark::State& state) {
  alignd::core::NetworkConfig config;
  config.sizes = {784, 1000, 10};
  config.output = alignd::core::Activation::kSoftmax;
  alignd::core::Rng rng(1);
  std::vector<Matrix> w = {Matrix(1000, 784), Matrix(10, 1000)};
  std::vector<Matrix> b = {Matrix::Zero(1000, 1), Matrix::Zero(10, 1)};
  for (auto& m : w) rng.FillUniform(m, -0.05f, 0.05f);
  auto net = alignd::core::Network::Create(config, w, b, true);
  Matrix x(784, state.range(0));
  rng.FillUniform(x, 0, 1);
  for (auto _ : state) benchmark::DoNotOptimize(net->Predict(x));
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_NetworkPredict)->Arg(1)->Arg(32)->Arg(1000)->Unit(benchmark::kMicrosecond);

// The step's largest product, the library's and Eigen's.
template <bool kLibrary>
void BM_Gemm(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  alignd::core::Rng rng(2);
  Matrix a(1000, 784), x(784, n), c(1000, n);
  rng.FillUniform(a, -1, 1);
  rng.FillUniform(x, -1, 1);
  for (auto _ : state) {
    if (kLibrary)
      alignd::core::Gemm(false, false, 1.0f, a, x, 0.0f, c);
    else
      alignd::core::GemmEigen(false, false, 1.0f, a, x, 0.0f, c);
    benchmark::ClobberMemory();
  }
  state.counters["GFLOP/s"] =
      benchmark::Counter(2.0 * 1000 * 784 * n * state.iterations(), benchmark::Counter::kIsRate);
}
BENCHMARK_TEMPLATE(BM_Gemm, true)->Name("BM_Gemm/library")->Arg(32)->Arg(128);
BENCHMARK_TEMPLATE(BM_Gemm, false)->Name("BM_Gemm/eigen")->Arg(32)->Arg(128);

// SHA-256 of an upload chunk (1 MiB), as the server hashes each one.
void BM_Sha256Chunk(benchmark::State& state) {
  const std::string chunk(1 << 20, 'x');
  alignd::formats::Sha256 h;
  for (auto _ : state) h.Update(chunk);
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(chunk.size()));
}
BENCHMARK(BM_Sha256Chunk);

// Decoding and checking a stored payload (1000 MNIST-sized examples).
void BM_DecodePayload(benchmark::State& state) {
  alignd::formats::Examples e;
  e.feature_shape = {784};
  e.features.assign(784 * 1000, 0.5f);
  e.labels.assign(1000, 3);
  e.num_classes = 10;
  const std::string payload = alignd::formats::EncodePayload(e);
  const auto shape = alignd::formats::ShapeOf(e);
  for (auto _ : state) benchmark::DoNotOptimize(alignd::formats::DecodePayload(shape, payload));
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(payload.size()));
}
BENCHMARK(BM_DecodePayload);

void BM_ParseSnapshotName(benchmark::State& state) {
  const std::string name = "sessions/0123456789ab/snapshots/12000";
  for (auto _ : state) benchmark::DoNotOptimize(alignd::server::ParseSnapshotName(name));
}
BENCHMARK(BM_ParseSnapshotName);

// A metric event into the ring and read back, as the worker and a stream do.
void BM_MetricRing(benchmark::State& state) {
  alignd::server::MetricRing ring(0);
  int64_t seq = 0;
  for (auto _ : state) {
    auto e = std::make_shared<alignd::v1::MetricEvent>();
    e->set_seq(++seq);
    ring.Push(std::move(e));
    ring.MarkStored(seq);
    alignd::server::MetricRing::Where where;
    benchmark::DoNotOptimize(ring.Get(seq, &where));
  }
}
BENCHMARK(BM_MetricRing);

}  // namespace

BENCHMARK_MAIN();
