// File: client/data_files.cc
#include "client/data_files.h"

#include <openssl/evp.h>
#include <zlib.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <memory>
#include <sstream>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"

namespace alignd::client {
namespace {

absl::StatusOr<std::string> ReadMaybeGzip(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (f == nullptr) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::string out;
  char buf[1 << 16];
  int n;
  while ((n = gzread(f, buf, sizeof buf)) > 0) out.append(buf, n);
  const bool error = n < 0;
  gzclose(f);
  if (error) return absl::InvalidArgumentError(absl::StrCat(path, ": read error"));
  return out;
}

uint32_t Be32(const unsigned char* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

// Element counts are products of file-declared dimensions: each factor and the running
// product are checked before multiplying (a .npy or IDX header may declare anything),
// against a cap far above any payload the server takes (2^40 values).
constexpr int64_t kMaxElements = int64_t{1} << 40;

bool CheckedProduct(const std::vector<int64_t>& dims, int64_t* count) {
  int64_t c = 1;
  for (int64_t d : dims) {
    if (d < 0) return false;
    if (d != 0 && c > kMaxElements / d) return false;
    c *= d;
  }
  *count = c;
  return true;
}

}  // namespace

absl::StatusOr<NumericArray> ParseIdxBytes(const std::string& bytes, const std::string& path) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  if (bytes.size() < 4 || p[0] != 0 || p[1] != 0)
    return absl::InvalidArgumentError(absl::StrCat(path, ": not an IDX file (wrong magic number)"));
  const int type = p[2], rank = p[3];
  const int size = type == 0x08 || type == 0x09   ? 1
                   : type == 0x0B                 ? 2
                   : type == 0x0C || type == 0x0D ? 4
                   : type == 0x0E                 ? 8
                                                  : 0;
  if (size == 0 || rank == 0)
    return absl::InvalidArgumentError(absl::StrCat(path, ": unknown IDX type or rank"));
  if (bytes.size() < 4 + 4 * size_t(rank))
    return absl::InvalidArgumentError(absl::StrCat(path, ": truncated header"));
  NumericArray a;
  for (int i = 0; i < rank; ++i) a.dims.push_back(Be32(p + 4 + 4 * i));
  int64_t count = 0;
  if (!CheckedProduct(a.dims, &count))
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": the dimensions declare more than 2^40 elements"));
  const size_t offset = 4 + 4 * size_t(rank);
  // count * size < 2^43: no overflow; compared with what the file holds before allocating.
  if (bytes.size() - offset != static_cast<uint64_t>(count) * size)
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": has ", bytes.size() - offset, " data bytes, the header declares ", count * size));
  a.values.resize(count);
  a.integral = type != 0x0D && type != 0x0E;
  a.unsigned_bytes = type == 0x08;
  for (int64_t i = 0; i < count; ++i) {
    const unsigned char* q = p + offset + i * size;
    switch (type) {
      case 0x08:
        a.values[i] = q[0];
        break;
      case 0x09:
        a.values[i] = int8_t(q[0]);
        break;
      case 0x0B:
        a.values[i] = int16_t(uint16_t((q[0] << 8) | q[1]));
        break;
      case 0x0C:
        a.values[i] = int32_t(Be32(q));
        break;
      case 0x0D: {
        uint32_t u = Be32(q);
        float f;
        std::memcpy(&f, &u, 4);
        a.values[i] = f;
        break;
      }
      case 0x0E: {
        uint64_t u = (uint64_t(Be32(q)) << 32) | Be32(q + 4);
        double d;
        std::memcpy(&d, &u, 8);
        a.values[i] = d;
        break;
      }
    }
  }
  return a;
}

namespace {

// The value of `key` in a .npy header dict ("{'descr': '<f4', 'fortran_order': False,
// 'shape': (3, 4), }"): the text inside (...) or '...', or up to the next , or }.
// Empty if the key is missing or the text is malformed; never reads out of range.
std::string NpyField(const std::string& h, const std::string& key) {
  const size_t k = h.find("'" + key + "'");
  if (k == std::string::npos) return "";
  size_t v = h.find(':', k);
  if (v == std::string::npos) return "";
  ++v;
  while (v < h.size() && h[v] == ' ') ++v;
  if (v >= h.size()) return "";
  if (h[v] == '(' || h[v] == '\'') {
    const char close = h[v] == '(' ? ')' : '\'';
    const size_t e = h.find(close, v + 1);
    if (e == std::string::npos) return "";
    return h.substr(v + 1, e - v - 1);
  }
  const size_t e = h.find_first_of(",}", v);
  return e == std::string::npos ? "" : h.substr(v, e - v);
}

}  // namespace

absl::StatusOr<NumericArray> ParseNpyBytes(const std::string& b, const std::string& path) {
  if (b.size() < 10 || b.compare(0, 6, "\x93NUMPY") != 0)
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a .npy file"));
  const int major = static_cast<unsigned char>(b[6]);
  size_t header_len, start;
  if (major == 1) {
    header_len = static_cast<unsigned char>(b[8]) | (static_cast<unsigned char>(b[9]) << 8);
    start = 10;
  } else {
    if (b.size() < 12) return absl::InvalidArgumentError(absl::StrCat(path, ": truncated"));
    header_len = 0;
    for (int i = 0; i < 4; ++i)
      header_len |= size_t(static_cast<unsigned char>(b[8 + i])) << (8 * i);
    start = 12;
  }
  if (b.size() - start < header_len)
    return absl::InvalidArgumentError(absl::StrCat(path, ": truncated header"));
  const std::string h = b.substr(start, header_len);
  const std::string descr = NpyField(h, "descr"), fortran = NpyField(h, "fortran_order"),
                    shape = NpyField(h, "shape");
  if (fortran.find("True") != std::string::npos)
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": Fortran-ordered arrays are not supported"));
  NumericArray a;
  for (absl::string_view part : absl::StrSplit(shape, ',', absl::SkipWhitespace())) {
    int64_t d = 0;
    absl::string_view t = absl::StripAsciiWhitespace(part);
    const auto r = std::from_chars(t.data(), t.data() + t.size(), d);
    if (r.ec != std::errc() || r.ptr != t.data() + t.size() || d < 0 || a.dims.size() >= 32)
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": bad shape (", shape.substr(0, 64), ")"));
    a.dims.push_back(d);
  }
  int64_t count = 0;
  if (!CheckedProduct(a.dims, &count))
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": the shape declares more than 2^40 elements"));
  int size = 0;
  const char kind = descr.size() >= 3 ? descr[1] : '?';
  if (descr.size() >= 3 && descr.size() <= 4) {
    for (size_t i = 2; i < descr.size(); ++i)
      size = descr[i] >= '0' && descr[i] <= '9' ? size * 10 + (descr[i] - '0') : -1000;
  }
  if (descr.empty() || descr[0] == '>' || (kind != 'f' && kind != 'i' && kind != 'u') ||
      (kind == 'f' && size != 4 && size != 8) ||
      ((kind == 'i' || kind == 'u') && size != 1 && size != 2 && size != 4 && size != 8))
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": dtype '", descr.substr(0, 16), "' is not supported (little-endian float or int)"));
  const size_t data = start + header_len;
  // count < 2^40 and size <= 8: the product fits; compared before allocating.
  if (b.size() - data != static_cast<uint64_t>(count) * size)
    return absl::InvalidArgumentError(absl::StrCat(path, ": has ", b.size() - data,
                                                   " data bytes, the shape needs ", count * size));
  a.values.resize(count);
  a.integral = kind != 'f';
  for (int64_t i = 0; i < count; ++i) {
    const char* q = b.data() + data + i * size;
    if (kind == 'f' && size == 4) {
      float f;
      std::memcpy(&f, q, 4);
      a.values[i] = f;
    } else if (kind == 'f') {
      double d;
      std::memcpy(&d, q, 8);
      a.values[i] = d;
    } else if (kind == 'i') {
      int64_t v = 0;
      if (size == 1)
        v = int8_t(*q);
      else if (size == 2) {
        int16_t x;
        std::memcpy(&x, q, 2);
        v = x;
      } else if (size == 4) {
        int32_t x;
        std::memcpy(&x, q, 4);
        v = x;
      } else
        std::memcpy(&v, q, 8);
      a.values[i] = double(v);
    } else {
      uint64_t v = 0;
      std::memcpy(&v, q, size);
      a.values[i] = double(v);
    }
  }
  return a;
}

namespace {

absl::StatusOr<NumericArray> ParseIdx(const std::string& path) {
  auto bytes = ReadMaybeGzip(path);
  if (!bytes.ok()) return bytes.status();
  return ParseIdxBytes(*bytes, path);
}

absl::StatusOr<NumericArray> ParseNpy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::stringstream ss;
  ss << in.rdbuf();
  return ParseNpyBytes(ss.str(), path);
}

// Features (n x d, row-major as read) and targets into a payload with its header.
absl::StatusOr<Payload> Build(const std::string& what, int64_t n,
                              const std::vector<int64_t>& feature_shape,
                              const std::vector<double>& features, bool classification,
                              const std::vector<double>& targets, int target_dim, double scale) {
  Payload p;
  p.header.set_num_examples(n);
  for (int64_t s : feature_shape) p.header.add_feature_shape(s);
  p.bytes.reserve(4 * features.size() + 4 * targets.size());
  for (size_t i = 0; i < features.size(); ++i) {
    const double v = features[i] * scale;
    if (!std::isfinite(v) || std::abs(v) > std::numeric_limits<float>::max())
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": feature value ", i, " is not a finite float"));
    const float f = static_cast<float>(v);
    p.bytes.append(reinterpret_cast<const char*>(&f), 4);
  }
  if (classification) {
    int32_t max_label = 0;
    for (size_t i = 0; i < targets.size(); ++i) {
      const double v = targets[i];
      if (v < 0 || v != std::floor(v) || v > 1e9)
        return absl::InvalidArgumentError(
            absl::StrCat(what, ": label of example ", i, " is ", v, ", not a class index"));
      const int32_t l = static_cast<int32_t>(v);
      max_label = std::max(max_label, l);
      p.bytes.append(reinterpret_cast<const char*>(&l), 4);
    }
    p.header.set_target_kind(v1::TARGET_KIND_CLASS_LABELS);
    p.header.set_num_classes(max_label + 1);
  } else {
    for (size_t i = 0; i < targets.size(); ++i) {
      const double v = targets[i];
      if (!std::isfinite(v) || std::abs(v) > std::numeric_limits<float>::max())
        return absl::InvalidArgumentError(
            absl::StrCat(what, ": target value ", i, " is not a finite float"));
      const float f = static_cast<float>(v);
      p.bytes.append(reinterpret_cast<const char*>(&f), 4);
    }
    p.header.set_target_kind(v1::TARGET_KIND_FLOAT_VECTORS);
    p.header.set_target_dim(target_dim);
  }
  p.header.set_sha256(Sha256Hex(p.bytes));
  return p;
}

}  // namespace

std::string Sha256Hex(const std::string& bytes) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(bytes.data(), bytes.size(), md, &len, EVP_sha256(), nullptr);
  static const char* kDigits = "0123456789abcdef";
  std::string s;
  for (unsigned i = 0; i < len; ++i) {
    s += kDigits[md[i] >> 4];
    s += kDigits[md[i] & 15];
  }
  return s;
}

absl::StatusOr<Payload> ReadIdxPair(const std::string& images, const std::string& labels) {
  auto x = ParseIdx(images);
  if (!x.ok()) return x.status();
  auto y = ParseIdx(labels);
  if (!y.ok()) return y.status();
  if (y->dims.size() != 1 || y->dims[0] != x->dims[0])
    return absl::InvalidArgumentError(
        absl::StrCat(labels, ": needs one label per image (", x->dims[0], ")"));
  std::vector<int64_t> shape(x->dims.begin() + 1, x->dims.end());
  if (shape.empty()) shape = {1};
  return Build(images, x->dims[0], shape, x->values, true, y->values, 0,
               x->unsigned_bytes ? 1.0 / 255.0 : 1.0);
}

absl::StatusOr<Payload> ReadCsv(const std::string& path, bool classification, int target_dim,
                                bool header) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::stringstream text;
  text << in.rdbuf();
  return ParseCsvText(text.str(), path, classification, target_dim, header);
}

absl::StatusOr<Payload> ParseCsvText(const std::string& text, const std::string& path,
                                     bool classification, int target_dim, bool header) {
  const int k = classification ? 1 : target_dim;
  if (k < 1) return absl::InvalidArgumentError("--target_dim must be >= 1");
  std::vector<double> features, targets;
  int64_t columns = -1, rows = 0, line_no = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_no;
    if (header && line_no == 1) continue;
    absl::string_view sv = absl::StripAsciiWhitespace(line);
    if (sv.empty()) continue;
    std::vector<absl::string_view> cells = absl::StrSplit(sv, ',');
    if (columns < 0) columns = static_cast<int64_t>(cells.size());
    if (static_cast<int64_t>(cells.size()) != columns || columns <= k)
      return absl::InvalidArgumentError(absl::StrCat(path, ": line ", line_no, " has ",
                                                     cells.size(), " columns, expected ",
                                                     columns > k ? columns : k + 1));
    for (int64_t c = 0; c < columns; ++c) {
      absl::string_view t = absl::StripAsciiWhitespace(cells[c]);
      double v = 0;
      if (std::from_chars(t.data(), t.data() + t.size(), v).ec != std::errc() || !std::isfinite(v))
        return absl::InvalidArgumentError(absl::StrCat(path, ": line ", line_no, ", column ", c + 1,
                                                       ": '", t.substr(0, 64),
                                                       "' is not a finite number"));
      (c < columns - k ? features : targets).push_back(v);
    }
    ++rows;
  }
  if (rows == 0) return absl::InvalidArgumentError(absl::StrCat(path, ": no data rows"));
  return Build(path, rows, {columns - k}, features, classification, targets, k, 1.0);
}

absl::StatusOr<NpyMatrix> ReadNpyMatrix(const std::string& path) {
  auto a = ParseNpy(path);
  if (!a.ok()) return a.status();
  NpyMatrix m;
  m.rows = a->dims.empty() ? 1 : a->dims[0];
  m.cols = m.rows == 0 ? 0 : static_cast<int64_t>(a->values.size()) / std::max<int64_t>(1, m.rows);
  m.values.assign(a->values.begin(), a->values.end());
  return m;
}

absl::Status WriteNpy(const std::string& path, int64_t rows, int64_t cols, const float* row_major) {
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" +
                       std::to_string(rows) + ", " + std::to_string(cols) + "), }";
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::ofstream out(path, std::ios::binary);
  if (!out) return absl::InvalidArgumentError(absl::StrCat(path, ": cannot write"));
  out.write("\x93NUMPY\x01\x00", 8);
  const uint16_t len = static_cast<uint16_t>(header.size());
  out.write(reinterpret_cast<const char*>(&len), 2);
  out << header;
  out.write(reinterpret_cast<const char*>(row_major),
            static_cast<std::streamsize>(4 * rows * cols));
  return out ? absl::OkStatus() : absl::InternalError(absl::StrCat(path, ": write failed"));
}

absl::StatusOr<Payload> ReadNpyPair(const std::string& features, const std::string& targets,
                                    bool classification) {
  auto x = ParseNpy(features);
  if (!x.ok()) return x.status();
  auto y = ParseNpy(targets);
  if (!y.ok()) return y.status();
  if (x->dims.empty() || y->dims.empty() || y->dims[0] != x->dims[0])
    return absl::InvalidArgumentError(
        absl::StrCat(targets, ": needs one row per example of ", features));
  std::vector<int64_t> shape(x->dims.begin() + 1, x->dims.end());
  if (shape.empty()) shape = {1};
  int64_t k = 1;
  for (size_t i = 1; i < y->dims.size(); ++i) {
    if (y->dims[i] < 1 || k > (int64_t{1} << 24) / y->dims[i])
      return absl::InvalidArgumentError(
          absl::StrCat(targets, ": targets of more than 2^24 values per example"));
    k *= y->dims[i];
  }
  if (classification && k != 1)
    return absl::InvalidArgumentError(
        absl::StrCat(targets, ": labels must be one integer per example"));
  return Build(features, x->dims[0], shape, x->values, classification, y->values,
               static_cast<int>(k), 1.0);
}

}  // namespace alignd::client
