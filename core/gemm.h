// File: core/gemm.h
// -----------------------------------------------------------------------------
// The engine's matrix products, behind one small interface:
//
//   C = alpha * op(A) * op(B) + beta * C,   op(X) = X or X^T
//
// Products of two matrices go to oneDNN's SGEMM (Debian's libdnnl 2.6) when the
// build has it (CMake option ALIGND_ONEDNN, on by default). oneDNN picks its
// kernels by the CPU's features at run time (AVX-512 where the CPU has it, even in
// the portable -DALIGND_NATIVE=OFF build) and is thread-safe: several sessions may
// multiply at once. Measured on the reference machine (docs/RESULTS.md) it runs the
// 784x1000 layer products at ~1.5-2x Eigen 3.4's speed and ~1.8x Debian's OpenBLAS
// (which is also *not* thread-safe in its serial build: two threads calling sgemm
// at once get wrong products, so the engine no longer uses it). Products in which
// one side is a vector (batch 1) stay with Eigen, whose GEMV and rank-1 update run
// at the memory bound. tests/core/gemm_test.cc checks both paths against a plain
// loop, and the oneDNN path from several threads against a one-thread reference.
//
// Threads: products run on the calling thread plus GemmThreads()-1 helpers (oneDNN's
// OpenMP pool), 1 by default. The setting is per calling thread (SetGemmThreads), so
// each session chooses its own and sessions side by side do not share a pool.
//
// Deterministic: the same shapes, inputs and thread count give bit-identical
// results on one machine, whichever thread calls and whatever else runs at the
// same time. Not a general BLAS wrapper: A, B and C must not alias.
#ifndef ALIGND_CORE_GEMM_H_
#define ALIGND_CORE_GEMM_H_

#include <string>

#include "core/matrix.h"

namespace alignd::core {

// What computes the products on this machine (a session's provenance): the library and its
// version ("oneDNN 2.6.3", or "Eigen 3.4.0" in a build without oneDNN), the instruction set
// its kernels use here ("avx512_core", ...: oneDNN's effective ISA), and the CPU's model name
// (/proc/cpuinfo; "" where there is none).
struct ComputeInfo {
  std::string library;
  std::string isa;
  std::string cpu_model;
};
const ComputeInfo& DescribeCompute();

void Gemm(bool trans_a, bool trans_b, float alpha, ConstMatrixRef a, ConstMatrixRef b, float beta,
          MatrixRef c);

// The same product with Eigen only (the reference the tests compare against).
void GemmEigen(bool trans_a, bool trans_b, float alpha, ConstMatrixRef a, ConstMatrixRef b,
               float beta, MatrixRef c);

// Threads the calling thread's products may use (>= 1; larger values are clamped to
// 256). Applies to later Gemm calls from this thread only.
void SetGemmThreads(int threads);
int GemmThreads();

// Internal (core/conv.cc): tells this thread's OpenMP runtime, which oneDNN's primitives run
// on, the GemmThreads() setting, if it was not told already. No-op without oneDNN.
void ApplyGemmThreads();

// "onednn" or "eigen": which library runs the matrix-matrix products.
const char* GemmBackend();

}  // namespace alignd::core

#endif  // ALIGND_CORE_GEMM_H_
