// server/experiments/experiment_impl.h: experiments on a real session manager and SQLite
// file, without gRPC; early stopping on a grid whose best point is known.
#include "server/experiments/experiment_impl.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "google/protobuf/util/message_differencer.h"
#include "server/api/rpc_impl.h"
#include "server/experiments/early_stopping.h"
#include "server/experiments/group_stats.h"
#include "server/experiments/session_columns.h"
#include "tests/server/server_fixture.h"

namespace alignd::server {
namespace {

using ::testing::HasSubstr;

const Caller kAdmin = Caller::Anonymous();

class ExperimentImplTest : public ServerFixture {
 protected:
  v1::CreateExperimentRequest Spec() {
    v1::CreateExperimentRequest r;
    v1::Experiment* e = r.mutable_experiment();
    e->set_train_dataset(dataset_);
    *e->mutable_config() = Request(40).session().config();
    e->add_rules(v1::RULE_BACKPROP);
    e->add_rules(v1::RULE_FEEDBACK_ALIGNMENT);
    for (uint64_t s : {1, 2, 3}) e->add_seeds(s);
    auto* lr = e->add_grid();
    lr->set_field("optimizer.learning_rate");
    lr->add_values()->set_number_value(0.01);
    lr->add_values()->set_number_value(0.02);
    (*e->mutable_labels())["study"] = "grid";
    return r;
  }
};

TEST_F(ExperimentImplTest, CreatesItsSessionsRunsThemAndSummarisesTheGroups) {
  auto req = Spec();
  req.set_request_id("first");
  v1::Experiment e;
  ASSERT_OK(CreateExperimentImpl(*manager_, kAdmin, req, &e));
  EXPECT_EQ(e.groups_size(), 4);
  EXPECT_EQ(e.sessions_total(), 12);
  EXPECT_EQ(e.groups(3).rule(), v1::RULE_FEEDBACK_ALIGNMENT);
  // A retry with the request id is the same experiment, nothing made twice.
  v1::Experiment again;
  ASSERT_OK(CreateExperimentImpl(*manager_, kAdmin, req, &again));
  EXPECT_EQ(again.name(), e.name());
  EXPECT_EQ(manager_->List(v1::SESSION_STATE_UNSPECIFIED).size(), 12u);
  manager_->WaitIdle();
  v1::GetExperimentRequest get;
  get.set_name(e.name());
  ASSERT_OK(GetExperimentImpl(*manager_, kAdmin, get, &e));
  EXPECT_EQ(e.state(), v1::EXPERIMENT_STATE_SUCCEEDED);
  EXPECT_EQ(e.sessions_ended(), 12);
  // Each session names its experiment and group, and carries the experiment's labels.
  const v1::Session s = *manager_->Get(e.groups(1).sessions(2));
  EXPECT_EQ(s.experiment(), e.name());
  EXPECT_EQ(s.experiment_group(), "g1");
  EXPECT_EQ(s.config().seed(), 3u);
  EXPECT_FLOAT_EQ(s.config().optimizer().learning_rate(), 0.02f);
  EXPECT_EQ(s.labels().at("study"), "grid");
  // Statistics: per group and step over its three seeds.
  v1::GetExperimentStatisticsRequest sr;
  sr.set_name(e.name());
  sr.add_figures("train.loss");
  v1::ExperimentStatistics stats;
  ASSERT_OK(ExperimentStatisticsImpl(*manager_, kAdmin, sr, &stats));
  ASSERT_EQ(stats.groups_size(), 4);
  const auto& series = stats.groups(0).series(0);
  EXPECT_EQ(series.figure(), "train.loss");
  EXPECT_EQ(series.steps(0), 1);  // the first step logs, then every 10th
  EXPECT_EQ(series.values(0).n(), 3);
  EXPECT_LT(series.values(0).ci_low(), series.values(0).mean());
  // The paired comparison over the three seeds, on the last training loss.
  v1::CompareGroupsRequest cr;
  cr.set_name(e.name());
  cr.set_group_a("g0");
  cr.set_group_b("g2");
  cr.set_figure("train.loss");
  v1::GroupComparison c;
  ASSERT_OK(CompareGroupsImpl(*manager_, kAdmin, cr, &c));
  EXPECT_EQ(c.n(), 3);
  EXPECT_TRUE(std::isfinite(c.p_t()));
  EXPECT_GT(c.p_w(), 0);
  // Deleted with its sessions.
  v1::DeleteExperimentRequest del;
  del.set_name(e.name());
  google::protobuf::Empty empty;
  ASSERT_OK(DeleteExperimentImpl(*manager_, kAdmin, del, &empty));
  EXPECT_TRUE(manager_->List(v1::SESSION_STATE_UNSPECIFIED).empty());
  EXPECT_EQ(GetExperimentImpl(*manager_, kAdmin, get, &e).code(), absl::StatusCode::kNotFound);
}

TEST_F(ExperimentImplTest, ABadSessionIsNamedBeforeAnyIsMade) {
  auto req = Spec();
  auto* batch = req.mutable_experiment()->add_grid();
  batch->set_field("batch_size");
  batch->add_values()->set_number_value(4);
  batch->add_values()->set_number_value(
      401);  // more than the 400 examples: g1, the last axis fastest
  v1::Experiment e;
  const absl::Status st = CreateExperimentImpl(*manager_, kAdmin, req, &e);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(st.message()), HasSubstr("experiment session 3 (g1, seed 1)"));
  EXPECT_THAT(std::string(st.message()), HasSubstr("batch_size is 401"));
  EXPECT_TRUE(manager_->List(v1::SESSION_STATE_UNSPECIFIED).empty());
}

// What the review found: a taken id, another's session under the experiment's names, a retry
// whose spec differs, an experiment that does not fit, an unknown figure, a cancel of one that
// has ended.
TEST_F(ExperimentImplTest, ACreateNeverTakesOverWhatIsNotItsOwn) {
  // A session made alone under a name the experiment would use: refused, nothing made.
  v1::CreateSessionRequest alone = Request(40);
  alone.set_session_id("study-0");
  ASSERT_OK(manager_->Create(alone).status());
  auto req = Spec();
  req.set_experiment_id("study");
  req.set_request_id("r1");
  v1::Experiment e;
  absl::Status st = CreateExperimentImpl(*manager_, kAdmin, req, &e);
  EXPECT_EQ(st.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(std::string(st.message()), HasSubstr("sessions/study-0 exists and is not one of"));
  EXPECT_EQ(manager_->List(v1::SESSION_STATE_UNSPECIFIED).size(), 1u);
  EXPECT_TRUE(absl::IsNotFound(storage_->GetExperiment("experiments/study").status()));
  // Made under another id; the same id again with another request id is refused, and a retry
  // with its own request id makes what the first spec said, whatever the retry's says.
  req.set_experiment_id("study2");
  ASSERT_OK(CreateExperimentImpl(*manager_, kAdmin, req, &e));
  EXPECT_EQ(e.request_id(), "r1");
  auto other = req;
  other.set_request_id("r2");
  EXPECT_EQ(CreateExperimentImpl(*manager_, kAdmin, other, &e).code(),
            absl::StatusCode::kAlreadyExists);
  auto retry = req;
  retry.mutable_experiment()->add_seeds(4);  // a different spec: not what the record says
  ASSERT_OK(CreateExperimentImpl(*manager_, kAdmin, retry, &e));
  EXPECT_EQ(e.sessions_total(), 12);
  EXPECT_EQ(manager_->List(v1::SESSION_STATE_UNSPECIFIED).size(), 13u);
  manager_->WaitIdle();
  // An unknown figure is named, not summarised as nothing.
  v1::GetExperimentStatisticsRequest sr;
  sr.set_name(e.name());
  sr.add_figures("train.los");
  v1::ExperimentStatistics stats;
  st = ExperimentStatisticsImpl(*manager_, kAdmin, sr, &stats);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(st.message()), HasSubstr("unknown figure 'train.los'"));
  v1::CompareGroupsRequest cr;
  cr.set_name(e.name());
  cr.set_group_a("g0");
  cr.set_group_b("g1");
  cr.set_figure("eval.eror_rate");
  v1::GroupComparison c;
  EXPECT_EQ(CompareGroupsImpl(*manager_, kAdmin, cr, &c).code(),
            absl::StatusCode::kInvalidArgument);
  // Cancelling one whose sessions have all ended leaves it SUCCEEDED.
  v1::CancelExperimentRequest cancel;
  cancel.set_name(e.name());
  ASSERT_OK(CancelExperimentImpl(*manager_, kAdmin, cancel, &e));
  EXPECT_EQ(e.state(), v1::EXPERIMENT_STATE_SUCCEEDED);
  // Deleting it deletes its sessions, not the one made alone.
  v1::DeleteExperimentRequest del;
  del.set_name(e.name());
  google::protobuf::Empty empty;
  ASSERT_OK(DeleteExperimentImpl(*manager_, kAdmin, del, &empty));
  ASSERT_EQ(manager_->List(v1::SESSION_STATE_UNSPECIFIED).size(), 1u);
  EXPECT_EQ(manager_->List(v1::SESSION_STATE_UNSPECIFIED)[0].name(), "sessions/study-0");
}

TEST_F(ExperimentImplTest, AnExperimentThatDoesNotFitIsRefusedBeforeAnySessionIsMade) {
  Open(/*max_running=*/1, /*max_queued=*/10);
  auto req = Spec();  // 12 sessions
  v1::Experiment e;
  const absl::Status st = CreateExperimentImpl(*manager_, kAdmin, req, &e);
  EXPECT_EQ(st.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(st.message()), HasSubstr("12 more queued sessions do not fit"));
  EXPECT_THAT(std::string(st.message()), HasSubstr("--max_queued"));
  EXPECT_TRUE(manager_->List(v1::SESSION_STATE_UNSPECIFIED).empty());
  auto listed = storage_->ListExperiments();
  ASSERT_OK(listed.status());
  EXPECT_TRUE(listed->empty());
}

// Early stopping on a grid whose best point is known: the same grid run whole first (one
// session at a time, so that the arrival order, and with it every decision, is fixed).
class EarlyStoppingTest : public ExperimentImplTest {
 protected:
  void SetUp() override {
    ExperimentImplTest::SetUp();
    Open(/*max_running=*/1);
    stopper_ = std::make_unique<EarlyStopper>(storage_.get());
    manager_->SetEarlyStopping([this](const v1::Session& s, const core::EvalMetrics& m) {
      return stopper_->OnValidation(s, m);
    });
  }
  void TearDown() override {
    manager_.reset();
    ExperimentImplTest::TearDown();
  }
  v1::CreateExperimentRequest Grid(const std::string& request_id) {
    v1::CreateExperimentRequest r;
    r.set_request_id(request_id);
    v1::Experiment* e = r.mutable_experiment();
    e->set_train_dataset(dataset_);
    *e->mutable_config() = Request(400).session().config();
    e->mutable_config()->set_validation_fraction(0.25f);
    e->mutable_config()->set_eval_every(25);
    auto* lr = e->add_grid();
    lr->set_field("optimizer.learning_rate");
    for (double v : {0.003, 0.03, 0.0003, 0.01, 0.001}) lr->add_values()->set_number_value(v);
    auto* batch = e->add_grid();
    batch->set_field("batch_size");
    for (int n : {4, 16}) batch->add_values()->set_number_value(n);
    return r;
  }
  // Runs the experiment to its end: its sessions as they ended.
  std::vector<v1::Session> Run(const v1::CreateExperimentRequest& r) {
    v1::Experiment e;
    EXPECT_OK(CreateExperimentImpl(*manager_, kAdmin, r, &e));
    manager_->WaitIdle();
    v1::GetExperimentRequest get;
    get.set_name(e.name());
    EXPECT_OK(GetExperimentImpl(*manager_, kAdmin, get, &e));
    EXPECT_EQ(e.state(), v1::EXPERIMENT_STATE_SUCCEEDED);  // stopped early is no cancel
    EXPECT_EQ(e.sessions_ended(), e.sessions_total());
    std::vector<v1::Session> out;
    for (const auto& g : e.groups())
      for (const auto& name : g.sessions()) out.push_back(*manager_->Get(name));
    return out;
  }
  static double Final(const v1::Session& s) { return s.latest_eval().nse(); }
  static int64_t Steps(const std::vector<v1::Session>& v) {
    int64_t n = 0;
    for (const auto& s : v) n += s.step();
    return n;
  }
  std::unique_ptr<EarlyStopper> stopper_;
};

TEST_F(EarlyStoppingTest, AshaKeepsTheGridsBestAndStopsOthersOnFewerSteps) {
  const std::vector<v1::Session> grid = Run(Grid("grid"));
  size_t best = 0;
  for (size_t k = 0; k < grid.size(); ++k) {
    EXPECT_EQ(grid[k].state(), v1::SESSION_STATE_SUCCEEDED);
    if (Final(grid[k]) < Final(grid[best])) best = k;
  }
  auto req = Grid("asha");
  auto* asha = req.mutable_experiment()->mutable_early_stopping()->mutable_asha();
  asha->set_min_steps(25);  // rungs at 25, 75, 225
  const std::vector<v1::Session> stopped = Run(req);
  ASSERT_EQ(stopped.size(), grid.size());
  // The best configuration ran to its end with the same figures (bit-identical runs) ...
  EXPECT_EQ(stopped[best].state(), v1::SESSION_STATE_SUCCEEDED);
  EXPECT_EQ(Final(stopped[best]), Final(grid[best]));
  // ... the others that lost a rung stopped there, saying so, with their weights kept ...
  int n_stopped = 0;
  for (const auto& s : stopped) {
    if (s.state() != v1::SESSION_STATE_STOPPED) continue;
    ++n_stopped;
    EXPECT_THAT(s.stop_reason(), HasSubstr("ASHA: at rung"));
    EXPECT_TRUE(s.failure_reason().empty());
    EXPECT_TRUE(s.step() == 25 || s.step() == 75 || s.step() == 225) << s.step();
    EXPECT_TRUE(s.has_end_time());
    EXPECT_OK(manager_->Weights(WeightsRef{s.name(), WeightsRef::kLatest}).status());
    EXPECT_EQ(manager_->Resume(s.name()).status().code(), absl::StatusCode::kFailedPrecondition);
  }
  EXPECT_GE(n_stopped, 3);  // here: 4 of 10 (in the queue order drawn from the name)
  // ... on fewer steps than the grid.
  EXPECT_LT(Steps(stopped), Steps(grid));
}

TEST_F(EarlyStoppingTest, MedianStoppingStopsSessionsBehindTheMedian) {
  const std::vector<v1::Session> grid = Run(Grid("grid"));
  size_t best = 0;
  for (size_t k = 0; k < grid.size(); ++k)
    if (Final(grid[k]) < Final(grid[best])) best = k;
  auto req = Grid("median");
  req.mutable_experiment()->mutable_early_stopping()->mutable_median()->set_grace_steps(100);
  const std::vector<v1::Session> stopped = Run(req);
  EXPECT_EQ(stopped[best].state(), v1::SESSION_STATE_SUCCEEDED);
  EXPECT_EQ(Final(stopped[best]), Final(grid[best]));
  int n_stopped = 0;
  for (const auto& s : stopped)
    if (s.state() == v1::SESSION_STATE_STOPPED) {
      ++n_stopped;
      EXPECT_THAT(s.stop_reason(), HasSubstr("median stopping: at step"));
      EXPECT_GE(s.step(), 100);
    }
  EXPECT_GE(n_stopped, 1);
  EXPECT_LT(Steps(stopped), Steps(grid));
}

TEST_F(EarlyStoppingTest, APolicyWithoutValidationIsRefused) {
  auto req = Grid("bad");
  req.mutable_experiment()->mutable_config()->set_validation_fraction(0);
  req.mutable_experiment()->mutable_early_stopping()->mutable_asha()->set_min_steps(25);
  v1::Experiment e;
  const absl::Status st = CreateExperimentImpl(*manager_, kAdmin, req, &e);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(st.message()), HasSubstr("validation_fraction > 0"));
  EXPECT_TRUE(manager_->List(v1::SESSION_STATE_UNSPECIFIED).empty());
}

// Statistics asked for while the sessions run (each session's columns kept and extended with
// what it logged since), then again once they ended (served from what was kept, nothing read),
// then with nothing kept: the same bytes each time, and those of the logs as ListMetrics
// serves them.
TEST_F(ExperimentImplTest, KeptColumnsGiveWhatTheLogsGive) {
  auto req = Spec();
  req.mutable_experiment()->mutable_config()->set_max_steps(200);
  v1::Experiment e;
  ASSERT_OK(CreateExperimentImpl(*manager_, kAdmin, req, &e));
  v1::GetExperimentStatisticsRequest sr;
  sr.set_name(e.name());
  v1::ExperimentStatistics during;
  for (int i = 0; i < 20; ++i) {
    during.Clear();
    ASSERT_OK(ExperimentStatisticsImpl(*manager_, kAdmin, sr, &during));
    for (const auto& g : during.groups())
      for (const auto& s : g.series())
        for (const auto& v : s.values()) ASSERT_LE(v.n(), 3);
    absl::SleepFor(absl::Milliseconds(5));
  }
  manager_->WaitIdle();
  v1::ExperimentStatistics kept, again, afresh;
  ASSERT_OK(ExperimentStatisticsImpl(*manager_, kAdmin, sr, &kept));
  const int64_t reads = SessionColumnsReads();
  ASSERT_OK(ExperimentStatisticsImpl(*manager_, kAdmin, sr, &again));
  EXPECT_EQ(SessionColumnsReads(), reads);  // ended: nothing read again
  SetSessionColumnsBudget(0);
  ASSERT_OK(ExperimentStatisticsImpl(*manager_, kAdmin, sr, &afresh));
  SetSessionColumnsBudget(size_t{512} << 20);
  EXPECT_EQ(SessionColumnsReads(), reads + 12);
  EXPECT_EQ(again.SerializeAsString(), kept.SerializeAsString());
  EXPECT_EQ(afresh.SerializeAsString(), kept.SerializeAsString());
  // Warmed as alignd does at start (nothing kept: a restart), the first call reads nothing.
  SetSessionColumnsBudget(0);
  SetSessionColumnsBudget(size_t{512} << 20);
  std::atomic<bool> stop{false};
  WarmSessionColumns(*manager_, stop);
  EXPECT_EQ(SessionColumnsReads(), reads + 24);
  v1::ExperimentStatistics warmed;
  ASSERT_OK(ExperimentStatisticsImpl(*manager_, kAdmin, sr, &warmed));
  EXPECT_EQ(SessionColumnsReads(), reads + 24);
  EXPECT_EQ(warmed.SerializeAsString(), kept.SerializeAsString());
  stop = true;  // asked to stop: reads nothing more
  SetSessionColumnsBudget(0);
  SetSessionColumnsBudget(size_t{512} << 20);
  WarmSessionColumns(*manager_, stop);
  EXPECT_EQ(SessionColumnsReads(), reads + 24);
  ASSERT_EQ(kept.groups_size(), 4);
  for (int g = 0; g < 4; ++g) {
    std::vector<std::vector<v1::MetricEvent>> logs;
    for (const std::string& name : e.groups(g).sessions()) {
      v1::ListMetricsRequest lr;
      lr.set_parent(name);
      lr.set_page_size(10000);
      v1::ListMetricsResponse page;
      ASSERT_OK(ListMetricsImpl(*manager_, kAdmin, lr, &page));
      ASSERT_TRUE(page.next_page_token().empty());
      logs.emplace_back(page.events().begin(), page.events().end());
    }
    EXPECT_EQ(kept.groups(g).SerializeAsString(),
              GroupStatistics(e.groups(g).id(), logs, {}, 0).SerializeAsString());
  }
  // CompareGroups from the kept columns: the best validation's test values by default.
  v1::CompareGroupsRequest cr;
  cr.set_name(e.name());
  cr.set_group_a("g0");
  cr.set_group_b("g1");
  v1::GroupComparison c;
  ASSERT_OK(CompareGroupsImpl(*manager_, kAdmin, cr, &c));
  EXPECT_EQ(c.n(), 0);  // no validation set: no best step
  cr.set_figure("alignment.h1.update_angle_mean");
  ASSERT_OK(CompareGroupsImpl(*manager_, kAdmin, cr, &c));
  EXPECT_EQ(c.n(), 3);
}

}  // namespace
}  // namespace alignd::server
