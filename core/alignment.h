// File: core/alignment.h
// -----------------------------------------------------------------------------
// The figures that show why feedback alignment works (Lillicrap et al. 2016):
// angles between the hidden signal a rule sends back and the one backprop would
// send on the same weights and batch, and between the forward weights and the
// feedback matrix. Angles are in degrees and unfolded, in [0, 180]: the paper
// folds them into [0, 90] with |a^T b|; we report the signed geometry.
#ifndef ALIGND_CORE_ALIGNMENT_H_
#define ALIGND_CORE_ALIGNMENT_H_

#include <limits>

#include "core/matrix.h"

namespace alignd::core {

struct AngleStats {
  double mean = std::numeric_limits<double>::quiet_NaN();               // degrees
  double sd = std::numeric_limits<double>::quiet_NaN();                 // degrees, population SD
  double positive_fraction = std::numeric_limits<double>::quiet_NaN();  // share with a^T b > 0
  int count = 0;  // columns where both vectors are non-zero (the others have no angle)
};

// Per-column angle between a.col(j) and b.col(j) (same shape), summarised over columns.
AngleStats ColumnAngles(ConstMatrixRef a, ConstMatrixRef b);

// Angle in degrees between vec(a) and vec(b) (same shape). NaN if either is zero.
double VectorAngle(ConstMatrixRef a, ConstMatrixRef b);

}  // namespace alignd::core

#endif  // ALIGND_CORE_ALIGNMENT_H_
