// BP gradients against central finite differences (ceres GradientChecker style),
// for every hidden activation, every output activation and both losses.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <string>

#include "core/trainer.h"
#include "tests/test_util.h"

namespace alignd::core {
namespace {

struct GradCase {
  Activation hidden;
  Activation output;
  Loss loss;
  bool classification;
};

std::string CaseName(const ::testing::TestParamInfo<GradCase>& info) {
  return std::string(ActivationName(info.param.hidden)) + "_" +
         std::string(ActivationName(info.param.output)) + "_" +
         std::string(LossName(info.param.loss));
}

class GradientTest : public ::testing::TestWithParam<GradCase> {};

TEST_P(GradientTest, BackpropMatchesCentralDifferences) {
  const GradCase& c = GetParam();
  constexpr int kIn = 5, kHidden1 = 7, kHidden2 = 6, kOut = 4, kN = 3;
  Rng rng(42);
  Matrix x(kIn, kN), t(kOut, kN);
  rng.FillNormal(x, 1.0f);
  std::shared_ptr<Dataset> data;
  if (c.classification) {
    t.setZero();
    std::vector<int32_t> labels = {1, 3, 0};
    for (int j = 0; j < kN; ++j) t(labels[j], j) = 1.0f;
    data = std::make_shared<Dataset>(*MakeClassificationDataset(x, labels, kOut));
  } else {
    rng.FillUniform(t, 0.1f, 0.9f);  // valid for logistic outputs too
    data = std::make_shared<Dataset>(*MakeRegressionDataset(x, t));
  }
  TrainerOptions o;
  o.network.sizes = {kIn, kHidden1, kHidden2, kOut};
  o.network.hidden = c.hidden;
  o.network.output = c.output;
  o.network.loss = c.loss;
  o.feedback.rule = Rule::kBackprop;
  o.init.kind = WeightInit::kUniform;
  o.init.scale = 0.6f;
  o.batch_size = kN;
  auto trainer = Trainer::Create(o, data);
  ASSERT_OK(trainer);
  Trainer& tr = **trainer;
  // Non-zero biases so that the bias gradients are exercised away from the origin.
  for (int i = 0; i < tr.num_layers(); ++i) tr.mutable_biases(i).setConstant(0.1f);

  std::vector<Matrix> gw, gb;
  ASSERT_OK(tr.Gradients(x, t, &gw, &gb));
  constexpr float kEps = 2e-3f;
  for (int i = 0; i < tr.num_layers(); ++i) {
    SCOPED_TRACE("layer " + std::to_string(i));
    Matrix& w = tr.mutable_weights(i);
    Matrix numeric(w.rows(), w.cols());
    for (Eigen::Index k = 0; k < w.size(); ++k) {
      const float saved = w.data()[k];
      w.data()[k] = saved + kEps;
      const double up = tr.Loss(x, t);
      w.data()[k] = saved - kEps;
      const double down = tr.Loss(x, t);
      w.data()[k] = saved;
      numeric.data()[k] = static_cast<float>((up - down) / (2 * kEps));
    }
    const double rel = (numeric - gw[i]).norm() / std::max(1e-6f, gw[i].norm());
    EXPECT_LT(rel, 2e-2) << "analytic\n" << gw[i] << "\nnumeric\n" << numeric;
    Vector& b = tr.mutable_biases(i);
    Vector numeric_b(b.size());
    for (Eigen::Index k = 0; k < b.size(); ++k) {
      const float saved = b[k];
      b[k] = saved + kEps;
      const double up = tr.Loss(x, t);
      b[k] = saved - kEps;
      const double down = tr.Loss(x, t);
      b[k] = saved;
      numeric_b[k] = static_cast<float>((up - down) / (2 * kEps));
    }
    EXPECT_LT((numeric_b - gb[i]).norm() / std::max(1e-6f, gb[i].norm()), 2e-2);
  }
}

INSTANTIATE_TEST_SUITE_P(
    AllActivationsAndLosses, GradientTest,
    ::testing::Values(
        GradCase{Activation::kLinear, Activation::kLinear, Loss::kSquaredError, false},
        GradCase{Activation::kTanh, Activation::kLinear, Loss::kSquaredError, false},
        GradCase{Activation::kLogistic, Activation::kLogistic, Loss::kSquaredError, false},
        GradCase{Activation::kRelu, Activation::kTanh, Loss::kSquaredError, false},
        GradCase{Activation::kRelu, Activation::kLinear, Loss::kSquaredError, false},
        GradCase{Activation::kTanh, Activation::kSoftmax, Loss::kSquaredError, true},
        GradCase{Activation::kTanh, Activation::kSoftmax, Loss::kCrossEntropy, true},
        GradCase{Activation::kLogistic, Activation::kLogistic, Loss::kCrossEntropy, false},
        GradCase{Activation::kRelu, Activation::kSoftmax, Loss::kCrossEntropy, true}),
    CaseName);

}  // namespace
}  // namespace alignd::core
