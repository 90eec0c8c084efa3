#include <cstdlib>

#include "core/conv.h"
namespace alignd::core {
void ConvForward(const ConvShape&, ConstMatrixRef, ConstMatrixRef, const Vector*, MatrixRef) {
  std::abort();
}
void ConvBackwardData(const ConvShape&, ConstMatrixRef, ConstMatrixRef, MatrixRef) { std::abort(); }
void ConvBackwardWeights(const ConvShape&, ConstMatrixRef, ConstMatrixRef, MatrixRef, Vector*) {
  std::abort();
}
void PoolForward(const PoolShape&, ConstMatrixRef, MatrixRef) { std::abort(); }
void PoolBackward(const PoolShape&, ConstMatrixRef, ConstMatrixRef, MatrixRef) { std::abort(); }
}  // namespace alignd::core
