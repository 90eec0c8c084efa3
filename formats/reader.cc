// File: formats/reader.cc
#include "formats/reader.h"

#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <fstream>

namespace alignd::formats::internal {

ByteSource FromMemory(absl::string_view bytes) {
  auto pos = std::make_shared<size_t>(0);
  return [bytes, pos](void* dst, size_t n) -> int64_t {
    const size_t m = std::min(n, bytes.size() - *pos);
    std::memcpy(dst, bytes.data() + *pos, m);
    *pos += m;
    return static_cast<int64_t>(m);
  };
}

absl::StatusOr<ByteSource> FromFile(const std::string& path) {
  if (!std::ifstream(path).good())
    return absl::NotFoundError(absl::StrCat(path, ": cannot open file"));
  gzFile raw = gzopen(path.c_str(), "rb");
  if (raw == nullptr) return absl::NotFoundError(absl::StrCat(path, ": cannot open file"));
  gzbuffer(raw, 1 << 20);
  std::shared_ptr<gzFile_s> f(raw, [](gzFile g) { gzclose(g); });
  return ByteSource([f](void* dst, size_t n) -> int64_t {
    const unsigned chunk = static_cast<unsigned>(std::min<size_t>(n, 1u << 30));
    return gzread(f.get(), dst, chunk);
  });
}

absl::Status ReadExactly(const ByteSource& read, void* dst, size_t n, const std::string& name,
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

absl::StatusOr<std::string> ReadAll(const std::string& path) {
  auto src = FromFile(path);
  if (!src.ok()) return src.status();
  std::string out;
  char buf[1 << 16];
  while (true) {
    const int64_t r = (*src)(buf, sizeof buf);
    if (r < 0) return Invalid(path, "read error");
    if (r == 0) return out;
    out.append(buf, static_cast<size_t>(r));
  }
}

}  // namespace alignd::formats::internal
