// File: formats/reader.h
// -----------------------------------------------------------------------------
// Internal to formats/: where bytes come from (a file, gzipped or not, or memory), read
// in pieces, and the error helpers the readers share.
#ifndef ALIGND_FORMATS_READER_H_
#define ALIGND_FORMATS_READER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

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

// The whole of a file (gzip decompressed), for the text formats.
absl::StatusOr<std::string> ReadAll(const std::string& path);

}  // namespace alignd::formats::internal

#endif  // ALIGND_FORMATS_READER_H_
