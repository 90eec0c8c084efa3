// server/storage.h on a real SQLite file in a temporary directory.
#include "server/storage.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "tests/test_util.h"

namespace alignd::server {
namespace {

TEST(StorageTest, SessionsMetricsAndSnapshotsSurviveReopening) {
  const auto dir = alignd::testing::TempDir("storage");
  std::filesystem::remove_all(dir);
  {
    auto s = Storage::Open(dir);
    ASSERT_OK(s);
    v1::Session session;
    session.set_name("sessions/abc");
    session.set_state(v1::RUNNING);
    session.set_step(42);
    ASSERT_OK((*s)->PutSession(session));
    for (int seq = 1; seq <= 10; ++seq) {
      v1::MetricEvent e;
      e.set_seq(seq);
      e.mutable_step()->set_step(seq * 10);
      ASSERT_OK((*s)->AppendMetric("sessions/abc", e, seq * 10));
    }
    // A duplicate seq is refused: the log is append-only.
    v1::MetricEvent dup;
    dup.set_seq(3);
    EXPECT_FALSE((*s)->AppendMetric("sessions/abc", dup, 30).ok());
    ASSERT_OK((*s)->AddSnapshot("sessions/abc", 50, "weights at 50"));
    ASSERT_OK((*s)->AddSnapshot("sessions/abc", 20, "weights at 20"));
  }
  auto s = Storage::Open(dir);
  ASSERT_OK(s);
  auto session = (*s)->GetSession("sessions/abc");
  ASSERT_OK(session);
  EXPECT_EQ(session->step(), 42);
  auto events = (*s)->ReadMetrics("sessions/abc", 4, 3);
  ASSERT_OK(events);
  ASSERT_EQ(events->size(), 3u);
  EXPECT_EQ((*events)[0].seq(), 4);
  EXPECT_EQ((*events)[2].step().step(), 60);
  // A restart from a checkpoint at step 55 cuts the log back to it.
  auto last = (*s)->TruncateMetricsAfterStep("sessions/abc", 55);
  ASSERT_OK(last);
  EXPECT_EQ(*last, 5);
  EXPECT_EQ(*(*s)->CountMetrics("sessions/abc"), 5);
  EXPECT_EQ(*(*s)->ListSnapshots("sessions/abc"), (std::vector<int64_t>{20, 50}));
  EXPECT_EQ(*ReadFile((*s)->SnapshotPath("abc", 50)), "weights at 50");

  ASSERT_OK((*s)->DeleteSession("sessions/abc"));
  EXPECT_EQ((*s)->GetSession("sessions/abc").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(*(*s)->CountMetrics("sessions/abc"), 0);
  EXPECT_FALSE(std::filesystem::exists((*s)->SessionDir("abc")));
}

TEST(StorageTest, AtomicWriteReplacesWholeFilesAndLeavesNoTemporaries) {
  const auto dir = alignd::testing::TempDir("atomic");
  const std::string path = (dir / "sub" / "f.bin").string();
  ASSERT_OK(AtomicWriteFile(path, "first"));
  ASSERT_OK(AtomicWriteFile(path, "second, longer"));
  EXPECT_EQ(*ReadFile(path), "second, longer");
  int files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir / "sub")) (void)e, ++files;
  EXPECT_EQ(files, 1);
  EXPECT_EQ(ReadFile((dir / "missing").string()).status().code(), absl::StatusCode::kNotFound);
}

TEST(StorageTest, OpenFailsClearlyOnAnUnusableDirectory) {
  const auto dir = alignd::testing::TempDir("unusable");
  alignd::testing::WriteFile(dir / "file", "x");
  auto s = Storage::Open((dir / "file" / "sub").string());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace alignd::server
