// server/api/rpc_impl.h: what each unary RPC does, tested without gRPC on a real data
// directory (the e2e tests cover the wiring).
#include "server/api/rpc_impl.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <iterator>
#include <map>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "alignd/v1/rule_names.h"
#include "core/learning_rule.h"
#include "formats/formats.h"
#include "server/api/proto_convert.h"
#include "server/api/snapshot_streams.h"
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

// n images of h x w (one channel), 3 classes by the brightest third of the image.
std::string UploadImages(DatasetStore& store, int n, int h, int w) {
  core::Dataset d;
  d.features = core::Matrix::Random(h * w, n);
  d.num_classes = 3;
  for (int j = 0; j < n; ++j) {
    const auto col = d.features.col(j);
    const float a = col.head(h * w / 3).sum(), b = col.segment(h * w / 3, h * w / 3).sum(),
                c = col.tail(h * w - 2 * (h * w / 3)).sum();
    d.labels.push_back(a >= b && a >= c ? 0 : b >= c ? 1 : 2);
  }
  const std::string payload = EncodePayload(d);
  v1::DatasetHeader header;
  header.set_num_examples(n);
  header.add_feature_shape(h);
  header.add_feature_shape(w);
  header.set_target_kind(v1::TARGET_KIND_CLASS_LABELS);
  header.set_num_classes(3);
  header.set_sha256(formats::Sha256Hex(payload));
  auto up = store.BeginUpload(header);
  EXPECT_OK(up);
  EXPECT_OK((*up)->Append(payload));
  auto meta = (*up)->Finish();
  EXPECT_OK(meta);
  return meta->name();
}

v1::CreateSessionRequest ConvRequest(const std::string& dataset, const std::string& layers_text) {
  v1::CreateSessionRequest r;
  v1::Session* s = r.mutable_session();
  s->set_train_dataset(dataset);
  auto* c = s->mutable_config();
  // "c4k3,p2,d3": conv 4 channels 3x3, max pool 2, dense 3.
  for (absl::string_view item : absl::StrSplit(layers_text, ',')) {
    v1::LayerSpec* l = c->mutable_network()->add_layers();
    int v = 0;
    if (item[0] == 'c') {
      const auto k = item.find('k');
      (void)absl::SimpleAtoi(item.substr(1, k - 1), &v);
      l->set_kind(v1::LAYER_KIND_CONV);
      l->set_units(v);
      (void)absl::SimpleAtoi(item.substr(k + 1), &v);
      l->set_kernel_h(v);
    } else if (item[0] == 'p') {
      (void)absl::SimpleAtoi(item.substr(1), &v);
      l->set_kind(v1::LAYER_KIND_MAX_POOL);
      l->set_kernel_h(v);
    } else {
      (void)absl::SimpleAtoi(item.substr(1), &v);
      l->set_units(v);
    }
  }
  c->mutable_network()->set_output_activation(v1::ACTIVATION_SOFTMAX);
  c->mutable_network()->set_loss(v1::LOSS_CROSS_ENTROPY);
  c->mutable_feedback()->set_rule(v1::RULE_FEEDBACK_ALIGNMENT);
  c->set_batch_size(8);
  c->set_max_steps(20);
  c->set_metrics_every(5);
  s->set_snapshot_every(10);
  return r;
}

// A conv net through Create, training and the snapshot: the image shape from the data set,
// the sizes filled in, each layer's kind, and kernels as [out, in, kh, kw] in C order.
TEST_F(RpcImplTest, AConvSessionTakesItsImageShapeFromTheDataAndSnapshotsKernelsIn4D) {
  const std::string images = UploadImages(*store_, 64, 8, 8);
  v1::Session s;
  ASSERT_OK(CreateSessionImpl(*manager_, kAdmin, ConvRequest(images, "c4k3,p2,d3"), &s));
  const auto& net = s.config().network();
  EXPECT_EQ(net.input_shape().channels(), 1);
  EXPECT_EQ(net.input_shape().height(), 8);
  EXPECT_EQ(net.input_shape().width(), 8);
  EXPECT_EQ(std::vector<int>(net.sizes().begin(), net.sizes().end()),
            (std::vector<int>{64, 144, 36, 3}));  // 4x6x6, 4x3x3
  manager_->WaitIdle();
  s = Get(s.name());
  ASSERT_EQ(s.state(), v1::SESSION_STATE_SUCCEEDED) << s.failure_reason();
  // Alignment: one entry per hidden activation (into the pool, into the dense layer).
  ASSERT_TRUE(s.has_latest_step());
  EXPECT_EQ(s.latest_step().alignment_size(), 2);

  v1::GetSnapshotRequest get;
  get.set_name(s.name() + "/snapshots/latest");
  v1::Snapshot snap;
  ASSERT_OK(GetSnapshotImpl(*manager_, kAdmin, get, &snap));
  ASSERT_EQ(snap.layer_kinds_size(), 3);
  EXPECT_EQ(snap.layer_kinds(0), v1::LAYER_KIND_CONV);
  EXPECT_EQ(snap.layer_kinds(1), v1::LAYER_KIND_MAX_POOL);
  EXPECT_EQ(snap.layer_kinds(2), v1::LAYER_KIND_DENSE);
  std::map<std::string, v1::TensorShape> shapes;
  for (const auto& t : snap.shapes()) shapes[t.label()] = t;
  EXPECT_THAT(shapes["W0"].dims(), ::testing::ElementsAre(4, 1, 3, 3));
  EXPECT_EQ(shapes["W0"].rows(), 4);
  EXPECT_EQ(shapes["W0"].cols(), 9);
  EXPECT_THAT(shapes["W1"].dims(), ::testing::ElementsAre(0, 0));  // pooling: no weights
  EXPECT_THAT(shapes["W2"].dims(), ::testing::ElementsAre(3, 36));
  EXPECT_THAT(shapes["B2"].dims(), ::testing::ElementsAre(36, 3));  // W^T's shape, dense

  // The values: W0 in C order of [4, 1, 3, 3] is the kernel, element (o, i, r, s) =
  // W(o, (i * 3 + r) * 3 + s); the dense W2 column-major as before.
  auto state = manager_->State(WeightsRef{s.name(), WeightsRef::kLatest});
  ASSERT_OK(state);
  const auto chunks =
      SnapshotChunks(snap.name(), *state, manager_->Find(s.name()).value()->options().network);
  std::vector<float> all;
  for (const auto& c : chunks)
    if (c.has_values()) all.insert(all.end(), c.values().data().begin(), c.values().data().end());
  ASSERT_EQ(static_cast<int64_t>(all.size()), snap.total_values());
  int64_t off = 0;
  for (const auto& t : snap.shapes()) {
    if (t.label() == "W0") {
      const core::Matrix& w = state->weights[0];
      for (int o = 0; o < 4; ++o)
        for (int r = 0; r < 3; ++r)
          for (int c = 0; c < 3; ++c) EXPECT_EQ(all[off + (o * 3 + r) * 3 + c], w(o, r * 3 + c));
    }
    if (t.label() == "W2") {
      const core::Matrix& w = state->weights[2];
      for (int j = 0; j < 36; ++j)
        for (int i = 0; i < 3; ++i) EXPECT_EQ(all[off + j * 3 + i], w(i, j));
    }
    off += t.rows() * t.cols();
  }

  // Predict with image inputs: 64 values an example.
  v1::PredictRequest pr;
  pr.set_name(s.name());
  ToProto(core::Matrix::Random(64, 2), pr.mutable_inputs());
  v1::PredictResponse resp;
  ASSERT_OK(PredictImpl(*manager_, kAdmin, pr, &resp));
  EXPECT_EQ(resp.outputs().rows(), 3);
  EXPECT_EQ(resp.classes_size(), 2);
}

TEST_F(RpcImplTest, ConvConfigsThatCannotBeAreRefusedNamingTheField) {
  const std::string images = UploadImages(*store_, 64, 8, 8);
  struct Case {
    std::string dataset, layers;
    std::function<void(v1::CreateSessionRequest&)> change;
    std::string message;
  };
  const Case cases[] = {
      {images, "c4k9,d3", nullptr,
       "session.config.network.layers[0] (conv): a 9x9 kernel is larger than its 1x8x8 input"},
      {images, "d20,p2,d3", nullptr,
       "session.config.network.layers[1] (maxpool) needs an image input, but the layer before "
       "it is flat"},
      {dataset_, "c4k3,d10", nullptr,
       "session.config.network.layers[0] (conv) needs an image input"},  // 30 flat features
      {images, "c4k3,p2,d3",
       [](v1::CreateSessionRequest& r) {
         r.mutable_session()->mutable_config()->mutable_feedback()->set_rule(
             v1::RULE_PSEUDO_BACKPROP);
       },
       "session.config.feedback.rule pbp does not train convolution layers"},
      {images, "c4k3,p2,d3",
       [](v1::CreateSessionRequest& r) {
         for (int v : {64, 144, 36, 4})
           r.mutable_session()->mutable_config()->mutable_network()->add_sizes(v);
       },
       "session.config.network.sizes is [64, 144, 36, 4] but network.layers make [64, 144, 36, "
       "3]"},
      {images, "c4k3,p2,d5", nullptr, "session.config.network.sizes[3]"},  // 5 outputs, 3 classes
      // Client-declared sizes whose products would overflow 64 bits (2^64 + 66050 values).
      {images, "p1,d10",
       [](v1::CreateSessionRequest& r) {
         auto* in = r.mutable_session()->mutable_config()->mutable_network()->mutable_input_shape();
         in->set_channels(131483);
         in->set_height(131586);
         in->set_width(1066204307);
       },
       "session.config.network.input_shape must be in [1, 65536] in every dimension"},
      {images, "c1k3,d10",
       [](v1::CreateSessionRequest& r) {
         auto* l = r.mutable_session()->mutable_config()->mutable_network()->mutable_layers(0);
         l->set_kernel_h(2147352580);
         l->set_kernel_w(1073807362);
         l->set_padding(1073807361);
       },
       "session.config.network.layers[0] (conv) kernel must be in [1, 4096]"},
  };
  for (const Case& k : cases) {
    SCOPED_TRACE(k.message);
    auto req = ConvRequest(k.dataset, k.layers);
    if (k.change) k.change(req);
    v1::Session s;
    const absl::Status st = CreateSessionImpl(*manager_, kAdmin, req, &s);
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << st;
    EXPECT_NE(std::string(st.message()).find(k.message), std::string::npos) << st;
  }
  // A data set that is not there is NOT_FOUND, named, before its shape is missed.
  v1::Session s;
  const absl::Status missing = CreateSessionImpl(
      *manager_, kAdmin, ConvRequest("datasets/00000000deadbeef", "c4k3,d10"), &s);
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound) << missing;
  EXPECT_NE(std::string(missing.message()).find("session.train_dataset"), std::string::npos)
      << missing;
  // The flat data's refusal says what to do.
  const absl::Status flat =
      CreateSessionImpl(*manager_, kAdmin, ConvRequest(dataset_, "c4k3,d10"), &s);
  EXPECT_NE(std::string(flat.message()).find("set config.network.input_shape, or upload images"),
            std::string::npos)
      << flat;
}

TEST_F(RpcImplTest, AConvNetOverTheMemoryLimitIsResourceExhausted) {
  const std::string images = UploadImages(*store_, 512, 16, 16);
  SessionManagerOptions o;
  o.max_session_bytes = 64 << 20;
  SessionManager small(storage_.get(), store_.get(), o);
  ASSERT_OK(small.Start());
  // 64 channels of 16x16 at batch 512: 32 MiB an activation, several of them.
  auto req = ConvRequest(images, "c64k3,c64k3,p2,d3");
  for (int k : {0, 1})
    req.mutable_session()->mutable_config()->mutable_network()->mutable_layers(k)->set_padding(1);
  req.mutable_session()->mutable_config()->set_batch_size(512);
  v1::Session s;
  const absl::Status st = CreateSessionImpl(small, kAdmin, req, &s);
  EXPECT_EQ(st.code(), absl::StatusCode::kResourceExhausted) << st;
  EXPECT_NE(std::string(st.message()).find("--max_session_bytes"), std::string::npos) << st;
  // At batch 8 it fits (the server with the default limit takes it).
  req.mutable_session()->mutable_config()->set_batch_size(8);
  req.mutable_session()->mutable_config()->set_max_steps(1);
  EXPECT_OK(CreateSessionImpl(*manager_, kAdmin, req, &s));
  manager_->WaitIdle();
}

TEST_F(RpcImplTest, ListRulesIsTheEnginesTable) {
  v1::ListRulesResponse resp;
  ASSERT_OK(ListRulesImpl(*manager_, kAdmin, v1::ListRulesRequest(), &resp));
  ASSERT_EQ(resp.rules_size(), static_cast<int>(std::size(core::kRuleTable)));
  std::map<std::string, v1::RuleInfo> by_name;
  for (const auto& r : resp.rules()) by_name[r.name()] = r;
  EXPECT_EQ(resp.rules(0).name(), "bp");
  EXPECT_EQ(by_name["fa"].rule(), v1::RULE_FEEDBACK_ALIGNMENT);
  EXPECT_EQ(by_name["fa"].long_name(), "feedback_alignment");
  EXPECT_EQ(by_name["fa"].title(), "Feedback alignment");
  EXPECT_TRUE(by_name["fa"].draws_feedback());
  EXPECT_TRUE(by_name["fa"].trains_conv());
  EXPECT_EQ(by_name["fa"].feedback_shape(), v1::FEEDBACK_SHAPE_LIKE_W);
  EXPECT_EQ(by_name["dfa"].feedback_shape(), v1::FEEDBACK_SHAPE_OUTPUT_TO_UNITS);
  EXPECT_FALSE(by_name["pbp"].trains_conv());
  EXPECT_TRUE(by_name["kp"].learns_feedback());
  EXPECT_FALSE(by_name["shallow"].learns_hidden());
  EXPECT_FALSE(by_name["bp"].reference().empty());
  // Every rule of the wire has its row.
  for (v1::Rule r : v1::AllRules()) EXPECT_TRUE(by_name.count(v1::RuleShortName(r))) << r;
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
