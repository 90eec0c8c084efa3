// File: formats/npy.cc
// NumPy .npy (https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html):
// a magic string, a version, a header dict with 'descr', 'fortran_order' and 'shape', then
// the data, converted to float32 block by block.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>

#include "absl/strings/ascii.h"
#include "absl/strings/str_split.h"
#include "base/status_macros.h"
#include "formats/formats.h"
#include "formats/reader.h"

namespace alignd::formats {
namespace {

using internal::ByteSource;
using internal::Invalid;

// Element counts are products of file-declared dimensions: checked before multiplying,
// against a cap far above any payload the server takes.
constexpr int64_t kMaxElements = int64_t{1} << 40;

// The value of `key` in the header dict ("{'descr': '<f4', 'fortran_order': False,
// 'shape': (3, 4), }"): the text inside (...) or '...', or up to the next , or }.
// Empty if the key is missing or the text is malformed; never reads out of range.
std::string Field(const std::string& h, const std::string& key) {
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

struct Dtype {
  char kind = 0;  // 'f', 'i', 'u', 'b'
  int size = 0;
  ElementType type = ElementType::kF32;
};

absl::StatusOr<Dtype> ParseDescr(const std::string& descr, const std::string& name) {
  Dtype t;
  bool ok = descr.size() == 3 && (descr[0] == '<' || descr[0] == '|');
  if (ok) {
    t.kind = descr[1];
    t.size = descr[2] - '0';
    ok = (t.kind == 'f' && (t.size == 4 || t.size == 8)) ||
         ((t.kind == 'i' || t.kind == 'u') &&
          (t.size == 1 || t.size == 2 || t.size == 4 || t.size == 8)) ||
         (t.kind == 'b' && t.size == 1);
  }
  if (!ok)
    return Invalid(name, absl::StrCat("dtype '", descr.substr(0, 16),
                                      "' is not supported (little-endian bool, int, uint or "
                                      "float of 1-8 bytes)"));
  if (t.kind == 'f') t.type = t.size == 4 ? ElementType::kF32 : ElementType::kF64;
  if (t.kind == 'i')
    t.type = t.size == 1   ? ElementType::kI8
             : t.size == 2 ? ElementType::kI16
             : t.size == 4 ? ElementType::kI32
                           : ElementType::kI64;
  if (t.kind == 'u' || t.kind == 'b')
    t.type = t.size == 1   ? ElementType::kU8
             : t.size == 2 ? ElementType::kU16
             : t.size == 4 ? ElementType::kU32
                           : ElementType::kU64;
  return t;
}

float Convert(const Dtype& t, const char* q) {
  switch (t.kind) {
    case 'f':
      if (t.size == 4) {
        float f;
        std::memcpy(&f, q, 4);
        return f;
      } else {
        double d;
        std::memcpy(&d, q, 8);
        return std::isfinite(d) && std::abs(d) <= std::numeric_limits<float>::max()
                   ? static_cast<float>(d)
                   : std::numeric_limits<float>::infinity();
      }
    case 'i': {
      int64_t v = 0;
      if (t.size == 1) {
        v = static_cast<int8_t>(*q);
      } else if (t.size == 2) {
        int16_t x;
        std::memcpy(&x, q, 2);
        v = x;
      } else if (t.size == 4) {
        int32_t x;
        std::memcpy(&x, q, 4);
        v = x;
      } else {
        std::memcpy(&v, q, 8);
      }
      return static_cast<float>(v);
    }
    default: {  // 'u', 'b'
      uint64_t v = 0;
      std::memcpy(&v, q, static_cast<size_t>(t.size));
      return static_cast<float>(v);
    }
  }
}

absl::StatusOr<FloatArray> ParseNpyFrom(const ByteSource& read, const std::string& name) {
  char pre[8];
  RETURN_IF_ERROR(internal::ReadExactly(read, pre, 8, name, "the magic string"));
  if (std::memcmp(pre, "\x93NUMPY", 6) != 0) return Invalid(name, "not a .npy file");
  const int major = static_cast<unsigned char>(pre[6]);
  if (major < 1 || major > 3)
    return Invalid(name, absl::StrCat(".npy version ", major, " is unknown"));
  size_t header_len = 0;
  unsigned char len[4] = {0, 0, 0, 0};
  RETURN_IF_ERROR(internal::ReadExactly(read, len, major == 1 ? 2 : 4, name, "the header length"));
  for (int i = 0; i < (major == 1 ? 2 : 4); ++i) header_len |= size_t{len[i]} << (8 * i);
  if (header_len > (1 << 20)) return Invalid(name, "header longer than 1 MiB");
  std::string h(header_len, '\0');
  RETURN_IF_ERROR(internal::ReadExactly(read, h.data(), header_len, name, "the header"));
  const std::string descr = Field(h, "descr"), fortran = Field(h, "fortran_order"),
                    shape = Field(h, "shape");
  if (fortran.find("True") != std::string::npos)
    return Invalid(name, "Fortran-ordered arrays are not supported (save with order='C')");
  ASSIGN_OR_RETURN(Dtype t, ParseDescr(descr, name));
  FloatArray out;
  out.type = t.type;
  for (absl::string_view part : absl::StrSplit(shape, ',', absl::SkipWhitespace())) {
    int64_t d = 0;
    absl::string_view s = absl::StripAsciiWhitespace(part);
    const auto r = std::from_chars(s.data(), s.data() + s.size(), d);
    if (r.ec != std::errc() || r.ptr != s.data() + s.size() || d < 0 || out.dims.size() >= 32)
      return Invalid(name, absl::StrCat("bad shape (", shape.substr(0, 64), ")"));
    out.dims.push_back(d);
  }
  int64_t count = 1;
  for (int64_t d : out.dims) {
    if (d != 0 && count > kMaxElements / d)
      return Invalid(name, "the shape declares more than 2^40 elements");
    count *= d;
  }
  RETURN_IF_ERROR(internal::ReadElements(
      read, count, t.size, /*finite=*/false, name, &out.values,
      [&t](const unsigned char* p) { return Convert(t, reinterpret_cast<const char*>(p)); }));
  return out;
}

}  // namespace

absl::StatusOr<FloatArray> ParseNpy(absl::string_view bytes, const std::string& name) {
  return ParseNpyFrom(internal::FromMemory(bytes), name);
}

absl::StatusOr<FloatArray> ReadNpy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open file"));
  return ParseNpyFrom(
      [&in](void* dst, size_t n) -> int64_t {
        in.read(static_cast<char*>(dst), static_cast<std::streamsize>(n));
        return in.bad() ? -1 : static_cast<int64_t>(in.gcount());
      },
      path);
}

std::string EncodeNpy(const std::vector<int64_t>& dims, const float* values) {
  // "(3, 4)", and "(3,)" for 1-d, as Python writes tuples.
  std::string shape;
  int64_t count = 1;
  for (size_t i = 0; i < dims.size(); ++i) {
    absl::StrAppend(&shape, i ? ", " : "", dims[i]);
    count *= dims[i];
  }
  if (dims.size() == 1) shape += ",";
  std::string header =
      absl::StrCat("{'descr': '<f4', 'fortran_order': False, 'shape': (", shape, "), }");
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::string out("\x93NUMPY\x01\x00", 8);
  out += static_cast<char>(header.size() & 0xff);
  out += static_cast<char>(header.size() >> 8);
  out += header;
  out.append(reinterpret_cast<const char*>(values), static_cast<size_t>(4 * count));
  return out;
}

absl::Status WriteNpy(const std::string& path, const std::vector<int64_t>& dims,
                      const float* values) {
  std::ofstream out(path, std::ios::binary);
  if (!out) return absl::InvalidArgumentError(absl::StrCat(path, ": cannot write"));
  const std::string bytes = EncodeNpy(dims, values);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return out ? absl::OkStatus() : absl::InternalError(absl::StrCat(path, ": write failed"));
}

}  // namespace alignd::formats
