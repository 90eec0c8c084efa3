// server/api/training_service.h in-process on loopback: the streams follow a session from
// memory, catch up from storage, and the training thread never touches storage while
// it trains (not for its own events, not for any subscriber).
#include "server/api/training_service.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "server/sessions/live_session.h"
#include "tests/server/server_fixture.h"

namespace alignd::server {
namespace {

// A real storage that remembers which threads called what.
class WatchedStorage final : public ForwardingStorage {
 public:
  using ForwardingStorage::ForwardingStorage;

  std::set<std::thread::id> Callers(const std::string& method) {
    absl::MutexLock lock(&mu_);
    return callers_[method];
  }
  // The threads that looked for a checkpoint to resume from: the workers (in this test
  // nothing else asks for one).
  std::set<std::thread::id> Workers() { return Callers("GetCheckpoint"); }

  absl::Status AppendMetrics(const std::string& n, const std::vector<StoredMetric>& e) override {
    Note("AppendMetrics");
    return ForwardingStorage::AppendMetrics(n, e);
  }
  absl::StatusOr<std::vector<v1::MetricEvent>> ReadMetrics(const std::string& n, int64_t s,
                                                           int l) override {
    Note("ReadMetrics");
    return ForwardingStorage::ReadMetrics(n, s, l);
  }
  absl::Status PutCheckpoint(const std::string& n, const StoredState& s) override {
    Note("PutCheckpoint");
    return ForwardingStorage::PutCheckpoint(n, s);
  }
  absl::StatusOr<StoredState> GetCheckpoint(const std::string& n) override {
    Note("GetCheckpoint");
    return ForwardingStorage::GetCheckpoint(n);
  }
  absl::Status PutSnapshot(const std::string& n, const StoredState& s) override {
    Note("PutSnapshot");
    return ForwardingStorage::PutSnapshot(n, s);
  }
  absl::StatusOr<std::string> GetSnapshot(const std::string& n, int64_t s) override {
    Note("GetSnapshot");
    return ForwardingStorage::GetSnapshot(n, s);
  }
  absl::StatusOr<std::vector<SnapshotInfo>> ListSnapshots(const std::string& n) override {
    Note("ListSnapshots");
    return ForwardingStorage::ListSnapshots(n);
  }

 private:
  void Note(const std::string& method) {
    absl::MutexLock lock(&mu_);
    callers_[method].insert(std::this_thread::get_id());
  }
  absl::Mutex mu_;
  std::map<std::string, std::set<std::thread::id>> callers_ ABSL_GUARDED_BY(mu_);
};

class TrainingServiceTest : public ServerFixture {
 protected:
  void SetUp() override {
    wrap_ = [this](std::unique_ptr<Storage> s) -> std::unique_ptr<Storage> {
      auto w = std::make_unique<WatchedStorage>(std::move(s));
      watched_ = w.get();
      return w;
    };
    ServerFixture::SetUp();
    service_ = std::make_unique<TrainingServiceImpl>(manager_.get(), std::chrono::milliseconds(50));
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(port, 0);
    stub_ = v1::TrainingService::NewStub(
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));
  }
  void TearDown() override {
    manager_->Shutdown();
    server_->Shutdown();
    service_.reset();
    ServerFixture::TearDown();
  }

  // Every event of a stream from start_seq until it ends: seqs of metric events, and
  // whether it ended with an `end` event.
  std::vector<int64_t> ReadStream(const std::string& name, int64_t start_seq, bool* ended) {
    grpc::ClientContext ctx;
    v1::StreamMetricsRequest req;
    req.set_parent(name);
    req.set_start_seq(start_seq);
    auto reader = stub_->StreamMetrics(&ctx, req);
    std::vector<int64_t> seqs;
    v1::MetricEvent e;
    *ended = false;
    while (reader->Read(&e)) {
      if (e.has_end()) *ended = true;
      if (e.has_step() || e.has_eval()) seqs.push_back(e.seq());
    }
    EXPECT_TRUE(reader->Finish().ok());
    return seqs;
  }

  WatchedStorage* watched_ = nullptr;
  std::unique_ptr<TrainingServiceImpl> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::TrainingService::Stub> stub_;
};

TEST_F(TrainingServiceTest, TheTrainingThreadDoesNoStorageWorkWhileSubscribersFollow) {
  auto req = Request(3000);
  req.mutable_session()->mutable_config()->set_metrics_every(
      1);  // 3000 events, more than the ring keeps
  req.mutable_session()->set_snapshot_every(500);
  grpc::ClientContext ctx;
  v1::Session s;
  ASSERT_TRUE(stub_->CreateSession(&ctx, req, &s).ok());
  std::vector<std::thread> subscribers;
  std::vector<std::vector<int64_t>> got(8);
  for (int i = 0; i < 8; ++i)
    subscribers.emplace_back([&, i] {
      bool ended;
      got[i] = ReadStream(s.name(), 1, &ended);
      EXPECT_TRUE(ended);
    });
  for (auto& t : subscribers) t.join();
  manager_->WaitIdle();
  const int64_t last = manager_->Get(s.name())->last_seq();
  EXPECT_GE(last, 3000);
  for (const auto& seqs : got) {
    ASSERT_EQ(static_cast<int64_t>(seqs.size()), last);
    for (size_t k = 0; k < seqs.size(); ++k) ASSERT_EQ(seqs[k], static_cast<int64_t>(k + 1));
  }
  const auto workers = watched_->Workers();
  ASSERT_FALSE(workers.empty());
  for (const char* method : {"AppendMetrics", "ReadMetrics", "PutCheckpoint", "PutSnapshot",
                             "GetSnapshot", "ListSnapshots"})
    for (const auto& id : watched_->Callers(method))
      EXPECT_EQ(workers.count(id), 0u) << method << " ran on a training thread";
  EXPECT_FALSE(watched_->Callers("AppendMetrics").empty());
}

TEST_F(TrainingServiceTest, ALateSubscriberCatchesUpFromStorageThenFromMemory) {
  auto req = Request(3000);
  req.mutable_session()->mutable_config()->set_metrics_every(1);
  grpc::ClientContext ctx;
  v1::Session s;
  ASSERT_TRUE(stub_->CreateSession(&ctx, req, &s).ok());
  manager_->WaitIdle();
  const int64_t last = manager_->Get(s.name())->last_seq();
  auto live = manager_->Find(s.name());
  ASSERT_OK(live);
  // The ring keeps the last MetricRing::kKeep events; the rest are only in storage.
  MetricRing::Where where;
  EXPECT_EQ((*live)->metrics().Get(1, &where), nullptr);
  EXPECT_EQ(where, MetricRing::Where::kOlder);
  EXPECT_NE((*live)->metrics().Get(last, &where), nullptr);
  bool ended;
  const auto from_start = ReadStream(s.name(), 1, &ended);
  EXPECT_TRUE(ended);
  ASSERT_EQ(static_cast<int64_t>(from_start.size()), last);
  for (size_t k = 0; k < from_start.size(); ++k) ASSERT_EQ(from_start[k], int64_t(k + 1));
  const auto tail = ReadStream(s.name(), last - 5, &ended);
  EXPECT_EQ(tail, (std::vector<int64_t>{last - 5, last - 4, last - 3, last - 2, last - 1, last}));
}

TEST(MetricRingTest, KeepsUnstoredEventsAndDropsStoredOnesPastItsSize) {
  MetricRing ring(10);  // events 1..10 are stored
  MetricRing::Where where;
  EXPECT_EQ(ring.Get(10, &where), nullptr);
  EXPECT_EQ(where, MetricRing::Where::kOlder);
  EXPECT_EQ(ring.Get(11, &where), nullptr);
  EXPECT_EQ(where, MetricRing::Where::kNotYet);
  const int64_t n = MetricRing::kKeep + 100;
  for (int64_t seq = 11; seq < 11 + n; ++seq) {
    auto e = std::make_shared<v1::MetricEvent>();
    e->set_seq(seq);
    ring.Push(e);
  }
  // Nothing stored yet: everything is kept.
  ASSERT_NE(ring.Get(11, &where), nullptr);
  EXPECT_EQ(ring.Get(11, &where)->seq(), 11);
  ring.MarkStored(60);
  // Stored events go first, down to kKeep.
  EXPECT_EQ(ring.Get(60, &where), nullptr);
  EXPECT_EQ(where, MetricRing::Where::kOlder);
  EXPECT_EQ(ring.Get(61, &where)->seq(), 61);
  ring.MarkStored(10 + n);
  EXPECT_EQ(ring.Get(10 + n - MetricRing::kKeep, &where), nullptr);
  EXPECT_EQ(ring.Get(11 + n - MetricRing::kKeep, &where)->seq(), 11 + n - MetricRing::kKeep);
  EXPECT_EQ(ring.last_seq(), 10 + n);
}

}  // namespace
}  // namespace alignd::server
