// File: tests/server/server_fixture.h
// -----------------------------------------------------------------------------
// A server's parts in-process on a real SQLite data directory: storage (optionally
// wrapped, e.g. to watch which thread calls it), the data set store, the session
// manager, and a small generated data set.
#ifndef ALIGND_TESTS_SERVER_SERVER_FIXTURE_H_
#define ALIGND_TESTS_SERVER_SERVER_FIXTURE_H_

#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include "server/sessions/dataset_store.h"
#include "server/sessions/session_manager.h"
#include "server/storage/forwarding_storage.h"
#include "server/storage/sqlite_storage.h"
#include "tests/test_util.h"

namespace alignd::server {

class ServerFixture : public ::testing::Test {
 protected:
  using Wrap = std::function<std::unique_ptr<Storage>(std::unique_ptr<Storage>)>;

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
  void TearDown() override {
    manager_.reset();
    store_.reset();
    storage_.reset();
  }

  void Open(int max_running = 2, int max_queued = 64, int max_threads = 2) {
    manager_.reset();
    store_.reset();
    storage_.reset();
    std::unique_ptr<Storage> s = *OpenSqliteStorage(dir_.string());
    storage_ = wrap_ ? wrap_(std::move(s)) : std::move(s);
    store_ = std::make_unique<DatasetStore>(storage_.get(), DatasetLimits{});
    SessionManagerOptions o;
    o.max_running = max_running;
    o.max_queued = max_queued;
    o.max_threads = max_threads;
    o.checkpoint_every = 50;
    manager_ = std::make_unique<SessionManager>(storage_.get(), store_.get(), o);
    ASSERT_OK(manager_->Start());
  }

  // A 30-20-10 FA session on the linear task: 400 steps at batch 4, an event every 10.
  v1::CreateSessionRequest Request(int64_t steps = 400) {
    v1::CreateSessionRequest r;
    v1::Session* s = r.mutable_session();
    s->set_train_dataset(dataset_);
    auto* c = s->mutable_config();
    for (int s : {30, 20, 10}) c->mutable_network()->add_sizes(s);
    c->mutable_feedback()->set_rule(v1::RULE_FEEDBACK_ALIGNMENT);
    c->set_batch_size(4);
    c->set_max_steps(steps);
    c->set_metrics_every(10);
    c->set_seed(7);
    s->set_snapshot_every(100);
    return r;
  }

  std::filesystem::path dir_;
  Wrap wrap_;
  std::unique_ptr<Storage> storage_;
  std::unique_ptr<DatasetStore> store_;
  std::unique_ptr<SessionManager> manager_;
  std::string dataset_;
};

}  // namespace alignd::server

#endif  // ALIGND_TESTS_SERVER_SERVER_FIXTURE_H_
