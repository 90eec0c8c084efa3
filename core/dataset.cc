// File: core/dataset.cc
#include "core/dataset.h"

#include <zlib.h>

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
#include "core/random.h"
#include "base/status_macros.h"

namespace alignd::core {
namespace {

absl::Status Invalid(const std::string& where, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(where, ": ", what));
}

// First non-finite entry of a d x n matrix, reported as example (column) and feature (row).
absl::Status CheckFinite(const Matrix& m, absl::string_view what) {
  if (m.allFinite()) return absl::OkStatus();
  for (Eigen::Index j = 0; j < m.cols(); ++j)
    for (Eigen::Index i = 0; i < m.rows(); ++i)
      if (!std::isfinite(m(i, j)))
        return absl::InvalidArgumentError(
            absl::StrCat(what, " of example ", j, ", index ", i, " is not finite (", m(i, j), ")"));
  return absl::OkStatus();
}

struct GzCloser {
  void operator()(gzFile f) const { gzclose(f); }
};
using GzFile = std::unique_ptr<std::remove_pointer_t<gzFile>, GzCloser>;

int IdxElementSize(uint8_t type) {
  switch (type) {
    case 0x08:
    case 0x09:
      return 1;
    case 0x0B:
      return 2;
    case 0x0C:
    case 0x0D:
      return 4;
    case 0x0E:
      return 8;
    default:
      return 0;
  }
}

template <typename T>
T FromBigEndian(const unsigned char* p) {
  unsigned char buf[sizeof(T)];
  for (size_t i = 0; i < sizeof(T); ++i) buf[i] = p[sizeof(T) - 1 - i];
  T v;
  std::memcpy(&v, buf, sizeof(T));
  return v;
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

namespace {

// Where IDX bytes come from: a gzip-or-plain file, or memory. Read() returns the bytes
// read (fewer at the end), or -1 on an error.
using ByteSource = std::function<int64_t(void* dst, size_t n)>;

absl::Status ReadExactlyFrom(const ByteSource& read, void* dst, size_t n, const std::string& name,
                             absl::string_view what) {
  char* p = static_cast<char*>(dst);
  size_t got = 0;
  while (got < n) {
    const int64_t r = read(p + got, n - got);
    if (r < 0) return Invalid(name, absl::StrCat("read error in ", what));
    if (r == 0) break;
    got += static_cast<size_t>(r);
  }
  if (got != n)
    return Invalid(name, absl::StrCat("truncated: ", what, " needs ", n, " bytes, file has ", got));
  return absl::OkStatus();
}

// Limits: dimensions up to 2^31, at most 2^34 elements in all (64 GiB of floats).
constexpr int64_t kMaxIdxDim = int64_t{1} << 31;
constexpr int64_t kMaxIdxElements = int64_t{1} << 34;

absl::StatusOr<IdxArray> ParseIdxFrom(const ByteSource& read, const std::string& name) {
  unsigned char magic[4];
  RETURN_IF_ERROR(ReadExactlyFrom(read, magic, 4, name, "the magic number"));
  IdxArray out;
  out.type_code = magic[2];
  const int rank = magic[3];
  const int elem = IdxElementSize(out.type_code);
  if (magic[0] != 0 || magic[1] != 0 || elem == 0 || rank == 0)
    return Invalid(name, absl::StrFormat("wrong magic number 0x%02x%02x%02x%02x: not an IDX file "
                                         "(expected 0x0000TTNN, TT a type code in 08 09 0B 0C 0D "
                                         "0E, NN the rank >= 1)",
                                         magic[0], magic[1], magic[2], magic[3]));
  unsigned char dimbuf[4 * 255];
  RETURN_IF_ERROR(
      ReadExactlyFrom(read, dimbuf, 4 * static_cast<size_t>(rank), name, "the dimensions"));
  int64_t count = 1;
  for (int i = 0; i < rank; ++i) {
    const int64_t dim = FromBigEndian<uint32_t>(&dimbuf[4 * i]);
    if (dim == 0 || dim > kMaxIdxDim)
      return Invalid(name, absl::StrCat("dimension ", i, " is ", dim));
    // count <= 2^34 and dim <= 2^31: checked before the product, which then fits.
    if (count > kMaxIdxElements / dim) return Invalid(name, "array larger than 16 Gi elements");
    count *= dim;
    out.dims.push_back(dim);
  }
  // The data in blocks, converted as they arrive: memory grows with what the file holds,
  // not with what its header claims (a 16-byte file may declare 16 Gi elements).
  constexpr int64_t kBlockElements = 1 << 16;
  std::vector<unsigned char> block(static_cast<size_t>(kBlockElements) * elem);
  out.values.reserve(static_cast<size_t>(std::min<int64_t>(count, int64_t{1} << 20)));
  for (int64_t done = 0; done < count;) {
    const int64_t m = std::min(kBlockElements, count - done);
    RETURN_IF_ERROR(ReadExactlyFrom(read, block.data(), static_cast<size_t>(m) * elem, name,
                                    absl::StrCat("the data (", count, " elements of ", elem,
                                                 " bytes; element ", done, " onwards)")));
    const unsigned char* p = block.data();
    for (int64_t i = 0; i < m; ++i, p += elem) {
      float v = 0;
      switch (out.type_code) {
        case 0x08:
          v = static_cast<float>(*p);
          break;
        case 0x09:
          v = static_cast<float>(static_cast<int8_t>(*p));
          break;
        case 0x0B:
          v = static_cast<float>(FromBigEndian<int16_t>(p));
          break;
        case 0x0C:
          v = static_cast<float>(FromBigEndian<int32_t>(p));
          break;
        case 0x0D:
          v = FromBigEndian<float>(p);
          break;
        case 0x0E: {
          const double d = FromBigEndian<double>(p);
          // A double beyond float's range has no float value (the cast is undefined).
          v = std::isfinite(d) && std::abs(d) <= std::numeric_limits<float>::max()
                  ? static_cast<float>(d)
                  : std::numeric_limits<float>::infinity();
          break;
        }
      }
      if (!std::isfinite(v))
        return Invalid(name, absl::StrCat("element ", done + i, " is not finite (or not a float)"));
      out.values.push_back(v);
    }
    done += m;
  }
  char extra;
  if (read(&extra, 1) > 0)
    return Invalid(name, absl::StrCat("trailing bytes after the ", count,
                                      " elements that the header "
                                      "declares"));
  return out;
}

}  // namespace

absl::StatusOr<IdxArray> ParseIdx(absl::string_view bytes, const std::string& name) {
  size_t pos = 0;
  return ParseIdxFrom(
      [&](void* dst, size_t n) -> int64_t {
        const size_t m = std::min(n, bytes.size() - pos);
        std::memcpy(dst, bytes.data() + pos, m);
        pos += m;
        return static_cast<int64_t>(m);
      },
      name);
}

absl::StatusOr<IdxArray> ReadIdx(const std::string& path) {
  if (!std::ifstream(path).good())
    return absl::NotFoundError(absl::StrCat(path, ": cannot open file"));
  GzFile f(gzopen(path.c_str(), "rb"));
  if (!f) return absl::NotFoundError(absl::StrCat(path, ": cannot open file"));
  gzbuffer(f.get(), 1 << 20);
  return ParseIdxFrom(
      [&](void* dst, size_t n) -> int64_t {
        const unsigned chunk = static_cast<unsigned>(std::min<size_t>(n, 1u << 30));
        return gzread(f.get(), dst, chunk);
      },
      path);
}

absl::StatusOr<Dataset> LoadIdxClassification(const std::string& images_path,
                                              const std::string& labels_path, int num_classes) {
  ASSIGN_OR_RETURN(IdxArray images, ReadIdx(images_path));
  ASSIGN_OR_RETURN(IdxArray labels, ReadIdx(labels_path));
  if (labels.dims.size() != 1)
    return Invalid(labels_path,
                   absl::StrCat("labels must be a 1-d IDX array, got rank ", labels.dims.size()));
  const int64_t n = images.dims[0];
  if (labels.dims[0] != n)
    return Invalid(labels_path, absl::StrCat("has ", labels.dims[0], " labels but ", images_path,
                                             " has ", n, " examples"));
  const int64_t d = static_cast<int64_t>(images.values.size()) / n;
  Dataset out;
  out.features = ConstMatrixMap(images.values.data(), d, n);  // row-major n x d == col-major d x n
  if (images.type_code == 0x08) out.features *= 1.0f / 255.0f;
  int max_label = 0;
  out.labels.resize(n);
  for (int64_t j = 0; j < n; ++j) {
    const float v = labels.values[j];
    if (v < 0 || v != std::floor(v) || v > 1e9f)  // > 1e9: no int32 class index (and UB to cast)
      return Invalid(labels_path,
                     absl::StrCat("label of example ", j, " is ", v, ", not a class index >= 0"));
    out.labels[j] = static_cast<int32_t>(v);
    max_label = std::max(max_label, out.labels[j]);
  }
  out.num_classes = num_classes > 0 ? num_classes : max_label + 1;
  for (int64_t j = 0; j < n; ++j)
    if (out.labels[j] >= out.num_classes)
      return Invalid(labels_path, absl::StrCat("label of example ", j, " is ", out.labels[j],
                                               ", outside [0, ", out.num_classes, ")"));
  out.name = images_path;
  RETURN_IF_ERROR(ValidateDataset(out));
  return out;
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

absl::StatusOr<Dataset> ReadCsv(const std::string& path, const CsvOptions& options) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open file"));
  std::ostringstream text;
  text << in.rdbuf();
  return ParseCsv(text.str(), path, options);
}

absl::StatusOr<Dataset> ParseCsv(absl::string_view text, const std::string& path,
                                 const CsvOptions& options) {
  if (!options.classification && options.num_targets < 1)
    return absl::InvalidArgumentError(
        absl::StrCat("num_targets must be >= 1, got ", options.num_targets));
  std::vector<float> values;  // row-major
  int64_t columns = -1, rows = 0, line_no = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_no;
    if (options.header && line_no == 1) continue;
    absl::string_view sv = absl::StripAsciiWhitespace(line);
    if (sv.empty()) continue;
    const std::vector<absl::string_view> fields = absl::StrSplit(sv, options.delimiter);
    if (columns < 0) {
      columns = static_cast<int64_t>(fields.size());
      const int64_t need = options.classification ? 2 : options.num_targets + 1;
      if (columns < need)
        return Invalid(
            path, absl::StrCat("line ", line_no, " has ", columns, " columns; need at least ", need,
                               " (features, then the target column(s))"));
    } else if (static_cast<int64_t>(fields.size()) != columns) {
      return Invalid(path, absl::StrCat("line ", line_no, " has ", fields.size(),
                                        " columns, expected ", columns, " (ragged rows)"));
    }
    for (size_t c = 0; c < fields.size(); ++c) {
      absl::string_view field = absl::StripAsciiWhitespace(fields[c]);
      float v = 0;
      const auto [ptr, ec] = std::from_chars(field.data(), field.data() + field.size(), v);
      if (ec != std::errc() || ptr != field.data() + field.size() || field.empty())
        return Invalid(path, absl::StrCat("line ", line_no, ", column ", c + 1, ": '", field,
                                          "' is not a number"));
      if (!std::isfinite(v))
        return Invalid(path, absl::StrCat("line ", line_no, ", column ", c + 1, ": value '", field,
                                          "' is not finite"));
      values.push_back(v);
    }
    ++rows;
  }
  if (rows == 0) return Invalid(path, "no data rows");
  const int64_t k = options.classification ? 1 : options.num_targets;
  const int64_t d = columns - k;
  Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>> all(
      values.data(), rows, columns);
  Dataset out;
  out.name = path;
  out.features = all.leftCols(d).transpose();
  if (options.classification) {
    int max_label = 0;
    out.labels.resize(rows);
    for (int64_t r = 0; r < rows; ++r) {
      const float v = all(r, d);
      if (v < 0 || v != std::floor(v) || v > 1e9f)
        return Invalid(path, absl::StrCat("data row ", r + 1, ", column ", columns, ": label ", v,
                                          " is not a class index >= 0"));
      out.labels[r] = static_cast<int32_t>(v);
      max_label = std::max(max_label, out.labels[r]);
    }
    out.num_classes = options.num_classes > 0 ? options.num_classes : max_label + 1;
    for (int64_t r = 0; r < rows; ++r)
      if (out.labels[r] >= out.num_classes)
        return Invalid(path, absl::StrCat("data row ", r + 1, ", column ", columns, ": label ",
                                          out.labels[r], " is outside [0, ", out.num_classes, ")"));
  } else {
    out.targets = all.rightCols(k).transpose();
  }
  RETURN_IF_ERROR(ValidateDataset(out));
  return out;
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
