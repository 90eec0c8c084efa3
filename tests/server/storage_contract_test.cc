// The Storage contract (server/storage/storage.h), one suite over every implementation: SQLite on a
// data directory, and PostgreSQL (a real server, tests/temp_postgres.h) with its blobs in a
// directory. A third backend joins by adding a row to Backends().
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "server/sessions/cluster.h"
#include "server/storage/pg_storage.h"
#include "server/storage/sqlite_storage.h"
#include "tests/server/stored_metrics.h"
#include "tests/temp_postgres.h"
#include "tests/test_util.h"

namespace alignd::server {
namespace {

namespace fs = std::filesystem;

struct Backend {
  std::string name;
  // A fresh store named `key` (whatever a store of that key held is gone).
  std::function<void(const std::string& key)> fresh;
  // Opens the store `key` (again, after a close: what it holds survives).
  std::function<absl::StatusOr<std::unique_ptr<Storage>>(const std::string& key)> open;
};

fs::path Dir(const std::string& key) { return fs::path("/tmp") / ("alignd_contract_" + key); }

std::vector<Backend> Backends() {
  return {
      {"sqlite", [](const std::string& key) { fs::remove_all(Dir(key)); },
       [](const std::string& key) { return OpenSqliteStorage(Dir(key).string()); }},
      {"postgresql",
       [](const std::string& key) {
         fs::remove_all(Dir(key));
         if (auto* pg = alignd::testing::TempPostgres::Get()) pg->Database(key);
       },
       [](const std::string& key) -> absl::StatusOr<std::unique_ptr<Storage>> {
         auto* pg = alignd::testing::TempPostgres::Get();
         if (pg == nullptr)
           return absl::FailedPreconditionError(alignd::testing::TempPostgres::error());
         PostgresOptions o;
         o.conninfo = pg->Conninfo(key);
         o.blobs_dir = Dir(key).string();
         return OpenPostgresStorage(o);
       }},
  };
}

class StorageContract : public ::testing::TestWithParam<Backend> {
 protected:
  // A fresh store for this test, opened.
  std::unique_ptr<Storage> Fresh() {
    key_ = absl::StrCat(GetParam().name, "_",
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    for (char& c : key_) c = std::isalnum(static_cast<unsigned char>(c)) ? std::tolower(c) : '_';
    key_ =
        key_.substr(0, 40) + absl::StrCat("_", std::hash<std::string>()(key_) % 1000000);  // < 63
    GetParam().fresh(key_);
    return Reopen();
  }
  std::unique_ptr<Storage> Reopen() {
    auto s = GetParam().open(key_);
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? std::move(*s) : nullptr;
  }
  std::string key_;
};

TEST_P(StorageContract, SessionsMetricsCheckpointsAndSnapshotsSurviveReopening) {
  {
    auto s = Fresh();
    ASSERT_NE(s, nullptr);
    v1::Session session;
    session.set_name("sessions/abc");
    session.set_state(v1::SESSION_STATE_RUNNING);
    session.set_step(42);
    ASSERT_OK(s->PutSession(session));
    session.set_step(43);
    ASSERT_OK(s->PutSession(session));  // replaces
    ASSERT_OK(s->AppendMetrics("sessions/abc", Events(1, 4)));
    ASSERT_OK(s->AppendMetrics("sessions/abc", Events(5, 10)));
    // A batch with a duplicate seq is refused whole: the log is append-only.
    EXPECT_FALSE(s->AppendMetrics("sessions/abc", Events(10, 11)).ok());
    ASSERT_OK(s->PutSnapshot("sessions/abc", {50, "weights at 50"}));
    ASSERT_OK(s->PutSnapshot("sessions/abc", {20, "weights at 20"}));
    ASSERT_OK(s->PutCheckpoint("sessions/abc", {40, "state at 40"}));
    ASSERT_OK(s->PutCheckpoint("sessions/abc", {60, "state at 60"}));
  }
  auto s = Reopen();
  ASSERT_NE(s, nullptr);
  auto session = s->GetSession("sessions/abc");
  ASSERT_OK(session);
  EXPECT_EQ(session->step(), 43);
  EXPECT_EQ(s->ListSessions()->size(), 1u);
  EXPECT_EQ(*s->CountMetrics("sessions/abc"), 10);  // 11 never went in
  auto events = s->ReadMetrics("sessions/abc", 4, 3);
  ASSERT_OK(events);
  ASSERT_EQ(events->size(), 3u);
  EXPECT_EQ((*events)[0].seq(), 4);
  EXPECT_EQ((*events)[2].step().step(), 60);
  // A restart from a checkpoint at step 55 cuts the log back to it.
  auto last = s->TruncateMetricsAfterStep("sessions/abc", 55);
  ASSERT_OK(last);
  EXPECT_EQ(*last, 5);
  EXPECT_EQ(*s->CountMetrics("sessions/abc"), 5);
  EXPECT_EQ(*s->TruncateMetricsAfterStep("sessions/none", 55), 0);
  auto snapshots = s->ListSnapshots("sessions/abc");
  ASSERT_OK(snapshots);
  ASSERT_EQ(snapshots->size(), 2u);
  EXPECT_EQ((*snapshots)[0].step, 20);
  EXPECT_EQ((*snapshots)[1].step, 50);
  EXPECT_GT((*snapshots)[0].create_time_us, 0);
  EXPECT_EQ(*s->GetSnapshot("sessions/abc", 50), "weights at 50");
  EXPECT_EQ(s->GetSnapshot("sessions/abc", 30).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(*s->CheckpointStep("sessions/abc"), 60);
  auto ck = s->GetCheckpoint("sessions/abc");
  ASSERT_OK(ck);
  EXPECT_EQ(ck->step, 60);
  EXPECT_EQ(ck->bytes, "state at 60");

  ASSERT_OK(s->DeleteSession("sessions/abc"));
  EXPECT_EQ(s->GetSession("sessions/abc").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(*s->CountMetrics("sessions/abc"), 0);
  EXPECT_EQ(s->GetCheckpoint("sessions/abc").status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(s->ListSnapshots("sessions/abc")->empty());
  EXPECT_TRUE(s->ListSessions()->empty());
}

TEST_P(StorageContract, ExperimentsAreRecordsThatSurviveReopening) {
  {
    auto s = Fresh();
    ASSERT_NE(s, nullptr);
    v1::Experiment e;
    e.set_name("experiments/b");
    e.set_display_name("depth");
    ASSERT_OK(s->PutExperiment(e));
    e.set_display_name("depth, again");
    ASSERT_OK(s->PutExperiment(e));  // replaces
    e.set_name("experiments/a");
    ASSERT_OK(s->PutExperiment(e));
    ASSERT_OK(s->DeleteExperiment("experiments/a"));
    EXPECT_TRUE(absl::IsNotFound(s->DeleteExperiment("experiments/a")));
    e.set_name("experiments/c");
    ASSERT_OK(s->PutExperiment(e));
  }
  auto s = Reopen();
  ASSERT_NE(s, nullptr);
  auto got = s->GetExperiment("experiments/b");
  ASSERT_OK(got);
  EXPECT_EQ(got->display_name(), "depth, again");
  EXPECT_TRUE(absl::IsNotFound(s->GetExperiment("experiments/a").status()));
  auto all = s->ListExperiments();
  ASSERT_OK(all);
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].name(), "experiments/b");
  EXPECT_EQ((*all)[1].name(), "experiments/c");
}

TEST_P(StorageContract, SampledMetricsKeepEveryEvaluationAndEvenlySpacedSteps) {
  auto s = Fresh();
  ASSERT_NE(s, nullptr);
  const int n = 1000;
  std::vector<StoredMetric> log = Events(1, n);
  for (StoredMetric& m : log)
    if (m.event.seq() % 7 == 0) m.event.mutable_eval()->set_step(m.step);
  ASSERT_OK(s->AppendMetrics("sessions/log", log));  // one batch past 1,000 rows... of 1,000
  ASSERT_OK(s->AppendMetrics("sessions/other", Events(1, 2500)));  // several statements
  EXPECT_EQ(*s->CountMetrics("sessions/other"), 2500);
  for (int64_t start : {1, 2, 500})
    for (int64_t end : {int64_t{600}, int64_t{n}, int64_t{5000}})
      for (int64_t every : {1, 3, 10, 999, 5000}) {
        SCOPED_TRACE(absl::StrCat("start ", start, ", end ", end, ", every ", every));
        auto got = s->ReadMetricsSampled("sessions/log", start, end, every);
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
  EXPECT_TRUE(s->ReadMetricsSampled("sessions/log", n + 1, n + 100, 10)->empty());
  EXPECT_TRUE(s->ReadMetricsSampled("sessions/log", 10, 9, 1)->empty());
  EXPECT_TRUE(s->ReadMetricsSampled("sessions/absent", 1, 10, 1)->empty());
  auto newest = s->ReadNewestMetrics("sessions/log");
  ASSERT_OK(newest);
  ASSERT_TRUE(newest->step && newest->eval);
  EXPECT_EQ(newest->step->seq(), n % 7 == 0 ? n - 1 : n);
  EXPECT_EQ(newest->eval->seq(), n / 7 * 7);
  auto nothing = s->ReadNewestMetrics("sessions/absent");
  ASSERT_OK(nothing);
  EXPECT_FALSE(nothing->step || nothing->eval);
  auto steps_only = s->ReadNewestMetrics("sessions/other");
  ASSERT_OK(steps_only);
  ASSERT_TRUE(steps_only->step);
  EXPECT_EQ(steps_only->step->seq(), 2500);
  EXPECT_FALSE(steps_only->eval);
  // A batch that fails part way (its last seq is taken) leaves nothing of itself.
  std::vector<StoredMetric> bad = Events(2501, 4000);
  bad.push_back(Events(1, 1)[0]);
  EXPECT_FALSE(s->AppendMetrics("sessions/other", bad).ok());
  EXPECT_EQ(*s->CountMetrics("sessions/other"), 2500);
}

TEST_P(StorageContract, DatasetsAreRecordsAndPayloadsVisibleOnlyOnceCommitted) {
  auto s = Fresh();
  ASSERT_NE(s, nullptr);
  {
    auto abandoned = s->NewDatasetPayload();
    ASSERT_OK(abandoned);
    ASSERT_OK((*abandoned)->Append("never committed"));
  }
  auto w = s->NewDatasetPayload();
  ASSERT_OK(w);
  ASSERT_OK((*w)->Append("payload "));
  ASSERT_OK((*w)->Append("bytes"));
  ASSERT_OK((*w)->Commit("datasets/d1"));
  v1::Dataset d;
  d.set_name("datasets/d1");
  d.set_display_name("first");
  ASSERT_OK(s->PutDataset(d));
  d.set_name("datasets/d2");
  ASSERT_OK(s->PutDataset(d));
  EXPECT_EQ(*s->ReadDatasetPayload(*s->GetDataset("datasets/d1")), "payload bytes");
  EXPECT_EQ(s->ReadDatasetPayload(d).status().code(), absl::StatusCode::kNotFound);
  auto page = s->ListDatasets("", 1);
  ASSERT_OK(page);
  ASSERT_EQ(page->size(), 1u);
  EXPECT_EQ((*page)[0].name(), "datasets/d1");
  EXPECT_EQ((*s->ListDatasets("datasets/d1", 10))[0].name(), "datasets/d2");
  ASSERT_OK(s->DeleteDataset("datasets/d1"));
  EXPECT_EQ(s->DeleteDataset("datasets/d1").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(s->GetDataset("datasets/d1").status().code(), absl::StatusCode::kNotFound);
  d.set_name("datasets/d1");
  EXPECT_EQ(s->ReadDatasetPayload(d).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(s->GetDataset("datasets/nope").status().code(), absl::StatusCode::kNotFound);
}

TEST_P(StorageContract, ConcurrentCallersEachSeeWholeWrites) {
  auto s = Fresh();
  ASSERT_NE(s, nullptr);
  // More threads than PostgreSQL connections in the pool: calls wait, none fails.
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t] {
      const std::string name = absl::StrCat("sessions/t", t);
      for (int b = 0; b < 20; ++b) {
        EXPECT_OK(s->AppendMetrics(name, Events(b * 10 + 1, b * 10 + 10)));
        v1::Session rec;
        rec.set_name(name);
        rec.set_step(b);
        EXPECT_OK(s->PutSession(rec));
        auto got = s->ReadMetrics(name, 1, 1000);
        EXPECT_OK(got);
        if (got.ok()) {
          EXPECT_EQ(got->size() % 10, 0u);
        }
      }
    });
  for (auto& t : threads) t.join();
  auto all = s->ListSessions();
  ASSERT_OK(all);
  ASSERT_EQ(all->size(), 8u);
  for (const auto& rec : *all) {
    EXPECT_EQ(rec.step(), 19);
    EXPECT_EQ(*s->CountMetrics(rec.name()), 200);
  }
}

TEST_P(StorageContract, NamesThatAreNotResourceNamesAreRefused) {
  auto s = Fresh();
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->PutCheckpoint("sessions/../x", {1, "x"}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s->PutSnapshot("../../etc", {1, "x"}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s->DeleteSession("sessions/a/b").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s->DeleteDataset("datasets/..").code(), absl::StatusCode::kInvalidArgument);
}

INSTANTIATE_TEST_SUITE_P(Backends, StorageContract, ::testing::ValuesIn(Backends()),
                         [](const auto& info) { return info.param.name; });

// PostgreSQL alone: what a replica sees when the database goes away and comes back.
TEST(PostgresStorage, UnreachableIsUnavailableAndTheNextCallAfterARestartWorks) {
  auto* pg = alignd::testing::TempPostgres::Get();
  ASSERT_NE(pg, nullptr) << alignd::testing::TempPostgres::error();
  PostgresOptions o;
  o.conninfo = pg->Database("restart");
  o.blobs_dir = Dir("pg_restart").string();
  fs::remove_all(o.blobs_dir);
  auto s = OpenPostgresStorage(o);
  ASSERT_OK(s);
  ASSERT_OK((*s)->AppendMetrics("sessions/a", Events(1, 5)));
  // Replicas share the database: a second open (another alignd) sees what the first wrote.
  auto second = OpenPostgresStorage(o);
  ASSERT_OK(second);
  EXPECT_EQ(*(*second)->CountMetrics("sessions/a"), 5);
  ASSERT_NE((*second)->cluster(), nullptr);
  EXPECT_NE((*second)->cluster()->replica(), (*s)->cluster()->replica());
  ASSERT_TRUE(pg->Stop());
  auto down = (*s)->AppendMetrics("sessions/a", Events(6, 10));
  EXPECT_EQ(down.code(), absl::StatusCode::kUnavailable) << down;
  EXPECT_EQ((*s)->CountMetrics("sessions/a").status().code(), absl::StatusCode::kUnavailable);
  ASSERT_TRUE(pg->Restart());
  ASSERT_OK((*s)->AppendMetrics("sessions/a", Events(6, 10)));  // nothing of the failed one
  EXPECT_EQ(*(*s)->CountMetrics("sessions/a"), 10);
  // Opening against nothing says what it tried.
  PostgresOptions nowhere = o;
  nowhere.conninfo = "host=/nonexistent port=1 user=alignd dbname=x connect_timeout=2";
  auto refused = OpenPostgresStorage(nowhere);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.status().message().find("postgresql unreachable"), std::string::npos)
      << refused.status();
}

}  // namespace
}  // namespace alignd::server
