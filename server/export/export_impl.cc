// File: server/export/export_impl.cc
// ExportSession: what to read for each format, and the stream that sends the file.
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "server/api/resource_names.h"
#include "server/api/rpc_impl.h"
#include "server/api/stream_reactor.h"
#include "server/export/export_stream.h"
#include "server/export/exports.h"

namespace alignd::server {

absl::StatusOr<ExportFile> ExportSessionImpl(SessionManager& sessions, const Caller& caller,
                                             const v1::ExportSessionRequest& req) {
  ASSIGN_OR_RETURN(const v1::Session session, SessionFor(sessions, caller, req.name()));
  const v1::ExportFormat format = req.format();
  const bool weights = format == v1::EXPORT_FORMAT_SAFETENSORS || format == v1::EXPORT_FORMAT_ONNX;
  if (format == v1::EXPORT_FORMAT_UNSPECIFIED || !v1::ExportFormat_IsValid(format))
    return absl::InvalidArgumentError(
        absl::StrCat("format: ", format == 0 ? "required" : absl::StrCat("unknown value ", format),
                     " (csv, jsonl, tfevents, session_json, safetensors or onnx)"));
  if (!req.snapshot().empty() && !weights)
    return absl::InvalidArgumentError(
        absl::StrCat("snapshot: only safetensors and onnx exports read a snapshot; ",
                     v1::ExportFormat_Name(format), " exports the session's metric log"));
  if (format == v1::EXPORT_FORMAT_SESSION_JSON)
    return ExportFile{absl::StrCat(SessionIdOf(session), ".json"), "application/json",
                      SessionJson(session) + "\n"};
  if (weights) {
    WeightsRef ref{req.name(), WeightsRef::kLatest};
    if (!req.snapshot().empty()) {
      ASSIGN_OR_RETURN(ref, ParseSnapshotName(req.snapshot(), "snapshot"));
      if (ref.session != req.name())
        return absl::InvalidArgumentError(
            absl::StrCat("snapshot: ", req.snapshot(), " is not a snapshot of ", req.name()));
    }
    ASSIGN_OR_RETURN(const std::shared_ptr<LiveSession> live, sessions.Find(req.name()));
    ASSIGN_OR_RETURN(const core::TrainerState state, sessions.State(ref));
    return ExportWeights(session, state, live->options().network, format);
  }
  // The whole log up to last_seq, as ListMetrics pages it.
  std::vector<v1::MetricEvent> events;
  v1::ListMetricsRequest list;
  list.set_parent(req.name());
  list.set_page_size(10000);
  for (;;) {
    v1::ListMetricsResponse page;
    RETURN_IF_ERROR(ListMetricsImpl(sessions, caller, list, &page));
    bool past = false;  // the log up to the session's last_seq as read above, no further
    for (auto& e : *page.mutable_events()) {
      if (e.seq() > session.last_seq()) {
        past = true;
        break;
      }
      events.push_back(std::move(e));
    }
    if (past || page.next_page_token().empty()) break;
    list.set_page_token(page.next_page_token());
  }
  return ExportMetricLog(session, events, format);
}

namespace {

constexpr size_t kExportChunkBytes = 1 << 20;

// Makes the file on the executor, then sends it in chunks of at most 1 MiB.
class ExportStream final : public StreamReactor<v1::ExportChunk> {
 public:
  ExportStream(SessionManager* sessions, Executor* executor, Caller caller,
               v1::ExportSessionRequest req)
      : StreamReactor(executor),
        sessions_(sessions),
        caller_(std::move(caller)),
        req_(std::move(req)) {
    Pump();
  }

 private:
  void Next() override ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!made_) {
      made_ = true;
      return Fetch([this]() -> absl::Status {
        ASSIGN_OR_RETURN(file_, ExportSessionImpl(*sessions_, caller_, req_));
        return absl::OkStatus();
      });
    }
    if (sent_ > 0 && sent_ >= file_.data.size()) return End(grpc::Status::OK);
    current_.Clear();
    if (sent_ == 0) {
      current_.set_filename(file_.filename);
      current_.set_content_type(file_.content_type);
    }
    const size_t n = std::min(kExportChunkBytes, file_.data.size() - sent_);
    current_.set_data(file_.data.substr(sent_, n));
    sent_ += n;
    if (file_.data.empty()) sent_ = 1;  // an empty file is one chunk with its name
    Send(&current_);
  }

  SessionManager* const sessions_;
  const Caller caller_;
  const v1::ExportSessionRequest req_;
  ExportFile file_;  // the fetch's
  bool made_ ABSL_GUARDED_BY(mu_) = false;
  size_t sent_ ABSL_GUARDED_BY(mu_) = 0;
  v1::ExportChunk current_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

grpc::ServerWriteReactor<v1::ExportChunk>* NewExportStream(SessionManager* sessions,
                                                           Executor* executor, Caller caller,
                                                           const v1::ExportSessionRequest& req) {
  return new ExportStream(sessions, executor, std::move(caller), req);
}

}  // namespace alignd::server
