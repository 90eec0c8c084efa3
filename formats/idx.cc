// File: formats/idx.cc
// IDX arrays: big-endian, types 0x08 ubyte, 0x09 byte, 0x0B short, 0x0C int, 0x0D float,
// 0x0E double; converted to float32 block by block as they are read.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "absl/strings/str_format.h"
#include "base/status_macros.h"
#include "formats/formats.h"
#include "formats/reader.h"

namespace alignd::formats {
namespace {

using internal::ByteSource;
using internal::Invalid;

int ElementSize(uint8_t type) {
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

ElementType TypeOf(uint8_t code) {
  switch (code) {
    case 0x08:
      return ElementType::kU8;
    case 0x09:
      return ElementType::kI8;
    case 0x0B:
      return ElementType::kI16;
    case 0x0C:
      return ElementType::kI32;
    case 0x0D:
      return ElementType::kF32;
    default:
      return ElementType::kF64;
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

// Limits: dimensions up to 2^31, at most 2^34 elements in all (64 GiB of floats).
constexpr int64_t kMaxDim = int64_t{1} << 31;
constexpr int64_t kMaxElements = int64_t{1} << 34;

absl::StatusOr<FloatArray> ParseIdxFrom(const ByteSource& read, const std::string& name) {
  unsigned char magic[4];
  RETURN_IF_ERROR(internal::ReadExactly(read, magic, 4, name, "the magic number"));
  const uint8_t code = magic[2];
  const int rank = magic[3];
  const int elem = ElementSize(code);
  if (magic[0] != 0 || magic[1] != 0 || elem == 0 || rank == 0)
    return Invalid(name, absl::StrFormat("wrong magic number 0x%02x%02x%02x%02x: not an IDX file "
                                         "(expected 0x0000TTNN, TT a type code in 08 09 0B 0C 0D "
                                         "0E, NN the rank >= 1)",
                                         magic[0], magic[1], magic[2], magic[3]));
  FloatArray out;
  out.type = TypeOf(code);
  unsigned char dimbuf[4 * 255];
  RETURN_IF_ERROR(
      internal::ReadExactly(read, dimbuf, 4 * static_cast<size_t>(rank), name, "the dimensions"));
  int64_t count = 1;
  for (int i = 0; i < rank; ++i) {
    const int64_t dim = FromBigEndian<uint32_t>(&dimbuf[4 * i]);
    if (dim == 0 || dim > kMaxDim) return Invalid(name, absl::StrCat("dimension ", i, " is ", dim));
    // count <= 2^34 and dim <= 2^31: checked before the product, which then fits.
    if (count > kMaxElements / dim) return Invalid(name, "array larger than 16 Gi elements");
    count *= dim;
    out.dims.push_back(dim);
  }
  RETURN_IF_ERROR(internal::ReadElements(
      read, count, elem, /*finite=*/true, name, &out.values, [code](const unsigned char* p) {
        switch (code) {
          case 0x08:
            return static_cast<float>(*p);
          case 0x09:
            return static_cast<float>(static_cast<int8_t>(*p));
          case 0x0B:
            return static_cast<float>(FromBigEndian<int16_t>(p));
          case 0x0C:
            return static_cast<float>(FromBigEndian<int32_t>(p));
          case 0x0D:
            return FromBigEndian<float>(p);
          default: {
            const double d = FromBigEndian<double>(p);
            // A double beyond float's range has no float value (the cast is undefined).
            return std::isfinite(d) && std::abs(d) <= std::numeric_limits<float>::max()
                       ? static_cast<float>(d)
                       : std::numeric_limits<float>::infinity();
          }
        }
      }));
  return out;
}

}  // namespace

absl::StatusOr<FloatArray> ParseIdx(absl::string_view bytes, const std::string& name) {
  return ParseIdxFrom(internal::FromMemory(bytes), name);
}

absl::StatusOr<FloatArray> ReadIdx(const std::string& path) {
  ASSIGN_OR_RETURN(ByteSource src, internal::FromFile(path));
  return ParseIdxFrom(src, path);
}

}  // namespace alignd::formats
