// File: formats/formats.h
// -----------------------------------------------------------------------------
// The data file formats alignd reads and writes, in one place for the engine (core),
// the server and alignctl: IDX (MNIST's, plain or gzipped), CSV, NumPy .npy, and the
// upload payload (DatasetHeader in proto/alignd/v1/datasets.proto; the Python client's
// payload.py mirrors it and is tested against the same golden bytes).
//
// No proto, no Eigen: arrays are row-major float32 (what the engine and the wire use),
// converted as they are read — an IDX or .npy file is read in blocks and never widened
// to double. Every size computed from a header is overflow-checked and compared with
// what the file holds before anything of that size is allocated. Errors are
// InvalidArgument (NotFound for a missing file) naming the file and the place:
// "x.csv: line 2, column 2: 'nan' is not a finite number".
#ifndef ALIGND_FORMATS_FORMATS_H_
#define ALIGND_FORMATS_FORMATS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace alignd::formats {

// What a file stored, before conversion to float32.
enum class ElementType { kU8, kI8, kI16, kI32, kI64, kU16, kU32, kU64, kF32, kF64 };

// An array from a file: its dimensions and its values as float32, row-major.
struct FloatArray {
  std::vector<int64_t> dims;
  std::vector<float> values;
  ElementType type = ElementType::kF32;
  bool integral() const { return type != ElementType::kF32 && type != ElementType::kF64; }
};

// ---- IDX (http://yann.lecun.com/exdb/mnist/): big-endian, six element types. Memory grows
// with the bytes present, never with what a header claims. A non-finite value (or a double
// beyond float's range) is an error.
absl::StatusOr<FloatArray> ParseIdx(absl::string_view bytes, const std::string& name);
// A file; gzip is detected and decompressed on the fly.
absl::StatusOr<FloatArray> ReadIdx(const std::string& path);

// ---- NumPy .npy, versions 1-3, C order, little-endian bool/int/uint/float of 1-8 bytes.
absl::StatusOr<FloatArray> ParseNpy(absl::string_view bytes, const std::string& name);
absl::StatusOr<FloatArray> ReadNpy(const std::string& path);
// A row-major float32 array of shape `dims` as .npy (version 1.0) bytes, or to a file.
std::string EncodeNpy(const std::vector<int64_t>& dims, const float* values);
absl::Status WriteNpy(const std::string& path, const std::vector<int64_t>& dims,
                      const float* values);

// ---- CSV: numbers separated by `delimiter`, one example per line; blank lines skipped.
struct CsvOptions {
  char delimiter = ',';
  bool header = false;  // skip the first line
};
struct CsvTable {
  int64_t rows = 0, columns = 0;
  std::vector<float> values;  // rows x columns, row-major
};
absl::StatusOr<CsvTable> ParseCsv(absl::string_view text, const std::string& name,
                                  const CsvOptions& options = {});
absl::StatusOr<CsvTable> ReadCsv(const std::string& path, const CsvOptions& options = {});

// ---- Labelled examples, as a data set is uploaded and stored.
struct Examples {
  std::vector<int64_t> feature_shape;  // one example's; d = the product
  std::vector<float> features;         // n x d, example-major
  // Classification: labels (n, in [0, num_classes)). Regression: targets (n x target_dim).
  std::vector<int32_t> labels;
  int32_t num_classes = 0;
  std::vector<float> targets;
  int32_t target_dim = 0;

  bool classification() const { return num_classes > 0; }
  int64_t size() const;
  int64_t feature_count() const;
};

// How targets are taken from a file's values.
struct TargetOptions {
  bool classification = true;
  int target_dim = 1;   // regression: values per example (CSV: the last target_dim columns)
  int num_classes = 0;  // classification: 0 = the largest label + 1
};

// Images (n x ...) and labels (n) from two IDX files; unsigned-byte pixels scaled to [0, 1].
absl::StatusOr<Examples> ExamplesFromIdx(const std::string& images, const std::string& labels,
                                         int num_classes = 0);
// A CSV table: the target column(s) last.
absl::StatusOr<Examples> ExamplesFromCsv(const CsvTable& table, const std::string& name,
                                         const TargetOptions& targets);
// Features (n x ...) and labels (n, integral) or targets (n x ...) from two .npy files.
absl::StatusOr<Examples> ExamplesFromNpy(const std::string& features, const std::string& targets,
                                         const TargetOptions& options);

// ---- The upload payload: features as float32 little-endian, example-major, then n int32
// labels or n x target_dim float32 targets. Its size is fixed by the shape.
struct PayloadShape {
  int64_t num_examples = 0;
  std::vector<int64_t> feature_shape;
  int32_t num_classes = 0;  // > 0: class labels
  int32_t target_dim = 0;   // > 0: float targets
};
PayloadShape ShapeOf(const Examples& e);
// The payload's bytes; -1 if the shape is out of range (any dimension < 1, more than 2^24
// features or targets per example, more than 2^31-1 examples).
int64_t PayloadBytes(const PayloadShape& shape);
std::string EncodePayload(const Examples& e);
// Checks the size, every value's finiteness and every label's range.
absl::StatusOr<Examples> DecodePayload(const PayloadShape& shape, absl::string_view bytes);

// Lowercase hex SHA-256, at once or as the bytes stream in.
std::string Sha256Hex(absl::string_view bytes);
// True if `s` has the form Sha256Hex gives: 64 lowercase hex digits.
bool IsSha256Hex(absl::string_view s);
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void Update(absl::string_view bytes);
  std::string HexDigest();  // once

 private:
  void* ctx_;  // EVP_MD_CTX
};

}  // namespace alignd::formats

#endif  // ALIGND_FORMATS_FORMATS_H_
