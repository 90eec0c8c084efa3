// server/storage/sqlite_storage.h on a real SQLite file in a temporary directory: what is SQLite's
// own (legacy data directories, the owner's lock, the files). The contract every backend
// keeps is storage_contract_test.cc.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "server/storage/sqlite_storage.h"
#include "tests/server/stored_metrics.h"
#include "tests/test_util.h"

namespace alignd::server {
namespace {

int CountFiles(const std::filesystem::path& dir) {
  int n = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) n += e.is_regular_file();
  return n;
}

// The step travels with the bytes (checkpoint-{step}.bin): no index can disagree with the
// file after a kill. A data directory from before keeps working (step -1 until re-put).
// A log of `n` events: steps, with an evaluation at every 7th seq.
std::vector<StoredMetric> Mixed(int n) {
  std::vector<StoredMetric> out = Events(1, n);
  for (StoredMetric& m : out)
    if (m.event.seq() % 7 == 0) m.event.mutable_eval()->set_step(m.step);
  return out;
}

// The strided steps and every evaluation of [start, end] that a log of n events holds
// (end may be past n: the newest events of a live session are not stored yet).
void ExpectSampled(Storage& s, int n, int64_t start, int64_t end, int64_t every) {
  SCOPED_TRACE(absl::StrCat("start ", start, ", end ", end, ", every ", every));
  auto got = s.ReadMetricsSampled("sessions/log", start, end, every);
  ASSERT_OK(got);
  std::vector<int64_t> want, seqs;
  for (int64_t seq = start; seq <= std::min<int64_t>(end, n); ++seq)
    if (seq % 7 == 0 || (seq - start) % every == 0) want.push_back(seq);
  for (const auto& e : *got) {
    seqs.push_back(e.seq());
    EXPECT_EQ(e.has_eval(), e.seq() % 7 == 0) << e.seq();
  }
  EXPECT_EQ(seqs, want);
}

void ExpectNewest(Storage& s, int n) {
  auto newest = s.ReadNewestMetrics("sessions/log");
  ASSERT_OK(newest);
  ASSERT_TRUE(newest->step && newest->eval);
  EXPECT_EQ(newest->step->seq(), n % 7 == 0 ? n - 1 : n);
  EXPECT_TRUE(newest->step->has_step());
  EXPECT_EQ(newest->eval->seq(), n / 7 * 7);
  EXPECT_TRUE(newest->eval->has_eval());
}

TEST(StorageTest, SampledMetricsKeepEveryEvaluationAndEvenlySpacedSteps) {
  const auto dir = alignd::testing::TempDir("sampled");
  std::filesystem::remove_all(dir);
  const int n = 1000;
  auto all = [&] {
    auto s = OpenSqliteStorage(dir);
    ASSERT_OK(s);
    for (int64_t start : {1, 2, 500})
      for (int64_t end : {int64_t{600}, int64_t{n}, int64_t{5000}})
        for (int64_t every : {1, 3, 10, 999, 5000}) ExpectSampled(**s, n, start, end, every);
    ExpectNewest(**s, n);
  };
  {
    auto s = OpenSqliteStorage(dir);
    ASSERT_OK(s);
    ASSERT_OK((*s)->AppendMetrics("sessions/log", Mixed(n)));
    ASSERT_OK((*s)->AppendMetrics("sessions/other", Events(1, 50)));
    auto none = (*s)->ReadMetricsSampled("sessions/log", n + 1, n + 100, 10);
    ASSERT_OK(none);
    EXPECT_TRUE(none->empty());
    auto before = (*s)->ReadMetricsSampled("sessions/log", 10, 9, 1);
    ASSERT_OK(before);
    EXPECT_TRUE(before->empty());
    auto absent = (*s)->ReadMetricsSampled("sessions/absent", 1, 10, 1);
    ASSERT_OK(absent);
    EXPECT_TRUE(absent->empty());
    auto nothing = (*s)->ReadNewestMetrics("sessions/absent");
    ASSERT_OK(nothing);
    EXPECT_FALSE(nothing->step || nothing->eval);
    auto steps_only = (*s)->ReadNewestMetrics("sessions/other");
    ASSERT_OK(steps_only);
    ASSERT_TRUE(steps_only->step);
    EXPECT_EQ(steps_only->step->seq(), 50);
    EXPECT_FALSE(steps_only->eval);
  }
  all();
  // A log written before metrics had a kind column: the same answers, read the slow way.
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open((dir / "alignd.db").c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "UPDATE metrics SET kind = NULL", nullptr, nullptr, nullptr),
              SQLITE_OK);
    sqlite3_close(db);
  }
  all();
}

TEST(StorageTest, ACheckpointsStepIsTheStepOfItsBytes) {
  const auto dir = alignd::testing::TempDir("checkpoints");
  std::filesystem::remove_all(dir);
  auto s = OpenSqliteStorage(dir);
  ASSERT_OK(s);
  alignd::testing::WriteFile(dir / "sessions" / "old", "");  // a sibling, untouched
  std::filesystem::create_directories(dir / "sessions" / "abc");
  alignd::testing::WriteFile(dir / "sessions" / "abc" / "checkpoint.bin", "legacy state");
  EXPECT_EQ((*s)->CheckpointStep("sessions/abc").status().code(), absl::StatusCode::kNotFound);
  auto legacy = (*s)->GetCheckpoint("sessions/abc");
  ASSERT_OK(legacy);
  EXPECT_EQ(legacy->step, -1);
  EXPECT_EQ(legacy->bytes, "legacy state");
  ASSERT_OK((*s)->PutCheckpoint("sessions/abc", {100, "state at 100"}));
  ASSERT_OK((*s)->PutCheckpoint("sessions/abc", {200, "state at 200"}));
  EXPECT_EQ(*(*s)->CheckpointStep("sessions/abc"), 200);
  EXPECT_EQ((*s)->GetCheckpoint("sessions/abc")->bytes, "state at 200");
  EXPECT_EQ(CountFiles(dir / "sessions" / "abc"), 1);  // the older ones and the legacy file went
}

TEST(StorageTest, APayloadIsVisibleOnlyOnceCommittedAndAnAbandonedOneLeavesNothing) {
  const auto dir = alignd::testing::TempDir("payload");
  std::filesystem::remove_all(dir);
  auto s = OpenSqliteStorage(dir);
  ASSERT_OK(s);
  v1::Dataset d;
  d.set_name("datasets/0123456789abcdef");
  {
    auto w = (*s)->NewDatasetPayload();
    ASSERT_OK(w);
    ASSERT_OK((*w)->Append("half"));
    EXPECT_EQ((*s)->ReadDatasetPayload(d).status().code(), absl::StatusCode::kNotFound);
  }  // abandoned
  EXPECT_EQ(CountFiles(dir / "datasets"), 0);
  auto w = (*s)->NewDatasetPayload();
  ASSERT_OK(w);
  ASSERT_OK((*w)->Append("all "));
  ASSERT_OK((*w)->Append("of it"));
  ASSERT_OK((*w)->Commit(d.name()));
  ASSERT_OK((*s)->PutDataset(d));
  EXPECT_EQ(*(*s)->ReadDatasetPayload(d), "all of it");
  ASSERT_OK((*s)->DeleteDataset(d.name()));
  EXPECT_EQ(CountFiles(dir / "datasets"), 0);
  EXPECT_EQ((*s)->DeleteDataset(d.name()).code(), absl::StatusCode::kNotFound);
}

// Names become file names: a name that is not a plain resource name never reaches the
// file system.
TEST(StorageTest, NamesThatAreNotResourceNamesAreRefused) {
  const auto dir = alignd::testing::TempDir("names");
  std::filesystem::remove_all(dir);
  auto s = OpenSqliteStorage((dir / "data").string());
  ASSERT_OK(s);
  for (const char* bad : {"sessions/../../x", "sessions/", "sessions/a/b", "datasets/x"}) {
    EXPECT_EQ((*s)->PutCheckpoint(bad, {1, "x"}).code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_EQ((*s)->PutSnapshot(bad, {1, "x"}).code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  auto w = (*s)->NewDatasetPayload();
  ASSERT_OK(w);
  ASSERT_OK((*w)->Append("x"));
  EXPECT_EQ((*w)->Commit("datasets/../../etc").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(std::filesystem::exists(dir / "x"));
}

// One process per data directory: a second open fails while the first holds it, naming
// the holder, and succeeds once it is closed; and an open removes the temporary files of
// uploads that a crash interrupted (and nothing else).
TEST(StorageTest, ADataDirectoryHasOneOwnerWhoClearsInterruptedUploads) {
  const auto dir = alignd::testing::TempDir("owner");
  std::filesystem::remove_all(dir);
  {
    auto first = OpenSqliteStorage(dir);
    ASSERT_OK(first);
    auto second = OpenSqliteStorage(dir);
    EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_NE(std::string(second.status().message())
                  .find(absl::StrCat("in use by another alignd (pid ", ::getpid())),
              std::string::npos)
        << second.status();
  }
  // What a crash mid-upload leaves (the writer never committed nor cleaned up), beside a
  // stored payload.
  std::ofstream(dir / "datasets" / "0123456789abcdef.bin") << "a stored payload";
  std::ofstream(dir / "datasets" / ".upload-1_2.part") << "interrupted";
  std::ofstream(dir / "datasets" / ".upload-1_3.part") << "interrupted too";
  EXPECT_EQ(CountFiles(dir / "datasets"), 3);
  auto again = OpenSqliteStorage(dir);
  ASSERT_OK(again);
  EXPECT_EQ(CountFiles(dir / "datasets"), 1);
  EXPECT_TRUE(std::filesystem::exists(dir / "datasets" / "0123456789abcdef.bin"));
}

TEST(StorageTest, AtomicWriteReplacesWholeFilesAndLeavesNoTemporaries) {
  const auto dir = alignd::testing::TempDir("atomic");
  const std::string path = (dir / "sub" / "f.bin").string();
  ASSERT_OK(AtomicWriteFile(path, "first"));
  ASSERT_OK(AtomicWriteFile(path, "second, longer"));
  EXPECT_EQ(*ReadFile(path), "second, longer");
  EXPECT_EQ(CountFiles(dir / "sub"), 1);
  EXPECT_EQ(ReadFile((dir / "missing").string()).status().code(), absl::StatusCode::kNotFound);
}

TEST(StorageTest, OpenFailsClearlyOnAnUnusableDirectory) {
  const auto dir = alignd::testing::TempDir("unusable");
  alignd::testing::WriteFile(dir / "file", "x");
  auto s = OpenSqliteStorage((dir / "file" / "sub").string());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace alignd::server
