// Tests for core/dataset.h: the IDX and CSV readers (good files, gzip, and every
// error case as a table), validation, and the paper's generators.
#include "core/dataset.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <Eigen/LU>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "tests/test_util.h"

namespace alignd::core {
namespace {

using ::alignd::testing::TempDir;
using ::alignd::testing::WriteFile;

std::string BigEndian32(uint32_t v) {
  return std::string{char(v >> 24), char(v >> 16), char(v >> 8), char(v)};
}

// An IDX file of unsigned bytes with the given dims and values.
std::string IdxBytes(const std::vector<uint32_t>& dims, const std::vector<uint8_t>& values,
                     uint8_t type = 0x08) {
  std::string s = {0, 0, char(type), char(dims.size())};
  for (uint32_t d : dims) s += BigEndian32(d);
  s.append(values.begin(), values.end());
  return s;
}

void WriteGzip(const std::filesystem::path& path, const std::string& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
  gzclose(f);
}

class IdxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TempDir("idx");
    // 3 images of 2x2 pixels, labels 0 2 1.
    WriteFile(dir_ / "images", IdxBytes({3, 2, 2}, {0, 255, 0, 0, 51, 0, 0, 0, 0, 0, 0, 102}));
    WriteFile(dir_ / "labels", IdxBytes({3}, {0, 2, 1}));
  }
  std::filesystem::path dir_;
};

// core::AllFinite (core/matrix.h), which checks every uploaded data set and Predict's inputs:
// each kind of non-finite value, anywhere, including past the vector loop's whole vectors and
// in a block whose columns are not contiguous; the extremes of the finite floats pass.
TEST(AllFiniteTest, FindsEveryNonFiniteValueAnywhere) {
  const float kBad[] = {
      std::numeric_limits<float>::quiet_NaN(), -std::numeric_limits<float>::quiet_NaN(),
      std::numeric_limits<float>::signaling_NaN(), std::numeric_limits<float>::infinity(),
      -std::numeric_limits<float>::infinity()};
  for (Eigen::Index rows : {1, 7, 16, 33}) {
    for (Eigen::Index cols : {1, 3, 10}) {
      Matrix m = Matrix::Constant(rows, cols, 0.5f);
      m(0, 0) = std::numeric_limits<float>::max();
      m(rows - 1, cols - 1) = -std::numeric_limits<float>::max();
      if (rows * cols > 2) m(rows / 2, cols / 2) = std::numeric_limits<float>::denorm_min();
      EXPECT_TRUE(AllFinite(m));
      for (float bad : kBad)
        for (Eigen::Index k = 0; k < m.size(); ++k) {
          Matrix b = m;
          b.data()[k] = bad;
          ASSERT_FALSE(AllFinite(b)) << rows << "x" << cols << " at " << k << ": " << bad;
        }
    }
  }
  // A block: the rows outside it are not looked at.
  Matrix big = Matrix::Constant(20, 6, 1.0f);
  big.row(0).setConstant(std::numeric_limits<float>::quiet_NaN());
  big.row(19).setConstant(std::numeric_limits<float>::infinity());
  EXPECT_TRUE(AllFinite(big.middleRows(1, 18)));
  big(10, 4) = std::numeric_limits<float>::quiet_NaN();
  EXPECT_FALSE(AllFinite(big.middleRows(1, 18)));
  EXPECT_TRUE(AllFinite(Matrix(0, 0)));
}

TEST_F(IdxTest, ReadsImagesAsColumnsScaledToUnitRange) {
  auto d = LoadIdxClassification(dir_ / "images", dir_ / "labels");
  ASSERT_OK(d);
  EXPECT_EQ(d->size(), 3);
  EXPECT_EQ(d->input_dim(), 4);
  EXPECT_EQ(d->num_classes, 3);
  EXPECT_EQ(d->labels, (std::vector<int32_t>{0, 2, 1}));
  EXPECT_FLOAT_EQ(d->features(1, 0), 1.0f);  // example 0, pixel 1
  EXPECT_FLOAT_EQ(d->features(0, 1), 0.2f);  // example 1, pixel 0
  EXPECT_FLOAT_EQ(d->features(3, 2), 0.4f);  // example 2, pixel 3
}

TEST_F(IdxTest, ReadsGzipTransparently) {
  WriteGzip(dir_ / "images.gz", IdxBytes({3, 2, 2}, std::vector<uint8_t>(12, 255)));
  WriteGzip(dir_ / "labels.gz", IdxBytes({3}, {1, 1, 0}));
  auto d = LoadIdxClassification(dir_ / "images.gz", dir_ / "labels.gz", 10);
  ASSERT_OK(d);
  EXPECT_EQ(d->num_classes, 10);
  EXPECT_FLOAT_EQ(d->features.sum(), 12.0f);
}

TEST_F(IdxTest, FloatIdxIsReadBigEndian) {
  float v = 1.5f;
  uint32_t bits;
  std::memcpy(&bits, &v, 4);
  std::string s = {0, 0, 0x0D, 1};
  s += BigEndian32(1) + BigEndian32(bits);
  WriteFile(dir_ / "f", s);
  auto a = formats::ReadIdx(dir_ / "f");
  ASSERT_OK(a);
  EXPECT_EQ(a->values, std::vector<float>{1.5f});
}

struct IdxError {
  std::string name;
  std::string images;
  std::string labels;
  absl::StatusCode code;
  std::string message;  // substring
};

TEST_F(IdxTest, ErrorsSayWhatAndWhere) {
  const std::string good_images = IdxBytes({3, 2, 2}, std::vector<uint8_t>(12, 1));
  const std::string good_labels = IdxBytes({3}, {0, 1, 2});
  std::string nan_float = {0, 0, 0x0D, 1};
  nan_float += BigEndian32(1) + BigEndian32(0x7fc00000);
  const IdxError kCases[] = {
      {"wrong magic", "\x08\x03\x00\x00" + good_images.substr(4), good_labels,
       absl::StatusCode::kInvalidArgument, "wrong magic number"},
      {"unknown type", IdxBytes({3, 2, 2}, std::vector<uint8_t>(12, 1), 0x07), good_labels,
       absl::StatusCode::kInvalidArgument, "wrong magic number"},
      {"truncated header", good_images.substr(0, 9), good_labels,
       absl::StatusCode::kInvalidArgument, "truncated: the dimensions"},
      {"truncated data", good_images.substr(0, good_images.size() - 1), good_labels,
       absl::StatusCode::kInvalidArgument, "needs 12 bytes, file has 11"},
      {"trailing bytes", good_images + "x", good_labels, absl::StatusCode::kInvalidArgument,
       "trailing bytes"},
      {"count mismatch", good_images, IdxBytes({2}, {0, 1}), absl::StatusCode::kInvalidArgument,
       "has 2 labels but"},
      {"labels not 1-d", good_images, IdxBytes({3, 1}, {0, 1, 2}),
       absl::StatusCode::kInvalidArgument, "1-d"},
      {"nan value", nan_float, good_labels, absl::StatusCode::kInvalidArgument,
       "element 0 is not finite"},
      {"empty file", "", good_labels, absl::StatusCode::kInvalidArgument, "truncated"},
      // Found by fuzzing: dimensions whose product overflows 64 bits...
      {"dimension product overflow",
       std::string({0, 0, 0x08, 3}) + BigEndian32(0x80000000u) + BigEndian32(0x80000000u) +
           BigEndian32(0x80000000u),
       good_labels, absl::StatusCode::kInvalidArgument, "larger than 16 Gi elements"},
      // ... a 16-byte file that declares 2^33 elements (once allocated before reading) ...
      {"huge declared size",
       std::string({0, 0, 0x08, 2}) + BigEndian32(0x80000000u) + BigEndian32(4) + "abcd",
       good_labels, absl::StatusCode::kInvalidArgument, "truncated: the data"},
      // ... and a double beyond float's range (the cast is undefined behaviour).
      {"double out of float range",
       std::string({0, 0, 0x0E, 1}) + BigEndian32(1) + BigEndian32(0x7fefffffu) +
           BigEndian32(0xffffffffu),
       good_labels, absl::StatusCode::kInvalidArgument, "element 0 is not finite"},
      {"label beyond int32", good_images,
       std::string({0, 0, 0x0D, 1}) + BigEndian32(3) + BigEndian32(0) + BigEndian32(0) +
           BigEndian32(0x5f000000u),  // 9.2e18
       absl::StatusCode::kInvalidArgument, "not a class index"},
  };
  for (const IdxError& c : kCases) {
    SCOPED_TRACE(c.name);
    WriteFile(dir_ / "bad_images", c.images);
    WriteFile(dir_ / "bad_labels", c.labels);
    auto d = LoadIdxClassification(dir_ / "bad_images", dir_ / "bad_labels");
    ASSERT_FALSE(d.ok());
    EXPECT_EQ(d.status().code(), c.code) << d.status();
    EXPECT_NE(std::string(d.status().message()).find(c.message), std::string::npos) << d.status();
  }
}

TEST_F(IdxTest, LabelOutOfRangeNamesTheExample) {
  WriteFile(dir_ / "labels", IdxBytes({3}, {0, 12, 1}));
  auto d = LoadIdxClassification(dir_ / "images", dir_ / "labels", 10);
  ASSERT_FALSE(d.ok());
  EXPECT_NE(std::string(d.status().message()).find("label of example 1 is 12"), std::string::npos)
      << d.status();
}

TEST_F(IdxTest, MissingFileIsNotFound) {
  auto d = LoadIdxClassification(dir_ / "nope", dir_ / "labels");
  EXPECT_EQ(d.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(LoadMnistDir(dir_, "train").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(LoadMnistDir(dir_, "validation").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(CsvTest, ReadsClassificationAndRegression) {
  const auto dir = TempDir("csv");
  WriteFile(dir / "c.csv", "x1,x2,label\n0.5, 1.0, 1\n-2,3e-1,0\n\n4,5,2\n");
  CsvOptions o;
  o.header = true;
  auto d = ReadCsv(dir / "c.csv", o);
  ASSERT_OK(d);
  EXPECT_EQ(d->size(), 3);
  EXPECT_EQ(d->input_dim(), 2);
  EXPECT_EQ(d->num_classes, 3);
  EXPECT_FLOAT_EQ(d->features(1, 1), 0.3f);
  EXPECT_EQ(d->labels, (std::vector<int32_t>{1, 0, 2}));

  WriteFile(dir / "r.csv", "1,2,3,4\n5,6,7,8\n");
  o = CsvOptions();
  o.classification = false;
  o.num_targets = 2;
  auto r = ReadCsv(dir / "r.csv", o);
  ASSERT_OK(r);
  EXPECT_EQ(r->input_dim(), 2);
  EXPECT_EQ(r->targets.rows(), 2);
  EXPECT_FLOAT_EQ(r->targets(1, 1), 8.0f);
}

TEST(CsvTest, ErrorsNameLineAndColumn) {
  const auto dir = TempDir("csv_err");
  struct Case {
    std::string name, text, message;
  } const kCases[] = {
      {"ragged", "1,2,0\n1,2\n", "line 2 has 2 columns, expected 3"},
      {"not a number", "1,2,0\n1,abc,1\n", "line 2, column 2: 'abc' is not a number"},
      {"nan", "1,nan,0\n", "line 1, column 2: value 'nan' is not finite"},
      {"inf", "inf,1,0\n", "not finite"},
      {"negative label", "1,2,-1\n", "label is -1, not a class index"},
      {"fractional label", "1,2,0.5\n", "label is 0.5, not a class index"},
      {"too few columns", "1\n", "need at least 2"},
      {"empty", "\n\n", "no data rows"},
  };
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.name);
    WriteFile(dir / "bad.csv", c.text);
    auto d = ReadCsv(dir / "bad.csv");
    ASSERT_FALSE(d.ok());
    EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(std::string(d.status().message()).find(c.message), std::string::npos) << d.status();
  }
  CsvOptions o;
  o.num_classes = 2;
  WriteFile(dir / "bad.csv", "1,2,0\n3,4,2\n");
  auto d = ReadCsv(dir / "bad.csv", o);
  EXPECT_NE(std::string(d.status().message()).find("label is 2, outside [0, 2)"), std::string::npos)
      << d.status();
  EXPECT_EQ(ReadCsv(dir / "missing.csv").status().code(), absl::StatusCode::kNotFound);
}

TEST(DatasetTest, ValidationFindsNaNAndBadLabels) {
  Matrix x = Matrix::Ones(2, 3);
  x(1, 2) = NAN;
  auto d = MakeClassificationDataset(x, {0, 1, 0}, 2);
  ASSERT_FALSE(d.ok());
  EXPECT_NE(std::string(d.status().message()).find("example 2, index 1 is not finite"),
            std::string::npos)
      << d.status();
  EXPECT_FALSE(MakeClassificationDataset(Matrix::Ones(2, 3), {0, 1}, 2).ok());
  EXPECT_FALSE(MakeClassificationDataset(Matrix::Ones(2, 3), {0, 5, 1}, 2).ok());
  EXPECT_FALSE(MakeRegressionDataset(Matrix::Ones(2, 3), Matrix::Ones(1, 2)).ok());
  Matrix t = Matrix::Ones(1, 3);
  t(0, 0) = INFINITY;
  EXPECT_FALSE(MakeRegressionDataset(Matrix::Ones(2, 3), t).ok());
  EXPECT_OK(MakeRegressionDataset(Matrix::Ones(2, 3), Matrix::Ones(1, 3)));
}

TEST(GeneratorTest, LinearTaskIsATeacherMap) {
  LinearTaskSpec spec;
  spec.train_size = 200;
  spec.test_size = 50;
  auto task = MakeLinearTask(spec);
  ASSERT_OK(task);
  EXPECT_EQ(task->train.features.rows(), 30);
  EXPECT_EQ(task->train.targets.rows(), 10);
  EXPECT_EQ(task->test.size(), 50);
  // y* = T x with one T for train and test: solve T from the training set, check the test set.
  const Matrix& x = task->train.features;
  const Matrix t = task->train.targets * x.transpose() * (x * x.transpose()).inverse();
  EXPECT_LT((t * task->test.features - task->test.targets).norm(), 1e-3f);
  EXPECT_LE(t.maxCoeff(), 1.0f + 1e-3f);
  EXPECT_GE(t.minCoeff(), -1.0f - 1e-3f);
  // Same seed, same data; another seed, other data.
  EXPECT_EQ(MakeLinearTask(spec)->train.features, x);
  spec.seed = 2;
  EXPECT_NE(MakeLinearTask(spec)->train.features, x);
}

TEST(GeneratorTest, NonlinearAndToyTasks) {
  NonlinearTaskSpec spec;
  spec.train_size = 100;
  spec.test_size = 10;
  auto task = MakeNonlinearTask(spec);
  ASSERT_OK(task);
  EXPECT_EQ(task->train.features.rows(), 30);
  EXPECT_EQ(task->train.targets.rows(), 10);
  EXPECT_OK(ValidateDataset(task->train));
  auto toy = MakeToyTask(10, 5, 3);
  ASSERT_OK(toy);
  EXPECT_EQ(toy->train.features, toy->train.targets);
  EXPECT_FALSE(MakeToyTask(0, 5, 3).ok());
  spec.teacher_sizes = {30};
  EXPECT_FALSE(MakeNonlinearTask(spec).ok());
}

}  // namespace
}  // namespace alignd::core
