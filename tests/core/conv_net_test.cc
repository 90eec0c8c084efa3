// Convolutional nets through the Trainer: BP's gradients against a double-precision
// finite-difference reference of our own (naive loops, no core/ code on its path); FA and
// Kolen-Pollack with B = W are BP bit for bit; a 1x1 convolution on a 1x1 image is the
// dense layer; every rule continues bit for bit from a state taken mid-run; the alignment
// metrics per conv layer; the configurations that cannot be; golden losses per rule.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "core/layers.h"
#include "core/learning_rule.h"
#include "core/network.h"
#include "core/trainer.h"
#include "tests/test_util.h"

namespace alignd::core {
namespace {

constexpr int kC = 2, kH = 8, kW = 8, kClasses = 3;

// 2x8x8 -> conv 3x3x3 p1 (3x8x8) -> maxpool 2 (3x4x4) -> conv 4x3x3 (4x2x2) -> avgpool 2
// (4x1x1) -> flatten (4) -> dense 5 -> dense 3: every kind of layer once.
TrainerOptions ConvOptions(Rule rule, int batch = 4) {
  TrainerOptions o;
  o.network.input = {kC, kH, kW};
  o.network.sizes = {};
  auto spec = [](LayerKind k, int units, int kernel, int stride = 0, int pad = 0) {
    LayerSpec l;
    l.kind = k;
    l.units = units;
    l.kernel_h = kernel;
    l.stride = stride;
    l.padding = pad;
    return l;
  };
  o.network.layers = {spec(LayerKind::kConv, 3, 3, 1, 1),  spec(LayerKind::kMaxPool, 0, 2),
                      spec(LayerKind::kConv, 4, 3),        spec(LayerKind::kAvgPool, 0, 2),
                      spec(LayerKind::kFlatten, 0, 0),     spec(LayerKind::kDense, 5, 0),
                      spec(LayerKind::kDense, kClasses, 0)};
  EXPECT_OK(CompleteNetwork(&o.network));
  o.network.hidden = Activation::kTanh;
  o.network.output = Activation::kSoftmax;
  o.network.loss = Loss::kCrossEntropy;
  o.feedback.rule = rule;
  o.optimizer.learning_rate = 0.05f;
  o.batch_size = batch;
  o.max_steps = 20;
  o.epochs = 0;
  o.metrics_every = 5;
  o.seed = 7;
  return o;
}

std::shared_ptr<const Dataset> ImageData(int n, uint64_t seed = 3) {
  Rng rng(seed);
  Matrix x(kC * kH * kW, n);
  rng.FillUniform(x, -1.0f, 1.0f);
  // A task a conv net can learn: the class is the brightest of three bands of rows of the
  // first channel.
  std::vector<int32_t> labels(n);
  for (int j = 0; j < n; ++j) {
    double band[kClasses] = {0, 0, 0};
    for (int y = 0; y < 6; ++y)
      for (int c = 0; c < kW; ++c) band[y / 2] += x(y * kW + c, j);
    labels[j] = static_cast<int32_t>(std::max_element(band, band + kClasses) - band);
  }
  auto d = MakeClassificationDataset(std::move(x), std::move(labels), kClasses);
  EXPECT_OK(d);
  return std::make_shared<Dataset>(std::move(*d));
}

std::unique_ptr<Trainer> MustCreate(const TrainerOptions& o, std::shared_ptr<const Dataset> data) {
  auto t = Trainer::Create(o, std::move(data));
  EXPECT_OK(t);
  return t.ok() ? std::move(*t) : nullptr;
}

// ---- The reference: the same network in double, in naive loops -------------------------

using MatD = Eigen::MatrixXd;
using VecD = Eigen::VectorXd;

// Mean softmax cross-entropy of the network (layers as BuildLayers makes them, read only
// for their shapes and specs) on x with labels.
double ReferenceLoss(const TrainerOptions& o, const std::vector<MatD>& w,
                     const std::vector<VecD>& b, const Matrix& x,
                     const std::vector<int32_t>& labels) {
  const std::vector<LayerSpec> specs = LayerSpecs(o.network);
  const Layers layers = *BuildLayers(o.network);
  double total = 0;
  for (Eigen::Index j = 0; j < x.cols(); ++j) {
    VecD a = x.col(j).cast<double>();
    for (size_t i = 0; i < layers.size(); ++i) {
      const Layer& l = *layers[i];
      const ImageShape in = l.in_shape(), out = l.out_shape();
      VecD z = VecD::Zero(l.out_size());
      switch (l.kind()) {
        case LayerKind::kDense:
          z = w[i] * a + b[i];
          break;
        case LayerKind::kConv: {
          const int kh = specs[i].kernel_h, kw = kh;
          const int st = specs[i].stride == 0 ? 1 : specs[i].stride, pad = specs[i].padding;
          for (int oc = 0; oc < out.channels; ++oc)
            for (int y = 0; y < out.height; ++y)
              for (int xx = 0; xx < out.width; ++xx) {
                double s = b[i][oc];
                for (int ic = 0; ic < in.channels; ++ic)
                  for (int r = 0; r < kh; ++r)
                    for (int c = 0; c < kw; ++c) {
                      const int iy = y * st - pad + r, ix = xx * st - pad + c;
                      if (iy < 0 || iy >= in.height || ix < 0 || ix >= in.width) continue;
                      s += w[i](oc, (ic * kh + r) * kw + c) *
                           a[(ic * in.height + iy) * in.width + ix];
                    }
                z[(oc * out.height + y) * out.width + xx] = s;
              }
          break;
        }
        case LayerKind::kMaxPool:
        case LayerKind::kAvgPool: {
          const int win = specs[i].kernel_h, st = specs[i].stride == 0 ? win : specs[i].stride;
          for (int ch = 0; ch < out.channels; ++ch)
            for (int y = 0; y < out.height; ++y)
              for (int xx = 0; xx < out.width; ++xx) {
                double m = -1e300, s = 0;
                for (int r = 0; r < win; ++r)
                  for (int c = 0; c < win; ++c) {
                    const double v = a[(ch * in.height + y * st + r) * in.width + xx * st + c];
                    m = std::max(m, v);
                    s += v;
                  }
                z[(ch * out.height + y) * out.width + xx] =
                    l.kind() == LayerKind::kMaxPool ? m : s / (win * win);
              }
          break;
        }
        case LayerKind::kFlatten:
          z = a;
          break;
      }
      if (l.has_weights() && i + 1 < layers.size()) z = z.array().tanh();
      a = z;
    }
    const double m = a.maxCoeff();
    const double lse = m + std::log((a.array() - m).exp().sum());
    total += lse - a[labels[j]];
  }
  return total / double(x.cols());
}

TEST(ConvNetTest, BackpropGradientsMatchDoublePrecisionFiniteDifferences) {
  auto data = ImageData(16);
  TrainerOptions o = ConvOptions(Rule::kBackprop);
  auto t = MustCreate(o, data);
  ASSERT_NE(t, nullptr);
  for (int i = 0; i < t->num_layers(); ++i) {
    Rng rng(100 + i);
    rng.FillUniform(t->mutable_biases(i), -0.2f, 0.2f);  // gradients away from b = 0
  }
  const int n = 4;
  const Matrix x = data->features.leftCols(n);
  Matrix targets = Matrix::Zero(kClasses, n);
  std::vector<int32_t> labels(data->labels.begin(), data->labels.begin() + n);
  for (int j = 0; j < n; ++j) targets(labels[j], j) = 1.0f;

  std::vector<Matrix> gw, gb;
  ASSERT_OK(t->Gradients(x, targets, &gw, &gb));
  std::vector<MatD> w;
  std::vector<VecD> b;
  for (int i = 0; i < t->num_layers(); ++i) {
    w.push_back(t->weights(i).cast<double>());
    b.push_back(t->biases(i).cast<double>());
  }
  // The float network's loss and the reference's agree first.
  EXPECT_NEAR(t->Loss(x, targets), ReferenceLoss(o, w, b, x, labels), 1e-5);
  constexpr double kEps = 1e-5;
  int checked_layers = 0;
  for (int i = 0; i < t->num_layers(); ++i) {
    if (w[i].size() == 0) continue;
    SCOPED_TRACE("layer " + std::to_string(i));
    ++checked_layers;
    MatD numeric(w[i].rows(), w[i].cols());
    for (Eigen::Index k = 0; k < w[i].size(); ++k) {
      const double saved = w[i].data()[k];
      w[i].data()[k] = saved + kEps;
      const double up = ReferenceLoss(o, w, b, x, labels);
      w[i].data()[k] = saved - kEps;
      const double down = ReferenceLoss(o, w, b, x, labels);
      w[i].data()[k] = saved;
      numeric.data()[k] = (up - down) / (2 * kEps);
    }
    const double rel = (numeric - gw[i].cast<double>()).norm() / numeric.norm();
    EXPECT_LT(rel, 1e-3) << "analytic\n" << gw[i] << "\nnumeric\n" << numeric;
    VecD numeric_b(b[i].size());
    for (Eigen::Index k = 0; k < b[i].size(); ++k) {
      const double saved = b[i][k];
      b[i][k] = saved + kEps;
      const double up = ReferenceLoss(o, w, b, x, labels);
      b[i][k] = saved - kEps;
      const double down = ReferenceLoss(o, w, b, x, labels);
      b[i][k] = saved;
      numeric_b[k] = (up - down) / (2 * kEps);
    }
    EXPECT_LT((numeric_b - gb[i].cast<double>()).norm() / numeric_b.norm(), 1e-3)
        << "analytic\n"
        << gb[i].transpose() << "\nnumeric\n"
        << numeric_b.transpose();
  }
  EXPECT_EQ(checked_layers, 4);
}

// B in the API's orientation standing for W: the kernel itself for a conv layer, W^T for a
// dense one.
Matrix FeedbackLikeW(const TrainerOptions& o, const Trainer& t, int i) {
  return LayerSpecs(o.network)[i].kind == LayerKind::kConv ? t.weights(i)
                                                           : Matrix(t.weights(i).transpose());
}

class ConvBatchTest : public ::testing::TestWithParam<int> {};

TEST_P(ConvBatchTest, FeedbackAlignmentWithBEqualToWEveryStepIsBackpropBitForBit) {
  auto data = ImageData(30);
  TrainerOptions o = ConvOptions(Rule::kBackprop, GetParam());
  o.optimizer.momentum = 0.9f;
  auto bp = MustCreate(o, data);
  o.feedback.rule = Rule::kFeedbackAlignment;
  auto fa = MustCreate(o, data);
  ASSERT_TRUE(bp && fa);
  StepMetrics m;
  int set = 0;
  while (!bp->done()) {
    for (int i = 1; i < fa->num_layers(); ++i) {
      if (fa->Feedback(i).size() == 0) continue;
      ASSERT_OK(fa->SetFeedback(i, FeedbackLikeW(o, *fa, i)));
      ++set;
    }
    ASSERT_OK(bp->Step(&m));
    ASSERT_OK(fa->Step(&m));
  }
  EXPECT_EQ(set, 3 * 20);  // conv2 (layer 2) and the dense layers (5, 6) have a B
  for (int i = 0; i < bp->num_layers(); ++i) {
    EXPECT_TRUE(bp->weights(i) == fa->weights(i)) << "layer " << i;
    EXPECT_TRUE(bp->biases(i) == fa->biases(i)) << "layer " << i;
  }
  auto fa2 = MustCreate(o, data);
  ASSERT_OK(fa2->Run(nullptr));
  EXPECT_FALSE(fa2->weights(0) == bp->weights(0));  // and without the reset it is not
}

TEST_P(ConvBatchTest, KolenPollackFromBEqualToWIsBackpropBitForBit) {
  auto data = ImageData(30);
  TrainerOptions o = ConvOptions(Rule::kBackprop, GetParam());
  auto bp = MustCreate(o, data);
  o.feedback.rule = Rule::kKolenPollack;
  auto kp = MustCreate(o, data);
  ASSERT_TRUE(bp && kp);
  for (int i = 1; i < kp->num_layers(); ++i)
    if (kp->Feedback(i).size() != 0) ASSERT_OK(kp->SetFeedback(i, FeedbackLikeW(o, *kp, i)));
  ASSERT_OK(bp->Run(nullptr));
  ASSERT_OK(kp->Run(nullptr));
  for (int i = 0; i < bp->num_layers(); ++i) {
    EXPECT_TRUE(bp->weights(i) == kp->weights(i)) << "layer " << i;
    if (kp->Feedback(i).size() != 0) {
      EXPECT_TRUE(FeedbackLikeW(o, *kp, i) == kp->Feedback(i)) << "B left W at layer " << i;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Batches, ConvBatchTest, ::testing::Values(1, 5),
                         [](const auto& info) { return "batch" + std::to_string(info.param); });

TEST(ConvNetTest, OneByOneConvolutionOnAOneByOneImageIsTheDenseLayer) {
  Rng rng(5);
  Matrix x(6, 40);
  rng.FillNormal(x, 1.0f);
  std::vector<int32_t> labels(40);
  for (int j = 0; j < 40; ++j) labels[j] = j % 3;
  auto data = std::make_shared<Dataset>(*MakeClassificationDataset(x, labels, 3));
  for (Rule rule : {Rule::kBackprop, Rule::kFeedbackAlignment, Rule::kSignSymmetry}) {
    SCOPED_TRACE(std::string(RuleName(rule)));
    TrainerOptions dense;
    dense.network.sizes = {6, 4, 3};
    dense.network.output = Activation::kSoftmax;
    dense.network.loss = Loss::kCrossEntropy;
    dense.feedback.rule = rule;
    dense.batch_size = 4;
    dense.max_steps = 30;
    dense.epochs = 0;
    dense.optimizer.learning_rate = 0.1f;
    TrainerOptions conv = dense;
    conv.network.sizes = {};
    conv.network.input = {6, 1, 1};
    LayerSpec c;
    c.kind = LayerKind::kConv;
    c.units = 4;
    c.kernel_h = 1;
    LayerSpec d;
    d.kind = LayerKind::kDense;
    d.units = 3;
    conv.network.layers = {c, d};
    ASSERT_OK(CompleteNetwork(&conv.network));
    EXPECT_EQ(conv.network.sizes, dense.network.sizes);
    auto a = MustCreate(dense, data);
    auto b = MustCreate(conv, data);
    ASSERT_TRUE(a && b);
    // The same draws: W (4x6 either way) and B.
    EXPECT_TRUE(a->weights(0) == b->weights(0));
    StepMetrics ma, mb;
    while (!a->done()) {
      ASSERT_OK(a->Step(&ma));
      ASSERT_OK(b->Step(&mb));
      EXPECT_NEAR(ma.loss, mb.loss, 1e-5 * std::abs(ma.loss)) << "step " << ma.step;
    }
    for (int i = 0; i < 2; ++i)
      EXPECT_LT((a->weights(i) - b->weights(i)).cwiseAbs().maxCoeff(), 1e-5) << "layer " << i;
  }
}

struct RuleCase {
  Rule rule;
  SignSymmetryMode mode;
  const char* name;
};
const RuleCase kRuleCases[] = {
    {Rule::kBackprop, SignSymmetryMode::kScaled, "bp"},
    {Rule::kFeedbackAlignment, SignSymmetryMode::kScaled, "fa"},
    {Rule::kDirectFeedbackAlignment, SignSymmetryMode::kScaled, "dfa"},
    {Rule::kSignSymmetry, SignSymmetryMode::kScaled, "sign_scaled"},
    {Rule::kSignSymmetry, SignSymmetryMode::kUniform, "usf"},
    {Rule::kSignSymmetry, SignSymmetryMode::kFixedRandom, "frsf"},
    {Rule::kSignSymmetry, SignSymmetryMode::kBatchRandom, "brsf"},
    {Rule::kKolenPollack, SignSymmetryMode::kScaled, "kp"},
    {Rule::kShallow, SignSymmetryMode::kScaled, "shallow"},
};

TrainerOptions CaseOptions(const RuleCase& c, int batch = 4) {
  TrainerOptions o = ConvOptions(c.rule, batch);
  o.feedback.sign_mode = c.mode;
  o.optimizer.momentum = 0.5f;
  o.optimizer.weight_decay = 1e-3f;
  return o;
}

class ConvRuleTest : public ::testing::TestWithParam<RuleCase> {};

TEST_P(ConvRuleTest, ContinuesBitForBitFromAStateTakenMidRun) {
  auto data = ImageData(24);  // 6 steps an epoch: the state is taken mid-epoch
  TrainerOptions o = CaseOptions(GetParam());
  auto whole = MustCreate(o, data);
  ASSERT_NE(whole, nullptr);
  ASSERT_OK(whole->Run(nullptr));
  auto first = MustCreate(o, data);
  StepMetrics m;
  for (int k = 0; k < 9; ++k) ASSERT_OK(first->Step(&m));
  auto parsed = ParseState(SerializeState(first->ExportState()));
  ASSERT_OK(parsed);
  auto second = MustCreate(o, data);
  ASSERT_OK(second->ImportState(*parsed));
  ASSERT_OK(second->Run(nullptr));
  for (int i = 0; i < whole->num_layers(); ++i) {
    EXPECT_TRUE(whole->weights(i) == second->weights(i)) << "layer " << i;
    EXPECT_TRUE(whole->biases(i) == second->biases(i)) << "layer " << i;
    EXPECT_TRUE(whole->Feedback(i) == second->Feedback(i)) << "layer " << i;
  }
}

TEST_P(ConvRuleTest, LearnsAndReportsTheAlignmentOfEveryLayer) {
  auto data = ImageData(24);
  const RuleCase& c = GetParam();
  TrainerOptions o = CaseOptions(c);
  auto t = MustCreate(o, data);
  ASSERT_NE(t, nullptr);
  StepMetrics m;
  ASSERT_OK(t->Step(&m));
  ASSERT_TRUE(m.has_details);
  ASSERT_EQ(m.alignment.size(), 6u);  // hidden activations 1..6
  // a[1] conv1's output, a[2] pool, a[3] conv2's output, a[4] pool, a[5] flatten, a[6] dense.
  for (const LayerAlignment& la : m.alignment) {
    SCOPED_TRACE("hidden layer " + std::to_string(la.layer));
    const bool dfa = c.rule == Rule::kDirectFeedbackAlignment;
    const bool weight_output = la.layer == 1 || la.layer == 3 || la.layer == 6;
    const bool signal = c.rule != Rule::kShallow && (!dfa || weight_output);
    EXPECT_EQ(std::isfinite(la.update_angle_mean), signal);
    if (c.rule == Rule::kBackprop && signal) {
      EXPECT_NEAR(la.update_angle_mean, 0.0, 1e-3);
    }
    // W-B angles where layer i has weights and a B standing for W (conv2 at 2, the dense
    // layers at 5 and 6); DFA's only at the last hidden layer, whose B maps the output error.
    const bool has_b = c.rule != Rule::kShallow &&
                       (dfa ? la.layer == 6 : la.layer == 2 || la.layer == 5 || la.layer == 6);
    EXPECT_EQ(std::isfinite(la.weight_angle), has_b);
    EXPECT_EQ(std::isfinite(la.norm_ratio), has_b);
    if (c.rule == Rule::kBackprop && has_b) {
      EXPECT_NEAR(la.weight_angle, 0.0, 1e-3);
    }
  }
  // And it learns: the loss falls over 200 steps at a batch of 8 (a fixed data set it can fit).
  o.max_steps = 200;
  o.batch_size = 8;
  auto longer = MustCreate(o, data);
  double first = 0, last = 0;
  for (int k = 0; k < 200; ++k) {
    ASSERT_OK(longer->Step(&m));
    if (k < 20) first += m.loss;
    if (k >= 180) last += m.loss;
  }
  EXPECT_LT(last, first) << "mean loss of the first 20 steps " << first / 20 << ", last 20 "
                         << last / 20;
}

INSTANTIATE_TEST_SUITE_P(Rules, ConvRuleTest, ::testing::ValuesIn(kRuleCases),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(ConvNetTest, BatchRandomSignSymmetryDrawsNewMagnitudesEveryStep) {
  auto data = ImageData(24);
  TrainerOptions o = CaseOptions(kRuleCases[6]);
  auto a = MustCreate(o, data);
  auto b = MustCreate(o, data);
  ASSERT_TRUE(a && b);
  StepMetrics m;
  ASSERT_OK(a->Step(&m));
  const Matrix before = a->Feedback(2);
  ASSERT_OK(a->Step(&m));
  EXPECT_FALSE(before == a->Feedback(2));
  EXPECT_TRUE((a->Feedback(2).array() >= 0).all());  // magnitudes
  ASSERT_OK(b->Step(&m));
  ASSERT_OK(b->Step(&m));
  EXPECT_TRUE(a->Feedback(2) == b->Feedback(2));  // a function of the seed and the step
  // Nothing to set: the magnitudes are drawn anew every step.
  EXPECT_EQ(a->SetFeedback(2, a->Feedback(2)).code(), absl::StatusCode::kInvalidArgument);
}

TEST(ConvNetTest, PredictThroughANetworkEqualsTheTrainers) {
  auto data = ImageData(24);
  TrainerOptions o = ConvOptions(Rule::kFeedbackAlignment);
  auto t = MustCreate(o, data);
  ASSERT_OK(t->Run(nullptr));
  const TrainerState st = t->ExportState();
  auto net = Network::Create(o.network, st.weights, st.biases, true);
  ASSERT_OK(net);
  auto p1 = net->Predict(data->features);
  auto p2 = t->Predict(data->features);
  ASSERT_OK(p1);
  ASSERT_OK(p2);
  EXPECT_TRUE(*p1 == *p2);
  auto e = net->Evaluate(*data);
  ASSERT_OK(e);
  EXPECT_GE(e->accuracy, 0.0);
  // A pooling layer takes no weights: a state with some is refused.
  std::vector<Matrix> w = st.weights;
  w[1] = Matrix::Zero(2, 2);
  EXPECT_EQ(Network::Create(o.network, w, st.biases, true).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ConvNetTest, RefusesWhatCannotBe) {
  auto message = [](const TrainerOptions& o) { return std::string(ValidateOptions(o).message()); };
  TrainerOptions o = ConvOptions(Rule::kPseudoBackprop);
  EXPECT_NE(message(o).find("feedback.rule"), std::string::npos) << message(o);
  EXPECT_NE(message(o).find("pseudo-inverse of a convolution"), std::string::npos);
  EXPECT_EQ(Trainer::Create(o, ImageData(8)).status().code(), absl::StatusCode::kInvalidArgument);

  auto complete = [](NetworkConfig n) { return std::string(CompleteNetwork(&n).message()); };
  NetworkConfig n = ConvOptions(Rule::kBackprop).network;
  n.sizes = {};
  n.layers[2].kernel_h = 5;  // 5x5 on the pooled 4x4
  EXPECT_NE(complete(n).find("network.layers[2] (conv): a 5x5 kernel is larger than its 3x4x4"),
            std::string::npos)
      << complete(n);
  n = ConvOptions(Rule::kBackprop).network;
  n.sizes = {};
  n.input = {};
  n.sizes = {128};
  EXPECT_NE(complete(n).find("network.layers[0] (conv) needs an image input"), std::string::npos)
      << complete(n);
  n = ConvOptions(Rule::kBackprop).network;
  n.sizes = {};
  n.layers.push_back(n.layers[4]);  // a flatten after the output layer
  EXPECT_NE(complete(n).find("the last layer must be dense or conv"), std::string::npos)
      << complete(n);
  n = ConvOptions(Rule::kBackprop).network;
  n.sizes = {};
  std::swap(n.layers[5], n.layers[3]);  // avgpool after a dense layer: flat input
  EXPECT_NE(complete(n).find("network.layers[5] (avgpool) needs an image input"), std::string::npos)
      << complete(n);
  n = ConvOptions(Rule::kBackprop).network;
  n.sizes[2] += 1;  // given sizes that disagree with the layers
  EXPECT_NE(complete(n).find("network.sizes is ["), std::string::npos) << complete(n);
  n = ConvOptions(Rule::kBackprop).network;
  n.sizes = {};
  n.input = {2, 8, 9};
  n.sizes = {128};
  EXPECT_NE(complete(n).find("network.input is 2x8x9 (144 values) but network.sizes[0] is 128"),
            std::string::npos)
      << complete(n);
  // Client-declared sizes whose products would overflow are refused before any is multiplied.
  n = ConvOptions(Rule::kBackprop).network;
  n.sizes = {};
  n.input = {131483, 131586, 1066204307};  // the product is 2^64 + 66050
  EXPECT_NE(complete(n).find("network.input must be in [1, 65536]"), std::string::npos)
      << complete(n);
  n = ConvOptions(Rule::kBackprop).network;
  n.sizes = {};
  n.layers[0].kernel_h = 2147352580;
  n.layers[0].kernel_w = 1073807362;
  n.layers[0].padding = 1073807361;
  EXPECT_NE(complete(n).find("network.layers[0] (conv) kernel must be in [1, 4096]"),
            std::string::npos)
      << complete(n);
  n = ConvOptions(Rule::kBackprop).network;
  n.sizes = {};
  n.layers[2].units = 1 << 20;
  EXPECT_NE(complete(n).find("(conv) channels must be in [1, 65536]"), std::string::npos);
  n = ConvOptions(Rule::kBackprop).network;
  n.sizes = {};
  n.input = {65536, 128, 129};
  EXPECT_NE(complete(n).find("network.input has more than 1073741824 values"), std::string::npos)
      << complete(n);
  n = ConvOptions(Rule::kBackprop).network;
  n.sizes = {};
  n.layers.insert(n.layers.begin() + 4, 2000, n.layers[4]);  // 2000 flattens
  EXPECT_NE(complete(n).find("has 2007 layers; at most 1024"), std::string::npos) << complete(n);
  // Per-layer learning rates are per weight layer: 4 here, not 7.
  o = ConvOptions(Rule::kBackprop);
  o.optimizer.layer_learning_rates = {0.1f, 0.1f, 0.1f, 0.1f};
  EXPECT_OK(ValidateOptions(o));
  o.optimizer.layer_learning_rates.push_back(0.1f);
  EXPECT_NE(message(o).find("one entry per weight layer (4)"), std::string::npos);
}

// A state refused for its masks leaves the trainer as it was (everything is checked first).
TEST(ConvNetTest, ARefusedStateChangesNothing) {
  auto data = ImageData(24);
  TrainerOptions o = ConvOptions(Rule::kFeedbackAlignment);
  o.network.connection_sparsity = 0.2f;
  auto a = MustCreate(o, data);
  auto b = MustCreate(o, data);
  StepMetrics m;
  for (int k = 0; k < 3; ++k) {
    ASSERT_OK(a->Step(&m));
    ASSERT_OK(b->Step(&m));
  }
  TrainerState bad = MustCreate(o, data)->ExportState();  // step 0: other weights
  ASSERT_FALSE(bad.feedback_masks.empty());
  bad.feedback_masks[2] = Matrix::Ones(3, 3);
  EXPECT_EQ(a->ImportState(bad).code(), absl::StatusCode::kInvalidArgument);
  bad = MustCreate(o, data)->ExportState();
  bad.weight_masks[0] = Matrix::Ones(2, 2);
  EXPECT_EQ(a->ImportState(bad).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(a->step(), 3);
  ASSERT_OK(a->Run(nullptr));
  ASSERT_OK(b->Run(nullptr));
  for (int i = 0; i < a->num_layers(); ++i)
    EXPECT_TRUE(a->weights(i) == b->weights(i)) << "layer " << i;
}

TEST(ConvNetTest, MemoryEstimateCountsTheConvolutionWorkspace) {
  TrainerOptions o = ConvOptions(Rule::kBackprop, 64);
  const int64_t small = EstimateTrainingBytes(o, 1000);
  o.network.layers[0].units = 64;  // 64 channels of 8x8: a larger im2col and activations
  o.network.sizes = {};
  o.network.sizes = {kC * kH * kW};
  ASSERT_OK(CompleteNetwork(&o.network));
  const int64_t large = EstimateTrainingBytes(o, 1000);
  EXPECT_GT(large, small + int64_t{4} * 64 * 8 * 8 * 64 * 5);
}

// ---- Golden losses -------------------------------------------------------------------------
// The first ten losses of every rule on the conv net above (batch 4, seed 7). Compared to
// 1e-5 relative (float sums in oneDNN's order). To update after an intended change:
//   ALIGND_PRINT_GOLDEN=1 build/tests/core/conv_net_test --gtest_filter='*Golden*'
struct Golden {
  const char* name;
  double losses[10];
};
const Golden kGolden[] = {
#include "tests/core/conv_golden_losses.inc"
};

TEST(ConvNetTest, GoldenFirstTenLossesOfEveryRule) {
  const bool print = std::getenv("ALIGND_PRINT_GOLDEN") != nullptr;
  auto data = ImageData(40);
  for (const RuleCase& c : kRuleCases) {
    TrainerOptions o = CaseOptions(c);
    o.shuffle = false;
    auto t = MustCreate(o, data);
    ASSERT_NE(t, nullptr);
    double got[10];
    StepMetrics m;
    for (double& l : got) {
      ASSERT_OK(t->Step(&m));
      l = m.loss;
    }
    if (print) {
      std::printf("    {\"%s\", {", c.name);
      for (int k = 0; k < 10; ++k) std::printf("%.9g%s", got[k], k < 9 ? ", " : "}},\n");
      continue;
    }
    const Golden* g = nullptr;
    for (const Golden& e : kGolden)
      if (std::string(e.name) == c.name) g = &e;
    ASSERT_NE(g, nullptr) << "no golden losses for " << c.name;
    for (int k = 0; k < 10; ++k)
      EXPECT_NEAR(got[k], g->losses[k], 1e-5 * std::abs(g->losses[k]))
          << c.name << " step " << k + 1;
  }
}

}  // namespace
}  // namespace alignd::core
