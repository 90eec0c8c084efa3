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

bool Feedback::At(Rule rule, const Layers& layers, int i) {
  const int L = static_cast<int>(layers.size());
  if (!RuleHasFeedback(rule) || i < 1 || i >= L) return false;
  if (rule == Rule::kDirectFeedbackAlignment) return layers[i - 1]->has_weights();
  if (!layers[i]->has_weights()) return false;
  for (int k = 0; k < i; ++k)
    if (layers[k]->has_weights()) return true;  // a layer below learns from the signal
  return false;
}

void Feedback::Initialize(const TrainerOptions& options, const Layers& layers,
                          const std::vector<Matrix>& w, const std::vector<Matrix>& w_mask,
                          Rng& fb_rng,
                          const std::function<Matrix(Eigen::Index, Eigen::Index)>& draw_mask) {
  rule_ = options.feedback.rule;
  config_ = options.feedback;
  const bool own_seed = config_.seed != 0;
  seed_ = own_seed ? config_.seed : options.seed;
  const int L = static_cast<int>(w.size());
  const auto& s = options.network.sizes;
  const bool direct = rule_ == Rule::kDirectFeedbackAlignment;
  f_.assign(L, Matrix());
  scale_.assign(L, 0.0f);
  transposed_.assign(L, 1);
  for (int i = 1; i < L; ++i)
    if (!direct && layers[i]->kind() == LayerKind::kConv) transposed_[i] = 0;
  if (RuleDrawsFeedback(rule_)) {
    const FeedbackConfig& fb = config_;
    for (int i = 1; i < L; ++i) {
      if (!At(rule_, layers, i)) continue;
      Matrix& f = f_[i];
      // Xavier's scale of B's shape: DFA out x sizes[i]; else W's fans (a kernel's area
      // counts in both, as for W's own initialisation).
      float fans;
      if (direct) {
        f.resize(s[L], s[i]);
        fans = float(s[L] + s[i]);
      } else {
        f.resize(w[i].rows(), w[i].cols());
        fans = float(layers[i]->fan_in() + layers[i]->fan_out());
      }
      const float auto_scale = fb.distribution == Distribution::kUniform ? std::sqrt(6.0f / fans)
                                                                         : std::sqrt(2.0f / fans);
      const float scale = fb.scale > 0 ? fb.scale : auto_scale;
      scale_[i] = scale;
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
        if (f_[i].size() == 0) continue;
        mask_[i] = rule_ == Rule::kKolenPollack ? w_mask[i] : draw_mask(f_[i].rows(), f_[i].cols());
        f_[i].array() *= mask_[i].array();
      }
    }
  }
  if (rule_ == Rule::kSignSymmetry) {
    sign_m_.assign(L, Matrix());
    present_.assign(L, 0.0);
    for (int i = 1; i < L; ++i) {
      if (f_[i].size() == 0) continue;
      sign_m_[i] = config_.sign_mode == SignSymmetryMode::kFixedRandom ||
                           config_.sign_mode == SignSymmetryMode::kBatchRandom
                       ? Matrix(f_[i].cwiseAbs())
                       : Matrix::Ones(f_[i].rows(), f_[i].cols());
      present_[i] = w_mask.empty() ? double(w[i].size()) : w_mask[i].cast<double>().sum();
    }
  }
  if (rule_ == Rule::kPseudoBackprop) {
    for (int i = 1; i < L; ++i)
      if (At(rule_, layers, i)) f_[i] = PseudoInverseTransposed(w[i], config_.pinv_damping);
    pinv_step_ = 0;
  }
  Refresh(w, 0);  // sign symmetry: F = sign(W) o M from the start
}

void Feedback::DrawMagnitudes(int64_t step) {
  // brSF: |B| drawn anew for every batch, from (seed, step) alone, so that a run continued
  // from a checkpoint draws what it would have drawn (no generator state to save).
  Rng rng(seed_, (uint64_t{1} << 40) + static_cast<uint64_t>(step));
  for (int i = 1; i < layers(); ++i) {
    Matrix& m = sign_m_[i];
    if (m.size() == 0) continue;
    if (config_.distribution == Distribution::kUniform)
      rng.FillUniform(m, 0.0f, scale_[i]);
    else
      rng.FillNormal(m, scale_[i]);
    m = m.cwiseAbs();
    if (!mask_.empty()) m.array() *= mask_[i].array();
  }
}

void Feedback::Refresh(const std::vector<Matrix>& w, int64_t step) {
  const int L = layers();
  if (rule_ == Rule::kSignSymmetry && config_.sign_mode == SignSymmetryMode::kScaled) {
    for (int i = 1; i < L; ++i) {
      if (f_[i].size() == 0) continue;
      const double mean_abs = w[i].cast<double>().cwiseAbs().sum() / std::max(1.0, present_[i]);
      f_[i].array() = w[i].array().sign() * static_cast<float>(mean_abs);
    }
  } else if (rule_ == Rule::kSignSymmetry) {
    if (config_.sign_mode == SignSymmetryMode::kBatchRandom) DrawMagnitudes(step);
    for (int i = 1; i < L; ++i)
      if (f_[i].size() != 0) f_[i].array() = w[i].array().sign() * sign_m_[i].array();
  } else if (rule_ == Rule::kPseudoBackprop && step % config_.pinv_every == 0 &&
             pinv_step_ != step) {
    for (int i = 1; i < L; ++i)
      if (f_[i].size() != 0) f_[i] = PseudoInverseTransposed(w[i], config_.pinv_damping);
    pinv_step_ = step;
  }
}

void Feedback::HiddenSignal(int i, const Layers& layers, const std::vector<Matrix>& w,
                            const Matrix& x, const Matrix& delta_above, const Matrix& delta_out,
                            Matrix& dh) const {
  // The one line in which the rules differ (see core/learning_rule.h).
  if (rule_ == Rule::kDirectFeedbackAlignment)
    Gemm(true, false, 1.0f, f_[i], delta_out, 0.0f, dh);
  else
    layers[i]->BackwardData(rule_ == Rule::kBackprop ? w[i] : f_[i], x, delta_above, dh);
}

const Matrix* Feedback::StandsForW(int i, const std::vector<Matrix>& w) const {
  // B has W^T's shape *and meaning* for every rule that learns hidden layers but DFA, whose
  // B_i maps the output error to layer i: only at the last hidden layer (i = L-1) is that
  // W[L-1]^T. Elsewhere the angle is undefined (NaN), even when the shapes happen to agree.
  const int L = layers();
  if (!RuleLearnsHidden(rule_) || (rule_ == Rule::kDirectFeedbackAlignment && i != L - 1))
    return nullptr;
  if (i < 1 || i >= L || w[i].size() == 0) return nullptr;
  const Matrix& m = rule_ == Rule::kBackprop ? w[i] : f_[i];
  if (m.rows() != w[i].rows() || m.cols() != w[i].cols()) return nullptr;
  return &m;
}

void Feedback::ToApi(int i, const Matrix& m, Matrix* out) const {
  if (transposed_[i])
    *out = m.transpose();
  else
    *out = m;
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
    // mean|W| where W has a connection (no temporary: exporting again allocates nothing)
    if (transposed_[i])
      *out = f_[i].cwiseAbs().transpose();
    else
      *out = f_[i].cwiseAbs();
  } else if (rule_ == Rule::kSignSymmetry) {
    ToApi(i, sign_m_[i], out);
  } else {
    ToApi(i, f_[i], out);
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
        config_.sign_mode == SignSymmetryMode::kScaled        ? "the magnitude mean|W|"
        : config_.sign_mode == SignSymmetryMode::kBatchRandom ? "magnitudes drawn every step"
                                                              : "unit magnitudes",
        ": it has no feedback matrix to set (frsf mode takes the magnitudes |B| from one)"));
  Matrix& f = f_[i];
  if (f.size() == 0)
    return absl::InvalidArgumentError(
        absl::StrCat("hidden layer ", i, " has no feedback matrix (no weights above it)"));
  const Eigen::Index rows = transposed_[i] ? f.cols() : f.rows();
  const Eigen::Index cols = transposed_[i] ? f.rows() : f.cols();
  if (b.rows() != rows || b.cols() != cols)
    return absl::InvalidArgumentError(
        absl::StrCat("feedback is ", b.rows(), "x", b.cols(), ", expected ", rows, "x", cols));
  if (rule_ == Rule::kSignSymmetry) {
    sign_m_[i] = transposed_[i] ? Matrix(b.transpose().cwiseAbs()) : Matrix(b.cwiseAbs());
    f.array() = w_i.array().sign() * sign_m_[i].array();
  } else if (transposed_[i]) {
    f = b.transpose();
  } else {
    f = b;
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
  for (size_t i = 0; i < mask_.size(); ++i) ToApi(static_cast<int>(i), mask_[i], &(*out)[i]);
}

absl::Status Feedback::CheckMasks(const std::vector<Matrix>& masks) const {
  if (masks.size() != mask_.size())
    return absl::InvalidArgumentError("state masks do not match network.connection_sparsity");
  for (size_t i = 0; i < masks.size(); ++i)
    if (masks[i].rows() != (transposed_[i] ? mask_[i].cols() : mask_[i].rows()) ||
        masks[i].cols() != (transposed_[i] ? mask_[i].rows() : mask_[i].cols()))
      return absl::InvalidArgumentError(
          absl::StrCat("state feedback mask ", i, " does not match the network"));
  return absl::OkStatus();
}

absl::Status Feedback::ImportMasks(const std::vector<Matrix>& masks) {
  if (absl::Status s = CheckMasks(masks); !s.ok()) return s;
  for (size_t i = 0; i < masks.size(); ++i) {
    if (transposed_[i])
      mask_[i] = masks[i].transpose();
    else
      mask_[i] = masks[i];
  }
  return absl::OkStatus();
}

void Feedback::Import(int i, ConstMatrixRef b) {
  Matrix& dst = rule_ == Rule::kSignSymmetry ? sign_m_[i] : f_[i];
  if (b.size() == 0) return;  // no matrix at this layer
  if (transposed_[i])
    dst = b.transpose();
  else
    dst = b;
  pinv_step_ = -1;  // the imported W^+ is W's at the last refresh; recomputing is idempotent
}

}  // namespace alignd::core
