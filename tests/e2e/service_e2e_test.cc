// End to end: a real alignd process on 127.0.0.1 (ephemeral port, temporary data
// directory) driven through its gRPC API: the life of a session, streams cut and
// resumed, kill -9 and restart, many sessions and subscribers, bad requests.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "alignd/health/v1/health.grpc.pb.h"
#include "alignd/v1/datasets.grpc.pb.h"
#include "alignd/v1/sessions.grpc.pb.h"
#include "tests/e2e/server_process.h"
#include "tests/test_util.h"

namespace alignd {
namespace {

using alignd::testing::ServerProcess;

class ServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ =
        alignd::testing::TempDir(::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    Start();
  }

  void Start() {
    server_ = std::make_unique<ServerProcess>(
        ALIGND_BINARY, dir_.string(),
        std::vector<std::string>{"--max_running", "2", "--checkpoint_every", "100",
                                 "--heartbeat_ms", "200"});
    channel_ = grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials());
    ASSERT_TRUE(
        channel_->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(10)));
    datasets_ = v1::DatasetService::NewStub(channel_);
    training_ = v1::TrainingService::NewStub(channel_);
    health_ = grpc::health::v1::Health::NewStub(channel_);
  }

  std::string Generated(int64_t n = 500) {
    v1::CreateGeneratedDatasetRequest req;
    req.mutable_spec()->set_kind(v1::GeneratorSpec::KIND_LINEAR);
    req.mutable_spec()->set_num_examples(n);
    v1::Dataset d;
    grpc::ClientContext ctx;
    EXPECT_TRUE(datasets_->CreateGeneratedDataset(&ctx, req, &d).ok());
    return d.name();
  }

  v1::CreateSessionRequest Request(const std::string& dataset, int64_t steps,
                                   v1::Rule rule = v1::RULE_FEEDBACK_ALIGNMENT,
                                   std::vector<int> sizes = {30, 20, 10}) {
    v1::CreateSessionRequest r;
    r.mutable_session()->set_train_dataset(dataset);
    auto* c = r.mutable_session()->mutable_config();
    for (int s : sizes) c->mutable_network()->add_sizes(s);
    c->mutable_feedback()->set_rule(rule);
    c->set_batch_size(4);
    c->set_max_steps(steps);
    c->set_metrics_every(10);
    c->set_seed(3);
    return r;
  }

  v1::Session Create(const v1::CreateSessionRequest& r) {
    v1::Session s;
    grpc::ClientContext ctx;
    const grpc::Status st = training_->CreateSession(&ctx, r, &s);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return s;
  }

  // Reads a metric stream from start_seq; stops after `limit` step/eval events if > 0.
  struct Read {
    std::vector<v1::MetricEvent> events;  // step and eval events
    bool ended = false;
    v1::Session end;
    int heartbeats = 0;
    grpc::Status status;
  };
  Read Stream(const std::string& name, int64_t start_seq, int limit = 0) {
    Read out;
    grpc::ClientContext ctx;
    v1::StreamMetricsRequest req;
    req.set_parent(name);
    req.set_start_seq(start_seq);
    auto reader = training_->StreamMetrics(&ctx, req);
    v1::MetricEvent e;
    while (reader->Read(&e)) {
      if (e.has_end()) {
        out.ended = true;
        out.end = e.end();
      } else if (e.has_heartbeat()) {
        ++out.heartbeats;
      } else {
        out.events.push_back(e);
        if (limit > 0 && static_cast<int>(out.events.size()) == limit) {
          ctx.TryCancel();
          break;
        }
      }
    }
    out.status = reader->Finish();
    return out;
  }

  std::vector<float> Weights(const std::string& snapshot_name) {
    grpc::ClientContext ctx;
    v1::ReadSnapshotRequest req;
    req.set_name(snapshot_name);
    auto reader = training_->ReadSnapshot(&ctx, req);
    v1::SnapshotChunk chunk;
    std::vector<float> values;
    int64_t total = -1;
    while (reader->Read(&chunk)) {
      if (chunk.has_header())
        total = chunk.header().total_values();
      else {
        EXPECT_EQ(chunk.values().offset(), static_cast<int64_t>(values.size()));
        values.insert(values.end(), chunk.values().data().begin(), chunk.values().data().end());
      }
    }
    const grpc::Status st = reader->Finish();
    EXPECT_TRUE(st.ok()) << st.error_message();
    EXPECT_EQ(total, static_cast<int64_t>(values.size()));
    return values;
  }

  grpc::health::v1::HealthCheckResponse::ServingStatus Health() {
    grpc::ClientContext ctx;
    grpc::health::v1::HealthCheckRequest req;
    grpc::health::v1::HealthCheckResponse resp;
    if (!health_->Check(&ctx, req, &resp).ok())
      return grpc::health::v1::HealthCheckResponse::UNKNOWN;
    return resp.status();
  }

  std::filesystem::path dir_;
  std::unique_ptr<ServerProcess> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::DatasetService::Stub> datasets_;
  std::unique_ptr<v1::TrainingService::Stub> training_;
  std::unique_ptr<grpc::health::v1::Health::Stub> health_;
};

TEST_F(ServiceTest, TheLifeOfASession) {
  EXPECT_EQ(Health(), grpc::health::v1::HealthCheckResponse::SERVING);
  const std::string data = Generated();
  v1::Session s = Create(Request(data, 500));
  EXPECT_EQ(s.state(), v1::SESSION_STATE_QUEUED);
  Read r = Stream(s.name(), 0);
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  ASSERT_TRUE(r.ended);
  EXPECT_EQ(r.end.state(), v1::SESSION_STATE_SUCCEEDED);
  ASSERT_EQ(r.events.size(), 50u);
  for (size_t i = 0; i < r.events.size(); ++i)
    EXPECT_EQ(r.events[i].seq(), static_cast<int64_t>(i + 1));
  EXPECT_EQ(r.events.back().step().alignment_size(), 1);
  EXPECT_GT(r.events.front().step().alignment(0).update_angle_mean(), 0.0);
  // Weights: W0 (20x30) b0 B0 (0x0) W1 (10x20) b1 B1 (20x10).
  const std::vector<float> w = Weights(s.name() + "/snapshots/latest");
  EXPECT_EQ(w.size(), 600u + 20 + 200 + 10 + 200);
  // Predict with the final weights.
  v1::PredictRequest pr;
  pr.set_name(s.name());
  pr.mutable_inputs()->set_rows(30);
  pr.mutable_inputs()->set_cols(2);
  for (int i = 0; i < 60; ++i) pr.mutable_inputs()->add_values(0.1f * (i % 7));
  v1::PredictResponse presp;
  grpc::ClientContext ctx;
  ASSERT_TRUE(training_->Predict(&ctx, pr, &presp).ok());
  EXPECT_EQ(presp.outputs().rows(), 10);
  EXPECT_EQ(presp.outputs().cols(), 2);
}

TEST_F(ServiceTest, IdleStreamsGetHeartbeatsUntilTheEnd) {
  const std::string data = Generated();
  v1::CreateSessionRequest r =
      Request(data, 40000, v1::RULE_FEEDBACK_ALIGNMENT, {30, 256, 256, 10});
  // No metric events at all: only heartbeats, then the end.
  r.mutable_session()->mutable_config()->set_metrics_every(0);
  v1::Session s = Create(r);
  Read read = Stream(s.name(), 0);
  ASSERT_TRUE(read.ended);
  EXPECT_EQ(read.end.state(), v1::SESSION_STATE_SUCCEEDED);
  EXPECT_TRUE(read.events.empty());
  EXPECT_GE(read.heartbeats, 2);  // --heartbeat_ms 200 over more than a second of training
}

TEST_F(ServiceTest, AStreamCutMidwayResumesWithNoGapAndNoDuplicate) {
  const std::string data = Generated();
  v1::Session s = Create(Request(data, 3000));
  Read first = Stream(s.name(), 0, /*limit=*/37);
  ASSERT_EQ(first.events.size(), 37u);
  Read rest = Stream(s.name(), first.events.back().seq() + 1);
  ASSERT_TRUE(rest.ended);
  std::vector<int64_t> seqs;
  for (auto* part : {&first, &rest})
    for (const auto& e : part->events) seqs.push_back(e.seq());
  ASSERT_EQ(seqs.size(), 300u);
  for (size_t i = 0; i < seqs.size(); ++i) EXPECT_EQ(seqs[i], static_cast<int64_t>(i + 1));
}

TEST_F(ServiceTest, KillMinus9DuringTrainingThenRestartFinishesWithTheSameWeights) {
  const std::string data = Generated();
  // Wide enough that training is still under way when the kill comes (~4k steps/s).
  const std::vector<int> wide = {30, 256, 256, 10};
  v1::Session reference = Create(Request(data, 20000, v1::RULE_FEEDBACK_ALIGNMENT, wide));
  ASSERT_EQ(Stream(reference.name(), 0).end.state(), v1::SESSION_STATE_SUCCEEDED);
  v1::Session victim = Create(Request(data, 20000, v1::RULE_FEEDBACK_ALIGNMENT, wide));
  // Let it train past a few checkpoints, then kill without warning.
  Read some = Stream(victim.name(), 0, /*limit=*/600);
  ASSERT_EQ(some.events.size(), 600u);
  server_->Kill();
  Start();
  v1::GetSessionRequest get;
  get.set_name(victim.name());
  v1::Session mid;
  grpc::ClientContext get_ctx;
  ASSERT_TRUE(training_->GetSession(&get_ctx, get, &mid).ok());
  EXPECT_LT(mid.step(), 20000) << "the kill came after the end: the test proves nothing";
  Read after = Stream(victim.name(), 0);
  ASSERT_TRUE(after.ended);
  ASSERT_EQ(after.end.state(), v1::SESSION_STATE_SUCCEEDED) << after.end.failure_reason();
  // The log is whole: every metric step once, in order.
  ASSERT_EQ(after.events.size(), 2000u);
  for (size_t i = 0; i < after.events.size(); ++i) {
    EXPECT_EQ(after.events[i].seq(), static_cast<int64_t>(i + 1));
    EXPECT_EQ(after.events[i].step().step(), static_cast<int64_t>(10 * i + 1));
  }
  EXPECT_EQ(Weights(victim.name() + "/snapshots/latest"),
            Weights(reference.name() + "/snapshots/latest"));
  // Its data set survived too.
  v1::GetDatasetRequest g;
  g.set_name(data);
  v1::Dataset d;
  grpc::ClientContext ctx;
  EXPECT_TRUE(datasets_->GetDataset(&ctx, g, &d).ok());
}

TEST_F(ServiceTest, PauseThenResumeGivesTheWeightsOfARunNeverPaused) {
  const std::string data = Generated();
  const std::vector<int> wide = {30, 256, 256, 10};
  v1::Session reference = Create(Request(data, 12000, v1::RULE_KOLEN_POLLACK, wide));
  ASSERT_EQ(Stream(reference.name(), 0).end.state(), v1::SESSION_STATE_SUCCEEDED);
  v1::Session s = Create(Request(data, 12000, v1::RULE_KOLEN_POLLACK, wide));
  int pauses = 0;
  for (int k = 0; k < 3; ++k) {
    Stream(s.name(), 0, /*limit=*/200 * (k + 1));  // let it train a while
    v1::PauseSessionRequest p;
    p.set_name(s.name());
    v1::Session paused;
    grpc::ClientContext pctx;
    if (!training_->PauseSession(&pctx, p, &paused).ok()) break;  // already finished
    EXPECT_EQ(paused.state(), v1::SESSION_STATE_PAUSED);
    ++pauses;
    // A paused session's stream ends with an `end` event that says PAUSED.
    EXPECT_EQ(Stream(s.name(), paused.last_seq() + 1).end.state(), v1::SESSION_STATE_PAUSED);
    v1::ResumeSessionRequest r;
    r.set_name(s.name());
    v1::Session resumed;
    grpc::ClientContext rctx;
    ASSERT_TRUE(training_->ResumeSession(&rctx, r, &resumed).ok());
    EXPECT_EQ(resumed.state(), v1::SESSION_STATE_QUEUED);
  }
  EXPECT_GE(pauses, 1) << "never caught it running: the test proves nothing";
  Read all = Stream(s.name(), 0);
  ASSERT_EQ(all.end.state(), v1::SESSION_STATE_SUCCEEDED);
  EXPECT_EQ(all.events.size(), 1200u);
  EXPECT_EQ(Weights(s.name() + "/snapshots/latest"),
            Weights(reference.name() + "/snapshots/latest"));
}

// Sessions trained side by side (--max_running 2) end with the weights and the metric
// log of the same session trained alone, bit for bit: their products run at the same
// time on two threads (a product library that is not thread-safe fails this).
TEST_F(ServiceTest, IdenticalSessionsSideBySideEqualOneTrainedAlone) {
  const std::string data = Generated(2000);
  for (v1::Rule rule : {v1::RULE_BACKPROP, v1::RULE_FEEDBACK_ALIGNMENT}) {
    SCOPED_TRACE(v1::Rule_Name(rule));
    v1::CreateSessionRequest r = Request(data, 1500, rule, {30, 256, 256, 10});
    r.mutable_session()->mutable_config()->set_batch_size(32);
    v1::Session alone = Create(r);
    const Read reference = Stream(alone.name(), 0);
    ASSERT_EQ(reference.end.state(), v1::SESSION_STATE_SUCCEEDED);
    const std::vector<float> want = Weights(alone.name() + "/snapshots/latest");
    std::vector<v1::Session> twins;
    for (int k = 0; k < 3; ++k) twins.push_back(Create(r));
    // Two of the three run at once from their first step (both workers are free).
    for (const v1::Session& twin : twins) {
      const Read got = Stream(twin.name(), 0);
      ASSERT_EQ(got.end.state(), v1::SESSION_STATE_SUCCEEDED);
      ASSERT_EQ(got.events.size(), reference.events.size());
      for (size_t i = 0; i < got.events.size(); ++i)
        ASSERT_EQ(got.events[i].step().loss(), reference.events[i].step().loss()) << "event " << i;
      EXPECT_TRUE(Weights(twin.name() + "/snapshots/latest") == want) << twin.name();
    }
  }
}

// Predict serves networks from a cache keyed by the weights file: repeated requests give
// the same answer, each snapshot its own, and new weights (a checkpoint written by a
// pause, then the final ones) replace the old at once for "the latest weights".
TEST_F(ServiceTest, PredictFollowsTheWeightsThroughItsCache) {
  const std::string data = Generated(2000);
  auto predict = [&](const std::string& name) {
    v1::PredictRequest pr;
    pr.set_name(name);
    pr.mutable_inputs()->set_rows(30);
    pr.mutable_inputs()->set_cols(3);
    for (int i = 0; i < 90; ++i) pr.mutable_inputs()->add_values(0.05f * (i % 11) - 0.2f);
    v1::PredictResponse resp;
    grpc::ClientContext ctx;
    const grpc::Status st = training_->Predict(&ctx, pr, &resp);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return std::vector<float>(resp.outputs().values().begin(), resp.outputs().values().end());
  };
  v1::CreateSessionRequest r =
      Request(data, 30000, v1::RULE_FEEDBACK_ALIGNMENT, {30, 256, 256, 10});
  r.mutable_session()->set_snapshot_every(100);
  v1::Session s = Create(r);
  Stream(s.name(), 0, /*limit=*/300);  // let it train a while
  v1::PauseSessionRequest p;
  p.set_name(s.name());
  v1::Session paused;
  grpc::ClientContext pctx;
  ASSERT_TRUE(training_->PauseSession(&pctx, p, &paused).ok());
  ASSERT_EQ(paused.state(), v1::SESSION_STATE_PAUSED);
  const std::vector<float> at_pause = predict(s.name());
  EXPECT_EQ(predict(s.name()), at_pause);  // the cached network, same answer
  EXPECT_EQ(predict(s.name() + "/snapshots/100"), predict(s.name() + "/snapshots/100"));
  EXPECT_NE(predict(s.name() + "/snapshots/100"), predict(s.name() + "/snapshots/200"));
  v1::ResumeSessionRequest rr;
  rr.set_name(s.name());
  v1::Session resumed;
  grpc::ClientContext rctx;
  ASSERT_TRUE(training_->ResumeSession(&rctx, rr, &resumed).ok());
  ASSERT_EQ(Stream(s.name(), 0).end.state(), v1::SESSION_STATE_SUCCEEDED);
  const std::vector<float> at_end = predict(s.name());
  EXPECT_NE(at_end, at_pause);
  EXPECT_EQ(at_end, predict(s.name() + "/snapshots/30000"));
}

TEST_F(ServiceTest, EightSessionsAndThirtyTwoSubscribersLoseNothing) {
  const std::string data = Generated();
  std::vector<v1::Session> sessions;
  for (int i = 0; i < 8; ++i)
    sessions.push_back(
        Create(Request(data, 1000, i % 2 ? v1::RULE_BACKPROP : v1::RULE_FEEDBACK_ALIGNMENT)));
  std::vector<std::thread> readers;
  std::vector<Read> reads(32);
  for (int k = 0; k < 32; ++k)
    readers.emplace_back([&, k] { reads[k] = Stream(sessions[k % 8].name(), 0); });
  for (auto& t : readers) t.join();
  for (int k = 0; k < 32; ++k) {
    SCOPED_TRACE(k);
    ASSERT_TRUE(reads[k].ended);
    EXPECT_EQ(reads[k].end.state(), v1::SESSION_STATE_SUCCEEDED);
    ASSERT_EQ(reads[k].events.size(), 100u);
    for (size_t i = 0; i < 100; ++i)
      EXPECT_EQ(reads[k].events[i].seq(), static_cast<int64_t>(i + 1));
  }
}

TEST_F(ServiceTest, BadRequestsGetTheRightCodeAndTheServerStaysHealthy) {
  const std::string data = Generated();
  struct Case {
    std::string name;
    grpc::StatusCode code;
    std::function<grpc::Status()> call;
  };
  auto create = [&](std::function<void(v1::CreateSessionRequest&)> mutate) {
    return [&, mutate] {
      v1::CreateSessionRequest r = Request(data, 100);
      mutate(r);
      v1::Session s;
      grpc::ClientContext ctx;
      return training_->CreateSession(&ctx, r, &s);
    };
  };
  const Case kCases[] = {
      {"unknown rule", grpc::StatusCode::INVALID_ARGUMENT, create([](auto& r) {
         r.mutable_session()->mutable_config()->mutable_feedback()->set_rule(
             static_cast<v1::Rule>(77));
       })},
      {"wrong input width", grpc::StatusCode::INVALID_ARGUMENT, create([](auto& r) {
         r.mutable_session()->mutable_config()->mutable_network()->set_sizes(0, 784);
       })},
      {"nan learning rate", grpc::StatusCode::INVALID_ARGUMENT, create([](auto& r) {
         r.mutable_session()->mutable_config()->mutable_optimizer()->set_learning_rate(NAN);
       })},
      {"missing data set", grpc::StatusCode::NOT_FOUND, create([](auto& r) {
         r.mutable_session()->set_train_dataset("datasets/ffffffffffffffff");
       })},
      {"huge layer", grpc::StatusCode::INVALID_ARGUMENT, create([](auto& r) {
         r.mutable_session()->mutable_config()->mutable_network()->set_sizes(1, 2000000);
       })},
      {"unknown session", grpc::StatusCode::NOT_FOUND,
       [&] {
         v1::GetSessionRequest r;
         r.set_name("sessions/000000000000");
         v1::Session s;
         grpc::ClientContext ctx;
         return training_->GetSession(&ctx, r, &s);
       }},
      {"malformed name", grpc::StatusCode::INVALID_ARGUMENT,
       [&] {
         v1::PauseSessionRequest r;
         r.set_name("bogus");
         v1::Session s;
         grpc::ClientContext ctx;
         return training_->PauseSession(&ctx, r, &s);
       }},
      {"upload without header", grpc::StatusCode::INVALID_ARGUMENT,
       [&] {
         v1::Dataset d;
         grpc::ClientContext ctx;
         auto w = datasets_->UploadDataset(&ctx, &d);
         v1::UploadDatasetRequest chunk;
         chunk.set_chunk("abc");
         w->Write(chunk);
         w->WritesDone();
         return w->Finish();
       }},
      {"huge message", grpc::StatusCode::RESOURCE_EXHAUSTED,
       [&] {
         v1::PredictRequest r;
         r.set_name("sessions/000000000000");
         r.mutable_inputs()->mutable_values()->Resize(4 << 20, 0.0f);  // 16 MiB
         v1::PredictResponse resp;
         grpc::ClientContext ctx;
         return training_->Predict(&ctx, r, &resp);
       }},
      {"predict with the wrong input width", grpc::StatusCode::INVALID_ARGUMENT,
       [&] {
         v1::Session s = Create(Request(data, 10));
         Stream(s.name(), 0);  // until it ends and its weights are stored
         v1::PredictRequest r;
         r.set_name(s.name());
         r.mutable_inputs()->set_rows(29);
         r.mutable_inputs()->set_cols(1);
         r.mutable_inputs()->mutable_values()->Resize(29, 0.5f);
         v1::PredictResponse resp;
         grpc::ClientContext ctx;
         return training_->Predict(&ctx, r, &resp);
       }},
      {"predict with values that do not fill the shape", grpc::StatusCode::INVALID_ARGUMENT,
       [&] {
         v1::Session s = Create(Request(data, 10));
         Stream(s.name(), 0);
         v1::PredictRequest r;
         r.set_name(s.name());
         r.mutable_inputs()->set_rows(30);
         r.mutable_inputs()->set_cols(2);
         r.mutable_inputs()->mutable_values()->Resize(59, 0.5f);
         v1::PredictResponse resp;
         grpc::ClientContext ctx;
         return training_->Predict(&ctx, r, &resp);
       }},
      {"bad page token", grpc::StatusCode::INVALID_ARGUMENT,
       [&] {
         v1::Session s = Create(Request(data, 10));
         v1::ListMetricsRequest r;
         r.set_parent(s.name());
         r.set_page_token("zzz");
         v1::ListMetricsResponse resp;
         grpc::ClientContext ctx;
         return training_->ListMetrics(&ctx, r, &resp);
       }},
      {"delete a data set in use", grpc::StatusCode::FAILED_PRECONDITION,
       [&] {
         Create(Request(data, 100000));
         v1::DeleteDatasetRequest r;
         r.set_name(data);
         google::protobuf::Empty e;
         grpc::ClientContext ctx;
         return datasets_->DeleteDataset(&ctx, r, &e);
       }},
  };
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.name);
    const grpc::Status st = c.call();
    EXPECT_EQ(st.error_code(), c.code) << st.error_message();
    EXPECT_FALSE(st.error_message().empty());
  }
  EXPECT_EQ(Health(), grpc::health::v1::HealthCheckResponse::SERVING);
}

TEST_F(ServiceTest, SnapshotsLargerThanAMessageStreamInChunks) {
  // 784-2000-2000-10: 5.6 M weights and 4 M feedback values, ~38 MB, far over gRPC's 4 MB.
  v1::CreateGeneratedDatasetRequest g;
  g.mutable_spec()->set_kind(v1::GeneratorSpec::KIND_LINEAR);
  g.mutable_spec()->set_num_examples(16);
  g.mutable_spec()->set_input_dim(784);
  v1::Dataset d;
  grpc::ClientContext gctx;
  ASSERT_TRUE(datasets_->CreateGeneratedDataset(&gctx, g, &d).ok());
  v1::CreateSessionRequest r =
      Request(d.name(), 4, v1::RULE_FEEDBACK_ALIGNMENT, {784, 2000, 2000, 10});
  r.mutable_session()->set_snapshot_every(2);
  v1::Session s = Create(r);
  grpc::ClientContext ctx;
  v1::StreamSnapshotsRequest req;
  req.set_parent(s.name());
  req.set_start_step(1);
  auto reader = training_->StreamSnapshots(&ctx, req);
  v1::SnapshotChunk chunk;
  std::vector<int64_t> steps;
  int64_t expected = 0, got = 0;
  while (reader->Read(&chunk)) {
    if (chunk.has_header()) {
      if (!steps.empty()) {
        EXPECT_EQ(got, expected);
      }
      steps.push_back(chunk.header().step());
      expected = chunk.header().total_values();
      got = 0;
      // W0 b0 B0 W1 b1 B1 W2 b2 B2: W1 is 2000 x 2000, W2 is 10 x 2000.
      EXPECT_EQ(chunk.header().shapes(3).rows() * chunk.header().shapes(3).cols(), 2000 * 2000);
      EXPECT_EQ(chunk.header().shapes(6).rows(), 10);
    } else {
      EXPECT_EQ(chunk.values().offset(), got);
      got += chunk.values().data_size();
    }
  }
  const grpc::Status st = reader->Finish();
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(got, expected);
  EXPECT_EQ(steps, (std::vector<int64_t>{2, 4}));
  EXPECT_EQ(expected,
            784 * 2000 + 2000 + 2000 * 2000 + 2000 + 2000 * 2000 + 2000 * 10 + 10 + 2000 * 10);
}

TEST_F(ServiceTest, SigtermCheckpointsAndTheNextStartResumes) {
  const std::string data = Generated();
  v1::Session s = Create(Request(data, 20000, v1::RULE_FEEDBACK_ALIGNMENT, {30, 256, 256, 10}));
  Read some = Stream(s.name(), 0, 300);
  ASSERT_EQ(some.events.size(), 300u);
  EXPECT_EQ(server_->Stop(), 0);
  Start();
  Read all = Stream(s.name(), 0);
  ASSERT_TRUE(all.ended);
  EXPECT_EQ(all.end.state(), v1::SESSION_STATE_SUCCEEDED);
  EXPECT_EQ(all.events.size(), 2000u);
}

}  // namespace
}  // namespace alignd
