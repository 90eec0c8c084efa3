// File: dashboard/bridge.cc
#include "dashboard/bridge.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <httplib.h>
#include <zlib.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "alignd/health/v1/health.grpc.pb.h"
#include "alignd/v1/datasets.grpc.pb.h"
#include "alignd/v1/sessions.grpc.pb.h"
#include "formats/formats.h"

namespace alignd::dashboard {
namespace {

using httplib::Request;
using httplib::Response;

std::string Json(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::util::JsonPrintOptions o;
  o.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(m, &out, o);
  return out;
}

// body gzip'ed at level 1 (fast: ~5 ms for an 800 KB history, a fifth of the size).
std::optional<std::string> Gzip(const std::string& body) {
  z_stream zs{};
  if (deflateInit2(&zs, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) return std::nullopt;
  std::string out(deflateBound(&zs, body.size()), '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(body.data()));
  zs.avail_in = static_cast<uInt>(body.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  if (rc != Z_STREAM_END) return std::nullopt;
  return out;
}

// A response body, gzip'ed when the client takes it and it is worth it. Not left to
// cpp-httplib, which would pick brotli at its highest quality for JSON (1.7 s for an 800 KB
// history): a type with a charset parameter is one it leaves alone.
void Reply(const Request& req, Response& res, std::string body,
           const char* type = "application/json") {
  res.set_header("Vary", "Accept-Encoding");
  if (body.size() >= 1024 && absl::StrContains(req.get_header_value("Accept-Encoding"), "gzip")) {
    if (std::optional<std::string> z = Gzip(body)) {
      res.set_header("Content-Encoding", "gzip");
      body = std::move(*z);
    }
  }
  res.set_content(std::move(body), absl::StrCat(type, "; charset=utf-8"));
}

std::string CodeName(grpc::StatusCode code) {
  return absl::StatusCodeToString(static_cast<absl::StatusCode>(code));  // "NOT_FOUND"
}

// `"code": "NOT_FOUND", "message": "..."`: an error's JSON fields (the message escaped as the
// mapping escapes, by way of a message that holds it).
std::string ErrorFields(const grpc::Status& st) {
  google::protobuf::Value message;
  message.set_string_value(st.error_message());
  return absl::StrCat("\"code\": \"", CodeName(st.error_code()),
                      "\", \"message\": ", Json(message));
}

void Fail(Response& res, const grpc::Status& st) {
  res.status = HttpStatus(st.error_code());
  res.set_content(absl::StrCat("{", ErrorFields(st), "}"), "application/json; charset=utf-8");
}

// A call's context: the browser's bearer token forwarded, a deadline for unary calls.
std::unique_ptr<grpc::ClientContext> Context(const Request& req, bool unary = true) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  const std::string auth = req.get_header_value("Authorization");
  if (!auth.empty()) ctx->AddMetadata("authorization", auth);
  if (unary) ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  return ctx;
}

// Every page of a List call into `all`: `call(ctx, request, page)` is the stub's method,
// `items(response)` the repeated field the pages are joined on.
template <typename ListRequest, typename ListResponse, typename Call, typename Items>
grpc::Status EveryPage(const Request& req, ListRequest r, Call call, Items items,
                       ListResponse* all) {
  do {
    auto ctx = Context(req);
    ListResponse page;
    if (grpc::Status st = call(ctx.get(), r, &page); !st.ok()) return st;
    for (auto& x : *items(page)) *items(*all)->Add() = std::move(x);
    r.set_page_token(page.next_page_token());
  } while (!r.page_token().empty());
  return grpc::Status::OK;
}

int64_t IntParam(const Request& req, const char* name, int64_t dflt) {
  int64_t v = dflt;
  if (req.has_param(name) && !absl::SimpleAtoi(req.get_param_value(name), &v)) return dflt;
  return v;
}

constexpr char kId[] = "([a-z0-9][a-z0-9-]{0,62})";

// The newest step and evaluation figures of each session, for the session list: read once
// backwards from the end of the log (a few hundred events at most), then forwards from the
// last seq seen each time a session's last_seq moves. One small ListMetrics per changed
// session and listing, however long the logs are.
class LatestFigures {
 public:
  explicit LatestFigures(std::shared_ptr<v1::TrainingService::Stub> training)
      : training_(std::move(training)) {}

  // {"step": StepMetrics, "eval": EvalMetrics} as JSON (either may be absent).
  nlohmann::json For(const Request& req, const v1::Session& s) {
    Entry e;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (auto it = cache_.find(s.name()); it != cache_.end()) e = it->second;
    }
    if (e.seq > s.last_seq()) e = Entry{};  // rewound: a restart from a checkpoint
    if (e.seq != s.last_seq()) {
      // Near: read on from where the figures are. Far (new here, or a fast session's lag):
      // from the end backwards, keeping the old figures if nothing newer is stored yet.
      Entry next = s.last_seq() - e.seq > kMaxWindows * kWindow ? Entry{} : e;
      bool ok = next.seq == 0 ? Backwards(req, s, next) : Forwards(req, s, next);
      // Backwards probes can land before what is already known: read on from that instead.
      if (ok && next.seq <= e.seq && e.seq > 0) {
        next = e;
        ok = Forwards(req, s, next);
      }
      if (ok) {
        if (!next.step) next.step = e.step;
        if (!next.eval) next.eval = e.eval;
        e = next;
        std::lock_guard<std::mutex> lock(mu_);
        cache_[s.name()] = e;
      }
    }
    nlohmann::json out = nlohmann::json::object();
    if (e.step) out["step"] = nlohmann::json::parse(Json(*e.step));
    if (e.eval) out["eval"] = nlohmann::json::parse(Json(*e.eval));
    return out;
  }

  void Forget(const std::string& name) {
    std::lock_guard<std::mutex> lock(mu_);
    cache_.erase(name);
  }

 private:
  static constexpr int64_t kWindow = 200;
  static constexpr int kMaxWindows = 5;  // windows with events read back at most
  static constexpr int kMaxProbes = 40;  // windows not stored yet, each twice as far back
  struct Entry {
    // The newest seq read. It can trail the session's last_seq: a running session's
    // newest events reach storage (and ListMetrics) in batches, a few hundred ms later.
    int64_t seq = 0;
    std::optional<v1::StepMetrics> step;
    std::optional<v1::EvalMetrics> eval;
  };

  bool Read(const Request& req, const std::string& session, int64_t from, int64_t size,
            v1::ListMetricsResponse* page) {
    v1::ListMetricsRequest r;
    r.set_parent(session);
    r.set_start_seq(from);
    r.set_page_size(static_cast<int32_t>(size));
    auto ctx = Context(req);
    return training_->ListMetrics(ctx.get(), r, page).ok();
  }

  // The newest figures of each kind, window by window from the end of the log. A running
  // session's newest events reach storage in batches: where a window is not stored yet, the
  // next probe looks twice as far back, so a lag of any size costs a few small reads.
  bool Backwards(const Request& req, const v1::Session& s, Entry& e) {
    int64_t back = 0;
    for (int read = 0, probes = 0;
         read < kMaxWindows && probes < kMaxProbes && !(e.step && e.eval);) {
      const int64_t last = s.last_seq() - back;
      if (last < 1) break;
      const int64_t first = std::max<int64_t>(1, last - kWindow + 1);
      v1::ListMetricsResponse page;
      if (!Read(req, s.name(), first, last - first + 1, &page)) return false;
      if (page.events().empty()) {
        back = back == 0 ? kWindow : 2 * back;
        ++probes;
        continue;
      }
      std::optional<v1::StepMetrics> step;
      std::optional<v1::EvalMetrics> eval;
      for (const auto& m : page.events()) {
        if (m.seq() > last) break;
        if (m.has_step()) step = m.step();
        if (m.has_eval()) eval = m.eval();
        e.seq = std::max(e.seq, m.seq());
      }
      if (!e.step) e.step = step;
      if (!e.eval) e.eval = eval;
      ++read;
      back = s.last_seq() - first + 1;  // the window before this one
    }
    return true;
  }

  // Everything after the figures' seq, the newest winning.
  bool Forwards(const Request& req, const v1::Session& s, Entry& e) {
    for (int64_t from = e.seq + 1; from <= s.last_seq();) {
      v1::ListMetricsResponse page;
      if (!Read(req, s.name(), from, 10000, &page)) return false;
      if (page.events().empty()) break;
      for (const auto& m : page.events()) {
        if (m.has_step()) e.step = m.step();
        if (m.has_eval()) e.eval = m.eval();
      }
      e.seq = page.events().rbegin()->seq();
      from = e.seq + 1;
    }
    return true;
  }

  std::shared_ptr<v1::TrainingService::Stub> training_;
  std::mutex mu_;
  std::map<std::string, Entry> cache_;
};

}  // namespace

int HttpStatus(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return 200;
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::OUT_OF_RANGE:
      return 400;
    case grpc::StatusCode::UNAUTHENTICATED:
      return 401;
    case grpc::StatusCode::PERMISSION_DENIED:
      return 403;
    case grpc::StatusCode::NOT_FOUND:
      return 404;
    case grpc::StatusCode::ALREADY_EXISTS:
    case grpc::StatusCode::FAILED_PRECONDITION:
    case grpc::StatusCode::ABORTED:
      return 409;
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return 429;
    case grpc::StatusCode::CANCELLED:
      return 499;
    case grpc::StatusCode::UNIMPLEMENTED:
      return 501;
    case grpc::StatusCode::UNAVAILABLE:
      return 503;
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return 504;
    default:
      return 500;
  }
}

void AddApiRoutes(httplib::Server& http, std::shared_ptr<grpc::Channel> channel) {
  std::shared_ptr<v1::TrainingService::Stub> training = v1::TrainingService::NewStub(channel);
  std::shared_ptr<v1::DatasetService::Stub> datasets = v1::DatasetService::NewStub(channel);
  std::shared_ptr<grpc::health::v1::Health::Stub> health =
      grpc::health::v1::Health::NewStub(channel);

  http.Get("/healthz", [health](const Request& req, Response& res) {
    auto ctx = Context(req);
    grpc::health::v1::HealthCheckRequest r;
    grpc::health::v1::HealthCheckResponse out;
    if (grpc::Status st = health->Check(ctx.get(), r, &out); !st.ok()) return Fail(res, st);
    Reply(req, res, Json(out));
  });

  auto latest = std::make_shared<LatestFigures>(training);
  // Each session as the proto JSON mapping plus "latest": its newest step and evaluation
  // figures (LatestFigures).
  auto with_latest = [latest](const Request& req, const v1::Session& s) {
    nlohmann::json j = nlohmann::json::parse(Json(s));
    j["latest"] = latest->For(req, s);
    return j;
  };

  http.Get("/api/sessions", [training, with_latest](const Request& req, Response& res) {
    v1::ListSessionsResponse all;
    v1::ListSessionsRequest r;
    r.set_page_size(1000);
    if (grpc::Status st = EveryPage(
            req, r,
            [&](auto* ctx, const auto& q, auto* page) {
              return training->ListSessions(ctx, q, page);
            },
            [](auto& x) { return x.mutable_sessions(); }, &all);
        !st.ok())
      return Fail(res, st);
    nlohmann::json list = nlohmann::json::array();
    for (const v1::Session& s : all.sessions()) list.push_back(with_latest(req, s));
    Reply(req, res, nlohmann::json{{"sessions", list}}.dump());
  });

  http.Get(absl::StrCat("/api/sessions/", kId),
           [training, with_latest](const Request& req, Response& res) {
             auto ctx = Context(req);
             v1::GetSessionRequest r;
             r.set_name(absl::StrCat("sessions/", req.matches[1].str()));
             v1::Session out;
             if (grpc::Status st = training->GetSession(ctx.get(), r, &out); !st.ok())
               return Fail(res, st);
             Reply(req, res, with_latest(req, out).dump());
           });

  http.Post("/api/sessions", [training](const Request& req, Response& res) {
    v1::CreateSessionRequest r;
    if (auto st = google::protobuf::util::JsonStringToMessage(req.body, &r); !st.ok())
      return Fail(res, grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                    absl::StrCat("the body is not a CreateSessionRequest: ",
                                                 st.message().as_string())));
    auto ctx = Context(req);
    v1::Session out;
    if (grpc::Status st = training->CreateSession(ctx.get(), r, &out); !st.ok())
      return Fail(res, st);
    Reply(req, res, Json(out));
  });

  http.Post(absl::StrCat("/api/sessions/", kId, ":(pause|resume|cancel)"),
            [training](const Request& req, Response& res) {
              const std::string name = absl::StrCat("sessions/", req.matches[1].str());
              const std::string verb = req.matches[2].str();
              auto ctx = Context(req);
              v1::Session out;
              grpc::Status st;
              if (verb == "pause") {
                v1::PauseSessionRequest r;
                r.set_name(name);
                st = training->PauseSession(ctx.get(), r, &out);
              } else if (verb == "resume") {
                v1::ResumeSessionRequest r;
                r.set_name(name);
                st = training->ResumeSession(ctx.get(), r, &out);
              } else {
                v1::CancelSessionRequest r;
                r.set_name(name);
                st = training->CancelSession(ctx.get(), r, &out);
              }
              if (!st.ok()) return Fail(res, st);
              Reply(req, res, Json(out));
            });

  http.Delete(absl::StrCat("/api/sessions/", kId),
              [training, latest](const Request& req, Response& res) {
                auto ctx = Context(req);
                v1::DeleteSessionRequest r;
                r.set_name(absl::StrCat("sessions/", req.matches[1].str()));
                google::protobuf::Empty out;
                if (grpc::Status st = training->DeleteSession(ctx.get(), r, &out); !st.ok())
                  return Fail(res, st);
                latest->Forget(r.name());
                Reply(req, res, "{}");
              });

  http.Get(absl::StrCat("/api/sessions/", kId, "/snapshots"),
           [training](const Request& req, Response& res) {
             v1::ListSnapshotsResponse all;
             v1::ListSnapshotsRequest r;
             r.set_parent(absl::StrCat("sessions/", req.matches[1].str()));
             r.set_page_size(1000);
             if (grpc::Status st = EveryPage(
                     req, r,
                     [&](auto* ctx, const auto& q, auto* page) {
                       return training->ListSnapshots(ctx, q, page);
                     },
                     [](auto& x) { return x.mutable_snapshots(); }, &all);
                 !st.ok())
               return Fail(res, st);
             Reply(req, res, Json(all));
           });

  const std::string snapshot = absl::StrCat("/api/sessions/", kId, "/snapshots/([0-9]+|latest)");
  http.Get(snapshot, [training](const Request& req, Response& res) {
    auto ctx = Context(req);
    v1::GetSnapshotRequest r;
    r.set_name(
        absl::StrCat("sessions/", req.matches[1].str(), "/snapshots/", req.matches[2].str()));
    v1::Snapshot out;
    if (grpc::Status st = training->GetSnapshot(ctx.get(), r, &out); !st.ok()) return Fail(res, st);
    Reply(req, res, Json(out));
  });

  // One tensor of a snapshot as a NumPy .npy file (float32, its rows x cols shape).
  http.Get(absl::StrCat(snapshot, "/([A-Za-z]+[0-9]+)\\.npy"), [training](const Request& req,
                                                                          Response& res) {
    auto ctx = Context(req);
    v1::ReadSnapshotRequest r;
    r.set_name(
        absl::StrCat("sessions/", req.matches[1].str(), "/snapshots/", req.matches[2].str()));
    const std::string label = req.matches[3].str();
    auto reader = training->ReadSnapshot(ctx.get(), r);
    v1::SnapshotChunk chunk;
    v1::Snapshot header;
    int64_t offset = -1, rows = 0, cols = 0;
    std::vector<float> values;
    while (reader->Read(&chunk)) {
      if (chunk.has_header()) {
        header = chunk.header();
        int64_t at = 0;
        for (const auto& t : header.shapes()) {
          if (t.label() == label) offset = at, rows = t.rows(), cols = t.cols();
          at += t.rows() * t.cols();
        }
        if (offset < 0) {
          ctx->TryCancel();
          (void)reader->Finish();
          return Fail(res, grpc::Status(grpc::StatusCode::NOT_FOUND,
                                        absl::StrCat(header.name(), " has no tensor ", label)));
        }
        values.resize(static_cast<size_t>(rows * cols));
        continue;
      }
      // Column-major on the wire, row-major (C order) in the file, as alignctl writes it.
      const auto& v = chunk.values();
      for (int i = 0; i < v.data_size(); ++i) {
        const int64_t at = v.offset() + i - offset;
        if (at >= 0 && at < rows * cols)
          values[static_cast<size_t>((at % rows) * cols + at / rows)] = v.data(i);
      }
    }
    if (grpc::Status st = reader->Finish(); !st.ok()) return Fail(res, st);
    res.set_header("Content-Disposition",
                   absl::StrCat("attachment; filename=\"", req.matches[1].str(), "-", header.step(),
                                "-", label, ".npy\""));
    res.set_content(formats::EncodeNpy({rows, cols}, values.data()), "application/octet-stream");
  });

  http.Get(absl::StrCat("/api/sessions/", kId, "/metrics"),
           [training](const Request& req, Response& res) {
             v1::ListMetricsResponse all;
             v1::ListMetricsRequest r;
             r.set_parent(absl::StrCat("sessions/", req.matches[1].str()));
             r.set_max_points(static_cast<int32_t>(IntParam(req, "max_points", 0)));
             r.set_start_seq(IntParam(req, "start_seq", 0));
             r.set_page_size(10000);
             if (grpc::Status st = EveryPage(
                     req, r,
                     [&](auto* ctx, const auto& q, auto* page) {
                       return training->ListMetrics(ctx, q, page);
                     },
                     [](auto& x) { return x.mutable_events(); }, &all);
                 !st.ok())
               return Fail(res, st);
             Reply(req, res, Json(all));
           });

  // Server-Sent Events from StreamMetrics. A browser's EventSource reconnects by itself with
  // the last id it saw in Last-Event-ID: the stream resumes after it, nothing twice.
  http.Get(absl::StrCat("/api/sessions/", kId, "/events"),
           [training](const Request& req, Response& res) {
             int64_t start = IntParam(req, "start_seq", 0);
             int64_t last_id = 0;
             if (absl::SimpleAtoi(req.get_header_value("Last-Event-ID"), &last_id) && last_id > 0)
               start = last_id + 1;
             auto request = std::make_shared<v1::StreamMetricsRequest>();
             request->set_parent(absl::StrCat("sessions/", req.matches[1].str()));
             request->set_start_seq(start);
             auto ctx = std::shared_ptr<grpc::ClientContext>(Context(req, /*unary=*/false));
             res.set_header("Cache-Control", "no-cache");
             res.set_header("X-Accel-Buffering", "no");  // proxies: do not hold the stream back
             res.set_chunked_content_provider(
                 "text/event-stream", [training, request, ctx](size_t, httplib::DataSink& sink) {
                   auto reader = training->StreamMetrics(ctx.get(), *request);
                   v1::MetricEvent e;
                   while (reader->Read(&e)) {
                     std::string frame;
                     switch (e.event_case()) {
                       case v1::MetricEvent::kHeartbeat:
                         frame = ": heartbeat\n\n";
                         break;
                       case v1::MetricEvent::kEnd:
                         frame = absl::StrCat("event: end\ndata: ", Json(e), "\n\n");
                         break;
                       default:
                         frame = absl::StrCat("id: ", e.seq(), "\ndata: ", Json(e), "\n\n");
                     }
                     if (!sink.write(frame.data(), frame.size())) {  // the browser went away
                       ctx->TryCancel();
                       (void)reader->Finish();
                       return false;
                     }
                   }
                   grpc::Status st = reader->Finish();
                   if (!st.ok()) {
                     const std::string frame = absl::StrCat("event: error\ndata: {\"code\": \"",
                                                            CodeName(st.error_code()), "\"}\n\n");
                     sink.write(frame.data(), frame.size());
                   }
                   sink.done();
                   return true;
                 });
           });

  // Several sessions' StreamMetrics in one SSE response: a browser holds six HTTP/1.1
  // connections per host, so a page following a sweep's fifteen runs on fifteen streams
  // would stall. ?s=id:start,id:start,... Each event is `event: metric` with data
  // {"session": id, "event": MetricEvent}; `event: end` {"session", "end": Session};
  // `event: error` {"session", "code", "message"} for a stream alignd ended with an error.
  // One reader thread per session; the response ends when every stream has.
  http.Get("/api/events", [training](const Request& req, Response& res) {
    struct Sub {
      std::string id;
      int64_t start = 0;
    };
    std::vector<Sub> subs;
    for (absl::string_view item :
         absl::StrSplit(req.get_param_value("s"), ',', absl::SkipEmpty())) {
      std::pair<absl::string_view, absl::string_view> kv = absl::StrSplit(item, ':');
      Sub sub{std::string(kv.first), 0};
      static const std::regex id(kId);
      if (!std::regex_match(sub.id, id) ||
          (!kv.second.empty() && !absl::SimpleAtoi(kv.second, &sub.start)))
        return Fail(res, grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                      absl::StrCat("s: \"", item, "\" is not id:start_seq")));
      subs.push_back(std::move(sub));
    }
    if (subs.empty() || subs.size() > 256)
      return Fail(res, grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                    "s: 1 to 256 sessions as id:start_seq,..."));
    const std::string auth = req.get_header_value("Authorization");
    res.set_header("Cache-Control", "no-cache");
    res.set_header("X-Accel-Buffering", "no");
    res.set_chunked_content_provider("text/event-stream", [training, subs, auth](
                                                              size_t, httplib::DataSink& sink) {
      struct Shared {
        std::mutex mu;
        std::condition_variable cv;
        std::deque<std::string> frames;
        size_t open = 0;
        bool gone = false;  // the browser went away
      };
      auto sh = std::make_shared<Shared>();
      sh->open = subs.size();
      std::vector<std::shared_ptr<grpc::ClientContext>> ctxs;
      std::vector<std::thread> readers;
      auto push = [sh](std::string frame) {
        std::unique_lock<std::mutex> lock(sh->mu);
        // A slow browser holds the readers back rather than fill memory.
        sh->cv.wait(lock, [&] { return sh->gone || sh->frames.size() < 4096; });
        if (sh->gone) return;
        sh->frames.push_back(std::move(frame));
        sh->cv.notify_all();
      };
      for (const Sub& sub : subs) {
        auto ctx = std::make_shared<grpc::ClientContext>();
        if (!auth.empty()) ctx->AddMetadata("authorization", auth);
        ctxs.push_back(ctx);
        readers.emplace_back([training, sub, ctx, push, sh] {
          v1::StreamMetricsRequest r;
          r.set_parent(absl::StrCat("sessions/", sub.id));
          r.set_start_seq(sub.start);
          auto reader = training->StreamMetrics(ctx.get(), r);
          const std::string tag = absl::StrCat("{\"session\": \"", sub.id, "\", ");
          v1::MetricEvent e;
          while (reader->Read(&e)) {
            if (e.has_heartbeat()) {
              push(": heartbeat\n\n");
            } else if (e.has_end()) {
              push(absl::StrCat("event: end\ndata: ", tag, "\"end\": ", Json(e.end()), "}\n\n"));
            } else {
              push(absl::StrCat("event: metric\ndata: ", tag, "\"event\": ", Json(e), "}\n\n"));
            }
          }
          grpc::Status st = reader->Finish();
          if (!st.ok() && st.error_code() != grpc::StatusCode::CANCELLED) {
            push(absl::StrCat("event: error\ndata: ", tag, ErrorFields(st), "}\n\n"));
          }
          std::lock_guard<std::mutex> lock(sh->mu);
          --sh->open;
          sh->cv.notify_all();
        });
      }
      bool ok = true;
      for (;;) {
        std::unique_lock<std::mutex> lock(sh->mu);
        sh->cv.wait(lock, [&] { return !sh->frames.empty() || sh->open == 0; });
        if (sh->frames.empty()) break;  // every stream ended
        std::string frame = std::move(sh->frames.front());
        sh->frames.pop_front();
        sh->cv.notify_all();
        lock.unlock();
        if (!sink.write(frame.data(), frame.size())) {
          ok = false;
          break;
        }
      }
      {
        std::lock_guard<std::mutex> lock(sh->mu);
        sh->gone = true;
        sh->cv.notify_all();
      }
      for (auto& ctx : ctxs) ctx->TryCancel();
      for (auto& t : readers) t.join();
      if (ok) sink.done();
      return ok;
    });
  });

  http.Get("/api/datasets", [datasets](const Request& req, Response& res) {
    v1::ListDatasetsResponse all;
    v1::ListDatasetsRequest r;
    r.set_page_size(1000);
    if (grpc::Status st = EveryPage(
            req, r,
            [&](auto* ctx, const auto& q, auto* page) {
              return datasets->ListDatasets(ctx, q, page);
            },
            [](auto& x) { return x.mutable_datasets(); }, &all);
        !st.ok())
      return Fail(res, st);
    Reply(req, res, Json(all));
  });
}

}  // namespace alignd::dashboard
