// server/session_manager.h in-process, on a real SQLite file: the life of a session,
// the state machine, pause/resume and restart continuity (bit-identical weights).
#include "server/session_manager.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <thread>

#include "core/trainer.h"
#include "server/dataset_store.h"
#include "server/sqlite_storage.h"
#include "tests/test_util.h"

namespace alignd::server {
namespace {

class SessionManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ =
        alignd::testing::TempDir(::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    Open();
    v1::GeneratorSpec spec;
    spec.set_kind(v1::GeneratorSpec::KIND_LINEAR);
    spec.set_num_examples(400);
    dataset_ = store_->Generate(spec, "")->name();
  }

  void Open(int max_running = 2, int max_queued = 64) {
    manager_.reset();
    store_.reset();
    storage_ = *OpenSqliteStorage(dir_.string());
    store_ = std::make_unique<DatasetStore>(storage_.get(), DatasetLimits{});
    SessionManagerOptions o;
    o.max_running = max_running;
    o.max_queued = max_queued;
    o.checkpoint_every = 50;
    manager_ = std::make_unique<SessionManager>(storage_.get(), store_.get(), o);
    ASSERT_OK(manager_->Start());
  }

  v1::CreateSessionRequest Request(int64_t steps = 400) {
    v1::CreateSessionRequest r;
    r.set_train_dataset(dataset_);
    auto* c = r.mutable_config();
    for (int s : {30, 20, 10}) c->mutable_network()->add_sizes(s);
    c->mutable_feedback()->set_rule(v1::RULE_FEEDBACK_ALIGNMENT);
    c->set_batch_size(4);
    c->set_max_steps(steps);
    c->set_metrics_every(10);
    c->set_seed(7);
    r.set_snapshot_every(100);
    return r;
  }

  // The final weights of a finished session (its last snapshot).
  core::TrainerState FinalState(const std::string& name) {
    auto steps = storage_->ListSnapshots(name);
    EXPECT_OK(steps);
    auto bytes = storage_->GetSnapshot(name, steps->back());
    EXPECT_OK(bytes);
    return *core::ParseState(*bytes);
  }

  std::filesystem::path dir_;
  std::unique_ptr<Storage> storage_;
  std::unique_ptr<DatasetStore> store_;
  std::unique_ptr<SessionManager> manager_;
  std::string dataset_;
};

TEST_F(SessionManagerTest, ASessionRunsToTheEndWithAGaplessLog) {
  auto s = manager_->Create(Request());
  ASSERT_OK(s);
  EXPECT_EQ(s->state(), v1::QUEUED);
  EXPECT_EQ(s->total_steps(), 400);
  manager_->WaitIdle();
  auto done = manager_->Get(s->name());
  ASSERT_OK(done);
  EXPECT_EQ(done->state(), v1::SUCCEEDED) << done->failure_reason();
  EXPECT_EQ(done->step(), 400);
  EXPECT_TRUE(done->has_end_time());
  auto events = storage_->ReadMetrics(s->name(), 1, 1000);
  ASSERT_OK(events);
  ASSERT_EQ(events->size(), 40u);  // steps 1, 11, ..., 391
  for (size_t i = 0; i < events->size(); ++i) {
    EXPECT_EQ((*events)[i].seq(), static_cast<int64_t>(i + 1));
    EXPECT_EQ((*events)[i].step().step(), static_cast<int64_t>(10 * i + 1));
  }
  EXPECT_EQ(done->last_seq(), 40);
  EXPECT_EQ(*storage_->ListSnapshots(s->name()), (std::vector<int64_t>{100, 200, 300, 400}));
}

TEST_F(SessionManagerTest, IllegalTransitionsAreFailedPrecondition) {
  auto s = manager_->Create(Request(20));
  ASSERT_OK(s);
  manager_->WaitIdle();
  EXPECT_EQ(manager_->Pause(s->name()).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(manager_->Resume(s->name()).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(manager_->Cancel(s->name()).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(manager_->Get("sessions/nope").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(manager_->Get("datasets/x").status().code(), absl::StatusCode::kInvalidArgument);
  ASSERT_OK(manager_->Delete(s->name()));
  EXPECT_EQ(manager_->Get(s->name()).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(SessionManagerTest, BadRequestsNameTheField) {
  auto r = Request();
  r.mutable_config()->set_batch_size(-1);
  auto s = manager_->Create(r);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(s.status().message()).find("config.batch_size"), std::string::npos)
      << s.status();
  r = Request();
  r.mutable_config()->mutable_network()->set_sizes(0, 31);
  s = manager_->Create(r);
  EXPECT_NE(
      std::string(s.status().message()).find("network.sizes[0] is 31 but the training set has 30"),
      std::string::npos)
      << s.status();
  r = Request();
  r.set_train_dataset("datasets/0000000000000000");
  EXPECT_EQ(manager_->Create(r).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(SessionManagerTest, PauseAndResumeGiveTheWeightsOfARunNeverPaused) {
  auto whole = manager_->Create(Request(2000));
  ASSERT_OK(whole);
  manager_->WaitIdle();
  auto paused = manager_->Create(Request(2000));
  ASSERT_OK(paused);
  // Pause it (wherever it is), then resume, twice.
  for (int k = 0; k < 2; ++k) {
    auto p = manager_->Pause(paused->name());
    if (!p.ok()) break;  // it may already be done on a fast machine
    EXPECT_EQ(p->state(), v1::PAUSED);
    ASSERT_OK(manager_->Resume(paused->name()));
  }
  manager_->WaitIdle();
  ASSERT_EQ(manager_->Get(paused->name())->state(), v1::SUCCEEDED);
  const core::TrainerState a = FinalState(whole->name()), b = FinalState(paused->name());
  for (size_t i = 0; i < a.weights.size(); ++i) EXPECT_TRUE(a.weights[i] == b.weights[i]) << i;
  // And the metric logs agree event for event.
  auto la = storage_->ReadMetrics(whole->name(), 1, 10000),
       lb = storage_->ReadMetrics(paused->name(), 1, 10000);
  ASSERT_EQ(la->size(), lb->size());
  for (size_t i = 0; i < la->size(); ++i)
    EXPECT_EQ((*la)[i].step().loss(), (*lb)[i].step().loss()) << i;
}

TEST_F(SessionManagerTest, ARestartResumesFromTheCheckpointBitForBit) {
  auto whole = manager_->Create(Request(3000));
  ASSERT_OK(whole);
  manager_->WaitIdle();
  auto cut = manager_->Create(Request(3000));
  ASSERT_OK(cut);
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  Open();  // Shutdown (checkpoint, stored QUEUED), then a new manager on the same storage
  manager_->WaitIdle();
  auto done = manager_->Get(cut->name());
  ASSERT_OK(done);
  EXPECT_EQ(done->state(), v1::SUCCEEDED) << done->failure_reason();
  const core::TrainerState a = FinalState(whole->name()), b = FinalState(cut->name());
  for (size_t i = 0; i < a.weights.size(); ++i) EXPECT_TRUE(a.weights[i] == b.weights[i]) << i;
  auto events = storage_->ReadMetrics(cut->name(), 1, 10000);
  for (size_t i = 0; i < events->size(); ++i)
    EXPECT_EQ((*events)[i].seq(), static_cast<int64_t>(i + 1));
}

TEST_F(SessionManagerTest, QueueLimitAndCancelWhileQueued) {
  Open(/*max_running=*/1, /*max_queued=*/2);
  auto a = manager_->Create(Request(200000));
  ASSERT_OK(a);
  // Wait until a runs, so that the queue holds exactly what follows.
  while (manager_->Get(a->name())->state() != v1::RUNNING)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  auto b = manager_->Create(Request());
  auto c = manager_->Create(Request());
  ASSERT_OK(b);
  ASSERT_OK(c);
  EXPECT_EQ(manager_->Create(Request()).status().code(), absl::StatusCode::kResourceExhausted);
  auto cancelled = manager_->Cancel(b->name());
  ASSERT_OK(cancelled);
  EXPECT_EQ(cancelled->state(), v1::CANCELLED);
  auto paused = manager_->Pause(c->name());
  ASSERT_OK(paused);
  EXPECT_EQ(paused->state(), v1::PAUSED);
  auto running = manager_->Cancel(a->name());
  ASSERT_OK(running);
  EXPECT_EQ(running->state(), v1::CANCELLED);
  EXPECT_TRUE(manager_->UsesDataset(dataset_));  // c is paused, not finished
  ASSERT_OK(manager_->Cancel(c->name()));
  EXPECT_FALSE(manager_->UsesDataset(dataset_));
}

}  // namespace
}  // namespace alignd::server
