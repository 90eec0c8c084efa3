// File: core/layers.cc
#include "core/layers.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "core/conv.h"
#include "core/gemm.h"
#include "core/parallel.h"

namespace alignd::core {

// ---- The kinds of layer ----------------------------------------------------------------

void Layer::DoWeightGradient(ConstMatrixRef, ConstMatrixRef, float, float, MatrixRef) const {}
void Layer::DoBiasGradient(ConstMatrixRef, float, bool, Vector&) const {}

namespace {

ImageShape Flat(int64_t units) { return {static_cast<int>(units), 1, 1}; }
std::string ShapeStr(const ImageShape& s) {
  return s.height == 1 && s.width == 1 ? absl::StrCat(s.channels)
                                       : absl::StrCat(s.channels, "x", s.height, "x", s.width);
}

// z = W x + b: the multilayer perceptron's layer (the products of core/gemm.h).
class DenseLayer final : public Layer {
 public:
  DenseLayer(ImageShape in, int units) : Layer(LayerKind::kDense, in, Flat(units)) {}
  Eigen::Index weight_rows() const override { return out_size(); }
  Eigen::Index weight_cols() const override { return in_size(); }
  double fan_in() const override { return double(in_size()); }
  double fan_out() const override { return double(out_size()); }
  std::string Describe() const override {
    return absl::StrCat("dense ", out_size(), ": ", ShapeStr(in_shape()), " -> ", out_size());
  }
  // Forward, BackwardData, WeightGradient and BiasGradient: inline in Layer (layers.h).
  void DoForward(const Matrix& w, const Vector& b, bool bias, ConstMatrixRef x,
                 MatrixRef z) const override {
    Forward(w, b, bias, x, z);
  }
  void DoBackwardData(const Matrix& m, ConstMatrixRef x, ConstMatrixRef dz,
                      MatrixRef dx) const override {
    BackwardData(m, x, dz, dx);
  }
};

// z = conv(x, W) + b per channel (core/conv.h: W is out_c x in_c*kh*kw).
class ConvLayer final : public Layer {
 public:
  explicit ConvLayer(const ConvShape& s)
      : Layer(LayerKind::kConv, {s.in_c, s.in_h, s.in_w}, {s.out_c, s.out_h(), s.out_w()}), s_(s) {}
  Eigen::Index weight_rows() const override { return s_.out_c; }
  Eigen::Index weight_cols() const override { return s_.kernel_size(); }
  double fan_in() const override { return double(s_.kernel_size()); }
  double fan_out() const override { return double(s_.out_c) * s_.kernel_h * s_.kernel_w; }
  std::string Describe() const override {
    return absl::StrCat("conv ", s_.out_c, "x", s_.kernel_h, "x", s_.kernel_w, " s", s_.stride,
                        " p", s_.padding, ": ", ShapeStr(in_shape()), " -> ",
                        ShapeStr(out_shape()));
  }
  void DoForward(const Matrix& w, const Vector& b, bool bias, ConstMatrixRef x,
                 MatrixRef z) const override {
    ConvForward(s_, x, w, bias ? &b : nullptr, z);
  }
  void DoBackwardData(const Matrix& m, ConstMatrixRef, ConstMatrixRef dz,
                      MatrixRef dx) const override {
    ConvBackwardData(s_, dz, m, dx);
  }
  void DoWeightGradient(ConstMatrixRef x, ConstMatrixRef dz, float alpha, float beta,
                        MatrixRef dw) const override {
    if (beta == 0.0f) {
      ConvBackwardWeights(s_, x, dz, dw, nullptr);
      if (alpha != 1.0f) dw *= alpha;
      return;
    }
    // The gradient beside dw: one buffer per thread, sized once per shape.
    thread_local Matrix g;
    g.resize(dw.rows(), dw.cols());
    ConvBackwardWeights(s_, x, dz, g, nullptr);
    if (beta != 1.0f) dw *= beta;
    dw.noalias() += alpha * g;
  }
  void DoBiasGradient(ConstMatrixRef dz, float alpha, bool accumulate, Vector& db) const override {
    // dz's column j is out_c blocks of out_h*out_w positions.
    const Eigen::Index positions = int64_t(s_.out_h()) * s_.out_w();
    for (int o = 0; o < s_.out_c; ++o) {
      float sum = 0.0f;
      for (Eigen::Index j = 0; j < dz.cols(); ++j)
        sum += dz.col(j).segment(o * positions, positions).sum();
      db[o] = accumulate ? db[o] + alpha * sum : alpha * sum;
    }
  }

 private:
  ConvShape s_;
};

// Max or average pooling over square windows (core/conv.h's loops).
class PoolLayer final : public Layer {
 public:
  explicit PoolLayer(const PoolShape& s)
      : Layer(s.max ? LayerKind::kMaxPool : LayerKind::kAvgPool, {s.c, s.in_h, s.in_w},
              {s.c, s.out_h(), s.out_w()}),
        s_(s) {}
  std::string Describe() const override {
    return absl::StrCat(s_.max ? "maxpool " : "avgpool ", s_.window, " s", s_.stride, ": ",
                        ShapeStr(in_shape()), " -> ", ShapeStr(out_shape()));
  }
  void DoForward(const Matrix&, const Vector&, bool, ConstMatrixRef x, MatrixRef z) const override {
    PoolForward(s_, x, z);
  }
  void DoBackwardData(const Matrix&, ConstMatrixRef x, ConstMatrixRef dz,
                      MatrixRef dx) const override {
    PoolBackward(s_, x, dz, dx);
  }

 private:
  PoolShape s_;
};

// The same values, without their image shape.
class FlattenLayer final : public Layer {
 public:
  explicit FlattenLayer(ImageShape in) : Layer(LayerKind::kFlatten, in, Flat(in.size())) {}
  std::string Describe() const override {
    return absl::StrCat("flatten: ", ShapeStr(in_shape()), " -> ", out_size());
  }
  void DoForward(const Matrix&, const Vector&, bool, ConstMatrixRef x, MatrixRef z) const override {
    z = x;
  }
  void DoBackwardData(const Matrix&, ConstMatrixRef, ConstMatrixRef dz,
                      MatrixRef dx) const override {
    dx = dz;
  }
};

}  // namespace

absl::StatusOr<Layers> BuildLayers(const NetworkConfig& net) {
  NetworkConfig complete = net;
  RETURN_IF_ERROR(CompleteNetwork(&complete));
  if (complete.sizes.size() < 2)
    return absl::InvalidArgumentError("network.sizes needs at least 2 entries");
  ImageShape cur =
      complete.input.empty() || net.layers.empty() ? Flat(complete.sizes[0]) : complete.input;
  Layers layers;
  for (const LayerSpec& l : LayerSpecs(complete)) {
    std::shared_ptr<const Layer> layer;
    switch (l.kind) {
      case LayerKind::kDense:
        layer = std::make_shared<DenseLayer>(cur, l.units);
        break;
      case LayerKind::kConv: {
        ConvShape s;
        s.in_c = cur.channels, s.in_h = cur.height, s.in_w = cur.width;
        s.out_c = l.units;
        s.kernel_h = l.kernel_h;
        s.kernel_w = l.kernel_w == 0 ? l.kernel_h : l.kernel_w;
        s.stride = l.stride == 0 ? 1 : l.stride;
        s.padding = l.padding;
        layer = std::make_shared<ConvLayer>(s);
        break;
      }
      case LayerKind::kMaxPool:
      case LayerKind::kAvgPool: {
        PoolShape s;
        s.c = cur.channels, s.in_h = cur.height, s.in_w = cur.width;
        s.window = l.kernel_h;
        s.stride = l.stride == 0 ? l.kernel_h : l.stride;
        s.max = l.kind == LayerKind::kMaxPool;
        layer = std::make_shared<PoolLayer>(s);
        break;
      }
      case LayerKind::kFlatten:
        layer = std::make_shared<FlattenLayer>(cur);
        break;
    }
    cur = layer->out_shape();
    layers.push_back(std::move(layer));
  }
  return layers;
}

namespace {

// f on one column (z's and a's column j), after z += bias.
void ActivateColumn(Activation act, const Vector* bias, Eigen::Ref<Vector> z,
                    Eigen::Ref<Vector> a) {
  if (bias != nullptr) z += *bias;
  switch (act) {
    case Activation::kLinear:
      a = z;
      break;
    case Activation::kTanh:
      a.array() = z.array().tanh();
      break;
    case Activation::kLogistic:
      a.array() = z.array().logistic();
      break;
    case Activation::kRelu:
      a.array() = z.array().cwiseMax(0.0f);
      break;
    case Activation::kSoftmax:  // over several columns at once: Activate
      assert(false);
      break;
  }
}

}  // namespace

void SumColumns(ConstMatrixRef dz, float alpha, bool accumulate, Vector& db) {
  const int64_t rows = dz.rows(), n = dz.cols();
  assert(db.size() == rows);
  if (n == 0) {
    if (!accumulate) db.setZero();
    return;
  }
  const int64_t min_rows = std::max<int64_t>(kFloatsPerCacheLine, kMinFloatsPerRange / n);
  ParallelFor(rows, min_rows, kFloatsPerCacheLine, [&](int64_t begin, int64_t end) {
    // Blocks of rows whose sums stay in registers and L1 while the columns stream past.
    constexpr int64_t kBlock = 256;
    float acc[kBlock];
    for (int64_t r0 = begin; r0 < end; r0 += kBlock) {
      const int64_t len = std::min(kBlock, end - r0);
      const float* col = dz.data() + r0;
      for (int64_t r = 0; r < len; ++r) acc[r] = col[r];
      for (int64_t j = 1; j < n; ++j) {
        col = dz.data() + j * dz.outerStride() + r0;
        for (int64_t r = 0; r < len; ++r) acc[r] += col[r];
      }
      float* out = db.data() + r0;
      if (accumulate)
        for (int64_t r = 0; r < len; ++r) out[r] += alpha * acc[r];
      else
        for (int64_t r = 0; r < len; ++r) out[r] = alpha * acc[r];
    }
  });
}

void Activate(Activation act, const Vector* bias, Matrix& z, Matrix& a) {
  assert(a.rows() == z.rows() && a.cols() == z.cols());
  assert(bias == nullptr || bias->size() == z.rows());
  if (act == Activation::kSoftmax) {
    // An output layer has few units (10): a column is less than one vector, so the exp runs
    // over a whole range of columns at once, as one contiguous stretch of a. Ranges start
    // where the stretch is 64-byte aligned, so each element's exp is the same on any split.
    const int64_t rows = z.rows();
    const int64_t align = kFloatsPerCacheLine / std::gcd<int64_t>(rows, kFloatsPerCacheLine);
    ParallelFor(z.cols(), MinColumnsPerRange(rows), align, [&](int64_t begin, int64_t end) {
      for (int64_t j = begin; j < end; ++j) {
        if (bias != nullptr) z.col(j) += *bias;
        a.col(j).array() = z.col(j).array() - z.col(j).maxCoeff();
      }
      Eigen::Map<Eigen::ArrayXf> flat(a.data() + begin * rows, (end - begin) * rows);
      flat = flat.exp();
      for (int64_t j = begin; j < end; ++j) a.col(j) /= a.col(j).sum();
    });
    return;
  }
  ParallelFor(z.cols(), MinColumnsPerRange(z.rows()), 1, [&](int64_t begin, int64_t end) {
    for (int64_t j = begin; j < end; ++j) ActivateColumn(act, bias, z.col(j), a.col(j));
  });
}

void MultiplyByDerivative(Activation act, const Matrix& a, Matrix& d) {
  assert(a.size() == d.size());
  if (act == Activation::kLinear) return;
  assert(act != Activation::kSoftmax);
  ParallelForFloats(d.size(), [&](int64_t begin, int64_t end) {
    const Eigen::Index n = end - begin;
    Eigen::Map<Eigen::ArrayXf> dr(d.data() + begin, n);
    const Eigen::Map<const Eigen::ArrayXf> ar(a.data() + begin, n);
    switch (act) {
      case Activation::kTanh:
        dr *= 1.0f - ar.square();
        break;
      case Activation::kLogistic:
        dr *= ar * (1.0f - ar);
        break;
      case Activation::kRelu: {
        // d * 1 or d * 0, as (a > 0).cast<float>() multiplies, in a loop the compiler
        // vectorises (Eigen 3.4 does not vectorise the cast of a comparison).
        float* dp = dr.data();
        const float* ap = ar.data();
        for (Eigen::Index i = 0; i < n; ++i) dp[i] *= ap[i] > 0.0f ? 1.0f : 0.0f;
        break;
      }
      case Activation::kLinear:
      case Activation::kSoftmax:
        break;
    }
  });
}

double LossAndDelta(const NetworkConfig& net, const Matrix& y, const Matrix& z, ConstMatrixRef t,
                    Matrix& delta) {
  const Eigen::Index n = y.cols();
  double loss = 0;
  if (net.loss == Loss::kSquaredError) {
    delta = y - t;
    loss = 0.5 * delta.cast<double>().squaredNorm();
    if (net.output == Activation::kSoftmax) {
      for (Eigen::Index j = 0; j < n; ++j) {
        const float s = y.col(j).dot(delta.col(j));
        delta.col(j).array() = y.col(j).array() * (delta.col(j).array() - s);
      }
    } else {
      MultiplyByDerivative(net.output, y, delta);
    }
  } else if (net.output == Activation::kSoftmax) {
    // -sum_k t_k log softmax(z)_k = sum_k t_k (logsumexp(z) - z_k), with exp(z - max) made
    // for all columns at once in delta (one contiguous stretch: whole vectors, not a short
    // column's worth and a scalar tail each), which then receives y - t.
    delta.resize(z.rows(), n);
    for (Eigen::Index j = 0; j < n; ++j)
      delta.col(j).array() = z.col(j).array() - z.col(j).maxCoeff();
    delta.array() = delta.array().exp();
    for (Eigen::Index j = 0; j < n; ++j) {
      const double lse = z.col(j).maxCoeff() + std::log(static_cast<double>(delta.col(j).sum()));
      double t_sum = 0, t_dot_z = 0;
      for (Eigen::Index k = 0; k < z.rows(); ++k) {
        t_sum += t(k, j);
        t_dot_z += double(t(k, j)) * z(k, j);
      }
      loss += lse * t_sum - t_dot_z;
    }
    delta = y - t;
  } else {  // logistic outputs, binary cross-entropy per unit: softplus(z) - t z
    for (Eigen::Index j = 0; j < n; ++j)
      for (Eigen::Index i = 0; i < y.rows(); ++i) {
        const double zi = z(i, j);
        loss += std::max(zi, 0.0) + std::log1p(std::exp(-std::abs(zi))) - t(i, j) * zi;
      }
    delta = y - t;
  }
  return loss / static_cast<double>(n);
}

int ArgMax(const Eigen::Ref<const Vector>& v) {
  Eigen::Index k = 0;
  v.maxCoeff(&k);
  return static_cast<int>(k);
}

void Forward(const Layers& layers, const NetworkConfig& net, const std::vector<Matrix>& w,
             const std::vector<Vector>& b, ConstMatrixRef x, std::vector<Matrix>& a,
             std::vector<Matrix>& z) {
  const int L = static_cast<int>(layers.size());
  for (int i = 0; i < L; ++i) {
    const Layer& layer = *layers[i];
    auto run = [&](ConstMatrixRef in) {
      if (layer.activated()) {
        // A dense layer's bias rides on the activation's pass over z (one read of z less).
        const bool dense = layer.kind() == LayerKind::kDense;
        layer.Forward(w[i], b[i], net.bias && !dense, in, z[i + 1]);
        Activate(i + 1 == L ? net.output : net.hidden, net.bias && dense ? &b[i] : nullptr,
                 z[i + 1], a[i + 1]);
      } else {
        layer.Forward(w[i], b[i], false, in, a[i + 1]);
      }
    };
    if (i == 0)
      run(x);
    else
      run(a[i]);
  }
}

}  // namespace alignd::core
