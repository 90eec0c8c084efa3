// File: core/cpu.h
// -----------------------------------------------------------------------------
// Per-thread floating-point setup. Denormal numbers slow the training step
// severalfold (logistic and tanh units saturate and their derivatives underflow),
// so every thread that runs the engine turns on flush-to-zero and
// denormals-are-zero first. Trainer::Run does it for its own thread.
#ifndef ALIGND_CORE_CPU_H_
#define ALIGND_CORE_CPU_H_

#if defined(__SSE__) || defined(__x86_64__)
#include <pmmintrin.h>
#include <xmmintrin.h>
#endif

namespace alignd::core {

inline void EnableFlushToZero() {
#if defined(__SSE__) || defined(__x86_64__)
  _MM_SET_FLUSH_ZERO_MODE(_MM_FLUSH_ZERO_ON);
  _MM_SET_DENORMALS_ZERO_MODE(_MM_DENORMALS_ZERO_ON);
#endif
}

}  // namespace alignd::core

#endif  // ALIGND_CORE_CPU_H_
