// server/rpc_impl.h: what each unary RPC does, tested without gRPC on a real data
// directory (the e2e tests cover the wiring).
#include "server/rpc_impl.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>

#include "server/proto_convert.h"
#include "tests/server/server_fixture.h"

namespace alignd::server {
namespace {

const Caller kAdmin = Caller::Anonymous();

class RpcImplTest : public ServerFixture {
 protected:
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
