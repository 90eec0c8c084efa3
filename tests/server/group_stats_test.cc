// server/experiments/group_stats.h: a group's figures over its seeds, from logs.
#include "server/experiments/group_stats.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "server/experiments/statistics.h"

namespace alignd::server {
namespace {

using ::testing::ElementsAre;

v1::MetricEvent Step(int64_t step, double loss, double angle) {
  v1::MetricEvent e;
  e.mutable_step()->set_step(step);
  e.mutable_step()->set_loss(loss);
  e.mutable_step()->set_accuracy(NAN);
  auto* a = e.mutable_step()->add_alignment();
  a->set_layer(1);
  a->set_update_angle_mean(angle);
  return e;
}

v1::MetricEvent Eval(int64_t step, bool validation, double error) {
  v1::MetricEvent e;
  e.mutable_eval()->set_step(step);
  e.mutable_eval()->set_validation(validation);
  e.mutable_eval()->set_error_rate(error);
  e.mutable_eval()->set_nse(NAN);
  return e;
}

// Three seeds; the third still running (it has reached step 20 only).
std::vector<std::vector<v1::MetricEvent>> Logs() {
  return {
      {Step(10, 1.0, 80), Eval(10, true, 0.30), Eval(10, false, 0.31), Step(20, 0.5, 60),
       Eval(20, true, 0.20), Eval(20, false, 0.22), Step(30, 0.4, 50), Eval(30, true, 0.25),
       Eval(30, false, 0.21)},
      {Step(10, 2.0, 90), Eval(10, true, 0.40), Eval(10, false, 0.41), Step(20, 0.7, 70),
       Eval(20, true, 0.10), Eval(20, false, 0.12), Step(30, 0.6, 65), Eval(30, true, 0.15),
       Eval(30, false, 0.16)},
      {Step(10, 3.0, 100), Eval(10, true, 0.50), Eval(10, false, 0.52), Step(20, 0.9, 80)},
  };
}

const v1::ExperimentStatistics::Series& SeriesOf(const v1::ExperimentStatistics::Group& g,
                                                 const std::string& f) {
  for (const auto& s : g.series())
    if (s.figure() == f) return s;
  ADD_FAILURE() << "no series " << f;
  static v1::ExperimentStatistics::Series none;
  return none;
}

TEST(GroupStatsTest, EachStepSummarisesTheSessionsThatReachedIt) {
  const auto g = GroupStatistics("g0", Logs(), {}, 0);
  EXPECT_EQ(g.id(), "g0");
  const auto& loss = SeriesOf(g, "train.loss");
  EXPECT_THAT(loss.steps(), ElementsAre(10, 20, 30));
  EXPECT_EQ(loss.values(0).n(), 3);
  EXPECT_DOUBLE_EQ(loss.values(0).mean(), 2.0);
  EXPECT_DOUBLE_EQ(loss.values(0).sd(), 1.0);
  EXPECT_EQ(loss.values(2).n(), 2);  // the running seed has not reached step 30
  EXPECT_DOUBLE_EQ(loss.values(2).mean(), 0.5);
  const auto& angle = SeriesOf(g, "alignment.h1.update_angle_mean");
  EXPECT_DOUBLE_EQ(angle.values(1).mean(), 70);
  // Accuracy is NaN for this regression-like log: n counts no session.
  EXPECT_EQ(SeriesOf(g, "train.accuracy").values(0).n(), 0);
  const auto& val = SeriesOf(g, "validation.error_rate");
  EXPECT_THAT(val.steps(), ElementsAre(10, 20, 30));
  EXPECT_NEAR(val.values(1).mean(), 0.15, 1e-15);
}

TEST(GroupStatsTest, BestValidationAndTheTestValueAtItsStep) {
  const auto g = GroupStatistics("g0", Logs(), {"train.loss"}, 0);
  EXPECT_EQ(g.series_size(), 1);
  EXPECT_THAT(g.best().best_steps(), ElementsAre(20, 20, 10));
  EXPECT_EQ(g.best().validation().n(), 3);
  EXPECT_NEAR(g.best().validation().mean(), (0.20 + 0.10 + 0.50) / 3, 1e-15);
  // At the best step, not the last: 0.22 (not 0.21), 0.12 (not 0.16), 0.52.
  EXPECT_NEAR(g.best().eval_at_best().mean(), (0.22 + 0.12 + 0.52) / 3, 1e-15);
}

TEST(GroupStatsTest, EveryStepsKeepsTheFirstStepOfEachWindow) {
  const auto g = GroupStatistics("g1", Logs(), {"train.loss"}, 20);
  EXPECT_THAT(SeriesOf(g, "train.loss").steps(), ElementsAre(10, 20));
}

// ---- The statistics as first written (event by event, figure by figure, from the events
// themselves): what the columns must give, byte for byte.
std::optional<double> ReferenceFigureOf(const v1::MetricEvent& e, const std::string& figure) {
  const std::vector<absl::string_view> parts = absl::StrSplit(figure, '.');
  if (parts.size() == 2 && parts[0] == "train" && e.has_step()) {
    const auto& m = e.step();
    if (parts[1] == "loss") return m.loss();
    if (parts[1] == "accuracy") return m.accuracy();
    if (parts[1] == "nse") return m.nse();
    return std::nullopt;
  }
  if (parts.size() == 2 && (parts[0] == "eval" || parts[0] == "validation") && e.has_eval() &&
      e.eval().validation() == (parts[0] == "validation")) {
    const auto& m = e.eval();
    if (parts[1] == "loss") return m.loss();
    if (parts[1] == "accuracy") return m.accuracy();
    if (parts[1] == "error_rate") return m.error_rate();
    if (parts[1] == "nse") return m.nse();
    return std::nullopt;
  }
  int layer = 0;
  if (parts.size() == 3 && parts[0] == "alignment" && e.has_step() &&
      absl::StartsWith(parts[1], "h") && absl::SimpleAtoi(parts[1].substr(1), &layer))
    for (const auto& a : e.step().alignment())
      if (a.layer() == layer) {
        const absl::string_view f = parts[2];
        if (f == "update_angle_mean") return a.update_angle_mean();
        if (f == "update_angle_sd") return a.update_angle_sd();
        if (f == "positive_fraction") return a.positive_fraction();
        if (f == "weight_angle") return a.weight_angle();
        if (f == "norm_ratio") return a.norm_ratio();
        if (f == "pbp_angle_mean") return a.pbp_angle_mean();
        if (f == "pbp_angle_sd") return a.pbp_angle_sd();
        return std::nullopt;
      }
  return std::nullopt;
}

v1::FigureSummary ReferenceProto(const Summary& s) {
  v1::FigureSummary out;
  out.set_n(s.n);
  out.set_mean(s.mean);
  out.set_sd(s.sd);
  out.set_ci_low(s.ci_low);
  out.set_ci_high(s.ci_high);
  return out;
}

double ReferenceErrorOf(const v1::EvalMetrics& m) {
  return std::isnan(m.error_rate()) ? m.nse() : m.error_rate();
}

v1::ExperimentStatistics::Group ReferenceGroupStatistics(
    const std::string& id, const std::vector<std::vector<v1::MetricEvent>>& logs,
    std::vector<std::string> figures, int64_t every_steps) {
  if (figures.empty()) figures = FiguresIn(logs);
  v1::ExperimentStatistics::Group g;
  g.set_id(id);
  auto step_of = [](const v1::MetricEvent& e) -> int64_t {
    return e.has_step() ? e.step().step() : e.has_eval() ? e.eval().step() : -1;
  };
  for (const std::string& figure : figures) {
    std::map<int64_t, std::vector<double>> at;
    for (const auto& log : logs) {
      // With every_steps, each log's first step with the figure in each window.
      std::map<int64_t, int64_t> first;
      for (const auto& e : log)
        if (const int64_t step = step_of(e); step >= 0 && ReferenceFigureOf(e, figure)) {
          const int64_t w = every_steps > 0 ? step / every_steps : step;
          first.emplace(w, step);
          first[w] = std::min(first[w], step);
        }
      for (const auto& e : log) {
        const int64_t step = step_of(e);
        if (step < 0 || first[every_steps > 0 ? step / every_steps : step] != step) continue;
        if (auto v = ReferenceFigureOf(e, figure)) at[step].push_back(*v);
      }
    }
    auto* series = g.add_series();
    series->set_figure(figure);
    for (const auto& [step, values] : at) {
      series->add_steps(step);
      *series->add_values() = ReferenceProto(Summarize(values));
    }
  }
  std::vector<double> best, eval_at_best;
  auto* b = g.mutable_best();
  for (const auto& log : logs) {
    double v = NAN;
    int64_t step = -1;
    for (const auto& e : log)
      if (e.has_eval() && e.eval().validation() && !std::isnan(ReferenceErrorOf(e.eval())) &&
          (step < 0 || ReferenceErrorOf(e.eval()) < v)) {
        v = ReferenceErrorOf(e.eval());
        step = e.eval().step();
      }
    double at = NAN;
    for (const auto& e : log)
      if (step >= 0 && e.has_eval() && !e.eval().validation() && e.eval().step() == step)
        at = ReferenceErrorOf(e.eval());
    best.push_back(v);
    eval_at_best.push_back(at);
    b->add_best_steps(step);
  }
  *b->mutable_validation() = ReferenceProto(Summarize(best));
  *b->mutable_eval_at_best() = ReferenceProto(Summarize(eval_at_best));
  return g;
}

// Logs as odd as they come: ragged (running seeds), steps repeated, out of order or negative,
// NaNs, layers missing, repeated or numbered 0, evaluations of both sets at any step.
std::vector<std::vector<v1::MetricEvent>> OddLogs(uint64_t seed) {
  std::mt19937_64 rng(seed);
  auto uniform = [&](double lo, double hi) {
    return std::uniform_real_distribution<double>(lo, hi)(rng);
  };
  auto chance = [&](double p) { return uniform(0, 1) < p; };
  auto value = [&] { return chance(0.05) ? NAN : std::round(uniform(0, 100) * 8) / 8; };
  std::vector<std::vector<v1::MetricEvent>> logs(1 + rng() % 6);
  for (auto& log : logs) {
    const int n = static_cast<int>(rng() % 120);
    int64_t step = 0;
    for (int i = 0; i < n; ++i) {
      step += chance(0.1) ? -static_cast<int64_t>(rng() % 30) : static_cast<int64_t>(rng() % 12);
      v1::MetricEvent e;
      e.set_seq(i + 1);
      if (chance(0.7)) {
        auto* m = e.mutable_step();
        m->set_step(step);
        m->set_loss(value());
        m->set_accuracy(value());
        m->set_nse(value());
        const int layers = static_cast<int>(rng() % 4);
        for (int l = 0; l < layers; ++l) {
          auto* a = m->add_alignment();
          a->set_layer(static_cast<int>(rng() % 3));
          a->set_update_angle_mean(value());
          a->set_update_angle_sd(value());
          a->set_positive_fraction(value());
          a->set_weight_angle(value());
          a->set_norm_ratio(value());
          a->set_pbp_angle_mean(value());
          a->set_pbp_angle_sd(value());
        }
      } else {
        auto* m = e.mutable_eval();
        m->set_step(step);
        m->set_validation(chance(0.5));
        m->set_loss(value());
        m->set_accuracy(value());
        m->set_error_rate(chance(0.2) ? NAN : value());
        m->set_nse(value());
      }
      log.push_back(e);
    }
  }
  return logs;
}

TEST(GroupStatsTest, ColumnsGiveWhatTheEventsGaveByteForByte) {
  const std::vector<std::vector<std::string>> requests = {
      {},
      {"train.loss", "alignment.h1.norm_ratio", "validation.error_rate"},
      {"alignment.h0.weight_angle", "alignment.h2.pbp_angle_sd", "eval.nse", "eval.accuracy"},
      {"train.nope", "alignment.h1.nope", "alignment.x1.norm_ratio", "alignment.h.norm_ratio",
       "eval", "", "alignment.h01.update_angle_mean", "train.loss.x", "alignment.h7.norm_ratio"}};
  for (uint64_t seed = 1; seed <= 300; ++seed) {
    const auto logs = OddLogs(seed);
    for (const auto& figures : requests)
      for (int64_t every : {0, 1, 7, 20}) {
        const auto want = ReferenceGroupStatistics("g", logs, figures, every);
        const auto got = GroupStatistics("g", logs, figures, every);
        ASSERT_EQ(got.SerializeAsString(), want.SerializeAsString())
            << "seed " << seed << " every " << every << " figures " << figures.size() << "\n"
            << got.DebugString() << "\nwant\n"
            << want.DebugString();
      }
    for (const auto& log : logs)
      for (const auto& e : log)
        for (const char* f : {"train.accuracy", "eval.loss", "validation.nse",
                              "alignment.h2.positive_fraction", "alignment.h1.nope"}) {
          const auto a = FigureOf(e, f), b = ReferenceFigureOf(e, f);
          ASSERT_EQ(a.has_value(), b.has_value()) << f;
          if (a) ASSERT_TRUE((std::isnan(*a) && std::isnan(*b)) || *a == *b) << f;
        }
  }
}

// A running session's columns extended with the events logged since equal those of the
// whole log read at once.
TEST(GroupStatsTest, ColumnsExtendedEqualColumnsReadAtOnce) {
  for (uint64_t seed = 1; seed <= 50; ++seed) {
    const auto logs = OddLogs(seed);
    for (const auto& log : logs) {
      const size_t cut = log.size() / 3;
      ColumnsBuilder first;
      for (size_t i = 0; i < cut; ++i) first.Add(log[i]);
      ColumnsBuilder rest(std::move(first).Finish());
      for (size_t i = cut; i < log.size(); ++i) rest.Add(log[i]);
      const SessionColumns a = std::move(rest).Finish(), b = ColumnsOf(log);
      const auto ga = GroupStatistics("g", {&a}, {}, 0), gb = GroupStatistics("g", {&b}, {}, 0);
      ASSERT_EQ(ga.SerializeAsString(), gb.SerializeAsString()) << "seed " << seed;
    }
  }
}

TEST(GroupStatsTest, FiguresAreNamedOnceEach) {
  const auto f = FiguresIn(Logs());
  EXPECT_EQ(f.front(), "train.loss");
  EXPECT_EQ(std::count(f.begin(), f.end(), "validation.error_rate"), 1);
  EXPECT_EQ(f.back(), "alignment.h1.pbp_angle_sd");
  EXPECT_FALSE(FigureOf(Logs()[0][0], "eval.loss").has_value());        // a step event
  EXPECT_FALSE(FigureOf(Logs()[0][1], "eval.error_rate").has_value());  // a validation
  EXPECT_EQ(*FigureOf(Logs()[0][2], "eval.error_rate"), 0.31);
}

}  // namespace
}  // namespace alignd::server
