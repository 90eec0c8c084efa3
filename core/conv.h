// File: core/conv.h
// -----------------------------------------------------------------------------
// The engine's convolutions and pooling, behind one small interface (as core/gemm.h is
// for the matrix products). Layouts (core/matrix.h's features x batch):
//
//   x   in_c*in_h*in_w x n        a column per example, each column C x H x W row-major
//                                 (so the matrix's bytes are oneDNN's NCHW)
//   z   out_c*out_h*out_w x n     the same
//   w   out_c x in_c*kh*kw        a row per filter: w(o, (i*kh + r)*kw + s), so that a
//                                 convolution is the product W * im2col(x) and every
//                                 elementwise rule (sign symmetry, Kolen-Pollack, masks,
//                                 optimisers, the W-B angle) treats it like a dense W
//   b   out_c                     one bias per output channel
//
// Convolutions run on oneDNN 2.6 primitives (forward, backward-data, backward-weights)
// when the build has oneDNN, otherwise on im2col + GemmEigen; the *Reference functions are
// that im2col path in any build (the tests' reference). Pooling is our own loops: max
// pooling's gradient goes to the first largest entry of each window (row-major order),
// recomputed from the forward input, so pooling keeps no state between forward and backward.
//
// Deterministic: the same shapes, inputs and thread count (core/gemm.h's SetGemmThreads,
// which these respect) give bit-identical results. Primitives are cached per calling thread
// and shape: after the first call of a shape, a call allocates nothing.
// A, B and C must not alias. Thread-safe (each thread has its own primitives).
#ifndef ALIGND_CORE_CONV_H_
#define ALIGND_CORE_CONV_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "core/matrix.h"

namespace alignd::core {

struct ConvShape {
  int in_c = 1, in_h = 1, in_w = 1;
  int out_c = 1;
  int kernel_h = 1, kernel_w = 1;
  int stride = 1;   // both directions
  int padding = 0;  // zeros, on every side
  int out_h() const { return (in_h + 2 * padding - kernel_h) / stride + 1; }
  int out_w() const { return (in_w + 2 * padding - kernel_w) / stride + 1; }
  int64_t in_size() const { return int64_t(in_c) * in_h * in_w; }
  int64_t out_size() const { return int64_t(out_c) * out_h() * out_w(); }
  int64_t kernel_size() const { return int64_t(in_c) * kernel_h * kernel_w; }  // w's columns
};

// z = conv(x, w) (+ b per channel if b is not null).
void ConvForward(const ConvShape& s, ConstMatrixRef x, ConstMatrixRef w, const Vector* b,
                 MatrixRef z);
// dx = the gradient of sum(dz o conv(x, m)) with respect to x: backward-data with `m` in
// the weights' place (m = w for backprop; a feedback kernel of w's shape for the rules).
void ConvBackwardData(const ConvShape& s, ConstMatrixRef dz, ConstMatrixRef m, MatrixRef dx);
// dw = the gradient of sum(dz o conv(x, w)) with respect to w (summed over the batch, not
// averaged); db (if not null) = the same for the biases: dz summed over batch and positions.
void ConvBackwardWeights(const ConvShape& s, ConstMatrixRef x, ConstMatrixRef dz, MatrixRef dw,
                         Vector* db);

// The im2col + Eigen path of the three, in any build.
void ConvForwardReference(const ConvShape& s, ConstMatrixRef x, ConstMatrixRef w, const Vector* b,
                          MatrixRef z);
void ConvBackwardDataReference(const ConvShape& s, ConstMatrixRef dz, ConstMatrixRef m,
                               MatrixRef dx);
void ConvBackwardWeightsReference(const ConvShape& s, ConstMatrixRef x, ConstMatrixRef dz,
                                  MatrixRef dw, Vector* db);

struct PoolShape {
  int c = 1, in_h = 1, in_w = 1;
  int window = 2;  // square window
  int stride = 2;
  bool max = true;  // false: average (over the window's entries, all inside the input)
  int out_h() const { return (in_h - window) / stride + 1; }
  int out_w() const { return (in_w - window) / stride + 1; }
  int64_t in_size() const { return int64_t(c) * in_h * in_w; }
  int64_t out_size() const { return int64_t(c) * out_h() * out_w(); }
};

// y = pool(x).
void PoolForward(const PoolShape& s, ConstMatrixRef x, MatrixRef y);
// dx = the gradient of sum(dy o pool(x)) with respect to x (x is the forward's input; dx
// is overwritten: zero where no window routes to it).
void PoolBackward(const PoolShape& s, ConstMatrixRef x, ConstMatrixRef dy, MatrixRef dx);

// Convolutions this thread keeps built (at most 16: the least recently used goes first).
size_t CachedConvolutions();

// "onednn" or "eigen": which library runs the convolutions.
const char* ConvBackend();
// oneDNN's implementation of the forward primitive for this shape and batch, e.g.
// "brgconv:avx512_core" or "gemm:jit" (for benchmarks and logs); "im2col+eigen" without it.
std::string ConvForwardImplementation(const ConvShape& s, int n);

}  // namespace alignd::core

#endif  // ALIGND_CORE_CONV_H_
