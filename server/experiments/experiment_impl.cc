// File: server/experiments/experiment_impl.cc
#include "server/experiments/experiment_impl.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <random>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/status_macros.h"
#include "google/protobuf/util/time_util.h"
#include "server/api/filter.h"
#include "server/api/page_token.h"
#include "server/api/resource_names.h"
#include "server/api/rpc_impl.h"
#include "server/experiments/early_stopping.h"
#include "server/experiments/grid.h"
#include "server/experiments/group_stats.h"
#include "server/experiments/session_columns.h"
#include "server/experiments/statistics.h"
#include "server/sessions/session_rules.h"

namespace alignd::server {
namespace {

absl::StatusOr<std::string> ParseExperimentName(const std::string& name,
                                                absl::string_view field = "name") {
  constexpr absl::string_view kPrefix = "experiments/";
  if (!absl::StartsWith(name, kPrefix))
    return absl::InvalidArgumentError(
        absl::StrCat(field, " '", Excerpt(name), "' is not a name of the form experiments/{id}"));
  const std::string id = name.substr(kPrefix.size());
  bool ok = !id.empty() && id.size() <= 50 && id[0] >= 'a' && id[0] <= 'z';
  for (char c : id) ok = ok && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-');
  if (!ok)
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": the id in '", Excerpt(name),
                     "' must be 1-50 characters of [a-z0-9-] starting with a letter"));
  return id;
}

// An id from the owner and the request id (a retry lands on the same experiment), or drawn.
std::string NewExperimentId(const std::string& owner, const std::string& request_id) {
  if (!request_id.empty()) {
    return absl::StrFormat("x%015x",
                           Fnv1a64(absl::StrCat(owner, "/", request_id)) & 0xfffffffffffffffULL);
  }
  static std::mt19937_64 rng(std::random_device{}());
  static absl::Mutex mu;
  absl::MutexLock lock(&mu);
  return absl::StrFormat("x%015x", rng() & 0xfffffffffffffffULL);
}

bool MaySeeExperiment(const Caller& caller, const v1::Experiment& e) {
  return caller.sees_all() || !caller.authenticated() || e.owner() == caller.principal;
}

absl::StatusOr<v1::Experiment> ExperimentFor(SessionManager& sessions, const Caller& caller,
                                             const std::string& name) {
  RETURN_IF_ERROR(ParseExperimentName(name).status());
  auto e = sessions.storage()->GetExperiment(name);
  if (!e.ok()) return absl::IsNotFound(e.status()) ? NotFound(name) : e.status();
  if (!MaySeeExperiment(caller, *e)) return NotFound(name);
  return *e;
}

// One of the experiment's sessions: NotFound if it is gone, or if the session of that name is
// not the experiment's (never touched through it).
absl::StatusOr<v1::Session> Member(SessionManager& sessions, const v1::Experiment& e,
                                   const std::string& name) {
  auto s = sessions.Get(name);
  if (s.ok() && s->experiment() != e.name()) return NotFound(name);
  return s;
}

// The record with its state and counts as its sessions have them now.
v1::Experiment WithProgress(SessionManager& sessions, v1::Experiment e) {
  int total = 0, ended = 0;
  for (const auto& g : e.groups())
    for (const std::string& name : g.sessions()) {
      ++total;
      auto s = Member(sessions, e, name);
      if (!s.ok() || IsTerminal(s->state())) ++ended;  // a deleted session has ended too
    }
  e.set_sessions_total(total);
  e.set_sessions_ended(ended);
  if (e.state() == v1::EXPERIMENT_STATE_RUNNING && total > 0 && ended == total)
    e.set_state(v1::EXPERIMENT_STATE_SUCCEEDED);
  return e;
}

// A session's log as columns; a session that is gone (deleted) has none. Any other error (the
// database away) is the call's: statistics over fewer seeds than there are would be wrong.
absl::StatusOr<std::shared_ptr<const SessionColumns>> ColumnsOrNone(SessionManager& sessions,
                                                                    const Caller& caller,
                                                                    const std::string& name) {
  auto c = ColumnsOfSession(sessions, caller, name);
  if (c.ok() || !absl::IsNotFound(c.status())) return c;
  static const auto* none = new std::shared_ptr<const SessionColumns>(
      std::make_shared<const SessionColumns>(ColumnsOf(std::vector<v1::MetricEvent>())));
  return *none;
}

// INVALID_ARGUMENT for a figure the statistics do not know.
absl::Status CheckFigure(const std::string& figure, absl::string_view field) {
  if (ParseFigure(figure).kind != FigureRef::kNone) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      field, ": unknown figure '", Excerpt(figure),
      "' (train.loss|accuracy|nse, validation.X and eval.X with X loss|accuracy|error_rate|nse, "
      "alignment.hL.update_angle_mean|update_angle_sd|positive_fraction|weight_angle|"
      "norm_ratio|pbp_angle_mean|pbp_angle_sd)"));
}

}  // namespace

absl::Status CreateExperimentImpl(SessionManager& sessions, const Caller& caller,
                                  const v1::CreateExperimentRequest& req, v1::Experiment* resp) {
  RETURN_IF_ERROR(CheckMayWrite(caller, "create experiments"));
  if (req.request_id().size() > 64)
    return absl::InvalidArgumentError("request_id is longer than 64 characters");
  if (req.experiment().display_name().size() > 256)
    return absl::InvalidArgumentError("experiment.display_name is longer than 256 bytes");
  RETURN_IF_ERROR(ValidateLabels(req.experiment().labels(), "experiment.labels"));
  const std::string id = req.experiment_id().empty()
                             ? NewExperimentId(caller.principal, req.request_id())
                             : req.experiment_id();
  const std::string name = absl::StrCat("experiments/", id);
  RETURN_IF_ERROR(ParseExperimentName(name, "experiment_id").status());
  // One create at a time in this process: the record is looked for and written under it, so
  // two creates of one id cannot both write theirs.
  static absl::Mutex* const creating = new absl::Mutex;
  absl::MutexLock lock(creating);
  // A retry (the same owner and request id) makes what the first attempt's record says, not
  // what the retry's spec says; any other create of a taken id is refused.
  auto existing = sessions.storage()->GetExperiment(name);
  if (!existing.ok() && !absl::IsNotFound(existing.status())) return existing.status();
  const bool retry = existing.ok() && existing->owner() == caller.principal &&
                     !req.request_id().empty() && existing->request_id() == req.request_id();
  if (existing.ok() && !retry)
    return absl::AlreadyExistsError(absl::StrCat(
        name, " already exists",
        req.request_id().empty() ? "" : " (made by another request; choose another id)"));
  const v1::Experiment& spec = retry ? *existing : req.experiment();
  RETURN_IF_ERROR(CheckEarlyStopping(spec.early_stopping(), spec.config()));
  ASSIGN_OR_RETURN(const std::vector<PlannedSession> plan,
                   PlanSessions(spec, kMaxExperimentSessions));
  // Every session's request, checked before the first is made; a session of that name that
  // is not this experiment's (another's, or one made alone) is refused before anything is.
  std::vector<v1::CreateSessionRequest> creates;
  int to_make = 0;
  for (size_t k = 0; k < plan.size(); ++k) {
    v1::CreateSessionRequest c;
    c.set_session_id(absl::StrCat(id, "-", k));
    v1::Session* s = c.mutable_session();
    *s->mutable_config() = plan[k].config;
    s->set_train_dataset(spec.train_dataset());
    s->set_eval_dataset(spec.eval_dataset());
    s->set_snapshot_every(spec.snapshot_every());
    s->set_display_name(absl::StrCat(spec.display_name().empty() ? id : spec.display_name(), " ",
                                     plan[k].group, " seed ", plan[k].seed));
    *s->mutable_labels() = spec.labels();
    if (absl::Status st = sessions.CheckCreate(c); !st.ok())
      return absl::Status(st.code(), absl::StrCat("experiment session ", k, " (", plan[k].group,
                                                  ", seed ", plan[k].seed, "): ", st.message()));
    const std::string session = SessionName(c.session_id());
    if (auto there = sessions.Get(session); there.ok()) {
      if (there->experiment() != name || there->owner() != caller.principal)
        return absl::AlreadyExistsError(absl::StrCat(session, " exists and is not one of ", name,
                                                     "'s sessions: choose another experiment_id"));
    } else {
      ++to_make;
    }
    creates.push_back(std::move(c));
  }
  const Requester by = RequesterOf(sessions, caller);
  RETURN_IF_ERROR(sessions.CheckRoom(to_make, by));
  // The record first (a retry finds it), then the sessions that do not exist yet.
  v1::Experiment record = spec;
  if (!retry) {
    record.set_name(name);
    record.set_owner(caller.principal);
    record.set_request_id(req.request_id());
    record.set_state(v1::EXPERIMENT_STATE_RUNNING);
    record.clear_groups();
    *record.mutable_create_time() = google::protobuf::util::TimeUtil::GetCurrentTime();
    for (size_t k = 0; k < plan.size(); ++k) {
      if (record.groups_size() == 0 ||
          record.groups(record.groups_size() - 1).id() != plan[k].group) {
        auto* g = record.add_groups();
        g->set_id(plan[k].group);
        g->set_rule(plan[k].rule);
        g->set_variant(plan[k].variant);
        for (const auto& [f, v] : plan[k].point) (*g->mutable_point())[f] = v;
      }
      record.mutable_groups(record.groups_size() - 1)
          ->add_sessions(SessionName(creates[k].session_id()));
    }
    RETURN_IF_ERROR(sessions.storage()->PutExperiment(record));
  }
  // Queued in plan order; with early stopping in an order drawn from the name (Fisher-Yates on
  // a generator seeded by its digest: the same on every machine and retry), as random search
  // hands configurations to ASHA: a grid written from worst to best would otherwise reach each
  // rung best-last, and every newcomer would be among the best so far.
  std::vector<size_t> order(creates.size());
  for (size_t k = 0; k < order.size(); ++k) order[k] = k;
  if (spec.early_stopping().policy_case() != v1::EarlyStopping::POLICY_NOT_SET) {
    std::mt19937_64 rng(Fnv1a64(name));
    for (size_t k = order.size(); k > 1; --k) std::swap(order[k - 1], order[rng() % k]);
  }
  for (const size_t k : order) {
    auto made = sessions.CreateMember(creates[k], by, name, plan[k].group);
    if (absl::IsAlreadyExists(made.status())) {  // made since it was looked for: whose?
      auto there = sessions.Get(SessionName(creates[k].session_id()));
      if (there.ok() && (there->experiment() != name || there->owner() != caller.principal))
        return absl::AlreadyExistsError(
            absl::StrCat(there->name(), " exists and is not one of ", name, "'s sessions"));
      continue;
    }
    if (!made.ok())
      return absl::Status(
          made.status().code(),
          absl::StrCat(name, ": session ", k, " of ", creates.size(), " not created",
                       req.request_id().empty()
                           ? " (cancel and delete the experiment, or make it with a request_id "
                             "so that a retry makes the rest)"
                           : " (retry with the same request_id to make the rest)",
                       ": ", made.status().message()));
  }
  *resp = WithProgress(sessions, std::move(record));
  return absl::OkStatus();
}

absl::Status GetExperimentImpl(SessionManager& sessions, const Caller& caller,
                               const v1::GetExperimentRequest& req, v1::Experiment* resp) {
  ASSIGN_OR_RETURN(v1::Experiment e, ExperimentFor(sessions, caller, req.name()));
  *resp = WithProgress(sessions, std::move(e));
  return absl::OkStatus();
}

absl::Status ListExperimentsImpl(SessionManager& sessions, const Caller& caller,
                                 const v1::ListExperimentsRequest& req,
                                 v1::ListExperimentsResponse* resp) {
  ASSIGN_OR_RETURN(const ListFilter filter,
                   ListFilter::Parse(req.filter(), ListFilter::Of::kExperiments));
  const std::string listing = absl::StrCat("experiments|filter=", FilterDigest(req.filter()));
  ASSIGN_OR_RETURN(const std::string after, DecodePageToken(listing, req.page_token()));
  if (!req.page_token().empty() && !ParseExperimentName(after).ok())
    return absl::InvalidArgumentError("page_token is not one this listing gave");
  const int size = PageSize(req.page_size(), 50, 1000);
  ASSIGN_OR_RETURN(std::vector<v1::Experiment> all, sessions.storage()->ListExperiments());
  // By name as bytes compare (the page token's order), whatever the database's collation.
  std::sort(all.begin(), all.end(),
            [](const v1::Experiment& a, const v1::Experiment& b) { return a.name() < b.name(); });
  for (auto& e : all) {
    if (e.name() <= after || !MaySeeExperiment(caller, e)) continue;
    v1::Experiment now = WithProgress(sessions, std::move(e));  // the state filtered on
    if (!filter.Matches(now)) continue;
    if (resp->experiments_size() == size) {
      resp->set_next_page_token(EncodePageToken(listing, resp->experiments(size - 1).name()));
      break;
    }
    *resp->add_experiments() = std::move(now);
  }
  return absl::OkStatus();
}

absl::Status CancelExperimentImpl(SessionManager& sessions, const Caller& caller,
                                  const v1::CancelExperimentRequest& req, v1::Experiment* resp) {
  ASSIGN_OR_RETURN(v1::Experiment e, ExperimentFor(sessions, caller, req.name()));
  RETURN_IF_ERROR(CheckMayWrite(caller, "cancel experiments"));
  e = WithProgress(sessions, std::move(e));  // one whose sessions all ended stays SUCCEEDED
  for (const auto& g : e.groups())
    for (const std::string& name : g.sessions()) {
      auto s = Member(sessions, e, name);
      if (s.ok() && !IsTerminal(s->state())) (void)sessions.Cancel(name);
    }
  if (e.state() == v1::EXPERIMENT_STATE_RUNNING) {
    e.set_state(v1::EXPERIMENT_STATE_CANCELLED);
    *e.mutable_end_time() = google::protobuf::util::TimeUtil::GetCurrentTime();
    RETURN_IF_ERROR(sessions.storage()->PutExperiment(e));
  }
  *resp = WithProgress(sessions, std::move(e));
  return absl::OkStatus();
}

absl::Status DeleteExperimentImpl(SessionManager& sessions, const Caller& caller,
                                  const v1::DeleteExperimentRequest& req,
                                  google::protobuf::Empty*) {
  ASSIGN_OR_RETURN(v1::Experiment e, ExperimentFor(sessions, caller, req.name()));
  RETURN_IF_ERROR(CheckMayWrite(caller, "delete experiments"));
  for (const auto& g : e.groups())
    for (const std::string& name : g.sessions()) {
      auto s = Member(sessions, e, name);
      if (s.ok() &&
          (s->state() == v1::SESSION_STATE_QUEUED || s->state() == v1::SESSION_STATE_RUNNING))
        return absl::FailedPreconditionError(
            absl::StrCat(req.name(), " has sessions that run (", name, "): cancel it first"));
    }
  for (const auto& g : e.groups())
    for (const std::string& name : g.sessions()) {
      if (!Member(sessions, e, name).ok()) continue;
      absl::Status st = sessions.Delete(name);
      if (!st.ok() && !absl::IsNotFound(st)) return st;
    }
  return sessions.storage()->DeleteExperiment(req.name());
}

absl::Status ExperimentStatisticsImpl(SessionManager& sessions, const Caller& caller,
                                      const v1::GetExperimentStatisticsRequest& req,
                                      v1::ExperimentStatistics* resp) {
  ASSIGN_OR_RETURN(const v1::Experiment e, ExperimentFor(sessions, caller, req.name()));
  if (req.every_steps() < 0) return absl::InvalidArgumentError("every_steps must be >= 0");
  const std::vector<std::string> figures(req.figures().begin(), req.figures().end());
  for (const std::string& f : figures) RETURN_IF_ERROR(CheckFigure(f, "figures"));
  // Every session's columns (storage reads them one at a time), then the groups' statistics
  // on two threads.
  std::vector<std::vector<std::shared_ptr<const SessionColumns>>> columns;
  for (const auto& g : e.groups()) {
    auto& of = columns.emplace_back();
    for (const std::string& name : g.sessions()) {
      ASSIGN_OR_RETURN(auto c, ColumnsOrNone(sessions, caller, name));
      of.push_back(std::move(c));
    }
  }
  std::vector<v1::ExperimentStatistics::Group> groups(columns.size());
  auto summarise = [&](size_t from, size_t step) {
    for (size_t i = from; i < groups.size(); i += step) {
      std::vector<const SessionColumns*> of;
      for (const auto& c : columns[i]) of.push_back(c.get());
      groups[i] =
          GroupStatistics(e.groups(static_cast<int>(i)).id(), of, figures, req.every_steps());
    }
  };
  if (groups.size() > 1) {
    std::thread other(summarise, 1, 2);
    summarise(0, 2);
    other.join();
  } else {
    summarise(0, 1);
  }
  for (auto& g : groups) *resp->add_groups() = std::move(g);
  return absl::OkStatus();
}

absl::Status CompareGroupsImpl(SessionManager& sessions, const Caller& caller,
                               const v1::CompareGroupsRequest& req, v1::GroupComparison* resp) {
  ASSIGN_OR_RETURN(const v1::Experiment e, ExperimentFor(sessions, caller, req.name()));
  const std::string figure = req.figure().empty() ? "best.eval" : req.figure();
  if (figure != "best.eval" && figure != "best.validation")
    RETURN_IF_ERROR(CheckFigure(figure, "figure"));
  auto values = [&](const std::string& id) -> absl::StatusOr<std::vector<double>> {
    for (const auto& g : e.groups()) {
      if (g.id() != id) continue;
      std::vector<double> out;
      const FigureRef ref = ParseFigure(figure);
      for (const std::string& name : g.sessions()) {
        ASSIGN_OR_RETURN(const std::shared_ptr<const SessionColumns> c,
                         ColumnsOrNone(sessions, caller, name));
        if (figure == "best.eval" || figure == "best.validation") {
          out.push_back(figure == "best.eval" ? c->eval_at_best : c->best);
        } else {
          const SessionColumns::Source* s = SourceOf(*c, ref);
          out.push_back(s == nullptr || s->steps.empty() ? NAN : s->fields[ref.field].back());
        }
      }
      return out;
    }
    return absl::InvalidArgumentError(absl::StrCat("no group ", id, " in ", req.name()));
  };
  ASSIGN_OR_RETURN(const std::vector<double> a, values(req.group_a()));
  ASSIGN_OR_RETURN(const std::vector<double> b, values(req.group_b()));
  const PairedComparison c = ComparePaired(a, b);
  resp->set_n(c.n);
  resp->set_diff(c.diff);
  resp->set_ci_low(c.ci_low);
  resp->set_ci_high(c.ci_high);
  resp->set_t(c.t);
  resp->set_p_t(c.p_t);
  resp->set_p_w(c.p_w);
  return absl::OkStatus();
}

}  // namespace alignd::server
