// File: core/layers.h
// -----------------------------------------------------------------------------
// A layer is a type: Layer below is what the Trainer (forward, backward, update, feedback,
// metrics, state) and the Network (Predict, Evaluate) know of one. Its kinds live in
// core/layers.cc: dense, conv (core/conv.h), max and average pooling, flatten. Layer i maps
// the activations a[i] (sizes[i] x n, a column per example; an image's column is C x H x W)
// to z[i+1]; layers with weights are followed by the activation (hidden, or the output's
// for the last), the others pass their output on as it is.
//
// A new kind of layer is a subclass in core/layers.cc (its Do* overrides), a LayerKind
// (core/config.h, with its shape rule in CompleteNetwork), and a value in
// proto/alignd/v1/config.proto.
//
// Also here: the activations, their derivatives, the output loss and its delta, and the
// forward pass of a whole network.
#ifndef ALIGND_CORE_LAYERS_H_
#define ALIGND_CORE_LAYERS_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/config.h"
#include "core/gemm.h"
#include "core/matrix.h"

namespace alignd::core {

// db = alpha * (dz's columns summed) (+ db if accumulate): a dense layer's bias gradient.
// Each row summed in column order, rows split over the session's threads (core/parallel.h).
void SumColumns(ConstMatrixRef dz, float alpha, bool accumulate, Vector& db);

class Layer {
 public:
  virtual ~Layer() = default;
  LayerKind kind() const { return kind_; }
  int64_t in_size() const { return in_.size(); }
  int64_t out_size() const { return out_.size(); }
  const ImageShape& in_shape() const { return in_; }    // flat: units x 1 x 1
  const ImageShape& out_shape() const { return out_; }  // flat: units x 1 x 1
  // Weights: W is weight_rows() x weight_cols() (dense: out x in; conv: out channels x
  // in channels * kh * kw) and b has weight_rows() entries; 0 x 0 for a layer without.
  bool has_weights() const { return HasWeights(kind_); }
  virtual Eigen::Index weight_rows() const { return 0; }
  virtual Eigen::Index weight_cols() const { return 0; }
  // Fan-in and fan-out for the initialisers (conv: the kernel's area counts in both).
  virtual double fan_in() const { return 0; }
  virtual double fan_out() const { return 0; }
  // Whether the network's activation follows this layer (layers with weights).
  bool activated() const { return has_weights(); }
  // "conv 6x5x5 s1 p0: 1x32x32 -> 6x28x28"
  virtual std::string Describe() const = 0;

  // The passes below are not virtual: a dense layer runs inline (the per-example step of
  // a small MLP is a few hundred nanoseconds, and a virtual call per product showed in it);
  // every other kind goes through its Do* override in core/layers.cc.
  //
  // z = layer(x) (+ b if bias); w and b are ignored by layers without weights.
  void Forward(const Matrix& w, const Vector& b, bool bias, ConstMatrixRef x, MatrixRef z) const {
    if (kind_ != LayerKind::kDense) return DoForward(w, b, bias, x, z);
    Gemm(false, false, 1.0f, w, x, 0.0f, z);
    if (bias) z.colwise() += b;
  }
  // dx = d<dz, layer(x)>/dx with `m` in W's place: the hidden signal M^T dz (m = W for
  // backprop, the rule's feedback otherwise). Layers without weights ignore m and send
  // the exact gradient (pooling: to each window's first largest entry of x).
  void BackwardData(const Matrix& m, ConstMatrixRef x, ConstMatrixRef dz, MatrixRef dx) const {
    if (kind_ != LayerKind::kDense) return DoBackwardData(m, x, dz, dx);
    Gemm(true, false, 1.0f, m, dz, 0.0f, dx);
  }
  // dw = alpha * d<dz, layer(x)>/dW + beta * dw (summed over the batch).
  void WeightGradient(ConstMatrixRef x, ConstMatrixRef dz, float alpha, float beta,
                      MatrixRef dw) const {
    if (kind_ != LayerKind::kDense) return DoWeightGradient(x, dz, alpha, beta, dw);
    Gemm(false, true, alpha, dz, x, beta, dw);
  }
  // db = alpha * d<dz, layer(x)>/db (summed over the batch); accumulate: db += that.
  void BiasGradient(ConstMatrixRef dz, float alpha, bool accumulate, Vector& db) const {
    if (kind_ != LayerKind::kDense) return DoBiasGradient(dz, alpha, accumulate, db);
    if (dz.cols() == 1) {  // per-example: the sum of one column is that column, bit for bit
      if (accumulate)
        db.noalias() += alpha * dz.col(0);
      else
        db.noalias() = alpha * dz.col(0);
    } else {
      SumColumns(dz, alpha, accumulate, db);
    }
  }

 protected:
  Layer(LayerKind kind, ImageShape in, ImageShape out) : kind_(kind), in_(in), out_(out) {}
  // The kinds other than dense (DenseLayer does not override these).
  virtual void DoForward(const Matrix& w, const Vector& b, bool bias, ConstMatrixRef x,
                         MatrixRef z) const = 0;
  virtual void DoBackwardData(const Matrix& m, ConstMatrixRef x, ConstMatrixRef dz,
                              MatrixRef dx) const = 0;
  virtual void DoWeightGradient(ConstMatrixRef x, ConstMatrixRef dz, float alpha, float beta,
                                MatrixRef dw) const;
  virtual void DoBiasGradient(ConstMatrixRef dz, float alpha, bool accumulate, Vector& db) const;

 private:
  LayerKind kind_;
  ImageShape in_, out_;
};

using Layers = std::vector<std::shared_ptr<const Layer>>;

// The network's layers (NetworkConfig::layers, or dense ones from sizes), or
// InvalidArgument as CompleteNetwork/ValidateOptions say. Allocates: build once.
absl::StatusOr<Layers> BuildLayers(const NetworkConfig& net);

// z += bias (per column; none if bias is null), then a = f(z), in one pass over each column
// (the bias and the activation fused: z is read once). Columns split over the session's
// threads (core/parallel.h): the same bits on any number of threads.
void Activate(Activation act, const Vector* bias, Matrix& z, Matrix& a);
// d = d o f'(z), written in terms of a = f(z). Not for softmax (its Jacobian is not
// diagonal: LossAndDelta handles a softmax output). Split over the session's threads.
void MultiplyByDerivative(Activation act, const Matrix& a, Matrix& d);
// Mean loss of outputs y = g(z) against targets t (out x n), and delta = dLoss_j/dz_j
// (per example, not divided by n) into `delta`.
double LossAndDelta(const NetworkConfig& net, const Matrix& y, const Matrix& z, ConstMatrixRef t,
                    Matrix& delta);
// Index of the largest entry (the first of equal ones).
int ArgMax(const Eigen::Ref<const Vector>& v);

// z[i+1] = layer_i(a[i]) (dense: W[i] a[i] + b[i]), a[i+1] = f(z[i+1]) for every layer,
// from a[0] = x (a[0] itself is not written). a and z have L+1 entries sized for x's
// columns (z[i+1] unused, and may be empty, after a layer without weights).
void Forward(const Layers& layers, const NetworkConfig& net, const std::vector<Matrix>& w,
             const std::vector<Vector>& b, ConstMatrixRef x, std::vector<Matrix>& a,
             std::vector<Matrix>& z);

}  // namespace alignd::core

#endif  // ALIGND_CORE_LAYERS_H_
