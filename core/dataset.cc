// File: core/dataset.cc
#include "core/dataset.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <limits>
#include <memory>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "base/status_macros.h"
#include "core/random.h"
#include "formats/formats.h"

namespace alignd::core {
namespace {

// First non-finite entry of a d x n matrix, reported as example (column) and feature (row).
absl::Status CheckFinite(const Matrix& m, absl::string_view what) {
  if (AllFinite(m)) return absl::OkStatus();
  for (Eigen::Index j = 0; j < m.cols(); ++j)
    for (Eigen::Index i = 0; i < m.rows(); ++i)
      if (!std::isfinite(m(i, j)))
        return absl::InvalidArgumentError(
            absl::StrCat(what, " of example ", j, ", index ", i, " is not finite (", m(i, j), ")"));
  return absl::OkStatus();
}

std::string FindFile(const std::string& dir, const std::string& stem) {
  for (const std::string& candidate : {stem, stem + ".gz"}) {
    const std::string path = dir + "/" + candidate;
    if (std::ifstream(path).good()) return path;
  }
  return dir + "/" + stem;  // reported as not found by ReadIdx
}

}  // namespace

absl::Status ValidateDataset(const Dataset& d) {
  const std::string what =
      d.name.empty() ? std::string("data set") : absl::StrCat("data set '", d.name, "'");
  if (d.features.cols() == 0 || d.features.rows() == 0)
    return absl::InvalidArgumentError(absl::StrCat(
        what, " is empty (", d.features.rows(), " features x ", d.features.cols(), " examples)"));
  RETURN_IF_ERROR(CheckFinite(d.features, absl::StrCat(what, ": feature")));
  if (d.is_classification()) {
    if (d.targets.size() != 0)
      return absl::InvalidArgumentError(absl::StrCat(what, " has both labels and float targets"));
    if (static_cast<int64_t>(d.labels.size()) != d.size())
      return absl::InvalidArgumentError(
          absl::StrCat(what, " has ", d.size(), " examples but ", d.labels.size(), " labels"));
    for (size_t j = 0; j < d.labels.size(); ++j)
      if (d.labels[j] < 0 || d.labels[j] >= d.num_classes)
        return absl::InvalidArgumentError(absl::StrCat(what, ": label of example ", j, " is ",
                                                       d.labels[j], ", outside [0, ", d.num_classes,
                                                       ")"));
  } else {
    if (!d.labels.empty())
      return absl::InvalidArgumentError(
          absl::StrCat(what, " has labels but num_classes = ", d.num_classes));
    if (d.targets.rows() == 0 || d.targets.cols() != d.size())
      return absl::InvalidArgumentError(absl::StrCat(what, " has ", d.size(), " examples but ",
                                                     d.targets.cols(), " target columns of size ",
                                                     d.targets.rows()));
    RETURN_IF_ERROR(CheckFinite(d.targets, absl::StrCat(what, ": target")));
  }
  return absl::OkStatus();
}

absl::StatusOr<Dataset> MakeClassificationDataset(Matrix features, std::vector<int32_t> labels,
                                                  int num_classes) {
  if (num_classes < 1)
    return absl::InvalidArgumentError(absl::StrCat("num_classes must be >= 1, got ", num_classes));
  Dataset d;
  d.features = std::move(features);
  d.labels = std::move(labels);
  d.num_classes = num_classes;
  RETURN_IF_ERROR(ValidateDataset(d));
  return d;
}

absl::StatusOr<Dataset> MakeRegressionDataset(Matrix features, Matrix targets) {
  Dataset d;
  d.features = std::move(features);
  d.targets = std::move(targets);
  RETURN_IF_ERROR(ValidateDataset(d));
  return d;
}

absl::StatusOr<Dataset> DatasetFromExamples(formats::Examples e, std::string name) {
  const int64_t d = e.feature_count();
  const int64_t n = e.classification() ? static_cast<int64_t>(e.labels.size()) : e.size();
  Dataset out;
  out.name = std::move(name);
  // Row-major n x d (example-major) is column-major d x n: one example per column.
  out.features = ConstMatrixMap(e.features.data(), d, n);
  if (e.classification()) {
    out.labels = std::move(e.labels);
    out.num_classes = e.num_classes;
  } else {
    out.targets = ConstMatrixMap(e.targets.data(), e.target_dim, n);
  }
  RETURN_IF_ERROR(ValidateDataset(out));
  return out;
}

formats::Examples ExamplesFromDataset(const Dataset& d) {
  formats::Examples e;
  e.feature_shape = {d.features.rows()};
  e.features.assign(d.features.data(), d.features.data() + d.features.size());
  if (d.is_classification()) {
    e.labels = d.labels;
    e.num_classes = d.num_classes;
  } else {
    e.targets.assign(d.targets.data(), d.targets.data() + d.targets.size());
    e.target_dim = static_cast<int32_t>(d.targets.rows());
  }
  return e;
}

absl::StatusOr<Dataset> LoadIdxClassification(const std::string& images_path,
                                              const std::string& labels_path, int num_classes) {
  ASSIGN_OR_RETURN(formats::Examples e,
                   formats::ExamplesFromIdx(images_path, labels_path, num_classes));
  return DatasetFromExamples(std::move(e), images_path);
}

absl::StatusOr<Dataset> LoadMnistDir(const std::string& dir, const std::string& split) {
  std::string prefix;
  if (split == "train")
    prefix = "train";
  else if (split == "test")
    prefix = "t10k";
  else
    return absl::InvalidArgumentError(
        absl::StrCat("split must be 'train' or 'test', got '", split, "'"));
  ASSIGN_OR_RETURN(Dataset d,
                   LoadIdxClassification(FindFile(dir, prefix + "-images-idx3-ubyte"),
                                         FindFile(dir, prefix + "-labels-idx1-ubyte"), 10));
  d.name = absl::StrCat("mnist-", split);
  return d;
}

namespace {

formats::TargetOptions TargetsOf(const CsvOptions& o) {
  formats::TargetOptions t;
  t.classification = o.classification;
  t.target_dim = o.num_targets;
  t.num_classes = o.num_classes;
  return t;
}

}  // namespace

absl::StatusOr<Dataset> ReadCsv(const std::string& path, const CsvOptions& options) {
  ASSIGN_OR_RETURN(formats::CsvTable t,
                   formats::ReadCsv(path, formats::CsvOptions{options.delimiter, options.header}));
  ASSIGN_OR_RETURN(formats::Examples e, formats::ExamplesFromCsv(t, path, TargetsOf(options)));
  return DatasetFromExamples(std::move(e), path);
}

absl::StatusOr<Dataset> ParseCsv(absl::string_view text, const std::string& path,
                                 const CsvOptions& options) {
  ASSIGN_OR_RETURN(
      formats::CsvTable t,
      formats::ParseCsv(text, path, formats::CsvOptions{options.delimiter, options.header}));
  ASSIGN_OR_RETURN(formats::Examples e, formats::ExamplesFromCsv(t, path, TargetsOf(options)));
  return DatasetFromExamples(std::move(e), path);
}

namespace {

absl::Status CheckSizes(int64_t train, int64_t test) {
  if (train < 1)
    return absl::InvalidArgumentError(absl::StrCat("train_size must be >= 1, got ", train));
  if (test < 0)
    return absl::InvalidArgumentError(absl::StrCat("test_size must be >= 0, got ", test));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<TaskData> MakeLinearTask(const LinearTaskSpec& spec) {
  RETURN_IF_ERROR(CheckSizes(spec.train_size, spec.test_size));
  if (!(spec.noise >= 0.0f && std::isfinite(spec.noise)))
    return absl::InvalidArgumentError(
        absl::StrCat("noise must be finite and >= 0, got ", spec.noise));
  if (spec.input_dim < 1 || spec.output_dim < 1)
    return absl::InvalidArgumentError(absl::StrCat("input_dim and output_dim must be >= 1, got ",
                                                   spec.input_dim, " and ", spec.output_dim));
  Rng teacher_rng(spec.seed, /*stream=*/100);
  Matrix t(spec.output_dim, spec.input_dim);
  teacher_rng.FillUniform(t, -1.0f, 1.0f);
  TaskData out;
  int64_t stream = 101;
  for (auto [d, n] : {std::pair<Dataset*, int64_t>{&out.train, spec.train_size},
                      std::pair<Dataset*, int64_t>{&out.test, spec.test_size}}) {
    Rng rng(spec.seed, stream++);
    d->features.resize(spec.input_dim, n);
    rng.FillNormal(d->features, 1.0f);
    d->targets.noalias() = t * d->features;
    if (spec.noise > 0) {
      Matrix noise(d->targets.rows(), d->targets.cols());
      rng.FillNormal(noise, spec.noise);
      d->targets += noise;
    }
  }
  out.train.name = "linear-train";
  out.test.name = "linear-test";
  return out;
}

absl::StatusOr<TaskData> MakeNonlinearTask(const NonlinearTaskSpec& spec) {
  RETURN_IF_ERROR(CheckSizes(spec.train_size, spec.test_size));
  if (spec.teacher_sizes.size() < 2)
    return absl::InvalidArgumentError("teacher_sizes needs at least 2 entries");
  for (int s : spec.teacher_sizes)
    if (s < 1) return absl::InvalidArgumentError(absl::StrCat("teacher_sizes entry ", s, " < 1"));
  Rng teacher_rng(spec.seed, /*stream=*/200);
  std::vector<Matrix> w;
  std::vector<Vector> b;
  for (size_t l = 1; l < spec.teacher_sizes.size(); ++l) {
    w.emplace_back(spec.teacher_sizes[l], spec.teacher_sizes[l - 1]);
    teacher_rng.FillNormal(w.back(), spec.gain / std::sqrt(float(spec.teacher_sizes[l - 1])));
    b.emplace_back(spec.teacher_sizes[l]);
    teacher_rng.FillNormal(b.back(), 0.1f);
  }
  TaskData out;
  int64_t stream = 201;
  for (auto [d, n] : {std::pair<Dataset*, int64_t>{&out.train, spec.train_size},
                      std::pair<Dataset*, int64_t>{&out.test, spec.test_size}}) {
    Rng rng(spec.seed, stream++);
    d->features.resize(spec.teacher_sizes[0], n);
    rng.FillNormal(d->features, 1.0f);
    Matrix a = d->features;
    for (size_t l = 0; l < w.size(); ++l) {
      Matrix z = w[l] * a;
      z.colwise() += b[l];
      a = (l + 1 < w.size()) ? Matrix(z.array().tanh()) : z;
    }
    d->targets = std::move(a);
  }
  out.train.name = "nonlinear-train";
  out.test.name = "nonlinear-test";
  return out;
}

absl::StatusOr<TaskData> MakeToyTask(int64_t train_size, int64_t test_size, uint64_t seed) {
  RETURN_IF_ERROR(CheckSizes(train_size, test_size));
  TaskData out;
  int64_t stream = 301;
  for (auto [d, n] : {std::pair<Dataset*, int64_t>{&out.train, train_size},
                      std::pair<Dataset*, int64_t>{&out.test, test_size}}) {
    Rng rng(seed, stream++);
    d->features.resize(1, n);
    rng.FillNormal(d->features, 1.0f);
    d->targets = d->features;
  }
  out.train.name = "toy-train";
  out.test.name = "toy-test";
  return out;
}

}  // namespace alignd::core
