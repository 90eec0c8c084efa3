// File: tests/test_util.h
// -----------------------------------------------------------------------------
// ASSERT_OK / EXPECT_OK for absl::Status and absl::StatusOr, and a few helpers
// shared by the core tests (small networks, temporary files).
#ifndef ALIGND_TESTS_TEST_UTIL_H_
#define ALIGND_TESTS_TEST_UTIL_H_

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace alignd::testing {

inline const absl::Status& ToStatus(const absl::Status& s) { return s; }
template <typename T>
const absl::Status& ToStatus(const absl::StatusOr<T>& s) {
  return s.status();
}

// Removes the directories TempDir made when the test binary exits.
class TempDirs {
 public:
  static TempDirs& Get() {
    static TempDirs dirs;
    return dirs;
  }
  void Add(const std::filesystem::path& p) { paths_.push_back(p); }
  ~TempDirs() {
    if (std::getenv("ALIGND_KEEP_TEST_DIRS") != nullptr) return;
    std::error_code ec;
    for (const auto& p : paths_) std::filesystem::remove_all(p, ec);
  }

 private:
  std::vector<std::filesystem::path> paths_;
};

// A fresh directory under $TEST_TMPDIR (else /tmp), removed when the test binary exits
// (set ALIGND_KEEP_TEST_DIRS to keep them for a post-mortem).
inline std::filesystem::path TempDir(const std::string& name) {
  const char* base = std::getenv("TEST_TMPDIR");
  std::filesystem::path dir = std::filesystem::path(base ? base : "/tmp") /
                              ("alignd_test_" + std::to_string(::getpid()) + "_" + name);
  std::filesystem::create_directories(dir);
  TempDirs::Get().Add(dir);
  return dir;
}

inline void WriteFile(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

}  // namespace alignd::testing

#define EXPECT_OK(expr)                                                 \
  do {                                                                  \
    const ::absl::Status alignd_s_ = ::alignd::testing::ToStatus(expr); \
    EXPECT_TRUE(alignd_s_.ok()) << alignd_s_;                           \
  } while (0)
#define ASSERT_OK(expr)                                                 \
  do {                                                                  \
    const ::absl::Status alignd_s_ = ::alignd::testing::ToStatus(expr); \
    ASSERT_TRUE(alignd_s_.ok()) << alignd_s_;                           \
  } while (0)

#endif  // ALIGND_TESTS_TEST_UTIL_H_
