// server/api/rpc_impl.h: what each unary RPC does, tested without gRPC on a real data
// directory (the e2e tests cover the wiring).
#include "server/api/rpc_impl.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "server/api/proto_convert.h"
#include "tests/server/server_fixture.h"

namespace alignd::server {
namespace {

const Caller kAdmin = Caller::Anonymous();

// A real storage whose metric appends wait while `*open` is false: a writer as far behind
// the training as a test wants (what a fast session's lag looks like, made certain).
class HeldBackStorage final : public ForwardingStorage {
 public:
  HeldBackStorage(std::unique_ptr<Storage> inner, absl::Mutex* mu, bool* open)
      : ForwardingStorage(std::move(inner)), mu_(mu), open_(open) {}
  absl::Status AppendMetrics(const std::string& n, const std::vector<StoredMetric>& e) override {
    {
      absl::MutexLock lock(mu_);
      mu_->Await(absl::Condition(open_));
    }
    return ForwardingStorage::AppendMetrics(n, e);
  }

 private:
  absl::Mutex* const mu_;
  bool* const open_;
};

// The same figures (NaN where the task has none: compared as bytes, not as numbers).
std::string Figures(const google::protobuf::Message& m) { return m.SerializeAsString(); }

class RpcImplTest : public ServerFixture {
 protected:
  void SetUp() override {
    wrap_ = [this](std::unique_ptr<Storage> s) -> std::unique_ptr<Storage> {
      return std::make_unique<HeldBackStorage>(std::move(s), &appends_mu_, &appends_open_);
    };
    ServerFixture::SetUp();
  }
  void TearDown() override {
    HoldAppends(false);  // a failed test must not leave the writer (and so Shutdown) waiting
    ServerFixture::TearDown();
  }
  void HoldAppends(bool hold) {
    absl::MutexLock lock(&appends_mu_);
    appends_open_ = !hold;
  }
  v1::Session Get(const std::string& name) {
    v1::GetSessionRequest get;
    get.set_name(name);
    v1::Session s;
    EXPECT_OK(GetSessionImpl(*manager_, kAdmin, get, &s));
    return s;
  }
  // The whole log from ListMetrics, page by page.
  std::vector<v1::MetricEvent> ListAll(const std::string& name, int page_size) {
    v1::ListMetricsRequest req;
    req.set_parent(name);
    req.set_page_size(page_size);
    std::vector<v1::MetricEvent> out;
    while (true) {
      v1::ListMetricsResponse resp;
      EXPECT_OK(ListMetricsImpl(*manager_, kAdmin, req, &resp));
      for (auto& e : *resp.mutable_events()) out.push_back(std::move(e));
      if (resp.next_page_token().empty()) return out;
      req.set_page_token(resp.next_page_token());
    }
  }
  // ListMetrics with max_points from `start` is the log's events at start, start + k, ...
  // and its evaluations, k from the log's length up to `last_seq` as the proto says.
  void ExpectSampled(const std::string& name, const std::vector<v1::MetricEvent>& log,
                     int64_t last_seq) {
    for (int64_t start : {1, 3})
      for (int max_points : {1, 5, 8, 1000}) {
        SCOPED_TRACE(absl::StrCat("start ", start, ", max_points ", max_points));
        v1::ListMetricsRequest req;
        req.set_parent(name);
        req.set_start_seq(start);
        req.set_max_points(max_points);
        v1::ListMetricsResponse resp;
        ASSERT_OK(ListMetricsImpl(*manager_, kAdmin, req, &resp));
        const int64_t every = std::max<int64_t>(1, (last_seq - start + max_points) / max_points);
        std::vector<int64_t> want, got;
        for (const auto& e : log)
          if (e.seq() >= start && (e.has_eval() || (e.seq() - start) % every == 0))
            want.push_back(e.seq());
        int steps = 0;
        for (const auto& e : resp.events()) {
          got.push_back(e.seq());
          steps += e.has_step();
        }
        EXPECT_EQ(got, want);
        EXPECT_LE(steps, max_points);
      }
  }
  // A session's newest figures are those of the last step and evaluation events its log
  // has up to its last_seq (none before the first).
  void ExpectLatestIsTheLogs(const v1::Session& s, const std::vector<v1::MetricEvent>& log) {
    SCOPED_TRACE(s.name());
    const v1::MetricEvent *step = nullptr, *eval = nullptr;
    for (const auto& e : log) {
      if (e.seq() > s.last_seq()) break;
      if (e.has_step()) step = &e;
      if (e.has_eval()) eval = &e;
    }
    ASSERT_EQ(s.has_latest_step(), step != nullptr);
    ASSERT_EQ(s.has_latest_eval(), eval != nullptr);
    if (step) {
      EXPECT_EQ(Figures(s.latest_step()), Figures(step->step())) << step->seq();
    }
    if (eval) {
      EXPECT_EQ(Figures(s.latest_eval()), Figures(eval->eval())) << eval->seq();
    }
  }

  absl::Mutex appends_mu_;
  bool appends_open_ ABSL_GUARDED_BY(appends_mu_) = true;

  // With evaluations on the training set.
  v1::Session CreateAndFinish(int64_t steps = 400) {
    v1::Session s;
    auto req = Request(steps);
    req.mutable_session()->set_eval_dataset(dataset_);
    req.mutable_session()->mutable_config()->set_eval_every(100);
    EXPECT_OK(CreateSessionImpl(*manager_, kAdmin, req, &s));
    manager_->WaitIdle();
    v1::GetSessionRequest get;
    get.set_name(s.name());
    EXPECT_OK(GetSessionImpl(*manager_, kAdmin, get, &s));
    return s;
  }
};

TEST_F(RpcImplTest, CreateValidatesWithoutTrainingAndCountsTheSteps) {
  v1::Session s;
  auto req = Request(0);
  req.mutable_session()->mutable_config()->set_epochs(
      3);  // 400 examples / batch 4 = 100 steps an epoch
  ASSERT_OK(CreateSessionImpl(*manager_, kAdmin, req, &s));
  EXPECT_EQ(s.total_steps(), 300);
  req.mutable_session()->set_train_dataset("datasets/../x");
  EXPECT_EQ(CreateSessionImpl(*manager_, kAdmin, req, &s).code(),
            absl::StatusCode::kInvalidArgument);
  req = Request();
  req.mutable_session()->mutable_config()->set_batch_size(401);
  const absl::Status st = CreateSessionImpl(*manager_, kAdmin, req, &s);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(st.message()).find("session.config.batch_size is 401"), std::string::npos)
      << st;
}

TEST_F(RpcImplTest, ListSessionsPagesWithTokensItGaveAndRefusesOthers) {
  for (int i = 0; i < 5; ++i) {
    v1::Session s;
    ASSERT_OK(CreateSessionImpl(*manager_, kAdmin, Request(10), &s));
  }
  manager_->WaitIdle();
  v1::ListSessionsRequest req;
  req.set_page_size(2);
  std::vector<std::string> names;
  for (int page = 0; page < 10; ++page) {
    v1::ListSessionsResponse resp;
    ASSERT_OK(ListSessionsImpl(*manager_, kAdmin, req, &resp));
    for (const auto& s : resp.sessions()) names.push_back(s.name());
    if (resp.next_page_token().empty()) break;
    req.set_page_token(resp.next_page_token());
  }
  EXPECT_EQ(names.size(), 5u);
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
  v1::ListSessionsResponse resp;
  req.set_page_token("garbage");
  EXPECT_EQ(ListSessionsImpl(*manager_, kAdmin, req, &resp).code(),
            absl::StatusCode::kInvalidArgument);
  req.set_page_token("");
  req.set_state(static_cast<v1::SessionState>(99));
  EXPECT_EQ(ListSessionsImpl(*manager_, kAdmin, req, &resp).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(RpcImplTest, ListMetricsPagesAndDownsamplesKeepingEvaluations) {
  const v1::Session s = CreateAndFinish();
  v1::ListMetricsRequest req;
  req.set_parent(s.name());
  req.set_page_size(15);
  int64_t events = 0, next = 1;
  for (int page = 0; page < 10; ++page) {
    v1::ListMetricsResponse resp;
    ASSERT_OK(ListMetricsImpl(*manager_, kAdmin, req, &resp));
    for (const auto& e : resp.events()) EXPECT_EQ(e.seq(), next++);
    events += resp.events_size();
    if (resp.next_page_token().empty()) break;
    req.set_page_token(resp.next_page_token());
  }
  EXPECT_EQ(events, s.last_seq());
  req.Clear();
  req.set_parent(s.name());
  req.set_max_points(8);
  v1::ListMetricsResponse thin;
  ASSERT_OK(ListMetricsImpl(*manager_, kAdmin, req, &thin));
  int steps = 0, evals = 0;
  for (const auto& e : thin.events()) (e.has_step() ? steps : evals)++;
  EXPECT_LE(steps, 8);
  EXPECT_GE(steps, 5);
  EXPECT_GE(evals, 1);  // the final evaluation is never thinned out
  req.set_page_token("x");
  EXPECT_EQ(ListMetricsImpl(*manager_, kAdmin, req, &thin).code(),
            absl::StatusCode::kInvalidArgument);
  req.set_page_token("");
  req.set_max_points(-1);
  EXPECT_EQ(ListMetricsImpl(*manager_, kAdmin, req, &thin).code(),
            absl::StatusCode::kInvalidArgument);
}

// Events reach storage in batches after last_seq counts them (for a fast session, many
// thousands later). ListMetrics up to last_seq is still the whole log: what storage lacks
// comes from the session's ring. Here the writer is held back entirely while the run ends.
TEST_F(RpcImplTest, ListMetricsUpToLastSeqIsGaplessHoweverFarStorageLags) {
  const v1::Session reference = CreateAndFinish();  // the log the same config makes
  const int64_t n = reference.last_seq();
  const std::vector<v1::MetricEvent> whole = ListAll(reference.name(), 10000);
  ASSERT_EQ(static_cast<int64_t>(whole.size()), n);

  HoldAppends(true);
  auto req = Request();
  req.mutable_session()->set_eval_dataset(dataset_);
  req.mutable_session()->mutable_config()->set_eval_every(100);
  // No snapshots on the way: more than kMaxQueuedSnapshots of them would (rightly) hold the
  // worker back behind the held writer. The metric log is the same.
  req.mutable_session()->set_snapshot_every(0);
  v1::Session s;
  ASSERT_OK(CreateSessionImpl(*manager_, kAdmin, req, &s));
  while (Get(s.name()).last_seq() < n) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  const v1::Session live = Get(s.name());
  EXPECT_EQ(live.state(), v1::SESSION_STATE_RUNNING);  // its writer has stored nothing yet
  ASSERT_LT(*storage_->CountMetrics(s.name()), n) << "storage does not lag: proves nothing";

  for (int pass = 0; pass < 3; ++pass) {
    SCOPED_TRACE(pass == 0 ? "nothing stored" : pass == 1 ? "all stored" : "after a restart");
    const std::vector<v1::MetricEvent> log = ListAll(s.name(), 7);
    ASSERT_EQ(static_cast<int64_t>(log.size()), n);
    for (int64_t i = 0; i < n; ++i) {
      EXPECT_EQ(log[i].seq(), i + 1);
      EXPECT_EQ(log[i].has_step() ? Figures(log[i].step()) : Figures(log[i].eval()),
                whole[i].has_step() ? Figures(whole[i].step()) : Figures(whole[i].eval()))
          << i;
    }
    ExpectSampled(s.name(), log, n);
    // The record's newest figures, from GetSession and ListSessions alike.
    ExpectLatestIsTheLogs(Get(s.name()), log);
    v1::ListSessionsResponse listed;
    ASSERT_OK(ListSessionsImpl(*manager_, kAdmin, v1::ListSessionsRequest(), &listed));
    for (const v1::Session& x : listed.sessions())
      if (x.name() == s.name()) ExpectLatestIsTheLogs(x, log);
    if (pass == 0) {
      HoldAppends(false);
      manager_->WaitIdle();
      EXPECT_EQ(Get(s.name()).state(), v1::SESSION_STATE_SUCCEEDED);
      EXPECT_EQ(*storage_->CountMetrics(s.name()), n);
    } else if (pass == 1) {
      Open();  // a new server on the same data directory: the figures were stored
    }
  }
}

// A session trained while the test lists its log over and over, its writer slowed: each
// listing up to the last_seq a GetSession just gave is gapless, and that GetSession's
// newest figures are the listing's last step and evaluation, however the ring and storage
// share the log at that moment (the ring keeps 1024 stored events; this log has 6000).
TEST_F(RpcImplTest, ListMetricsWhileASessionRunsIsGaplessAndMatchesItsLatestFigures) {
  auto req = Request(6000);
  req.mutable_session()->set_eval_dataset(dataset_);
  auto* c = req.mutable_session()->mutable_config();
  c->set_metrics_every(1);
  c->set_eval_every(50);
  v1::Session s;
  ASSERT_OK(CreateSessionImpl(*manager_, kAdmin, req, &s));
  int listings = 0;
  bool running = true;
  while (running) {
    const v1::Session now = Get(s.name());
    running = now.state() == v1::SESSION_STATE_QUEUED || now.state() == v1::SESSION_STATE_RUNNING;
    // Briefly hold the writer back every other time, so that storage lags by a lot.
    HoldAppends(listings % 2 == 0 && running);
    const std::vector<v1::MetricEvent> log = ListAll(s.name(), 10000);
    HoldAppends(false);
    ASSERT_GE(static_cast<int64_t>(log.size()), now.last_seq());
    for (size_t i = 0; i < log.size(); ++i) ASSERT_EQ(log[i].seq(), static_cast<int64_t>(i + 1));
    ExpectLatestIsTheLogs(now, log);
    ++listings;
  }
  EXPECT_EQ(Get(s.name()).state(), v1::SESSION_STATE_SUCCEEDED);
  EXPECT_GE(listings, 2);
}

TEST_F(RpcImplTest, ListSnapshotsPages) {
  const v1::Session s = CreateAndFinish();
  v1::ListSnapshotsRequest req;
  req.set_parent(s.name());
  req.set_page_size(3);
  v1::ListSnapshotsResponse a, b;
  ASSERT_OK(ListSnapshotsImpl(*manager_, kAdmin, req, &a));
  ASSERT_EQ(a.snapshots_size(), 3);
  EXPECT_EQ(a.snapshots(0).name(), s.name() + "/snapshots/100");
  req.set_page_token(a.next_page_token());
  ASSERT_OK(ListSnapshotsImpl(*manager_, kAdmin, req, &b));
  ASSERT_EQ(b.snapshots_size(), 1);
  EXPECT_EQ(b.snapshots(0).step(), 400);
  EXPECT_TRUE(b.next_page_token().empty());
  req.set_page_token("-5");
  EXPECT_EQ(ListSnapshotsImpl(*manager_, kAdmin, req, &b).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(RpcImplTest, PredictAndEvaluateServeTheStoredWeights) {
  const v1::Session s = CreateAndFinish();
  auto state = manager_->State(WeightsRef{s.name(), 400});
  ASSERT_OK(state);
  // Predict from the latest weights (the final snapshot) equals the network rebuilt here.
  core::Matrix x = core::Matrix::Random(30, 3);
  v1::PredictRequest req;
  req.set_name(s.name());
  ToProto(x, req.mutable_inputs());
  v1::PredictResponse resp;
  ASSERT_OK(PredictImpl(*manager_, kAdmin, req, &resp));
  auto served = manager_->Weights(WeightsRef{s.name(), WeightsRef::kLatest});
  ASSERT_OK(served);
  EXPECT_EQ(served->step, 400);
  auto y = served->network->Predict(x);
  ASSERT_OK(y);
  auto got = FromProto(resp.outputs(), "outputs");
  ASSERT_OK(got);
  EXPECT_TRUE(*got == *y);
  EXPECT_EQ(resp.classes_size(), 0);  // regression: no classes
  // The same step from a snapshot name is the same cached network.
  auto again = manager_->Weights(WeightsRef{s.name(), 400});
  ASSERT_OK(again);
  EXPECT_EQ(again->network.get(), served->network.get());
  // An earlier snapshot is another network.
  req.set_name(s.name() + "/snapshots/100");
  v1::PredictResponse early;
  ASSERT_OK(PredictImpl(*manager_, kAdmin, req, &early));
  EXPECT_FALSE(*FromProto(early.outputs(), "outputs") == *y);
  // Errors.
  req.set_name(s.name() + "/snapshots/150");
  EXPECT_EQ(PredictImpl(*manager_, kAdmin, req, &resp).code(), absl::StatusCode::kNotFound);
  req.set_name(s.name());
  ToProto(core::Matrix::Random(29, 3), req.mutable_inputs());
  EXPECT_EQ(PredictImpl(*manager_, kAdmin, req, &resp).code(), absl::StatusCode::kInvalidArgument);

  v1::EvaluateRequest ev;
  ev.set_name(s.name());
  v1::EvaluateResponse er;
  ASSERT_OK(EvaluateImpl(*manager_, kAdmin, ev, &er));
  EXPECT_EQ(er.metrics().examples(), 400);
  EXPECT_TRUE(std::isfinite(er.metrics().nse()));
  ev.set_dataset("datasets/!");
  EXPECT_EQ(EvaluateImpl(*manager_, kAdmin, ev, &er).code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(RpcImplTest, ASessionWithoutWeightsIsNotFound) {
  auto req = Request(1000000);
  v1::Session s;
  Open(/*max_running=*/1);
  // Fill the only worker, so that the next session stays queued without weights.
  ASSERT_OK(CreateSessionImpl(*manager_, kAdmin, req, &s));
  v1::Session queued;
  ASSERT_OK(CreateSessionImpl(*manager_, kAdmin, Request(10), &queued));
  v1::PredictRequest p;
  p.set_name(queued.name());
  ToProto(core::Matrix::Zero(30, 1), p.mutable_inputs());
  v1::PredictResponse resp;
  EXPECT_EQ(PredictImpl(*manager_, kAdmin, p, &resp).code(), absl::StatusCode::kNotFound);
  v1::CancelSessionRequest c;
  c.set_name(s.name());
  ASSERT_OK(CancelSessionImpl(*manager_, kAdmin, c, &s));
  EXPECT_EQ(s.state(), v1::SESSION_STATE_CANCELLED);
}

TEST_F(RpcImplTest, DatasetsListGetAndDelete) {
  v1::CreateGeneratedDatasetRequest gen;
  gen.mutable_spec()->set_kind(v1::GeneratorSpec::KIND_TOY);
  v1::Dataset toy;
  ASSERT_OK(CreateGeneratedDatasetImpl(*manager_, kAdmin, gen, &toy));
  v1::ListDatasetsRequest list;
  list.set_page_size(1);
  v1::ListDatasetsResponse page;
  ASSERT_OK(ListDatasetsImpl(*manager_, kAdmin, list, &page));
  ASSERT_EQ(page.datasets_size(), 1);
  ASSERT_FALSE(page.next_page_token().empty());
  list.set_page_token(page.next_page_token());
  v1::ListDatasetsResponse rest;
  ASSERT_OK(ListDatasetsImpl(*manager_, kAdmin, list, &rest));
  EXPECT_EQ(rest.datasets_size(), 1);
  list.set_page_token("sessions/x");
  EXPECT_EQ(ListDatasetsImpl(*manager_, kAdmin, list, &rest).code(),
            absl::StatusCode::kInvalidArgument);
  v1::GetDatasetRequest get;
  get.set_name(toy.name());
  v1::Dataset got;
  ASSERT_OK(GetDatasetImpl(*manager_, kAdmin, get, &got));
  EXPECT_EQ(got.sha256(), toy.sha256());
  get.set_name("toy");
  EXPECT_EQ(GetDatasetImpl(*manager_, kAdmin, get, &got).code(),
            absl::StatusCode::kInvalidArgument);
  v1::DeleteDatasetRequest del;
  del.set_name(toy.name());
  google::protobuf::Empty empty;
  ASSERT_OK(DeleteDatasetImpl(*manager_, kAdmin, del, &empty));
  EXPECT_EQ(DeleteDatasetImpl(*manager_, kAdmin, del, &empty).code(), absl::StatusCode::kNotFound);
}

// With owners, a listing pages over what the caller may see only, however the store's
// pages fall; another user's resources are NotFound in the same words as absent ones.
TEST_F(RpcImplTest, UsersListAndTouchTheirOwnOnly) {
  const Caller alice{"alice", Role::kUser}, bob{"bob", Role::kUser};
  std::vector<std::string> mine;
  for (int seed = 1; seed <= 9; ++seed) {
    v1::CreateGeneratedDatasetRequest gen;
    gen.mutable_spec()->set_kind(v1::GeneratorSpec::KIND_TOY);
    gen.mutable_spec()->set_seed(seed);
    v1::Dataset d;
    ASSERT_OK(CreateGeneratedDatasetImpl(*manager_, seed % 3 == 0 ? alice : bob, gen, &d));
    if (seed % 3 == 0) mine.push_back(d.name());
  }
  std::sort(mine.begin(), mine.end());
  v1::ListDatasetsRequest list;
  list.set_page_size(2);
  std::vector<std::string> seen;
  for (int pages = 0; pages < 10; ++pages) {
    v1::ListDatasetsResponse page;
    ASSERT_OK(ListDatasetsImpl(*manager_, alice, list, &page));
    for (const auto& d : page.datasets()) {
      seen.push_back(d.name());
      EXPECT_THAT(d.owners(), ::testing::ElementsAre("alice"));
    }
    if (page.next_page_token().empty()) break;
    list.set_page_token(page.next_page_token());
  }
  EXPECT_EQ(seen, mine);

  v1::Session s;
  auto req = Request(20);
  req.mutable_session()->set_train_dataset(mine[0]);
  auto* sizes = req.mutable_session()->mutable_config()->mutable_network()->mutable_sizes();
  sizes->Clear();
  for (int n : {1, 4, 1}) sizes->Add(n);  // the toy task's shape
  EXPECT_EQ(CreateSessionImpl(*manager_, bob, req, &s).code(), absl::StatusCode::kNotFound);
  ASSERT_OK(CreateSessionImpl(*manager_, alice, req, &s));
  EXPECT_EQ(s.owner(), "alice");
  v1::GetSessionRequest get;
  get.set_name(s.name());
  v1::Session got;
  const absl::Status hidden = GetSessionImpl(*manager_, bob, get, &got);
  get.set_name(s.name() + "x");
  const absl::Status absent = GetSessionImpl(*manager_, bob, get, &got);
  EXPECT_EQ(hidden.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(hidden.message(), absl::StrCat(s.name(), " not found"));
  EXPECT_EQ(absent.message(), absl::StrCat(s.name(), "x not found"));
  v1::ListSessionsResponse listed;
  ASSERT_OK(ListSessionsImpl(*manager_, bob, v1::ListSessionsRequest(), &listed));
  EXPECT_EQ(listed.sessions_size(), 0);
  ASSERT_OK(ListSessionsImpl(*manager_, kAdmin, v1::ListSessionsRequest(), &listed));
  EXPECT_EQ(listed.sessions_size(), 1);
  manager_->WaitIdle();
}

}  // namespace
}  // namespace alignd::server
