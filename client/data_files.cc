// File: client/data_files.cc
#include "client/data_files.h"

#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/status_macros.h"

namespace alignd::client {

Payload PayloadOf(const formats::Examples& e) {
  Payload p;
  const formats::PayloadShape s = formats::ShapeOf(e);
  p.header.set_num_examples(s.num_examples);
  for (int64_t d : s.feature_shape) p.header.add_feature_shape(d);
  if (e.classification()) {
    p.header.set_target_kind(v1::TARGET_KIND_CLASS_LABELS);
    p.header.set_num_classes(e.num_classes);
  } else {
    p.header.set_target_kind(v1::TARGET_KIND_FLOAT_VECTORS);
    p.header.set_target_dim(e.target_dim);
  }
  p.bytes = formats::EncodePayload(e);
  p.header.set_sha256(formats::Sha256Hex(p.bytes));
  return p;
}

absl::StatusOr<Payload> ReadIdxPair(const std::string& images, const std::string& labels) {
  ASSIGN_OR_RETURN(formats::Examples e, formats::ExamplesFromIdx(images, labels));
  return PayloadOf(e);
}

absl::StatusOr<Payload> ReadCsv(const std::string& path, bool classification, int target_dim,
                                bool header) {
  formats::CsvOptions o;
  o.header = header;
  ASSIGN_OR_RETURN(formats::CsvTable t, formats::ReadCsv(path, o));
  formats::TargetOptions to;
  to.classification = classification;
  to.target_dim = target_dim;
  ASSIGN_OR_RETURN(formats::Examples e, formats::ExamplesFromCsv(t, path, to));
  return PayloadOf(e);
}

absl::Status SetFeatureShape(const std::string& shape, Payload* payload) {
  v1::DatasetHeader& h = payload->header;
  int64_t features = 1;
  for (int64_t d : h.feature_shape()) features *= d;
  const std::vector<std::string> parts = absl::StrSplit(shape, 'x');
  std::vector<int64_t> dims;
  int64_t product = 1;
  bool capped = false;  // stopped multiplying once past the feature count (no overflow)
  for (const std::string& part : parts) {
    int64_t d = 0;
    if (parts.size() < 2 || parts.size() > 3 || !absl::SimpleAtoi(part, &d) || d < 1 ||
        d > (int64_t{1} << 30))
      return absl::InvalidArgumentError(
          absl::StrCat("--feature-shape '", shape,
                       "': expected CxHxW or HxW with every dimension >= 1, e.g. 1x28x28"));
    dims.push_back(d);
    if (product > features)
      capped = true;
    else
      product *= d;
  }
  if (product != features)
    return absl::InvalidArgumentError(
        absl::StrCat("--feature-shape ", shape, " has ", capped ? "more than " : "", product,
                     " values; the examples have ", features, " features"));
  h.clear_feature_shape();
  for (int64_t d : dims) h.add_feature_shape(d);
  return absl::OkStatus();
}

absl::StatusOr<Payload> ReadNpyPair(const std::string& features, const std::string& targets,
                                    bool classification) {
  formats::TargetOptions to;
  to.classification = classification;
  ASSIGN_OR_RETURN(formats::Examples e, formats::ExamplesFromNpy(features, targets, to));
  return PayloadOf(e);
}

absl::StatusOr<NpyMatrix> ReadNpyMatrix(const std::string& path) {
  ASSIGN_OR_RETURN(formats::FloatArray a, formats::ReadNpy(path));
  if (a.dims.empty() || a.dims.size() > 4)
    return absl::InvalidArgumentError(
        absl::StrCat(path,
                     ": expected an (examples, features) array or images (examples, H, W) "
                     "or (examples, C, H, W), got ",
                     a.dims.size(), " dimensions"));
  NpyMatrix m;
  m.rows = a.dims[0];
  m.cols = 1;
  for (size_t i = 1; i < a.dims.size(); ++i) m.cols *= a.dims[i];  // an image: C x H x W
  m.values = std::move(a.values);
  return m;
}

absl::Status WriteNpy(const std::string& path, int64_t rows, int64_t cols, const float* row_major) {
  return formats::WriteNpy(path, {rows, cols}, row_major);
}

}  // namespace alignd::client
