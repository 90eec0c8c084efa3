// File: core/feedback.cc
#include "core/feedback.h"

#include <Eigen/Cholesky>
#include <Eigen/QR>
#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "core/gemm.h"
#include "core/learning_rule.h"

namespace alignd::core {

Matrix PseudoInverseTransposed(const Matrix& w, float damping) {
  if (damping <= 0.0f)
    return Eigen::CompleteOrthogonalDecomposition<Matrix>(w).pseudoInverse().transpose();
  // In double, through the smaller Gram matrix: with W m x n,
  //   ((W^T W + l I)^-1 W^T)^T = W (W^T W + l I)^-1 = (W W^T + l I)^-1 W.
  const Eigen::MatrixXd wd = w.cast<double>();
  const double lambda = damping * wd.squaredNorm() / double(std::min(w.rows(), w.cols()));
  if (!(lambda > 0)) return Matrix::Zero(w.rows(), w.cols());  // W = 0: so is W^+
  if (w.rows() <= w.cols()) {
    Eigen::MatrixXd g = wd * wd.transpose();
    g.diagonal().array() += lambda;
    return g.ldlt().solve(wd).cast<float>();
  }
  Eigen::MatrixXd g = wd.transpose() * wd;
  g.diagonal().array() += lambda;
  return g.ldlt().solve(wd.transpose()).transpose().cast<float>();
}

void Feedback::Initialize(const TrainerOptions& options, const std::vector<Matrix>& w,
                          const std::vector<Matrix>& w_mask, Rng& fb_rng,
                          const std::function<Matrix(Eigen::Index, Eigen::Index)>& draw_mask) {
  rule_ = options.feedback.rule;
  config_ = options.feedback;
  const int L = static_cast<int>(w.size());
  const auto& s = options.network.sizes;
  f_.assign(L, Matrix());
  if (RuleDrawsFeedback(rule_)) {
    const FeedbackConfig& fb = config_;
    for (int i = 1; i < L; ++i) {
      const Eigen::Index rows = rule_ == Rule::kDirectFeedbackAlignment ? s[L] : s[i + 1];
      Matrix& f = f_[i];
      f.resize(rows, s[i]);
      const float auto_scale = fb.distribution == Distribution::kUniform
                                   ? std::sqrt(6.0f / float(rows + s[i]))
                                   : std::sqrt(2.0f / float(rows + s[i]));
      const float scale = fb.scale > 0 ? fb.scale : auto_scale;
      if (fb.distribution == Distribution::kUniform)
        fb_rng.FillUniform(f, -scale, scale);
      else
        fb_rng.FillNormal(f, scale);
      if (fb.sparsity > 0)
        for (Eigen::Index c = 0; c < f.cols(); ++c)
          for (Eigen::Index r = 0; r < f.rows(); ++r)
            if (fb_rng.Uniform01() < fb.sparsity) f(r, c) = 0.0f;
    }
    if (!w_mask.empty()) {
      // Kolen-Pollack's B receives W^T's updates, so it must lack exactly W's removed
      // connections (else W - B^T cannot decay there); the other rules' B is drawn
      // sparse on its own, as in the paper's sparse variant.
      mask_.assign(L, Matrix());
      for (int i = 1; i < L; ++i) {
        mask_[i] = rule_ == Rule::kKolenPollack ? w_mask[i] : draw_mask(f_[i].rows(), f_[i].cols());
        f_[i].array() *= mask_[i].array();
      }
    }
  }
  if (rule_ == Rule::kSignSymmetry) {
    sign_m_.assign(L, Matrix());
    present_.assign(L, 0.0);
    for (int i = 1; i < L; ++i) {
      sign_m_[i] = config_.sign_mode == SignSymmetryMode::kFixedRandom
                       ? Matrix(f_[i].cwiseAbs())
                       : Matrix::Ones(f_[i].rows(), f_[i].cols());
      present_[i] = w_mask.empty() ? double(w[i].size()) : w_mask[i].cast<double>().sum();
    }
  }
  if (rule_ == Rule::kPseudoBackprop) {
    for (int i = 1; i < L; ++i) f_[i] = PseudoInverseTransposed(w[i], config_.pinv_damping);
    pinv_step_ = 0;
  }
  Refresh(w, 0);  // sign symmetry: F = sign(W) o M from the start
}

void Feedback::Refresh(const std::vector<Matrix>& w, int64_t step) {
  const int L = layers();
  if (rule_ == Rule::kSignSymmetry && config_.sign_mode == SignSymmetryMode::kScaled) {
    for (int i = 1; i < L; ++i) {
      const double mean_abs = w[i].cast<double>().cwiseAbs().sum() / std::max(1.0, present_[i]);
      f_[i].array() = w[i].array().sign() * static_cast<float>(mean_abs);
    }
  } else if (rule_ == Rule::kSignSymmetry) {
    for (int i = 1; i < L; ++i) f_[i].array() = w[i].array().sign() * sign_m_[i].array();
  } else if (rule_ == Rule::kPseudoBackprop && step % config_.pinv_every == 0 &&
             pinv_step_ != step) {
    for (int i = 1; i < L; ++i) f_[i] = PseudoInverseTransposed(w[i], config_.pinv_damping);
    pinv_step_ = step;
  }
}

void Feedback::HiddenSignal(int i, const std::vector<Matrix>& w, const Matrix& delta_above,
                            const Matrix& delta_out, Matrix& dh) const {
  // The one line in which the rules differ (see core/learning_rule.h).
  if (rule_ == Rule::kDirectFeedbackAlignment)
    Gemm(true, false, 1.0f, f_[i], delta_out, 0.0f, dh);
  else
    Gemm(true, false, 1.0f, rule_ == Rule::kBackprop ? w[i] : f_[i], delta_above, 0.0f, dh);
}

const Matrix* Feedback::StandsForW(int i, const std::vector<Matrix>& w) const {
  // B has W^T's shape *and meaning* for every rule that learns hidden layers but DFA, whose
  // B_i maps the output error to layer i: only at the last hidden layer (i = L-1) is that
  // W[L-1]^T. Elsewhere the angle is undefined (NaN), even when the shapes happen to agree.
  const int L = layers();
  if (!RuleLearnsHidden(rule_) || (rule_ == Rule::kDirectFeedbackAlignment && i != L - 1))
    return nullptr;
  const Matrix& m = rule_ == Rule::kBackprop ? w[i] : f_[i];
  if (m.rows() != w[i].rows() || m.cols() != w[i].cols()) return nullptr;
  return &m;
}

Matrix Feedback::Get(int i) const {
  Matrix out;
  Get(i, &out);
  return out;
}

void Feedback::Get(int i, Matrix* out) const {
  if (i < 1 || i >= layers()) {
    out->resize(0, 0);
  } else if (rule_ == Rule::kSignSymmetry && config_.sign_mode == SignSymmetryMode::kScaled) {
    *out = f_[i].cwiseAbs().transpose();  // mean|W| where W has a connection
  } else if (rule_ == Rule::kSignSymmetry) {
    *out = sign_m_[i].transpose();
  } else {
    *out = f_[i].transpose();
  }
}

absl::Status Feedback::Set(int i, ConstMatrixRef b, const Matrix& w_i) {
  if (i < 1 || i >= layers())
    return absl::InvalidArgumentError(
        absl::StrCat("hidden_layer must be in [1, ", layers() - 1, "], got ", i));
  if (!RuleDrawsFeedback(rule_))
    return absl::InvalidArgumentError(
        absl::StrCat("rule ", RuleName(rule_), " has no settable feedback matrix"));
  if (rule_ == Rule::kSignSymmetry && config_.sign_mode != SignSymmetryMode::kFixedRandom)
    return absl::InvalidArgumentError(absl::StrCat(
        "sign symmetry in ", SignSymmetryModeName(config_.sign_mode),
        " mode feeds back sign(W) with ",
        config_.sign_mode == SignSymmetryMode::kScaled ? "the magnitude mean|W|"
                                                       : "unit magnitudes",
        ": it has no feedback matrix to set (frsf mode takes the magnitudes |B| from one)"));
  Matrix& f = f_[i];
  if (b.rows() != f.cols() || b.cols() != f.rows())
    return absl::InvalidArgumentError(absl::StrCat("feedback is ", b.rows(), "x", b.cols(),
                                                   ", expected ", f.cols(), "x", f.rows()));
  if (rule_ == Rule::kSignSymmetry) {
    sign_m_[i] = b.transpose().cwiseAbs();
    f.array() = w_i.array().sign() * sign_m_[i].array();
  } else {
    f = b.transpose();
  }
  return absl::OkStatus();
}

std::vector<Matrix> Feedback::ExportMasks() const {
  std::vector<Matrix> out;
  ExportMasks(&out);
  return out;
}

void Feedback::ExportMasks(std::vector<Matrix>* out) const {
  out->resize(mask_.size());
  for (size_t i = 0; i < mask_.size(); ++i) (*out)[i] = mask_[i].transpose();
}

absl::Status Feedback::ImportMasks(const std::vector<Matrix>& masks) {
  if (masks.size() != mask_.size())
    return absl::InvalidArgumentError("state masks do not match network.connection_sparsity");
  for (size_t i = 0; i < masks.size(); ++i) mask_[i] = masks[i].transpose();
  return absl::OkStatus();
}

void Feedback::Import(int i, ConstMatrixRef b) {
  if (rule_ == Rule::kSignSymmetry)
    sign_m_[i] = b.transpose();
  else
    f_[i] = b.transpose();
  pinv_step_ = -1;  // the imported W^+ is W's at the last refresh; recomputing is idempotent
}

}  // namespace alignd::core
