// The training step allocates no memory after the first batch.
//
// Eigen's EIGEN_RUNTIME_NO_MALLOC check is an eigen_assert, compiled out in the
// Release builds that we test; so this binary counts heap allocations itself, by
// wrapping malloc and friends (glibc's __libc_* entry points), which also catches
// allocations Eigen's flag would not see (std::vector, absl::Status).
//
// oneDNN's SGEMM (core/gemm.h) takes its packing buffers from the heap on every
// call, by design of that library, and its primitives (core/conv.h) build a small map
// of their arguments on every execution; those allocations (made from code in libdnnl)
// are counted apart and reported, not failed: the engine's own code allocates
// nothing. operator new is replaced too, so that it is counted by its own caller (glibc's
// malloc would only see libstdc++'s operator new).
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <malloc.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <tuple>

#include "core/conv.h"
#include "core/gemm.h"
#include "core/trainer.h"
#include "tests/test_util.h"

extern "C" {
void* __libc_malloc(size_t);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void* __libc_memalign(size_t, size_t);
}

namespace {
std::atomic<bool> g_counting{false};
std::atomic<long> g_allocations{0};
std::atomic<long> g_gemm_library_allocations{0};
std::atomic<long> g_large_allocations{0};  // of ours, 1 MiB or more
// `caller` is the return address of the allocation call, `bytes` its size.
__attribute__((noinline)) void Count(void* caller, size_t bytes) {
  if (!g_counting.load(std::memory_order_relaxed)) return;
  Dl_info info;
  if (dladdr(caller, &info) != 0 && info.dli_fname != nullptr &&
      std::strstr(info.dli_fname, "libdnnl") != nullptr) {
    g_gemm_library_allocations.fetch_add(1);
    return;
  }
  g_allocations.fetch_add(1);
  if (bytes >= (size_t{1} << 20)) g_large_allocations.fetch_add(1);
}
}  // namespace

#define COUNT(bytes) Count(__builtin_return_address(0), bytes)
extern "C" {
void* malloc(size_t n) {
  COUNT(n);
  return __libc_malloc(n);
}
void* calloc(size_t n, size_t m) {
  COUNT(n * m);
  return __libc_calloc(n, m);
}
void* realloc(void* p, size_t n) {
  COUNT(n);
  return __libc_realloc(p, n);
}
void* memalign(size_t a, size_t n) {
  COUNT(n);
  return __libc_memalign(a, n);
}
void* aligned_alloc(size_t a, size_t n) {
  COUNT(n);
  return __libc_memalign(a, n);
}
int posix_memalign(void** p, size_t a, size_t n) {
  COUNT(n);
  *p = __libc_memalign(a, n);
  return *p ? 0 : 12;  // ENOMEM
}
}

// The memory is glibc's either way, so the default operator delete (free) releases it.
void* operator new(size_t n) {
  COUNT(n);
  if (void* p = __libc_malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new[](size_t n) {
  COUNT(n);
  if (void* p = __libc_malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new(size_t n, const std::nothrow_t&) noexcept {
  COUNT(n);
  return __libc_malloc(n ? n : 1);
}
void* operator new[](size_t n, const std::nothrow_t&) noexcept {
  COUNT(n);
  return __libc_malloc(n ? n : 1);
}
void* operator new(size_t n, std::align_val_t a) {
  COUNT(n);
  if (void* p = __libc_memalign(size_t(a), n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new[](size_t n, std::align_val_t a) {
  COUNT(n);
  if (void* p = __libc_memalign(size_t(a), n ? n : 1)) return p;
  throw std::bad_alloc();
}

namespace alignd::core {
namespace {

struct Shape {
  std::string name;
  std::vector<int> sizes;  // input and output only, with `layers`
  int batch;
  std::vector<LayerSpec> layers = {};
  ImageShape input = {};
  int threads = 1;  // TrainingConfig.threads: 2 splits the elementwise work (core/parallel.h)
};

LayerSpec Spec(LayerKind kind, int units, int kernel) {
  LayerSpec l;
  l.kind = kind;
  l.units = units;
  l.kernel_h = kernel;
  return l;
}
// LeNet-5 on 1x28x28 (padding 2 in the first convolution, as LeCun's 32x32).
std::vector<LayerSpec> LeNet() {
  std::vector<LayerSpec> l = {Spec(LayerKind::kConv, 6, 5),    Spec(LayerKind::kMaxPool, 0, 2),
                              Spec(LayerKind::kConv, 16, 5),   Spec(LayerKind::kMaxPool, 0, 2),
                              Spec(LayerKind::kDense, 120, 0), Spec(LayerKind::kDense, 84, 0),
                              Spec(LayerKind::kDense, 10, 0)};
  l[0].padding = 2;
  return l;
}

void SetNetwork(const Shape& shape, NetworkConfig* net) {
  net->sizes = shape.sizes;
  if (shape.layers.empty()) return;
  net->layers = shape.layers;
  net->input = shape.input;
  net->sizes = {shape.sizes.front()};
  EXPECT_OK(CompleteNetwork(net));
}

class NoMallocTest : public ::testing::TestWithParam<std::tuple<Rule, OptimizerKind, Shape>> {};

TEST_P(NoMallocTest, StepAllocatesNothingAfterTheFirstBatch) {
  const auto& [rule, optimizer, shape] = GetParam();
  const int n = 4 * shape.batch;
  Rng rng(1);
  Matrix x(shape.sizes.front(), n);
  rng.FillUniform(x, 0, 1);
  std::vector<int32_t> labels(n);
  for (int j = 0; j < n; ++j) labels[j] = j % shape.sizes.back();
  auto data =
      std::make_shared<const Dataset>(*MakeClassificationDataset(x, labels, shape.sizes.back()));
  TrainerOptions o;
  SetNetwork(shape, &o.network);
  o.network.output = Activation::kSoftmax;
  o.network.loss = Loss::kCrossEntropy;
  o.feedback.rule = rule;
  o.optimizer.kind = optimizer;
  o.optimizer.weight_decay = 1e-4f;
  o.batch_size = shape.batch;
  o.threads = shape.threads;
  o.epochs = 100;
  o.metrics_every = 0;  // metric steps may allocate; plain steps may not
  auto t = Trainer::Create(o, data);
  ASSERT_OK(t);
  StepMetrics m;
  ASSERT_OK((*t)->Step(&m));  // the first batch allocates the workspace
  g_allocations = 0;
  g_gemm_library_allocations = 0;
  g_counting = true;
  absl::Status s;
  for (int k = 0; k < 5 && s.ok(); ++k) s = (*t)->Step(&m);
  g_counting = false;
  ASSERT_OK(s);
  EXPECT_EQ(g_allocations.load(), 0) << "heap allocations in 5 training steps";
  RecordProperty("gemm_library_allocations", std::to_string(g_gemm_library_allocations.load()));
}

// A checkpoint exported into the state the last one was exported into allocates nothing
// (the recorder takes one every checkpoint_every steps, on the training thread).
TEST_P(NoMallocTest, ExportStateIntoAStateExportedBeforeAllocatesNothing) {
  const auto& [rule, optimizer, shape] = GetParam();
  const int n = 4 * shape.batch;
  Rng rng(1);
  Matrix x(shape.sizes.front(), n);
  rng.FillUniform(x, 0, 1);
  std::vector<int32_t> labels(n);
  for (int j = 0; j < n; ++j) labels[j] = j % shape.sizes.back();
  auto data =
      std::make_shared<const Dataset>(*MakeClassificationDataset(x, labels, shape.sizes.back()));
  TrainerOptions o;
  SetNetwork(shape, &o.network);
  o.network.output = Activation::kSoftmax;
  o.network.loss = Loss::kCrossEntropy;
  o.feedback.rule = rule;
  o.optimizer.kind = optimizer;
  o.batch_size = shape.batch;
  o.epochs = 100;
  o.metrics_every = 0;
  auto t = Trainer::Create(o, data);
  ASSERT_OK(t);
  StepMetrics m;
  ASSERT_OK((*t)->Step(&m));
  TrainerState state;
  (*t)->ExportState(&state);  // the first export allocates the buffers
  ASSERT_OK((*t)->Step(&m));
  g_allocations = 0;
  g_counting = true;
  (*t)->ExportState(&state);
  g_counting = false;
  EXPECT_EQ(g_allocations.load(), 0) << "heap allocations in an export into a used state";
  // And it is the state ExportState() returns.
  EXPECT_EQ(SerializeState(state), SerializeState((*t)->ExportState()));
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, NoMallocTest,
    ::testing::Combine(
        ::testing::Values(Rule::kBackprop, Rule::kFeedbackAlignment, Rule::kDirectFeedbackAlignment,
                          Rule::kKolenPollack, Rule::kSignSymmetry),
        ::testing::Values(OptimizerKind::kSgd, OptimizerKind::kAdam),
        ::testing::Values(Shape{"tiny_b1", {30, 20, 10}, 1}, Shape{"mnist_b1", {784, 1000, 10}, 1},
                          Shape{"mnist_b32", {784, 1000, 10}, 32},
                          Shape{"deep_b128", {784, 256, 256, 10}, 128},
                          Shape{"mnist_b128_2threads", {784, 1000, 10}, 128, {}, {}, 2},
                          Shape{"lenet_b1", {784, 10}, 1, LeNet(), {1, 28, 28}},
                          Shape{"lenet_b64", {784, 10}, 64, LeNet(), {1, 28, 28}})),
    [](const auto& info) {
      return std::string(RuleName(std::get<0>(info.param))) + "_" +
             std::string(OptimizerName(std::get<1>(info.param))) + "_" +
             std::get<2>(info.param).name;
    });

// A convolution or pooling call of a shape seen before allocates nothing of ours (the
// primitives, memories, reorders and scratchpad are cached per thread), on one and two
// threads, on the library path (both activation layouts: conv1's backward-data is NCHW)
// and on the reference.
TEST(ConvNoMallocTest, CallsOfACachedShapeAllocateNothing) {
  ConvShape conv1, conv2;
  conv1.in_h = conv1.in_w = 32, conv1.out_c = 6, conv1.kernel_h = conv1.kernel_w = 5;
  conv2.in_c = 6, conv2.in_h = conv2.in_w = 14, conv2.out_c = 16;
  conv2.kernel_h = conv2.kernel_w = 5, conv2.stride = 2, conv2.padding = 1;
  PoolShape pool;
  pool.c = 6, pool.in_h = pool.in_w = 28;
  const int n = 16;
  Rng rng(3);
  for (int threads : {1, 2}) {
    SetGemmThreads(threads);
    long ours = 0, library = 0, calls = 0;
    for (const ConvShape& s : {conv1, conv2}) {
      Matrix x(s.in_size(), n), w(s.out_c, s.kernel_size()), z(s.out_size(), n);
      Matrix dx(s.in_size(), n), dw(s.out_c, s.kernel_size());
      Matrix px(pool.in_size(), n), py(pool.out_size(), n), pdx(pool.in_size(), n);
      Vector b(s.out_c), db(s.out_c);
      rng.FillUniform(x, -1, 1);
      rng.FillUniform(w, -1, 1);
      rng.FillUniform(b, -1, 1);
      rng.FillUniform(px, -1, 1);
      auto all = [&] {
        ConvForward(s, x, w, &b, z);
        ConvBackwardData(s, z, w, dx);
        ConvBackwardWeights(s, x, z, dw, &db);
        ConvBackwardWeights(s, x, z, dw, nullptr);
        ConvForwardReference(s, x, w, &b, z);
        ConvBackwardDataReference(s, z, w, dx);
        ConvBackwardWeightsReference(s, x, z, dw, &db);
        PoolForward(pool, px, py);
        PoolBackward(pool, px, py, pdx);
        pool.max = !pool.max;
      };
      g_allocations = 0;
      g_counting = true;
      all(), all();  // the first calls build the caches
      g_counting = false;
      EXPECT_GT(g_allocations.load(), 0) << "the counter counts nothing";
      g_allocations = 0;
      g_gemm_library_allocations = 0;
      g_counting = true;
      for (int k = 0; k < 4; ++k) all();
      g_counting = false;
      ours += g_allocations.load();
      library += g_gemm_library_allocations.load();
      calls += 4 * 4;  // library-path convolution calls
    }
    EXPECT_EQ(ours, 0) << "heap allocations in cached convolution and pooling calls, threads "
                       << threads;
    RecordProperty("library_allocations_per_conv_call_threads" + std::to_string(threads),
                   std::to_string(double(library) / double(calls)));
  }
  SetGemmThreads(1);
}

// Predict and Evaluate keep their chunk activations in a pool shared by threads
// (core/network.cc): calls that alternate two networks of other shapes (a served network's
// Predicts and a training session's evaluations) each find a workspace of their own shapes and
// allocate no activations again; a workspace above 32 MB is not kept, so its next call
// allocates it anew.
Network RandomNetwork(std::vector<int> sizes, uint64_t seed) {
  NetworkConfig config;
  config.sizes = sizes;
  config.output = Activation::kSoftmax;
  config.loss = Loss::kCrossEntropy;
  Rng rng(seed);
  std::vector<Matrix> w, b;
  for (size_t i = 0; i + 1 < sizes.size(); ++i) {
    w.emplace_back(sizes[i + 1], sizes[i]);
    rng.FillUniform(w.back(), -0.05f, 0.05f);
    b.push_back(Matrix::Zero(sizes[i + 1], 1));
  }
  return *Network::Create(config, w, b, true);
}

TEST(NoMallocPredictTest, PredictsAndEvaluatesOfTwoNetworksTakeBackTheirOwnActivations) {
  const Network a = RandomNetwork({784, 1000, 10}, 1);  // Predict of 1,000: 8 MB
  // Evaluate of 2,048: two whole chunks of 2.5 MB (a short last chunk would be resized, and
  // allocated, at every call).
  const Network b = RandomNetwork({100, 300, 5}, 2);
  Rng rng(3);
  Matrix xa(784, 1000), xb(100, 2048);
  rng.FillUniform(xa, 0, 1);
  rng.FillUniform(xb, 0, 1);
  std::vector<int32_t> labels(2048);
  for (int j = 0; j < 2048; ++j) labels[j] = j % 5;
  const Dataset data = *MakeClassificationDataset(xb, labels, 5);
  auto round = [&] {
    ASSERT_OK(a.Predict(xa).status());
    ASSERT_OK(b.Evaluate(data).status());
  };
  g_large_allocations = 0;
  g_counting = true;
  round();  // each finds or makes its workspace
  g_counting = false;
  EXPECT_GT(g_large_allocations.load(), 0) << "the counter counts nothing";
  g_large_allocations = 0;
  g_counting = true;
  for (int k = 0; k < 3; ++k) round();
  g_counting = false;
  EXPECT_EQ(g_large_allocations.load(), 0) << "allocations of 1 MiB or more in 3 rounds";
  EXPECT_LE(KeptChunkWorkspaces(), MaxKeptChunkWorkspaces());

  const Network wide = RandomNetwork({784, 5000, 10}, 4);  // 40 MB of activations
  ASSERT_OK(wide.Predict(xa).status());
  g_large_allocations = 0;
  g_counting = true;
  ASSERT_OK(wide.Predict(xa).status());
  g_counting = false;
  EXPECT_GT(g_large_allocations.load(), 0) << "a workspace above 32 MB was kept";
}

}  // namespace
}  // namespace alignd::core
