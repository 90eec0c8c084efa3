// File: core/dataset.h
// -----------------------------------------------------------------------------
// In-memory data sets, loaded from files through formats/ (IDX, as MNIST and
// Fashion-MNIST ship, plain or gzipped; CSV), and the paper's generators (the
// linear teacher task, the nonlinear teacher network, the 1-d toy).
//
// A Dataset stores examples as columns: `features` is `d x n`, so a batch is a set
// of columns and example j is contiguous in memory. Targets are either class
// labels (classification: `labels`, `num_classes`) or float vectors
// (regression: `targets`, `k x n`), never both.
//
// Every reader and generator validates what it makes and returns InvalidArgument
// (NotFound for a missing file) with a message that says what is wrong and where:
// file, row, column, example.
#ifndef ALIGND_CORE_DATASET_H_
#define ALIGND_CORE_DATASET_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/matrix.h"
#include "formats/formats.h"

namespace alignd::core {

struct Dataset {
  std::string name;
  Matrix features;              // d x n
  std::vector<int32_t> labels;  // n class indices in [0, num_classes); classification only
  int num_classes = 0;          // > 0 for classification
  Matrix targets;               // k x n; regression only

  int64_t size() const { return features.cols(); }
  int input_dim() const { return static_cast<int>(features.rows()); }
  bool is_classification() const { return num_classes > 0; }
  // Width of the network's output: num_classes or k.
  int output_dim() const {
    return is_classification() ? num_classes : static_cast<int>(targets.rows());
  }
};

// Checks shapes, finiteness of every value and the range of every label.
absl::Status ValidateDataset(const Dataset& d);

// Builds and validates a data set. `features` is d x n.
absl::StatusOr<Dataset> MakeClassificationDataset(Matrix features, std::vector<int32_t> labels,
                                                  int num_classes);
absl::StatusOr<Dataset> MakeRegressionDataset(Matrix features, Matrix targets);

// ---- Files (read by formats/formats.h) -------------------------------------------
// An engine data set from examples as formats/ reads them (checked by ValidateDataset).
absl::StatusOr<Dataset> DatasetFromExamples(formats::Examples examples, std::string name);
// And back (a copy), e.g. to store a generated data set as an upload payload.
formats::Examples ExamplesFromDataset(const Dataset& d);

// Images (n x ... IDX, any rank >= 1 after n) and labels (n IDX). Unsigned-byte
// pixels are scaled to [0, 1]. num_classes = 0 means max(label) + 1.
absl::StatusOr<Dataset> LoadIdxClassification(const std::string& images_path,
                                              const std::string& labels_path, int num_classes = 0);

// MNIST-style directory with train-images-idx3-ubyte[.gz] etc.; `split` is "train" or "test"
// (file prefixes "train" and "t10k").
absl::StatusOr<Dataset> LoadMnistDir(const std::string& dir, const std::string& split);

// ---- CSV -----------------------------------------------------------------------
struct CsvOptions {
  char delimiter = ',';
  bool header = false;  // skip the first line
  // Classification: the last column is an integer class label.
  // Regression: the last `num_targets` columns are float targets.
  bool classification = true;
  int num_targets = 1;  // regression only
  int num_classes = 0;  // classification; 0 = max(label) + 1
};
absl::StatusOr<Dataset> ReadCsv(const std::string& path, const CsvOptions& options = {});
// The same from text in memory; `path` is what errors call it.
absl::StatusOr<Dataset> ParseCsv(absl::string_view text, const std::string& path,
                                 const CsvOptions& options = {});

// ---- Generators ------------------------------------------------------------------
struct TaskData {
  Dataset train;
  Dataset test;
};

// The paper's linear task: T (out x in) ~ U[-1, 1] drawn once, x ~ N(0, I), y* = T x
// (+ N(0, noise^2) per target if noise > 0, which gives the task an error floor).
struct LinearTaskSpec {
  int input_dim = 30;
  int output_dim = 10;
  float noise = 0.0f;
  int64_t train_size = 1000;
  int64_t test_size = 1000;
  uint64_t seed = 1;
};
absl::StatusOr<TaskData> MakeLinearTask(const LinearTaskSpec& spec);

// The paper's nonlinear task: targets from a fixed random tanh network with layer
// sizes `teacher_sizes` (default 30-20-10-10, linear output), weights
// W ~ N(0, (gain^2) / fan_in), x ~ N(0, I).
struct NonlinearTaskSpec {
  std::vector<int> teacher_sizes = {30, 20, 10, 10};
  float gain = 1.5f;
  int64_t train_size = 5000;
  int64_t test_size = 5000;
  uint64_t seed = 1;
};
absl::StatusOr<TaskData> MakeNonlinearTask(const NonlinearTaskSpec& spec);

// The 1-d toy: x ~ N(0, 1), y* = x.
absl::StatusOr<TaskData> MakeToyTask(int64_t train_size, int64_t test_size, uint64_t seed);

}  // namespace alignd::core

#endif  // ALIGND_CORE_DATASET_H_
