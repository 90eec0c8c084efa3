// File: server/experiments/group_stats.cc
#include "server/experiments/group_stats.h"

#include <algorithm>
#include <cmath>
#include <iterator>
#include <limits>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "server/experiments/statistics.h"

namespace alignd::server {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

constexpr const char* kAlignment[] = {"update_angle_mean", "update_angle_sd", "positive_fraction",
                                      "weight_angle",      "norm_ratio",      "pbp_angle_mean",
                                      "pbp_angle_sd"};
constexpr const char* kTrain[] = {"loss", "accuracy", "nse"};
constexpr const char* kEval[] = {"loss", "accuracy", "error_rate", "nse"};

template <size_t N>
int IndexOf(const char* const (&names)[N], absl::string_view f) {
  for (size_t i = 0; i < N; ++i)
    if (f == names[i]) return static_cast<int>(i);
  return -1;
}

double AlignmentField(const v1::LayerAlignment& a, int f) {
  switch (f) {
    case 0:
      return a.update_angle_mean();
    case 1:
      return a.update_angle_sd();
    case 2:
      return a.positive_fraction();
    case 3:
      return a.weight_angle();
    case 4:
      return a.norm_ratio();
    case 5:
      return a.pbp_angle_mean();
    default:
      return a.pbp_angle_sd();
  }
}

double EvalField(const v1::EvalMetrics& m, int f) {
  switch (f) {
    case 0:
      return m.loss();
    case 1:
      return m.accuracy();
    case 2:
      return m.error_rate();
    default:
      return m.nse();
  }
}

double TrainField(const v1::StepMetrics& m, int f) {
  return f == 0 ? m.loss() : f == 1 ? m.accuracy() : m.nse();
}

// An evaluation's figure that "best" ranks by: the error rate, or NSE where there is none.
double ErrorOf(double error_rate, double nse) { return std::isnan(error_rate) ? nse : error_rate; }

void Push(SessionColumns::Source& s, int64_t step, size_t fields) {
  if (s.fields.empty()) s.fields.resize(fields);
  if (!s.steps.empty() && step <= s.steps.back()) s.ascending = false;
  s.steps.push_back(step);
}

// Where each session's entries of one kind go in the group's series: the steps (ascending,
// each once) and, step by step, the values in the sessions' order and then the log's (as a
// step's values were gathered before: session by session, event by event).
struct Layout {
  static constexpr uint32_t kOut = std::numeric_limits<uint32_t>::max();
  std::vector<int64_t> steps;
  std::vector<uint32_t> offsets;             // steps.size() + 1: each step's values' range
  std::vector<std::vector<uint32_t>> slots;  // per session, per entry: where its value goes
};

// Which of a source's entries count: those at steps >= 0; with every_steps, only those at
// the first step the source has in each window [k every_steps, (k + 1) every_steps) (metric
// steps run 1, 1 + m, 1 + 2m, ...: a window's first is on the curve, whatever m is).
std::vector<char> KeptEntries(const SessionColumns::Source& s, int64_t every_steps) {
  std::vector<char> keep(s.steps.size(), 0);
  if (every_steps <= 0) {
    for (size_t i = 0; i < s.steps.size(); ++i) keep[i] = s.steps[i] >= 0;
    return keep;
  }
  if (s.ascending) {
    int64_t window = -1, first = -1;
    for (size_t i = 0; i < s.steps.size(); ++i) {
      const int64_t step = s.steps[i];
      if (step < 0) continue;
      if (step / every_steps != window) {
        window = step / every_steps;
        first = step;
      }
      keep[i] = step == first;
    }
    return keep;
  }
  std::map<int64_t, int64_t> first;  // window -> the smallest step in it
  for (int64_t step : s.steps)
    if (step >= 0) {
      auto [it, added] = first.emplace(step / every_steps, step);
      if (!added) it->second = std::min(it->second, step);
    }
  for (size_t i = 0; i < s.steps.size(); ++i)
    keep[i] = s.steps[i] >= 0 && first[s.steps[i] / every_steps] == s.steps[i];
  return keep;
}

Layout LayoutOf(const std::vector<const SessionColumns::Source*>& sources, int64_t every_steps) {
  std::vector<std::vector<char>> kept(sources.size());
  for (size_t k = 0; k < sources.size(); ++k)
    if (sources[k] != nullptr) kept[k] = KeptEntries(*sources[k], every_steps);
  Layout l;
  std::vector<int64_t> mine, merged;
  for (size_t k = 0; k < sources.size(); ++k) {
    const SessionColumns::Source* s = sources[k];
    if (s == nullptr) continue;
    mine.clear();
    for (size_t i = 0; i < s->steps.size(); ++i)
      if (kept[k][i]) mine.push_back(s->steps[i]);
    if (!s->ascending) {
      std::sort(mine.begin(), mine.end());
      mine.erase(std::unique(mine.begin(), mine.end()), mine.end());
    }
    if (mine == l.steps) continue;
    merged.clear();
    std::set_union(l.steps.begin(), l.steps.end(), mine.begin(), mine.end(),
                   std::back_inserter(merged));
    l.steps.swap(merged);
  }
  std::vector<uint32_t> count(l.steps.size() + 1, 0);
  l.slots.resize(sources.size());
  for (size_t k = 0; k < sources.size(); ++k) {
    const SessionColumns::Source* s = sources[k];
    if (s == nullptr) continue;
    std::vector<uint32_t>& slot = l.slots[k];
    slot.assign(s->steps.size(), Layout::kOut);
    size_t u = 0;
    for (size_t i = 0; i < s->steps.size(); ++i) {
      const int64_t step = s->steps[i];
      if (!kept[k][i]) continue;
      if (s->ascending) {
        while (l.steps[u] < step) ++u;
      } else {
        u = static_cast<size_t>(std::lower_bound(l.steps.begin(), l.steps.end(), step) -
                                l.steps.begin());
      }
      slot[i] = static_cast<uint32_t>(u);  // the step's index for now
      ++count[u];
    }
  }
  l.offsets.assign(l.steps.size() + 1, 0);
  for (size_t u = 0; u < l.steps.size(); ++u) l.offsets[u + 1] = l.offsets[u] + count[u];
  std::vector<uint32_t> next(l.offsets.begin(), l.offsets.end() - 1);
  for (std::vector<uint32_t>& slot : l.slots)
    for (uint32_t& x : slot)
      if (x != Layout::kOut) x = next[x]++;
  return l;
}

void SetSummary(const Summary& s, v1::FigureSummary* out) {
  out->set_n(s.n);
  out->set_mean(s.mean);
  out->set_sd(s.sd);
  out->set_ci_low(s.ci_low);
  out->set_ci_high(s.ci_high);
}

}  // namespace

const SessionColumns::Source* SessionColumns::layer(int l) const {
  for (const auto& [at, s] : layers)
    if (at == l) return &s;
  return nullptr;
}

size_t SessionColumns::bytes() const {
  size_t n = sizeof(*this);
  auto add = [&n](const Source& s) {
    n += sizeof(Source) + s.steps.capacity() * sizeof(int64_t);
    for (const auto& f : s.fields) n += sizeof(f) + f.capacity() * sizeof(double);
  };
  add(train);
  add(validation);
  add(eval);
  for (const auto& [l, s] : layers) add(s);
  return n;
}

void ColumnsBuilder::Add(const v1::MetricEvent& e) {
  if (e.has_step()) {
    const v1::StepMetrics& m = e.step();
    Push(c_.train, m.step(), 3);
    for (int f = 0; f < 3; ++f) c_.train.fields[f].push_back(TrainField(m, f));
    for (int i = 0; i < m.alignment_size(); ++i) {
      const v1::LayerAlignment& a = m.alignment(i);
      bool earlier = false;  // a figure is the event's first alignment of that layer
      for (int j = 0; j < i && !earlier; ++j) earlier = m.alignment(j).layer() == a.layer();
      if (earlier) continue;
      SessionColumns::Source* s = nullptr;
      for (auto& [l, src] : c_.layers)
        if (l == a.layer()) s = &src;
      if (s == nullptr) s = &c_.layers.emplace_back(a.layer(), SessionColumns::Source()).second;
      Push(*s, m.step(), 7);
      for (int f = 0; f < 7; ++f) s->fields[f].push_back(AlignmentField(a, f));
    }
  } else if (e.has_eval()) {
    const v1::EvalMetrics& m = e.eval();
    SessionColumns::Source& s = m.validation() ? c_.validation : c_.eval;
    Push(s, m.step(), 4);
    for (int f = 0; f < 4; ++f) s.fields[f].push_back(EvalField(m, f));
  }
}

SessionColumns ColumnsBuilder::Finish() && {
  // Best validation, and the evaluation set's figure at that step (the last one logged).
  double v = kNaN;
  int64_t step = -1;
  const SessionColumns::Source& val = c_.validation;
  for (size_t i = 0; i < val.steps.size(); ++i) {
    const double err = ErrorOf(val.fields[2][i], val.fields[3][i]);
    if (!std::isnan(err) && (step < 0 || err < v)) {
      v = err;
      step = val.steps[i];
    }
  }
  double at = kNaN;
  const SessionColumns::Source& ev = c_.eval;
  for (size_t i = 0; i < ev.steps.size(); ++i)
    if (step >= 0 && ev.steps[i] == step) at = ErrorOf(ev.fields[2][i], ev.fields[3][i]);
  c_.best = v;
  c_.best_step = step;
  c_.eval_at_best = at;
  return std::move(c_);
}

SessionColumns ColumnsOf(const std::vector<v1::MetricEvent>& log) {
  ColumnsBuilder b;
  for (const auto& e : log) b.Add(e);
  return std::move(b).Finish();
}

FigureRef ParseFigure(const std::string& figure) {
  const std::vector<absl::string_view> parts = absl::StrSplit(figure, '.');
  FigureRef r;
  if (parts.size() == 2 && parts[0] == "train") {
    r.field = IndexOf(kTrain, parts[1]);
    if (r.field >= 0) r.kind = FigureRef::kTrain;
  } else if (parts.size() == 2 && (parts[0] == "eval" || parts[0] == "validation")) {
    r.field = IndexOf(kEval, parts[1]);
    if (r.field >= 0) r.kind = parts[0] == "eval" ? FigureRef::kEval : FigureRef::kValidation;
  } else if (parts.size() == 3 && parts[0] == "alignment" && absl::StartsWith(parts[1], "h") &&
             absl::SimpleAtoi(parts[1].substr(1), &r.layer)) {
    r.field = IndexOf(kAlignment, parts[2]);
    if (r.field >= 0) r.kind = FigureRef::kAlignment;
  }
  if (r.kind == FigureRef::kNone) r = FigureRef();
  return r;
}

const SessionColumns::Source* SourceOf(const SessionColumns& s, const FigureRef& ref) {
  switch (ref.kind) {
    case FigureRef::kTrain:
      return &s.train;
    case FigureRef::kAlignment:
      return s.layer(ref.layer);
    case FigureRef::kValidation:
      return &s.validation;
    case FigureRef::kEval:
      return &s.eval;
    default:
      return nullptr;
  }
}

std::optional<double> FigureOf(const v1::MetricEvent& e, const std::string& figure) {
  const FigureRef r = ParseFigure(figure);
  switch (r.kind) {
    case FigureRef::kTrain:
      if (e.has_step()) return TrainField(e.step(), r.field);
      return std::nullopt;
    case FigureRef::kValidation:
    case FigureRef::kEval:
      if (e.has_eval() && e.eval().validation() == (r.kind == FigureRef::kValidation))
        return EvalField(e.eval(), r.field);
      return std::nullopt;
    case FigureRef::kAlignment:
      if (e.has_step())
        for (const auto& a : e.step().alignment())
          if (a.layer() == r.layer) return AlignmentField(a, r.field);
      return std::nullopt;
    default:
      return std::nullopt;
  }
}

namespace {

std::vector<std::string> FigureNames(bool train, bool validation, bool eval, int hidden) {
  std::vector<std::string> out;
  if (train)
    for (const char* f : kTrain) out.push_back(absl::StrCat("train.", f));
  for (const auto& [on, set] : {std::pair{validation, "validation"}, std::pair{eval, "eval"}})
    if (on)
      for (const char* f : kEval) out.push_back(absl::StrCat(set, ".", f));
  for (int h = 1; h <= hidden; ++h)
    for (const char* f : kAlignment) out.push_back(absl::StrCat("alignment.h", h, ".", f));
  return out;
}

}  // namespace

std::vector<std::string> FiguresIn(const std::vector<std::vector<v1::MetricEvent>>& logs) {
  bool train = false, validation = false, eval = false;
  int hidden = 0;
  for (const auto& log : logs)
    for (const auto& e : log) {
      if (e.has_step()) {
        train = true;
        for (const auto& a : e.step().alignment()) hidden = std::max(hidden, a.layer());
      } else if (e.has_eval()) {
        (e.eval().validation() ? validation : eval) = true;
      }
    }
  return FigureNames(train, validation, eval, hidden);
}

v1::ExperimentStatistics::Group GroupStatistics(const std::string& id,
                                                const std::vector<const SessionColumns*>& sessions,
                                                std::vector<std::string> figures,
                                                int64_t every_steps) {
  if (figures.empty()) {
    bool train = false, validation = false, eval = false;
    int hidden = 0;
    for (const SessionColumns* s : sessions) {
      train = train || !s->train.steps.empty();
      validation = validation || !s->validation.steps.empty();
      eval = eval || !s->eval.steps.empty();
      for (const auto& [l, src] : s->layers) hidden = std::max(hidden, l);
    }
    figures = FigureNames(train, validation, eval, hidden);
  }
  v1::ExperimentStatistics::Group g;
  g.set_id(id);
  // One layout per kind of event (the figures of a kind share their steps).
  std::vector<std::pair<std::pair<int, int>, Layout>> layouts;
  std::vector<double> values;
  std::vector<const SessionColumns::Source*> sources(sessions.size());
  for (const std::string& figure : figures) {
    auto* series = g.add_series();
    series->set_figure(figure);
    const FigureRef ref = ParseFigure(figure);
    if (ref.kind == FigureRef::kNone) continue;
    for (size_t k = 0; k < sessions.size(); ++k) sources[k] = SourceOf(*sessions[k], ref);
    const std::pair<int, int> key{ref.kind, ref.layer};
    const Layout* l = nullptr;
    for (const auto& [at, layout] : layouts)
      if (at == key) l = &layout;
    if (l == nullptr) l = &layouts.emplace_back(key, LayoutOf(sources, every_steps)).second;
    values.resize(l->offsets.back());
    for (size_t k = 0; k < sessions.size(); ++k) {
      // A kind the session never logged has no columns at all.
      if (sources[k] == nullptr || sources[k]->steps.empty()) continue;
      const std::vector<double>& column = sources[k]->fields[ref.field];
      const std::vector<uint32_t>& slot = l->slots[k];
      for (size_t i = 0; i < slot.size(); ++i)
        if (slot[i] != Layout::kOut) values[slot[i]] = column[i];
    }
    series->mutable_steps()->Reserve(static_cast<int>(l->steps.size()));
    series->mutable_values()->Reserve(static_cast<int>(l->steps.size()));
    for (size_t u = 0; u < l->steps.size(); ++u) {
      series->add_steps(l->steps[u]);
      SetSummary(Summarize(values.data() + l->offsets[u], l->offsets[u + 1] - l->offsets[u]),
                 series->add_values());
    }
  }
  // Best validation per session, and the evaluation set's figure at that step.
  std::vector<double> best, eval_at_best;
  auto* b = g.mutable_best();
  for (const SessionColumns* s : sessions) {
    best.push_back(s->best);
    eval_at_best.push_back(s->eval_at_best);
    b->add_best_steps(s->best_step);
  }
  SetSummary(Summarize(best), b->mutable_validation());
  SetSummary(Summarize(eval_at_best), b->mutable_eval_at_best());
  return g;
}

v1::ExperimentStatistics::Group GroupStatistics(
    const std::string& id, const std::vector<std::vector<v1::MetricEvent>>& logs,
    std::vector<std::string> figures, int64_t every_steps) {
  std::vector<SessionColumns> columns;
  columns.reserve(logs.size());
  for (const auto& log : logs) columns.push_back(ColumnsOf(log));
  std::vector<const SessionColumns*> of;
  for (const SessionColumns& c : columns) of.push_back(&c);
  return GroupStatistics(id, of, std::move(figures), every_steps);
}

}  // namespace alignd::server
