// File: formats/reader.h
// -----------------------------------------------------------------------------
// Internal to formats/: where bytes come from (a file, gzipped or not, or memory), read
// in pieces, and the error helpers the readers share.
#ifndef ALIGND_FORMATS_READER_H_
#define ALIGND_FORMATS_READER_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace alignd::formats::internal {

// Returns the bytes read into dst (fewer at the end, 0 at the end), or -1 on an error.
using ByteSource = std::function<int64_t(void* dst, size_t n)>;

ByteSource FromMemory(absl::string_view bytes);
// A file, decompressed on the fly if it is gzip. NotFound if it cannot be opened. The
// returned source keeps the file open until it is destroyed.
absl::StatusOr<ByteSource> FromFile(const std::string& path);

inline absl::Status Invalid(const std::string& name, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(name, ": ", what));
}

// Reads exactly n bytes; "truncated: WHAT needs n bytes, file has m" otherwise.
absl::Status ReadExactly(const ByteSource& read, void* dst, size_t n, const std::string& name,
                         absl::string_view what);

// Reads `count` elements of `elem` bytes each in blocks of 64 Ki, appending convert(p) for
// each: memory grows with what the file holds, not with what its header claims. With
// `finite`, a non-finite value is an error naming the element. Then the source must be
// at its end ("trailing bytes after the N elements that the header declares").
template <typename Convert>
absl::Status ReadElements(const ByteSource& read, int64_t count, int elem, bool finite,
                          const std::string& name, std::vector<float>* out, Convert convert) {
  constexpr int64_t kBlock = 1 << 16;
  std::vector<unsigned char> block(static_cast<size_t>(kBlock) * elem);
  out->reserve(static_cast<size_t>(std::min<int64_t>(count, int64_t{1} << 20)));
  for (int64_t done = 0; done < count;) {
    const int64_t m = std::min(kBlock, count - done);
    if (absl::Status s = ReadExactly(read, block.data(), static_cast<size_t>(m) * elem, name,
                                     absl::StrCat("the data (", count, " elements of ", elem,
                                                  " bytes; element ", done, " onwards)"));
        !s.ok())
      return s;
    const unsigned char* p = block.data();
    for (int64_t i = 0; i < m; ++i, p += elem) {
      const float v = convert(p);
      if (finite && !std::isfinite(v))
        return Invalid(name, absl::StrCat("element ", done + i, " is not finite (or not a float)"));
      out->push_back(v);
    }
    done += m;
  }
  char extra;
  if (read(&extra, 1) > 0)
    return Invalid(name, absl::StrCat("trailing bytes after the ", count,
                                      " elements that the header declares"));
  return absl::OkStatus();
}

// The whole of a file (gzip decompressed), for the text formats.
absl::StatusOr<std::string> ReadAll(const std::string& path);

}  // namespace alignd::formats::internal

#endif  // ALIGND_FORMATS_READER_H_
