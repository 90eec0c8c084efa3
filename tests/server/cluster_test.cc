// The Cluster (server/sessions/cluster.h) on a real PostgreSQL (tests/temp_postgres.h): what
// replicas that share one database agree on, tried call by call where the end-to-end suite
// (tests/e2e/test_replicas.py) can only hope to hit the moment: a cancel asked while the
// holder gives the session back, a claim beside a run this process still has, a change that
// commits after a later one, a delete with one connection left, a data set deleted by one
// replica while another creates a session on it.
#include "server/sessions/cluster.h"

#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <future>
#include <memory>
#include <thread>

#include "absl/strings/str_cat.h"
#include "server/sessions/dataset_store.h"
#include "server/storage/file_blobs.h"
#include "server/storage/pg_storage.h"
#include "server/storage/storage.h"
#include "tests/temp_postgres.h"
#include "tests/test_util.h"

namespace alignd::server {
namespace {

namespace fs = std::filesystem;

class ClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    pg_ = alignd::testing::TempPostgres::Get();
    ASSERT_NE(pg_, nullptr) << alignd::testing::TempPostgres::error();
    std::string key = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    for (char& c : key) c = std::isalnum(static_cast<unsigned char>(c)) ? std::tolower(c) : '_';
    key_ = "cluster_" + key.substr(0, 40);
    conninfo_ = pg_->Database(key_);
    blobs_ = (fs::path("/tmp") / ("alignd_" + key_)).string();
    fs::remove_all(blobs_);
  }
  void TearDown() override { fs::remove_all(blobs_); }

  // A replica's storage on the shared database.
  std::unique_ptr<Storage> Replica(int connections = 4) {
    PostgresOptions o;
    o.conninfo = conninfo_;
    o.blobs_dir = blobs_;
    o.connections = connections;
    auto s = OpenPostgresStorage(o);
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? std::move(*s) : nullptr;
  }

  static v1::Session Queued(const std::string& id, const std::string& dataset = "") {
    v1::Session r;
    r.set_name("sessions/" + id);
    r.set_state(v1::SESSION_STATE_QUEUED);
    r.set_train_dataset(dataset);
    r.mutable_config()->set_threads(1);
    return r;
  }

  alignd::testing::TempPostgres* pg_ = nullptr;
  std::string key_, conninfo_, blobs_;
};

// The holder gives the session back (QUEUED when it shuts down, PAUSED when it was asked to
// pause) at the moment another replica asks for a cancel: the cancel is what it becomes.
// Before, the hand-back cleared the ask and the "cancelled" session was queued to run again.
TEST_F(ClusterTest, AStopAskedWhileTheHolderGivesTheSessionBackIsWhatItBecomes) {
  auto holder = Replica(), other = Replica();
  Cluster* h = holder->cluster();
  Cluster* o = other->cluster();
  struct Case {
    v1::SessionState given_back;
    Cluster::Op asked;
    v1::SessionState want;
  };
  const Case cases[] = {
      {v1::SESSION_STATE_QUEUED, Cluster::Op::kCancel, v1::SESSION_STATE_CANCELLED},
      {v1::SESSION_STATE_PAUSED, Cluster::Op::kCancel, v1::SESSION_STATE_CANCELLED},
      {v1::SESSION_STATE_QUEUED, Cluster::Op::kPause, v1::SESSION_STATE_PAUSED},
  };
  int i = 0;
  for (const Case& c : cases) {
    SCOPED_TRACE(absl::StrCat("case ", i));
    const v1::Session queued = Queued(absl::StrCat("a", i++));
    ASSERT_OK(h->Insert(queued, InsertLimits()));
    auto claimed = h->Claim(/*free_threads=*/4, /*lease_ms=*/60000, {});
    ASSERT_OK(claimed);
    ASSERT_TRUE(claimed->has_value());
    const int64_t epoch = (*claimed)->epoch;
    auto asked = o->Transition(queued.name(), c.asked, 0, 0);
    ASSERT_OK(asked);
    EXPECT_TRUE(asked->asked);  // a live holder: asked, not changed
    v1::Session back = (*claimed)->record;
    back.set_state(c.given_back);
    auto fenced = h->Fenced(queued.name(), epoch, nullptr);
    ASSERT_OK(fenced->PutSession(back));
    auto row = o->Read(queued.name());
    ASSERT_OK(row);
    EXPECT_EQ(row->record.state(), c.want) << row->record.ShortDebugString();
    EXPECT_EQ(row->holder, "");
    if (c.want == v1::SESSION_STATE_CANCELLED) {
      EXPECT_TRUE(row->record.has_end_time());
    }
    // Nothing to claim: it is not queued.
    auto next = o->Claim(4, 60000, {});
    ASSERT_OK(next);
    EXPECT_FALSE(next->has_value());
  }
}

// A lease can run out under a process that was stopped (SIGSTOP, a long pause) while its
// worker still runs the session; that process must not claim it a second time beside the
// run it has: its own renewal says whether it still holds it.
TEST_F(ClusterTest, AClaimPassesOverTheSessionsThisProcessStillRuns) {
  auto s = Replica();
  Cluster* c = s->cluster();
  ASSERT_OK(c->Insert(Queued("busy"), InsertLimits()));
  auto first = c->Claim(4, /*lease_ms=*/1, {});
  ASSERT_OK(first);
  ASSERT_TRUE(first->has_value());
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // the lease runs out
  auto again = c->Claim(4, 60000, {"sessions/busy"});
  ASSERT_OK(again);
  EXPECT_FALSE(again->has_value()) << (*again)->record.name();
  // Its renewal still holds it (nobody else took it).
  EXPECT_OK(c->Renew("sessions/busy", (*first)->epoch, 60000).status());
  // A replica without that run may take it once the lease is out, at a higher epoch.
  ASSERT_OK(c->Renew("sessions/busy", (*first)->epoch, 1).status());
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  auto other = Replica();
  auto taken = other->cluster()->Claim(4, 60000, {});
  ASSERT_OK(taken);
  ASSERT_TRUE(taken->has_value());
  EXPECT_GT((*taken)->epoch, (*first)->epoch);
  EXPECT_EQ(c->Renew("sessions/busy", (*first)->epoch, 60000).status().code(),
            absl::StatusCode::kAborted);
}

// Versions are drawn when a statement runs, not when its transaction commits: a change that
// commits after a later-drawn one must still be in the next re-read.
TEST_F(ClusterTest, ChangesNeverSkipAChangeThatCommitsLate) {
  auto s = Replica();
  Cluster* c = s->cluster();
  ASSERT_OK(c->Insert(Queued("slow"), InsertLimits()));
  ASSERT_OK(c->Insert(Queued("fast"), InsertLimits()));
  int64_t cursor = 0;
  ASSERT_OK(c->Changes(0, nullptr, &cursor));

  // A transaction of another replica changes "slow" and has not committed yet...
  PGconn* raw = PQconnectdb(conninfo_.c_str());
  ASSERT_EQ(PQstatus(raw), CONNECTION_OK) << PQerrorMessage(raw);
  auto exec = [&](const char* sql) {
    PGresult* r = PQexec(raw, sql);
    const bool ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
    EXPECT_TRUE(ok) << sql << ": " << PQerrorMessage(raw);
    PQclear(r);
  };
  exec("BEGIN");
  exec(
      "UPDATE sessions SET logged_seq = 7, version = nextval('alignd_version') "
      "WHERE id = 'sessions/slow'");
  // ... while "fast" changes and commits (a later version).
  ASSERT_OK(c->Transition("sessions/fast", Cluster::Op::kPause, 0, 0));
  auto seen = c->Changes(cursor, nullptr, &cursor);
  ASSERT_OK(seen);
  ASSERT_EQ(seen->size(), 1u);
  EXPECT_EQ((*seen)[0].record.name(), "sessions/fast");
  exec("COMMIT");
  PQfinish(raw);
  auto late = c->Changes(cursor, nullptr, &cursor);
  ASSERT_OK(late);
  bool found = false;
  for (const SessionRow& row : *late)
    if (row.record.name() == "sessions/slow") found = row.logged_seq == 7;
  EXPECT_TRUE(found) << "the change that committed late was skipped";
}

// Delete with every connection of the pool but one in use: it must not hold one while it
// waits for another (it waited for ever with a pool of one).
TEST_F(ClusterTest, DeleteOfAnActiveSessionAnswersWithOneConnection) {
  auto s = Replica(/*connections=*/1);
  ASSERT_OK(s->cluster()->Insert(Queued("active"), InsertLimits()));
  auto done = std::make_shared<std::promise<absl::Status>>();
  auto answer = done->get_future();
  std::thread([done, c = s->cluster()] { done->set_value(c->Delete("sessions/active")); }).detach();
  ASSERT_EQ(answer.wait_for(std::chrono::seconds(30)), std::future_status::ready)
      << "Delete did not answer";
  const absl::Status st = answer.get();
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition) << st;
  EXPECT_NE(st.message().find("cancel it first"), std::string::npos) << st;
}

// One replica deletes a data set while another creates a session on it: never both OK.
TEST_F(ClusterTest, ADataSetInUseOnAnotherReplicaIsNotDeleted) {
  auto a = Replica(), b = Replica();
  v1::Dataset d;
  d.set_name("datasets/d1");
  ASSERT_OK(a->PutDataset(d));
  ASSERT_OK(a->cluster()->Insert(Queued("user", "datasets/d1"), InsertLimits()));
  const absl::Status refused = b->DeleteDataset("datasets/d1");
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition) << refused;
  EXPECT_OK(a->GetDataset("datasets/d1").status());
  // Finished, the session no longer holds it.
  ASSERT_OK(b->cluster()->Transition("sessions/user", Cluster::Op::kCancel, 0, 0));
  EXPECT_OK(b->DeleteDataset("datasets/d1"));
  // And a session created on a data set another replica deleted is NotFound.
  const auto late = a->cluster()->Insert(Queued("late", "datasets/d1"), InsertLimits());
  EXPECT_EQ(late.status().code(), absl::StatusCode::kNotFound) << late.status();
}

// Ownership, quotas and request ids are the database's, counted in the transaction that
// inserts: two replicas never both take the last place of a quota, and a retry on another
// replica is the first attempt's session.
TEST_F(ClusterTest, QuotasAndRequestIdsHoldAcrossReplicas) {
  auto a = Replica(), b = Replica();
  InsertLimits quota;
  quota.max_active = 2;
  auto mine = [](const std::string& id) {
    v1::Session r = Queued(id);
    r.set_owner("alice");
    return r;
  };
  ASSERT_OK(a->cluster()->Insert(mine("q1"), quota));
  ASSERT_OK(b->cluster()->Insert(mine("q2"), quota));
  const auto third = a->cluster()->Insert(mine("q3"), quota);
  EXPECT_EQ(third.status().code(), absl::StatusCode::kResourceExhausted) << third.status();
  v1::Session bobs = Queued("b1");
  bobs.set_owner("bob");
  EXPECT_OK(b->cluster()->Insert(bobs, quota).status());  // another owner's own count
  // Finished, a session no longer counts.
  ASSERT_OK(b->cluster()->Transition("sessions/q1", Cluster::Op::kCancel, 0, 0));
  EXPECT_OK(a->cluster()->Insert(mine("q3"), quota).status());

  InsertLimits retry;
  retry.request_key = "alice/once";
  auto first = a->cluster()->Insert(mine("r1"), retry);
  ASSERT_OK(first);
  auto again = b->cluster()->Insert(mine("r2"), retry);  // the retry names another id
  ASSERT_OK(again);
  EXPECT_EQ(again->name(), "sessions/r1");
  EXPECT_EQ(b->cluster()->Read("sessions/r2").status().code(), absl::StatusCode::kNotFound);
}

// Data set records across replicas: one holder of the storage's data set lock at a time, so
// owners added on two replicas at once are all kept (a read-modify-write of the record on
// each replica lost one of them).
TEST_F(ClusterTest, TheDataSetLockHasOneHolderAcrossReplicas) {
  auto a = Replica(), b = Replica();
  std::atomic<bool> a_in{false}, b_overlapped{false};
  std::thread holder([&] {
    ASSERT_OK(a->WithDatasetLock([&] {
      a_in = true;
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
      a_in = false;
      return absl::OkStatus();
    }));
  });
  while (!a_in.load()) std::this_thread::yield();
  ASSERT_OK(b->WithDatasetLock([&] {
    b_overlapped = a_in.load();
    return absl::OkStatus();
  }));
  holder.join();
  EXPECT_FALSE(b_overlapped.load()) << "b ran while a held the lock";
  // fn's status comes back; the lock is free again after an error.
  EXPECT_EQ(a->WithDatasetLock([] { return absl::NotFoundError("x"); }).code(),
            absl::StatusCode::kNotFound);
  EXPECT_OK(b->WithDatasetLock([] { return absl::OkStatus(); }));
}

TEST_F(ClusterTest, OwnersAddedOnTwoReplicasAtOnceAreAllKept) {
  auto a = Replica(), b = Replica();
  DatasetStore on_a(a.get(), DatasetLimits()), on_b(b.get(), DatasetLimits());
  v1::GeneratorSpec spec;
  spec.set_kind(v1::GeneratorSpec::KIND_LINEAR);
  spec.set_num_examples(200);
  constexpr int kEach = 8;
  auto adds = [&](DatasetStore& store, const std::string& who) {
    for (int i = 0; i < kEach; ++i)
      ASSERT_OK(store.Generate(spec, "", DatasetOwner{absl::StrCat(who, i), false}).status());
  };
  std::thread ta([&] { adds(on_a, "a"); }), tb([&] { adds(on_b, "b"); });
  ta.join();
  tb.join();
  auto listed = a->ListDatasets("", 10);
  ASSERT_OK(listed);
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].owners_size(), 2 * kEach) << (*listed)[0].ShortDebugString();
  // Removed on both at once, owner by owner: the last one's delete removes it.
  std::thread da([&] {
    for (int i = 0; i < kEach; ++i)
      EXPECT_OK(on_a.Delete((*listed)[0].name(), [](const std::string&) { return false; },
                            absl::StrCat("a", i)));
  });
  for (int i = 0; i < kEach; ++i)
    EXPECT_OK(on_b.Delete((*listed)[0].name(), [](const std::string&) { return false; },
                          absl::StrCat("b", i)));
  da.join();
  EXPECT_EQ(a->GetDataset((*listed)[0].name()).status().code(), absl::StatusCode::kNotFound);
}

// A holder that tidies up late (its lease taken over between its checkpoint's commit and the
// removal of the older files) must not remove the newer checkpoint of the holder after it.
TEST(FileBlobsTest, RemovingOlderCheckpointsKeepsNewerOnes) {
  const std::string dir = "/tmp/alignd_file_blobs_checkpoints";
  fs::remove_all(dir);
  FileBlobs blobs(dir);
  ASSERT_OK(blobs.Prepare("--blobs"));
  ASSERT_OK(blobs.WriteCheckpointFile("sessions/s", StoredState{100, "old"}));
  ASSERT_OK(blobs.WriteCheckpointFile("sessions/s", StoredState{200, "new"}));
  ASSERT_OK(blobs.WriteCheckpointFile("sessions/s", StoredState{300, "newest"}));
  blobs.RemoveCheckpointsBefore("sessions/s", 200);
  EXPECT_FALSE(blobs.ReadCheckpointFile("sessions/s", 100).ok());
  EXPECT_EQ(*blobs.ReadCheckpointFile("sessions/s", 200), "new");
  EXPECT_EQ(*blobs.ReadCheckpointFile("sessions/s", 300), "newest");
  fs::remove_all(dir);
}

}  // namespace
}  // namespace alignd::server
