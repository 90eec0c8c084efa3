// File: server/api/session_impl.cc
// The TrainingService's unary RPCs (rpc_impl.h).
#include <algorithm>
#include <limits>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "core/learning_rule.h"
#include "server/api/filter.h"
#include "server/api/page_token.h"
#include "server/api/proto_convert.h"
#include "server/api/resource_names.h"
#include "server/api/rpc_impl.h"
#include "server/api/snapshot_streams.h"

namespace alignd::server {
namespace {

absl::Status BadToken() {
  return absl::InvalidArgumentError("page_token is not one this listing gave");
}

google::protobuf::Timestamp FromMicros(int64_t us) {
  google::protobuf::Timestamp t;
  t.set_seconds(us / 1'000'000);
  t.set_nanos(static_cast<int32_t>(us % 1'000'000) * 1000);
  return t;
}

}  // namespace

absl::Status CreateSessionImpl(SessionManager& sessions, const Caller& caller,
                               const v1::CreateSessionRequest& req, v1::Session* resp) {
  RETURN_IF_ERROR(CheckMayWrite(caller, "create sessions"));
  // Another principal's data set is NotFound here as everywhere, in Create's words.
  for (const auto& [field, name] :
       {std::pair{"session.train_dataset", req.session().train_dataset()},
        std::pair{"session.eval_dataset", req.session().eval_dataset()}})
    if (!name.empty() && ParseDatasetName(name).ok())
      if (absl::Status st = DatasetFor(sessions, caller, name).status(); !st.ok())
        return absl::Status(st.code(), absl::StrCat(field, ": ", st.message()));
  ASSIGN_OR_RETURN(*resp, sessions.Create(req, RequesterOf(sessions, caller)));
  return absl::OkStatus();
}

absl::Status GetSessionImpl(SessionManager& sessions, const Caller& caller,
                            const v1::GetSessionRequest& req, v1::Session* resp) {
  ASSIGN_OR_RETURN(*resp, SessionFor(sessions, caller, req.name()));
  return absl::OkStatus();
}

absl::Status ListSessionsImpl(SessionManager& sessions, const Caller& caller,
                              const v1::ListSessionsRequest& req, v1::ListSessionsResponse* resp) {
  if (!v1::SessionState_IsValid(req.state()))
    return absl::InvalidArgumentError(absl::StrCat("state: unknown value ", req.state()));
  ASSIGN_OR_RETURN(const ListFilter filter, ListFilter::Parse(req.filter()));
  const std::string listing =
      absl::StrCat("sessions|state=", req.state(), "|filter=", FilterDigest(req.filter()));
  ASSIGN_OR_RETURN(const std::string after, DecodePageToken(listing, req.page_token()));
  if (!req.page_token().empty() && !ParseSessionName(after).ok()) return BadToken();
  const int size = PageSize(req.page_size(), 50, 1000);
  for (v1::Session& s : sessions.List(req.state())) {
    if (s.name() <= after || !MaySee(caller, s) || !filter.Matches(s)) continue;
    if (resp->sessions_size() == size) {
      resp->set_next_page_token(EncodePageToken(listing, resp->sessions(size - 1).name()));
      break;
    }
    *resp->add_sessions() = std::move(s);
  }
  return absl::OkStatus();
}

absl::Status PauseSessionImpl(SessionManager& sessions, const Caller& caller,
                              const v1::PauseSessionRequest& req, v1::Session* resp) {
  RETURN_IF_ERROR(SessionToChange(sessions, caller, req.name(), "pause sessions").status());
  ASSIGN_OR_RETURN(*resp, sessions.Pause(req.name()));
  return absl::OkStatus();
}

absl::Status ResumeSessionImpl(SessionManager& sessions, const Caller& caller,
                               const v1::ResumeSessionRequest& req, v1::Session* resp) {
  RETURN_IF_ERROR(SessionToChange(sessions, caller, req.name(), "resume sessions").status());
  ASSIGN_OR_RETURN(*resp, sessions.Resume(req.name(), RequesterOf(sessions, caller)));
  return absl::OkStatus();
}

absl::Status CancelSessionImpl(SessionManager& sessions, const Caller& caller,
                               const v1::CancelSessionRequest& req, v1::Session* resp) {
  RETURN_IF_ERROR(SessionToChange(sessions, caller, req.name(), "cancel sessions").status());
  ASSIGN_OR_RETURN(*resp, sessions.Cancel(req.name()));
  return absl::OkStatus();
}

absl::Status DeleteSessionImpl(SessionManager& sessions, const Caller& caller,
                               const v1::DeleteSessionRequest& req, google::protobuf::Empty*) {
  RETURN_IF_ERROR(SessionToChange(sessions, caller, req.name(), "delete sessions").status());
  return sessions.Delete(req.name());
}

// The log up to the session's last_seq: what storage has, and from the session's ring what
// it does not have yet (a running session's newest events reach storage in batches, after
// last_seq counts them). The ring is read first, under its own lock with the seq of its
// oldest event: every event before that one is in storage when storage is read after it.
absl::Status ListMetricsImpl(SessionManager& sessions, const Caller& caller,
                             const v1::ListMetricsRequest& req, v1::ListMetricsResponse* resp) {
  RETURN_IF_ERROR(SessionFor(sessions, caller, req.parent()).status());
  ASSIGN_OR_RETURN(const std::shared_ptr<LiveSession> live, sessions.Find(req.parent()));
  int64_t start = std::max<int64_t>(1, req.start_seq());
  const std::string listing = absl::StrCat("metrics|", req.parent(), "|", req.max_points());
  ASSIGN_OR_RETURN(const std::string position, DecodePageToken(listing, req.page_token()));
  if (!req.page_token().empty() && (!absl::SimpleAtoi(position, &start) || start < 1))
    return BadToken();
  const int size = PageSize(req.page_size(), 500, 10000);
  if (req.max_points() < 0) return absl::InvalidArgumentError("max_points must be >= 0");
  Storage& storage = *sessions.storage();
  const MetricRing& ring = live->metrics();
  std::vector<v1::MetricEvent> events;
  int64_t first = 0;  // the ring's oldest seq: storage has every event before it
  if (req.max_points() == 0) {
    const int64_t want = int64_t{size} + 1;  // one more tells whether a next page exists
    const auto recent = ring.Read(start, start + size, static_cast<size_t>(want), &first);
    if (start < first) {
      ASSIGN_OR_RETURN(events,
                       storage.ReadMetrics(req.parent(), start,
                                           static_cast<int>(std::min(want, first - start))));
      while (!events.empty() && events.back().seq() >= first) events.pop_back();
    }
    for (const auto& e : recent)
      if (static_cast<int64_t>(events.size()) < want) events.push_back(*e);
    for (int i = 0; i < static_cast<int>(events.size()) && i < size; ++i)
      *resp->add_events() = std::move(events[i]);
    if (static_cast<int>(events.size()) > size)
      resp->set_next_page_token(EncodePageToken(listing, std::to_string(events[size].seq())));
    return absl::OkStatus();
  }
  // Downsampled: every k-th event from `start` up to last_seq (at most max_points of them),
  // evaluations all; storage reads only those rows.
  const int64_t end = ring.last_seq();
  const int64_t every = std::max<int64_t>(1, (end - start + req.max_points()) / req.max_points());
  const auto recent = ring.Read(start, end, std::numeric_limits<size_t>::max(), &first,
                                [start, every](const v1::MetricEvent& e) {
                                  return !e.has_step() || (e.seq() - start) % every == 0;
                                });
  if (start < first) {
    ASSIGN_OR_RETURN(
        events, storage.ReadMetricsSampled(req.parent(), start, std::min(end, first - 1), every));
  }
  for (auto& e : events) *resp->add_events() = std::move(e);
  for (const auto& e : recent) *resp->add_events() = *e;
  return absl::OkStatus();
}

absl::Status GetSnapshotImpl(SessionManager& sessions, const Caller& caller,
                             const v1::GetSnapshotRequest& req, v1::Snapshot* resp) {
  ASSIGN_OR_RETURN(WeightsRef ref, ParseSnapshotName(req.name()));
  RETURN_IF_ERROR(SessionFor(sessions, caller, ref.session).status());
  ASSIGN_OR_RETURN(std::shared_ptr<LiveSession> session, sessions.Find(ref.session));
  ASSIGN_OR_RETURN(core::TrainerState state, sessions.State(ref));
  *resp =
      SnapshotMetadata(SnapshotName(ref.session, state.step), state, session->options().network);
  ASSIGN_OR_RETURN(std::vector<SnapshotInfo> stored,
                   sessions.storage()->ListSnapshots(ref.session));
  for (const SnapshotInfo& info : stored)
    if (info.step == state.step && info.create_time_us > 0)
      *resp->mutable_create_time() = FromMicros(info.create_time_us);
  return absl::OkStatus();
}

absl::Status ListSnapshotsImpl(SessionManager& sessions, const Caller& caller,
                               const v1::ListSnapshotsRequest& req,
                               v1::ListSnapshotsResponse* resp) {
  RETURN_IF_ERROR(SessionFor(sessions, caller, req.parent()).status());
  const std::string listing = absl::StrCat("snapshots|", req.parent());
  ASSIGN_OR_RETURN(const std::string position, DecodePageToken(listing, req.page_token()));
  int64_t after = -1;
  if (!req.page_token().empty() && (!absl::SimpleAtoi(position, &after) || after < 0))
    return BadToken();
  ASSIGN_OR_RETURN(std::vector<SnapshotInfo> stored,
                   sessions.storage()->ListSnapshots(req.parent()));
  const int size = PageSize(req.page_size(), 50, 1000);
  for (const SnapshotInfo& info : stored) {
    if (info.step <= after) continue;
    if (resp->snapshots_size() == size) {
      resp->set_next_page_token(
          EncodePageToken(listing, std::to_string(resp->snapshots(size - 1).step())));
      break;
    }
    v1::Snapshot* e = resp->add_snapshots();
    e->set_name(SnapshotName(req.parent(), info.step));
    e->set_step(info.step);
    if (info.create_time_us > 0) *e->mutable_create_time() = FromMicros(info.create_time_us);
  }
  return absl::OkStatus();
}

absl::Status PredictImpl(SessionManager& sessions, const Caller& caller,
                         const v1::PredictRequest& req, v1::PredictResponse* resp) {
  ASSIGN_OR_RETURN(WeightsRef ref, ParseWeightsName(req.name()));
  RETURN_IF_ERROR(SessionFor(sessions, caller, ref.session).status());
  ASSIGN_OR_RETURN(SessionManager::Served served, sessions.Weights(ref));
  ASSIGN_OR_RETURN(core::ConstMatrixMap x, MapProto(req.inputs(), "inputs"));  // no copy
  // The answer must fit a message: outputs (out x examples) of at most 2^24 floats.
  const int64_t outputs = int64_t{served.network->config().sizes.back()} * x.cols();
  if (outputs > (int64_t{1} << 24))
    return absl::ResourceExhaustedError(
        absl::StrCat("the outputs would be ", outputs, " values (", x.cols(),
                     " examples); at most 16777216 per request: send fewer examples at once"));
  ASSIGN_OR_RETURN(core::Matrix y, served.network->Predict(x));
  ToProto(y, resp->mutable_outputs());
  resp->set_step(served.step);
  if (served.class_labels) {
    for (Eigen::Index j = 0; j < y.cols(); ++j) {
      Eigen::Index k;
      y.col(j).maxCoeff(&k);
      resp->add_classes(static_cast<int32_t>(k));
    }
  }
  return absl::OkStatus();
}

absl::Status EvaluateImpl(SessionManager& sessions, const Caller& caller,
                          const v1::EvaluateRequest& req, v1::EvaluateResponse* resp) {
  ASSIGN_OR_RETURN(WeightsRef ref, ParseWeightsName(req.name()));
  ASSIGN_OR_RETURN(v1::Session r, SessionFor(sessions, caller, ref.session));
  std::string dataset = req.dataset();
  if (dataset.empty()) {
    dataset = r.eval_dataset().empty() ? r.train_dataset() : r.eval_dataset();
  } else {
    RETURN_IF_ERROR(ParseDatasetName(dataset, "dataset").status());
    RETURN_IF_ERROR(DatasetFor(sessions, caller, dataset).status());
  }
  ASSIGN_OR_RETURN(SessionManager::Served served, sessions.Weights(ref));
  ASSIGN_OR_RETURN(auto data, sessions.datasets()->Load(dataset));
  ASSIGN_OR_RETURN(core::EvalMetrics m, served.network->Evaluate(*data));
  m.step = served.step;
  m.epoch = served.epoch;
  ToProto(m, resp->mutable_metrics());
  return absl::OkStatus();
}

absl::Status ListRulesImpl(SessionManager&, const Caller&, const v1::ListRulesRequest&,
                           v1::ListRulesResponse* resp) {
  for (const core::RuleTraits& t : core::kRuleTable) {
    v1::RuleInfo* r = resp->add_rules();
    r->set_rule(FromRule(t.rule));
    r->set_name(std::string(t.name));
    r->set_long_name(std::string(t.long_name));
    r->set_title(std::string(t.title));
    r->set_learns_hidden(t.learns_hidden);
    r->set_has_feedback(t.has_feedback);
    r->set_draws_feedback(t.draws_feedback);
    r->set_learns_feedback(t.learns_feedback);
    r->set_refreshes(t.refreshes);
    r->set_settable(t.settable);
    r->set_trains_conv(t.conv);
    switch (t.shape) {
      case core::FeedbackShape::kNone:
        r->set_feedback_shape(v1::FEEDBACK_SHAPE_NONE);
        break;
      case core::FeedbackShape::kLikeW:
        r->set_feedback_shape(v1::FEEDBACK_SHAPE_LIKE_W);
        break;
      case core::FeedbackShape::kOutputToUnits:
        r->set_feedback_shape(v1::FEEDBACK_SHAPE_OUTPUT_TO_UNITS);
        break;
    }
    r->set_reference(std::string(t.reference));
  }
  return absl::OkStatus();
}

}  // namespace alignd::server
