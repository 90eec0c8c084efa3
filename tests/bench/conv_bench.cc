// conv_bench: core/conv.h's convolutions against oneDNN's own primitives on the same shapes
// (Google Benchmark; run_bench.py prints the table). One thread.
//
//   conv_bench [--benchmark_format=json] [--benchmark_min_time=S] ...
//
// For LeNet-5's two convolutions (conv1: 1x28x28 -> 6x28x28, 5x5, padding 2; conv2:
// 6x14x14 -> 16x10x10, 5x5) at batch 1, 64 and 256, each of forward (with bias), backward-data
// and backward-weights (without bias, as the trainer calls it) is timed twice, one after the
// other so that the machine's drifts hit both alike:
//   core/<conv>/<op>/<n>    ConvForward / ConvBackwardData / ConvBackwardWeights on our
//                           buffers (NCHW activations, our weight layout): the cached
//                           primitive plus its reorders to and from our layouts.
//   onednn/<conv>/<op>/<n>  the primitive alone: every tensor in the layout oneDNN picks
//                           (format_tag::any) and allocated by it, no reorders, a user
//                           scratchpad, run through the C API with an argument array built
//                           once (as core/conv.cc does): what oneDNN itself costs.
// The label is oneDNN's implementation (the raw primitive's; core's may differ where it
// keeps NCHW: backward-data of conv1, see core/conv.cc's Build). conv1's backward-data is
// not part of a LeNet step (nothing below the first layer), it is here for completeness.
// Also core/pool{1,2}/{forward,backward}/<n>: LeNet's max pooling (core/conv.h's loops).
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "core/conv.h"
#include "core/cpu.h"
#include "core/gemm.h"
#include "core/random.h"

#ifdef ALIGND_HAVE_ONEDNN
#include <oneapi/dnnl/dnnl.hpp>
#endif

namespace {

using namespace alignd::core;

enum Op { kForward, kBackwardData, kBackwardWeights };
const char* const kOpNames[] = {"forward", "backward_data", "backward_weights"};

struct Named {
  const char* name;
  ConvShape shape;
};

std::vector<Named> LeNetConvs() {
  ConvShape c1, c2;
  c1.in_c = 1, c1.in_h = c1.in_w = 28, c1.out_c = 6, c1.kernel_h = c1.kernel_w = 5;
  c1.padding = 2;
  c2.in_c = 6, c2.in_h = c2.in_w = 14, c2.out_c = 16, c2.kernel_h = c2.kernel_w = 5;
  return {{"conv1", c1}, {"conv2", c2}};
}

double Flops(const ConvShape& s, int n) { return 2.0 * n * s.out_size() * s.kernel_size(); }

void Counters(benchmark::State& state, const ConvShape& s, int n) {
  state.counters["GFLOPS"] =
      benchmark::Counter(Flops(s, n) * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["batch"] = n;
}

void Core(benchmark::State& state, ConvShape s, Op op, int n) {
  SetGemmThreads(1);
  EnableFlushToZero();
  Rng rng(1);
  Matrix x(s.in_size(), n), z(s.out_size(), n), w(s.out_c, s.kernel_size()), dw = w;
  Vector b(s.out_c);
  rng.FillUniform(x, 0, 1);
  rng.FillUniform(z, -0.1f, 0.1f);
  rng.FillUniform(w, -0.2f, 0.2f);
  b.setZero();
  for (auto _ : state) {
    switch (op) {
      case kForward:
        ConvForward(s, x, w, &b, z);
        break;
      case kBackwardData:
        ConvBackwardData(s, z, w, x);
        break;
      case kBackwardWeights:
        ConvBackwardWeights(s, x, z, dw, nullptr);
        break;
    }
    benchmark::ClobberMemory();
  }
  if (op == kForward) state.SetLabel(ConvForwardImplementation(s, n));
  Counters(state, s, n);
}

#ifdef ALIGND_HAVE_ONEDNN
void OneDnn(benchmark::State& state, ConvShape s, Op op, int n) {
  using dnnl::memory;
  using Dt = memory::data_type;
  using Tag = memory::format_tag;
  SetGemmThreads(1);
  ApplyGemmThreads();  // this thread's OpenMP threads: 1
  EnableFlushToZero();
  dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  dnnl::stream stream(engine);
  const memory::dims strides{s.stride, s.stride}, pad{s.padding, s.padding};
  const memory::desc x({n, s.in_c, s.in_h, s.in_w}, Dt::f32, Tag::any);
  const memory::desc z({n, s.out_c, s.out_h(), s.out_w()}, Dt::f32, Tag::any);
  const memory::desc w({s.out_c, s.in_c, s.kernel_h, s.kernel_w}, Dt::f32, Tag::any);
  const memory::desc b({s.out_c}, Dt::f32, Tag::x);
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  const auto direct = dnnl::algorithm::convolution_direct;
  using Fwd = dnnl::convolution_forward;
  const Fwd::primitive_desc fwd(
      Fwd::desc(dnnl::prop_kind::forward_training, direct, x, w, b, z, strides, pad, pad), attr,
      engine);
  dnnl::primitive prim;
  std::vector<std::pair<int, memory::desc>> args;
  memory::desc scratch;
  std::string impl;
  switch (op) {
    case kForward:
      prim = Fwd(fwd);
      args = {{DNNL_ARG_SRC, fwd.src_desc()},
              {DNNL_ARG_WEIGHTS, fwd.weights_desc()},
              {DNNL_ARG_BIAS, fwd.bias_desc()},
              {DNNL_ARG_DST, fwd.dst_desc()}};
      scratch = fwd.scratchpad_desc();
      impl = fwd.impl_info_str();
      break;
    case kBackwardData: {
      using Bwd = dnnl::convolution_backward_data;
      const Bwd::primitive_desc pd(Bwd::desc(direct, x, w, z, strides, pad, pad), attr, engine,
                                   fwd);
      prim = Bwd(pd);
      args = {{DNNL_ARG_DIFF_DST, pd.diff_dst_desc()},
              {DNNL_ARG_WEIGHTS, pd.weights_desc()},
              {DNNL_ARG_DIFF_SRC, pd.diff_src_desc()}};
      scratch = pd.scratchpad_desc();
      impl = pd.impl_info_str();
      break;
    }
    case kBackwardWeights: {
      using Bwd = dnnl::convolution_backward_weights;
      const Bwd::primitive_desc pd(Bwd::desc(direct, x, w, z, strides, pad, pad), attr, engine,
                                   fwd);
      prim = Bwd(pd);
      args = {{DNNL_ARG_SRC, pd.src_desc()},
              {DNNL_ARG_DIFF_DST, pd.diff_dst_desc()},
              {DNNL_ARG_DIFF_WEIGHTS, pd.diff_weights_desc()}};
      scratch = pd.scratchpad_desc();
      impl = pd.impl_info_str();
      break;
    }
  }
  std::vector<memory> mems;
  std::vector<dnnl_exec_arg_t> exec;
  Rng rng(1);
  for (const auto& [id, md] : args) {
    mems.emplace_back(md, engine);
    // Values like Core's (padding entries of blocked layouts too: harmless).
    float* p = static_cast<float*>(mems.back().get_data_handle());
    const size_t count = md.get_size() / sizeof(float);
    Matrix fill(static_cast<Eigen::Index>(count), 1);
    rng.FillUniform(fill, id == DNNL_ARG_BIAS ? 0.0f : -0.1f, id == DNNL_ARG_BIAS ? 0.0f : 0.2f);
    std::copy(fill.data(), fill.data() + count, p);
    exec.push_back({id, mems.back().get()});
  }
  mems.emplace_back(scratch, engine);
  exec.push_back({DNNL_ARG_SCRATCHPAD, mems.back().get()});
  for (auto _ : state) {
    if (dnnl_primitive_execute(prim.get(), stream.get(), int(exec.size()), exec.data()) !=
        dnnl_success)
      state.SkipWithError("dnnl_primitive_execute failed");
    stream.wait();
    benchmark::ClobberMemory();
  }
  state.SetLabel(impl);
  Counters(state, s, n);
}
#endif

// core's max pooling (our loops; no oneDNN counterpart timed) on LeNet's two pooling
// layers, forward and backward: the step's other per-pixel work, for scale.
void Pool(benchmark::State& state, PoolShape s, bool backward, int n) {
  Rng rng(1);
  Matrix x(s.in_size(), n), y(s.out_size(), n), dx(s.in_size(), n);
  rng.FillUniform(x, -1, 1);
  rng.FillUniform(y, -1, 1);
  for (auto _ : state) {
    if (backward)
      PoolBackward(s, x, y, dx);
    else
      PoolForward(s, x, y);
    benchmark::ClobberMemory();
  }
  state.counters["batch"] = n;
}

void Register() {
  for (const Named& c : LeNetConvs())
    for (int op : {kForward, kBackwardData, kBackwardWeights})
      for (int n : {1, 64, 256}) {
        const std::string tail = std::string(c.name) + "/" + kOpNames[op] + "/" + std::to_string(n);
        benchmark::RegisterBenchmark(("core/" + tail).c_str(), Core, c.shape, Op(op), n)
            ->Unit(benchmark::kMicrosecond);
#ifdef ALIGND_HAVE_ONEDNN
        benchmark::RegisterBenchmark(("onednn/" + tail).c_str(), OneDnn, c.shape, Op(op), n)
            ->Unit(benchmark::kMicrosecond);
#endif
      }
  PoolShape p1, p2;
  p1.c = 6, p1.in_h = p1.in_w = 28;
  p2.c = 16, p2.in_h = p2.in_w = 10;
  for (const auto& [name, p] : {std::pair{"pool1", p1}, std::pair{"pool2", p2}})
    for (bool backward : {false, true})
      for (int n : {1, 64, 256})
        benchmark::RegisterBenchmark((std::string("core/") + name +
                                      (backward ? "/backward/" : "/forward/") + std::to_string(n))
                                         .c_str(),
                                     Pool, p, backward, n)
            ->Unit(benchmark::kMicrosecond);
}

}  // namespace

int main(int argc, char** argv) {
  Register();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
