// File: formats/examples.cc
// Labelled examples from IDX, CSV and .npy files, and the upload payload codec.
#include <openssl/evp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>

#include "base/status_macros.h"
#include "formats/formats.h"
#include "formats/reader.h"

namespace alignd::formats {
namespace {

using internal::Invalid;

constexpr int64_t kMaxPerExample = int64_t{1} << 24;      // features or targets
constexpr int64_t kMaxExamples = (int64_t{1} << 31) - 1;  // the engine indexes with int32
constexpr float kMaxLabel = static_cast<float>(1 << 24);  // exact in float32

// Labels from float values that must be whole numbers >= 0 (and < num_classes when it is
// given; else num_classes becomes the largest + 1). `where(j)` names value j in errors.
absl::Status TakeLabels(const std::vector<float>& values, int num_classes, const std::string& name,
                        const std::function<std::string(int64_t)>& where, Examples* out) {
  int32_t max_label = 0;
  out->labels.resize(values.size());
  for (size_t j = 0; j < values.size(); ++j) {
    const float v = values[j];
    if (!(v >= 0) || v != std::floor(v) || v >= kMaxLabel)
      return Invalid(name, absl::StrCat(where(static_cast<int64_t>(j)), " is ", v,
                                        ", not a class index >= 0"));
    out->labels[j] = static_cast<int32_t>(v);
    max_label = std::max(max_label, out->labels[j]);
  }
  out->num_classes = num_classes > 0 ? num_classes : max_label + 1;
  for (size_t j = 0; j < values.size(); ++j)
    if (out->labels[j] >= out->num_classes)
      return Invalid(name, absl::StrCat(where(static_cast<int64_t>(j)), " is ", out->labels[j],
                                        ", outside [0, ", out->num_classes, ")"));
  return absl::OkStatus();
}

int64_t Product(const std::vector<int64_t>& dims, size_t from) {
  int64_t p = 1;
  for (size_t i = from; i < dims.size(); ++i) {
    if (dims[i] < 1 || p > kMaxPerExample / dims[i]) return -1;
    p *= dims[i];
  }
  return p;
}

}  // namespace

int64_t Examples::size() const {
  const int64_t d = feature_count();
  return d > 0 ? static_cast<int64_t>(features.size()) / d : 0;
}

int64_t Examples::feature_count() const { return Product(feature_shape, 0); }

absl::StatusOr<Examples> ExamplesFromIdx(const std::string& images, const std::string& labels,
                                         int num_classes) {
  ASSIGN_OR_RETURN(FloatArray x, ReadIdx(images));
  ASSIGN_OR_RETURN(FloatArray y, ReadIdx(labels));
  if (y.dims.size() != 1)
    return Invalid(labels,
                   absl::StrCat("labels must be a 1-d IDX array, got rank ", y.dims.size()));
  const int64_t n = x.dims[0];
  if (y.dims[0] != n)
    return Invalid(
        labels, absl::StrCat("has ", y.dims[0], " labels but ", images, " has ", n, " examples"));
  Examples e;
  e.feature_shape.assign(x.dims.begin() + 1, x.dims.end());
  if (e.feature_shape.empty()) e.feature_shape = {1};
  if (e.feature_count() < 0) return Invalid(images, "more than 2^24 features per example");
  e.features = std::move(x.values);
  if (x.type == ElementType::kU8)
    for (float& v : e.features) v *= 1.0f / 255.0f;
  RETURN_IF_ERROR(TakeLabels(
      y.values, num_classes, labels, [](int64_t j) { return absl::StrCat("label of example ", j); },
      &e));
  return e;
}

absl::StatusOr<Examples> ExamplesFromCsv(const CsvTable& t, const std::string& name,
                                         const TargetOptions& o) {
  const int64_t k = o.classification ? 1 : o.target_dim;
  if (k < 1) return absl::InvalidArgumentError(absl::StrCat("target_dim must be >= 1, got ", k));
  if (t.columns < k + 1)
    return Invalid(name, absl::StrCat("rows have ", t.columns, " columns; need at least ", k + 1,
                                      " (features, then the target column(s))"));
  const int64_t d = t.columns - k;
  Examples e;
  e.feature_shape = {d};
  e.features.reserve(static_cast<size_t>(t.rows * d));
  std::vector<float> target_values;
  target_values.reserve(static_cast<size_t>(t.rows * k));
  for (int64_t r = 0; r < t.rows; ++r) {
    const float* row = t.values.data() + r * t.columns;
    e.features.insert(e.features.end(), row, row + d);
    target_values.insert(target_values.end(), row + d, row + t.columns);
  }
  if (o.classification) {
    RETURN_IF_ERROR(TakeLabels(
        target_values, o.num_classes, name,
        [&](int64_t j) {
          return absl::StrCat("data row ", j + 1, ", column ", t.columns, ": label");
        },
        &e));
  } else {
    e.targets = std::move(target_values);
    e.target_dim = static_cast<int32_t>(k);
  }
  return e;
}

absl::StatusOr<Examples> ExamplesFromNpy(const std::string& features, const std::string& targets,
                                         const TargetOptions& o) {
  ASSIGN_OR_RETURN(FloatArray x, ReadNpy(features));
  ASSIGN_OR_RETURN(FloatArray y, ReadNpy(targets));
  if (x.dims.empty() || y.dims.empty() || y.dims[0] != x.dims[0])
    return Invalid(targets, absl::StrCat("needs one row per example of ", features));
  if (x.dims[0] > kMaxExamples) return Invalid(features, "more than 2^31-1 examples");
  Examples e;
  e.feature_shape.assign(x.dims.begin() + 1, x.dims.end());
  if (e.feature_shape.empty()) e.feature_shape = {1};
  if (e.feature_count() < 0) return Invalid(features, "more than 2^24 features per example");
  for (size_t i = 0; i < x.values.size(); ++i)
    if (!std::isfinite(x.values[i]))
      return Invalid(features, absl::StrCat("feature value ", i, " is not a finite float"));
  e.features = std::move(x.values);
  const int64_t k = y.dims.size() == 1 ? 1 : Product(y.dims, 1);
  if (k < 0) return Invalid(targets, "targets of more than 2^24 values per example");
  if (o.classification) {
    if (k != 1) return Invalid(targets, "labels must be one integer per example");
    RETURN_IF_ERROR(TakeLabels(
        y.values, o.num_classes, targets,
        [](int64_t j) { return absl::StrCat("label of example ", j); }, &e));
  } else {
    for (size_t i = 0; i < y.values.size(); ++i)
      if (!std::isfinite(y.values[i]))
        return Invalid(targets, absl::StrCat("target value ", i, " is not a finite float"));
    e.targets = std::move(y.values);
    e.target_dim = static_cast<int32_t>(k);
  }
  return e;
}

PayloadShape ShapeOf(const Examples& e) {
  PayloadShape s;
  s.num_examples = e.classification() ? static_cast<int64_t>(e.labels.size()) : e.size();
  s.feature_shape = e.feature_shape;
  s.num_classes = e.num_classes;
  s.target_dim = e.classification() ? 0 : e.target_dim;
  return s;
}

int64_t PayloadBytes(const PayloadShape& s) {
  const int64_t d = Product(s.feature_shape, 0);
  const int64_t k = s.num_classes > 0 ? 1 : s.target_dim;
  if (d < 1 || s.feature_shape.empty() || s.num_examples < 1 || s.num_examples > kMaxExamples ||
      k < 1 || k > kMaxPerExample)
    return -1;
  return 4 * s.num_examples * (d + k);  // < 2^2 * 2^31 * 2^25: no overflow
}

std::string EncodePayload(const Examples& e) {
  std::string out;
  const std::vector<float>& t = e.targets;
  out.reserve(4 * (e.features.size() + (e.classification() ? e.labels.size() : t.size())));
  out.append(reinterpret_cast<const char*>(e.features.data()), 4 * e.features.size());
  if (e.classification())
    out.append(reinterpret_cast<const char*>(e.labels.data()), 4 * e.labels.size());
  else
    out.append(reinterpret_cast<const char*>(t.data()), 4 * t.size());
  return out;
}

absl::StatusOr<Examples> DecodePayload(const PayloadShape& s, absl::string_view bytes) {
  const int64_t expected = PayloadBytes(s);
  if (expected < 0) return absl::InvalidArgumentError("the payload's shape is out of range");
  if (static_cast<int64_t>(bytes.size()) != expected)
    return absl::InvalidArgumentError(
        absl::StrCat("payload has ", bytes.size(), " bytes; the header declares ", expected));
  const int64_t n = s.num_examples, d = Product(s.feature_shape, 0);
  Examples e;
  e.feature_shape = s.feature_shape;
  e.features.resize(static_cast<size_t>(n * d));
  std::memcpy(e.features.data(), bytes.data(), static_cast<size_t>(4 * n * d));
  for (int64_t i = 0; i < n * d; ++i)
    if (!std::isfinite(e.features[i]))
      return absl::InvalidArgumentError(absl::StrCat(
          "feature of example ", i / d, ", index ", i % d, " is not finite (", e.features[i], ")"));
  const char* rest = bytes.data() + 4 * n * d;
  if (s.num_classes > 0) {
    e.num_classes = s.num_classes;
    e.labels.resize(static_cast<size_t>(n));
    std::memcpy(e.labels.data(), rest, static_cast<size_t>(4 * n));
    for (int64_t j = 0; j < n; ++j)
      if (e.labels[j] < 0 || e.labels[j] >= s.num_classes)
        return absl::InvalidArgumentError(absl::StrCat("label of example ", j, " is ", e.labels[j],
                                                       ", outside [0, ", s.num_classes, ")"));
  } else {
    e.target_dim = s.target_dim;
    e.targets.resize(static_cast<size_t>(n * s.target_dim));
    std::memcpy(e.targets.data(), rest, 4 * e.targets.size());
    for (size_t i = 0; i < e.targets.size(); ++i)
      if (!std::isfinite(e.targets[i]))
        return absl::InvalidArgumentError(absl::StrCat("target of example ", i / s.target_dim,
                                                       ", index ", i % s.target_dim,
                                                       " is not finite"));
  }
  return e;
}

namespace {
std::string Hex(const unsigned char* md, unsigned len) {
  static const char* kDigits = "0123456789abcdef";
  std::string s(2 * len, '0');
  for (unsigned i = 0; i < len; ++i) {
    s[2 * i] = kDigits[md[i] >> 4];
    s[2 * i + 1] = kDigits[md[i] & 15];
  }
  return s;
}
}  // namespace

std::string Sha256Hex(absl::string_view bytes) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(bytes.data(), bytes.size(), md, &len, EVP_sha256(), nullptr);
  return Hex(md, len);
}

bool IsSha256Hex(absl::string_view s) {
  return s.size() == 64 && s.find_first_not_of("0123456789abcdef") == absl::string_view::npos;
}

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  EVP_DigestInit_ex(static_cast<EVP_MD_CTX*>(ctx_), EVP_sha256(), nullptr);
}
Sha256::~Sha256() { EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(ctx_)); }
void Sha256::Update(absl::string_view bytes) {
  EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(ctx_), bytes.data(), bytes.size());
}
std::string Sha256::HexDigest() {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(static_cast<EVP_MD_CTX*>(ctx_), md, &len);
  return Hex(md, len);
}

}  // namespace alignd::formats
