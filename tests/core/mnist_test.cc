// The IDX reader and the engine on the real MNIST files (fetched by
// tools/repro/fetch_mnist.sh; `make test` passes their folder in ALIGND_MNIST_DIR).
// Skipped, and says so, when the files are not there.
#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>
#include <string>

#include "core/dataset.h"
#include "core/trainer.h"
#include "tests/test_util.h"

namespace alignd::core {
namespace {

class MnistTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* dir = std::getenv("ALIGND_MNIST_DIR");
    if (dir == nullptr || *dir == '\0') GTEST_SKIP() << "ALIGND_MNIST_DIR is not set";
    dir_ = dir;
  }
  std::string dir_;
};

TEST_F(MnistTest, ReadsTheRealFiles) {
  auto train = LoadMnistDir(dir_, "train");
  ASSERT_OK(train);
  auto test = LoadMnistDir(dir_, "test");
  ASSERT_OK(test);
  EXPECT_EQ(train->size(), 60000);
  EXPECT_EQ(test->size(), 10000);
  EXPECT_EQ(train->input_dim(), 784);
  EXPECT_EQ(train->num_classes, 10);
  EXPECT_EQ(train->features.minCoeff(), 0.0f);
  EXPECT_EQ(train->features.maxCoeff(), 1.0f);
  std::vector<int> counts(10);
  for (int32_t l : train->labels) ++counts[l];
  for (int c : counts) {
    EXPECT_GT(c, 5000);  // every digit is 9-11% of the training set
    EXPECT_LT(c, 7000);
  }
  // A digit has ink in the middle and none in the corner.
  const double centre = train->features.row(14 * 28 + 14).mean();
  EXPECT_GT(centre, 0.3);
  EXPECT_EQ(train->features.row(0).maxCoeff(), 0.0f);
}

TEST_F(MnistTest, FeedbackAlignmentLearnsDigits) {
  auto train = LoadMnistDir(dir_, "train");
  ASSERT_OK(train);
  auto test = LoadMnistDir(dir_, "test");
  ASSERT_OK(test);
  train->features.conservativeResize(Eigen::NoChange, 12000);
  train->labels.resize(12000);
  TrainerOptions o;
  o.network.sizes = {784, 100, 10};
  o.network.output = Activation::kSoftmax;
  o.network.loss = Loss::kCrossEntropy;
  o.feedback.rule = Rule::kFeedbackAlignment;
  o.optimizer.learning_rate = 0.1f;
  o.batch_size = 32;
  o.epochs = 1;
  auto t = Trainer::Create(o, std::make_shared<const Dataset>(std::move(*train)));
  ASSERT_OK(t);
  ASSERT_OK((*t)->Run(nullptr));
  auto e = (*t)->Evaluate(*test);
  ASSERT_OK(e);
  RecordProperty("test_error", std::to_string(e->error_rate));
  EXPECT_LT(e->error_rate, 0.12);
}

}  // namespace
}  // namespace alignd::core
