// File: core/network.cc
#include "core/network.h"

#include <algorithm>
#include <memory>
#include <mutex>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "core/cpu.h"
#include "core/layers.h"

namespace alignd::core {
namespace {

// Examples per chunk of Evaluate and Predict: 1024, or 256 with convolutions, whose oneDNN
// primitives hold their activations per chunk width (core/conv.cc caches them per thread).
int64_t ChunkColumns(const Layers& layers) {
  for (const auto& l : layers)
    if (l->kind() == LayerKind::kConv) return 256;
  return 1024;
}

// The activations of one chunk, kept from one call to the next. A Predict of 1,000 examples on
// 784-1000-10 needs 8 MB of them: allocated per call, glibc gave them back to the kernel at the
// free and took fresh pages at the next call, whose faults were ~30 % of the in-process call
// (perf). A call of the previous call's shapes allocates nothing; a workspace above kKeepBytes
// (wide nets) is freed after its call rather than kept.
struct ChunkWorkspace {
  std::vector<Matrix> a, z;
  // The calls it serves: the layer sizes and the chunk's width.
  std::vector<int> sizes;
  int64_t columns = 0;
  std::vector<Matrix>& A(int L) {
    a.resize(L + 1);
    return a;
  }
  std::vector<Matrix>& Z(int L) {
    z.resize(L + 1);
    return z;
  }
  // After a call: whether the buffers are small enough to keep.
  bool Keepable() const {
    size_t bytes = 0;
    for (const auto* v : {&a, &z})
      for (const Matrix& m : *v) bytes += sizeof(float) * static_cast<size_t>(m.size());
    constexpr size_t kKeepBytes = size_t{32} << 20;
    return bytes <= kKeepBytes;
  }
};

// The workspaces are shared by every thread that evaluates or predicts, not kept one per thread:
// with one per thread, the first Predict of 1,000 on each of the server's eight executor threads
// touched its own 8 MB for the first time and took 15.5-21.7 ms against 13-14.5 ms later, and
// eight threads could keep 8 x 32 MB. The pool keeps the kKeep most recently returned; a call
// takes the newest one last used for its shapes (a served network's Predicts and a training
// session's evaluations each find their own, warm and of the right size), else makes one: one
// of other shapes would save nothing, since a matrix resized to another size is allocated anew.
class WorkspacePool {
 public:
  static constexpr size_t kKeep = 4;

  class Lease {
   public:
    explicit Lease(std::unique_ptr<ChunkWorkspace> ws) : ws_(std::move(ws)) {}
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    ~Lease() { Pool().Return(std::move(ws_)); }
    ChunkWorkspace& operator*() const { return *ws_; }

   private:
    std::unique_ptr<ChunkWorkspace> ws_;
  };

  static WorkspacePool& Pool() {
    static WorkspacePool* pool = new WorkspacePool;  // never destroyed: used until exit
    return *pool;
  }

  Lease Take(const std::vector<int>& sizes, int64_t columns) {
    std::unique_ptr<ChunkWorkspace> ws;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (auto k = free_.rbegin(); k != free_.rend(); ++k)
        if ((*k)->columns == columns && (*k)->sizes == sizes) {
          ws = std::move(*k);
          free_.erase(k.base() - 1);
          break;
        }
    }
    // None of these shapes: a new one (Eigen would reallocate every buffer of another's).
    if (!ws) {
      ws = std::make_unique<ChunkWorkspace>();
      ws->sizes = sizes;
      ws->columns = columns;
    }
    return Lease(std::move(ws));
  }

  size_t Kept() {
    std::lock_guard<std::mutex> lock(mu_);
    return free_.size();
  }

 private:
  WorkspacePool() { free_.reserve(kKeep); }  // Return, in a destructor, does not allocate

  void Return(std::unique_ptr<ChunkWorkspace> ws) {
    if (!ws || !ws->Keepable()) return;
    std::unique_ptr<ChunkWorkspace> oldest;  // freed outside the lock
    std::lock_guard<std::mutex> lock(mu_);
    if (free_.size() == kKeep) {
      oldest = std::move(free_.front());
      free_.erase(free_.begin());
    }
    free_.push_back(std::move(ws));
  }

  std::mutex mu_;
  std::vector<std::unique_ptr<ChunkWorkspace>> free_;
};

}  // namespace

size_t KeptChunkWorkspaces() { return WorkspacePool::Pool().Kept(); }
size_t MaxKeptChunkWorkspaces() { return WorkspacePool::kKeep; }

absl::StatusOr<EvalMetrics> EvaluateWeights(const Layers& layers, const NetworkConfig& config,
                                            const std::vector<Matrix>& w,
                                            const std::vector<Vector>& b, bool class_labels,
                                            const Dataset& data, int64_t first, int64_t count) {
  const auto& s = config.sizes;
  if (count < 0) count = data.size() - first;
  if (first < 0 || count < 1 || first + count > data.size())
    return absl::InvalidArgumentError(absl::StrCat("examples [", first, ", ", first + count,
                                                   ") are outside data set '", data.name, "' of ",
                                                   data.size()));
  if (data.input_dim() != s.front() || data.output_dim() != s.back())
    return absl::InvalidArgumentError(absl::StrCat(
        "data set '", data.name, "' has ", data.input_dim(), " features and ", data.output_dim(),
        " outputs; the network has ", s.front(), " and ", s.back()));
  if (data.is_classification() != class_labels)
    return absl::InvalidArgumentError(absl::StrCat(
        "data set '", data.name, "' is ", data.is_classification() ? "labelled" : "regression",
        " data; the network was trained on the other kind"));
  EnableFlushToZero();
  const int L = static_cast<int>(w.size());
  const int64_t kChunk = ChunkColumns(layers);
  WorkspacePool::Lease lease = WorkspacePool::Pool().Take(s, std::min(kChunk, count));
  ChunkWorkspace& ws = *lease;
  std::vector<Matrix>& a = ws.A(L);
  std::vector<Matrix>& z = ws.Z(L);
  Matrix t, delta;
  double loss = 0, err2 = 0, tgt2 = 0;
  int64_t correct = 0;
  const int64_t end = first + count;
  for (int64_t start = first; start < end; start += kChunk) {
    const int64_t m = std::min(kChunk, end - start);
    for (int i = 1; i <= L; ++i) {
      a[i].resize(s[i], m);
      z[i].resize(s[i], m);
    }
    Forward(layers, config, w, b, data.features.middleCols(start, m), a, z);
    if (data.is_classification()) {
      t = Matrix::Zero(s[L], m);
      for (int64_t j = 0; j < m; ++j) t(data.labels[start + j], j) = 1.0f;
      for (int64_t j = 0; j < m; ++j) correct += ArgMax(a[L].col(j)) == data.labels[start + j];
    } else {
      t = data.targets.middleCols(start, m);
      err2 += (a[L] - t).cast<double>().squaredNorm();
      tgt2 += t.cast<double>().squaredNorm();
    }
    loss += LossAndDelta(config, a[L], z[L], t, delta) * static_cast<double>(m);
  }
  EvalMetrics e;
  e.examples = count;
  e.loss = loss / static_cast<double>(count);
  if (data.is_classification()) {
    e.accuracy = static_cast<double>(correct) / static_cast<double>(count);
    e.error_rate = 1.0 - e.accuracy;
  } else {
    e.nse = err2 / tgt2;
  }
  return e;
}

absl::StatusOr<Matrix> PredictWeights(const Layers& layers, const NetworkConfig& config,
                                      const std::vector<Matrix>& w, const std::vector<Vector>& b,
                                      ConstMatrixRef x) {
  const auto& s = config.sizes;
  if (x.rows() != s.front())
    return absl::InvalidArgumentError(
        absl::StrCat("inputs have ", x.rows(), " features; the network takes ", s.front()));
  if (!AllFinite(x)) return absl::InvalidArgumentError("inputs contain NaN or Inf");
  EnableFlushToZero();
  const int L = static_cast<int>(w.size());
  // In chunks of examples, as Evaluate: the activations stay bounded whatever x's width.
  const Eigen::Index kChunk = ChunkColumns(layers);
  Matrix out(s.back(), x.cols());
  WorkspacePool::Lease lease = WorkspacePool::Pool().Take(s, std::min<int64_t>(kChunk, x.cols()));
  ChunkWorkspace& ws = *lease;
  std::vector<Matrix>& a = ws.A(L);
  std::vector<Matrix>& z = ws.Z(L);
  for (Eigen::Index start = 0; start < x.cols(); start += kChunk) {
    const Eigen::Index m = std::min(kChunk, x.cols() - start);
    for (int i = 1; i <= L; ++i) {
      a[i].resize(s[i], m);
      z[i].resize(s[i], m);
    }
    Forward(layers, config, w, b, x.middleCols(start, m), a, z);
    out.middleCols(start, m) = a[L];
  }
  return out;
}

absl::StatusOr<Network> Network::Create(const NetworkConfig& config, std::vector<Matrix> weights,
                                        const std::vector<Matrix>& biases, bool class_labels) {
  const auto& s = config.sizes;
  const size_t L = s.size() < 2 ? 0 : s.size() - 1;
  if (L == 0 || weights.size() != L || biases.size() != L)
    return absl::InvalidArgumentError(absl::StrCat("a network of ", s.size(), " layer sizes needs ",
                                                   L, " weight matrices and bias vectors; got ",
                                                   weights.size(), " and ", biases.size()));
  Network n;
  ASSIGN_OR_RETURN(n.layers_, BuildLayers(config));
  const Layers& layers = n.layers_;
  for (size_t i = 0; i < L; ++i) {
    const Layer& l = *layers[i];
    const Eigen::Index rows = l.weight_rows(), cols = l.weight_cols();
    if (weights[i].rows() != rows || weights[i].cols() != cols || biases[i].rows() != rows ||
        (rows > 0 && biases[i].cols() != 1))
      return absl::InvalidArgumentError(
          absl::StrCat("layer ", i, " (", l.Describe(), "): W is ", weights[i].rows(), "x",
                       weights[i].cols(), " and b ", biases[i].rows(), "x", biases[i].cols(),
                       "; expected ", rows, "x", cols, " and ", rows, "x", rows > 0 ? 1 : 0));
    n.b_.push_back(rows > 0 ? Vector(biases[i].col(0)) : Vector());
  }
  n.config_ = config;
  n.w_ = std::move(weights);
  n.class_labels_ = class_labels;
  return n;
}

}  // namespace alignd::core
