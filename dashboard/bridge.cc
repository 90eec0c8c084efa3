// File: dashboard/bridge.cc
#include "dashboard/bridge.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <httplib.h>
#include <zlib.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <system_error>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "alignd/health/v1/health.grpc.pb.h"
#include "alignd/v1/datasets.grpc.pb.h"
#include "alignd/v1/experiments.grpc.pb.h"
#include "alignd/v1/sessions.grpc.pb.h"
#include "dashboard/request_checks.h"
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
  if (body.size() > std::numeric_limits<uInt>::max()) return std::nullopt;
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

// `"code": "NOT_FOUND", "message": "..."`: an error's JSON fields (the message made UTF-8 and
// escaped as the mapping escapes, by way of a message that holds it).
std::string ErrorFields(const grpc::Status& st) {
  google::protobuf::Value message;
  message.set_string_value(ValidUtf8(st.error_message()));
  return absl::StrCat("\"code\": \"", CodeName(st.error_code()),
                      "\", \"message\": ", Json(message));
}

grpc::Status ToGrpc(const absl::Status& st) {
  return grpc::Status(static_cast<grpc::StatusCode>(st.code()), std::string(st.message()));
}

void Fail(Response& res, const grpc::Status& st) {
  res.status = HttpStatus(st.error_code());
  res.set_content(absl::StrCat("{", ErrorFields(st), "}"), "application/json; charset=utf-8");
}

// The JSON error body with `http_status`, and the connection closed after it: for a
// request whose body is left unread (what follows on the connection is not a request) or
// a refused stream (an idle keep-alive connection would hold a worker thread). cpp-httplib
// closes a connection when writing a response fails, and has no other way from a handler:
// the body goes out whole through a provider that then reports failure.
void FailAndClose(Response& res, int http_status, const grpc::Status& st) {
  res.status = http_status;
  res.set_header("Connection", "close");
  auto body = std::make_shared<std::string>(absl::StrCat("{", ErrorFields(st), "}"));
  res.set_content_provider(body->size(), "application/json; charset=utf-8",
                           [body](size_t offset, size_t length, httplib::DataSink& sink) {
                             sink.write(body->data() + offset, length);
                             return false;
                           });
}

// The JSON error body for cpp-httplib's own refusals (a malformed request, an unknown
// path, a body past the bound), which come with none.
grpc::Status ErrorFor(int http_status, size_t max_body_bytes) {
  switch (http_status) {
    case 404:
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "no such path");
    case 413:
      return grpc::Status(
          grpc::StatusCode::RESOURCE_EXHAUSTED,
          absl::StrCat("the request body is longer than ", max_body_bytes, " bytes"));
    case 414:
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "the request line is too long");
    default:
      return http_status < 500
                 ? grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                absl::StrCat("a malformed request (HTTP ", http_status, ")"))
                 : grpc::Status(grpc::StatusCode::INTERNAL,
                                absl::StrCat("the dashboard failed (HTTP ", http_status, ")"));
  }
}

// Who a request calls alignd as: its Authorization header, checked (RequestAuthorization),
// as the calls' "authorization" metadata. Context() is the one place the bridge makes a
// grpc::ClientContext, so nothing a browser sent reaches gRPC metadata unchecked.
class Caller {
 public:
  // Returns Unauthenticated for an Authorization header that is not "Bearer <token68>".
  static absl::StatusOr<Caller> Of(const Request& req, std::chrono::milliseconds deadline) {
    absl::StatusOr<std::optional<std::string>> auth = RequestAuthorization(req);
    if (!auth.ok()) return auth.status();
    return Caller(std::move(*auth), deadline);
  }

  // A call's context: the bearer token forwarded, the deadline for unary calls.
  std::unique_ptr<grpc::ClientContext> Context(bool unary = true) const {
    auto ctx = std::make_unique<grpc::ClientContext>();
    if (authorization_) ctx->AddMetadata("authorization", *authorization_);
    if (unary) ctx->set_deadline(std::chrono::system_clock::now() + deadline_);
    return ctx;
  }

 private:
  Caller(std::optional<std::string> authorization, std::chrono::milliseconds deadline)
      : authorization_(std::move(authorization)), deadline_(deadline) {}

  std::optional<std::string> authorization_;
  std::chrono::milliseconds deadline_;
};

// Every page of a List call into `all`: `call(ctx, request, page)` is the stub's method,
// `items(response)` the repeated field the pages are joined on.
template <typename ListRequest, typename ListResponse, typename Call, typename Items>
grpc::Status EveryPage(const Caller& caller, ListRequest r, Call call, Items items,
                       ListResponse* all) {
  do {
    auto ctx = caller.Context();
    ListResponse page;
    if (grpc::Status st = call(ctx.get(), r, &page); !st.ok()) return st;
    for (auto& x : *items(page)) *items(*all)->Add() = std::move(x);
    r.set_page_token(page.next_page_token());
  } while (!r.page_token().empty());
  return grpc::Status::OK;
}

constexpr char kId[] = "([a-z0-9][a-z0-9-]{0,62})";

// An export's ?format= (request_checks.h's kExportFormats) as ExportSession's format; the
// extension of the file name used when alignd's is unusable; whether it is text (gzip'ed
// for a client that takes it, as Reply does).
struct ExportKind {
  v1::ExportFormat format;
  const char* extension;
  bool text;
};

const ExportKind& ExportKindOf(const std::string& name) {
  static const auto* kinds = new std::map<std::string, ExportKind>{
      {"csv", {v1::EXPORT_FORMAT_CSV, ".csv", true}},
      {"jsonl", {v1::EXPORT_FORMAT_JSONL, ".jsonl", true}},
      {"tfevents", {v1::EXPORT_FORMAT_TFEVENTS, ".tfevents", false}},
      {"json", {v1::EXPORT_FORMAT_SESSION_JSON, ".json", true}},
      {"safetensors", {v1::EXPORT_FORMAT_SAFETENSORS, ".safetensors", false}},
      {"onnx", {v1::EXPORT_FORMAT_ONNX, ".onnx", false}},
  };
  return kinds->at(name);  // ParseExportQuery admits only these
}

// A file to download: `body` as it is, `type` and `filename` already checked for headers
// (SafeContentType, AttachmentName). Text of 1 KiB or more is gzip'ed at level 1 for a
// client that takes gzip (as Reply does), then the body goes out through a provider of
// known length: cpp-httplib compresses a text/* body given to set_content (again, with a
// second Content-Encoding after ours; at brotli's slowest quality for a client that takes
// br) but leaves a provider's bytes alone.
void Attachment(const Request& req, Response& res, std::string body, const std::string& type,
                const std::string& filename, bool text) {
  res.set_header("Vary", "Accept-Encoding");
  res.set_header("Content-Disposition", absl::StrCat("attachment; filename=\"", filename, "\""));
  if (text && body.size() >= 1024 &&
      absl::StrContains(req.get_header_value("Accept-Encoding"), "gzip")) {
    if (std::optional<std::string> z = Gzip(body)) {
      res.set_header("Content-Encoding", "gzip");
      body = std::move(*z);
    }
  }
  // (A provider of length 0 would be asked for more until it says done: none is needed.)
  if (body.empty()) return res.set_content(std::string(), type);
  auto shared = std::make_shared<const std::string>(std::move(body));
  res.set_content_provider(shared->size(), type,
                           [shared](size_t offset, size_t length, httplib::DataSink& sink) {
                             return sink.write(shared->data() + offset, length);
                           });
}

// The /api/events response: one reader thread per session, their frames merged onto
// `sink` as they come. Returns false when the browser went away.
bool FollowAll(v1::TrainingService::Stub& training, const std::vector<Subscription>& subs,
               const Caller& caller, httplib::DataSink& sink) {
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
  for (const Subscription& sub : subs) {
    std::shared_ptr<grpc::ClientContext> ctx = caller.Context(/*unary=*/false);
    const std::string tag = absl::StrCat("{\"session\": \"", sub.id, "\", ");
    auto read = [&training, sub, ctx, push, sh, tag] {
      v1::StreamMetricsRequest r;
      r.set_parent(absl::StrCat("sessions/", sub.id));
      r.set_start_seq(sub.start);
      auto reader = training.StreamMetrics(ctx.get(), r);
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
    };
    try {
      readers.emplace_back(std::move(read));
      ctxs.push_back(std::move(ctx));
    } catch (const std::system_error&) {
      // No thread to be had (the process's limit): this session's stream ends with an
      // error event, the others go on.
      const grpc::Status st(grpc::StatusCode::RESOURCE_EXHAUSTED,
                            "the dashboard has no thread to follow this session now");
      std::lock_guard<std::mutex> lock(sh->mu);
      sh->frames.push_back(absl::StrCat("event: error\ndata: ", tag, ErrorFields(st), "}\n\n"));
      --sh->open;
    }
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
}

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

void AddApiRoutes(httplib::Server& http, std::shared_ptr<grpc::Channel> channel,
                  const Limits& limits) {
  std::shared_ptr<v1::TrainingService::Stub> training = v1::TrainingService::NewStub(channel);
  std::shared_ptr<v1::DatasetService::Stub> datasets = v1::DatasetService::NewStub(channel);
  std::shared_ptr<v1::ExperimentService::Stub> experiments =
      v1::ExperimentService::NewStub(channel);
  std::shared_ptr<grpc::health::v1::Health::Stub> health =
      grpc::health::v1::Health::NewStub(channel);
  std::shared_ptr<StreamLimiter> streams =
      StreamLimiter::Create(limits.max_streams, limits.max_streams_per_client);

  // Bodies: framed by Content-Length (checked before cpp-httplib reads one) and bounded.
  http.set_payload_max_length(limits.max_body_bytes);
  http.set_pre_routing_handler([](const Request& req, Response& res) {
    std::optional<Refusal> refused = CheckFraming(req);
    if (!refused) return httplib::Server::HandlerResponse::Unhandled;
    FailAndClose(res, refused->http_status, ToGrpc(refused->status));
    return httplib::Server::HandlerResponse::Handled;
  });
  const size_t max_body = limits.max_body_bytes;
  http.set_error_handler(httplib::Server::HandlerWithResponse(
      [max_body](const Request&, Response& res) -> httplib::Server::HandlerResponse {
        if (!res.body.empty() || res.has_header("Content-Type"))
          return httplib::Server::HandlerResponse::Unhandled;  // ours, with its body
        const grpc::Status st = ErrorFor(res.status, max_body);
        res.set_content(absl::StrCat("{", ErrorFields(st), "}"), "application/json; charset=utf-8");
        return httplib::Server::HandlerResponse::Handled;
      }));

  // A route's handler, called with the request's Caller once its Authorization header
  // passed (else 401 with the JSON error body).
  const std::chrono::milliseconds deadline = limits.call_deadline;
  auto api = [deadline](auto handler) {
    return [deadline, handler](const Request& req, Response& res) {
      absl::StatusOr<Caller> caller = Caller::Of(req, deadline);
      if (!caller.ok()) return Fail(res, ToGrpc(caller.status()));
      handler(req, res, *caller);
    };
  };
  // An event stream's slot (StreamLimiter), or false after answering 429 (this client's
  // bound) or 503 (the bound in all) with Retry-After, closing the connection.
  auto stream_slot = [streams](const Request& req, Response& res, std::shared_ptr<void>* slot) {
    absl::StatusOr<std::shared_ptr<void>> s = streams->Acquire(req.remote_addr);
    if (s.ok()) {
      *slot = std::move(*s);
      return true;
    }
    res.set_header("Retry-After", "5");
    const grpc::Status st = ToGrpc(s.status());
    FailAndClose(res, HttpStatus(st.error_code()), st);
    return false;
  };

  http.Get("/healthz", api([health](const Request& req, Response& res, const Caller& caller) {
             auto ctx = caller.Context();
             grpc::health::v1::HealthCheckRequest r;
             grpc::health::v1::HealthCheckResponse out;
             if (grpc::Status st = health->Check(ctx.get(), r, &out); !st.ok())
               return Fail(res, st);
             Reply(req, res, Json(out));
           }));

  http.Get("/api/sessions",
           api([training](const Request& req, Response& res, const Caller& caller) {
             absl::StatusOr<std::string> filter = FilterParam(req);
             if (!filter.ok()) return Fail(res, ToGrpc(filter.status()));
             v1::ListSessionsResponse all;
             v1::ListSessionsRequest r;
             r.set_page_size(1000);
             // Every page's request carries it (EveryPage only changes the page token):
             // alignd's page tokens are bound to the filter they were made under.
             r.set_filter(*std::move(filter));
             if (grpc::Status st = EveryPage(
                     caller, r,
                     [&](auto* ctx, const auto& q, auto* page) {
                       return training->ListSessions(ctx, q, page);
                     },
                     [](auto& x) { return x.mutable_sessions(); }, &all);
                 !st.ok())
               return Fail(res, st);
             Reply(req, res, Json(all));
           }));

  http.Get(absl::StrCat("/api/sessions/", kId),
           api([training](const Request& req, Response& res, const Caller& caller) {
             auto ctx = caller.Context();
             v1::GetSessionRequest r;
             r.set_name(absl::StrCat("sessions/", req.matches[1].str()));
             v1::Session out;
             if (grpc::Status st = training->GetSession(ctx.get(), r, &out); !st.ok())
               return Fail(res, st);
             Reply(req, res, Json(out));
           }));

  http.Post(
      "/api/sessions", api([training](const Request& req, Response& res, const Caller& caller) {
        v1::CreateSessionRequest r;
        if (auto st = google::protobuf::util::JsonStringToMessage(req.body, &r); !st.ok())
          return Fail(res, grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                        absl::StrCat("the body is not a CreateSessionRequest: ",
                                                     st.message().as_string())));
        auto ctx = caller.Context();
        v1::Session out;
        if (grpc::Status st = training->CreateSession(ctx.get(), r, &out); !st.ok())
          return Fail(res, st);
        Reply(req, res, Json(out));
      }));

  http.Post(absl::StrCat("/api/sessions/", kId, ":(pause|resume|cancel)"),
            api([training](const Request& req, Response& res, const Caller& caller) {
              const std::string name = absl::StrCat("sessions/", req.matches[1].str());
              const std::string verb = req.matches[2].str();
              auto ctx = caller.Context();
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
            }));

  http.Delete(absl::StrCat("/api/sessions/", kId),
              api([training](const Request& req, Response& res, const Caller& caller) {
                auto ctx = caller.Context();
                v1::DeleteSessionRequest r;
                r.set_name(absl::StrCat("sessions/", req.matches[1].str()));
                google::protobuf::Empty out;
                if (grpc::Status st = training->DeleteSession(ctx.get(), r, &out); !st.ok())
                  return Fail(res, st);
                Reply(req, res, "{}");
              }));

  http.Get(absl::StrCat("/api/sessions/", kId, "/snapshots"),
           api([training](const Request& req, Response& res, const Caller& caller) {
             v1::ListSnapshotsResponse all;
             v1::ListSnapshotsRequest r;
             r.set_parent(absl::StrCat("sessions/", req.matches[1].str()));
             r.set_page_size(1000);
             if (grpc::Status st = EveryPage(
                     caller, r,
                     [&](auto* ctx, const auto& q, auto* page) {
                       return training->ListSnapshots(ctx, q, page);
                     },
                     [](auto& x) { return x.mutable_snapshots(); }, &all);
                 !st.ok())
               return Fail(res, st);
             Reply(req, res, Json(all));
           }));

  const std::string snapshot = absl::StrCat("/api/sessions/", kId, "/snapshots/([0-9]+|latest)");
  http.Get(snapshot, api([training](const Request& req, Response& res, const Caller& caller) {
             auto ctx = caller.Context();
             v1::GetSnapshotRequest r;
             r.set_name(absl::StrCat("sessions/", req.matches[1].str(), "/snapshots/",
                                     req.matches[2].str()));
             v1::Snapshot out;
             if (grpc::Status st = training->GetSnapshot(ctx.get(), r, &out); !st.ok())
               return Fail(res, st);
             Reply(req, res, Json(out));
           }));

  // One tensor of a snapshot as a NumPy .npy file (float32, its rows x cols shape, or a conv
  // kernel's [out, in, kh, kw]).
  http.Get(
      absl::StrCat(snapshot, "/([A-Za-z]+[0-9]+)\\.npy"),
      api([training](const Request& req, Response& res, const Caller& caller) {
        auto ctx = caller.Context();
        v1::ReadSnapshotRequest r;
        r.set_name(
            absl::StrCat("sessions/", req.matches[1].str(), "/snapshots/", req.matches[2].str()));
        const std::string label = req.matches[3].str();
        auto reader = training->ReadSnapshot(ctx.get(), r);
        v1::SnapshotChunk chunk;
        v1::Snapshot header;
        int64_t offset = -1, rows = 0, cols = 0;
        std::vector<int64_t> dims;  // a kernel's 4: C order on the wire already
        std::vector<float> values;
        while (reader->Read(&chunk)) {
          if (chunk.has_header()) {
            header = chunk.header();
            int64_t at = 0;
            for (const auto& t : header.shapes()) {
              if (t.label() == label) {
                offset = at, rows = t.rows(), cols = t.cols();
                if (t.dims_size() == 4) dims.assign(t.dims().begin(), t.dims().end());
              }
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
          // Column-major on the wire, row-major (C order) in the file, as alignctl
          // writes it.
          const auto& v = chunk.values();
          for (int i = 0; i < v.data_size(); ++i) {
            const int64_t at = v.offset() + i - offset;
            if (at >= 0 && at < rows * cols)
              values[static_cast<size_t>(dims.empty() ? (at % rows) * cols + at / rows : at)] =
                  v.data(i);
          }
        }
        if (grpc::Status st = reader->Finish(); !st.ok()) return Fail(res, st);
        res.set_header("Content-Disposition",
                       absl::StrCat("attachment; filename=\"", req.matches[1].str(), "-",
                                    header.step(), "-", label, ".npy\""));
        res.set_content(formats::EncodeNpy(dims.empty() ? std::vector<int64_t>{rows, cols} : dims,
                                           values.data()),
                        "application/octet-stream");
      }));

  // A session as a file other tools read (ExportSession): ?format=csv|jsonl|tfevents|json|
  // safetensors|onnx, ?snapshot=STEP for the weights formats (default: the latest weights).
  // The whole file is read from the stream (under the call deadline), then sent as a download
  // with alignd's media type and file name; an error, from the checks or alignd, is the JSON
  // error body with its status, never a partial file. Any id is routed here so that a bad
  // one is a 400 naming it.
  http.Get("/api/sessions/([^/]*)/export",
           api([training](const Request& req, Response& res, const Caller& caller) {
             const std::string id = req.matches[1].str();
             absl::StatusOr<ExportQuery> query = ParseExportQuery(id, req);
             if (!query.ok()) return Fail(res, ToGrpc(query.status()));
             const ExportKind& kind = ExportKindOf(query->format);
             v1::ExportSessionRequest r;
             r.set_name(absl::StrCat("sessions/", id));
             r.set_format(kind.format);
             if (query->snapshot)
               r.set_snapshot(absl::StrCat(r.name(), "/snapshots/", *query->snapshot));
             auto ctx = caller.Context();
             auto reader = training->ExportSession(ctx.get(), r);
             v1::ExportChunk chunk;
             std::string data, filename, type;
             bool first = true;
             while (reader->Read(&chunk)) {
               if (first) {
                 filename = chunk.filename();
                 type = chunk.content_type();
                 data = std::move(*chunk.mutable_data());
                 first = false;
               } else {
                 data += chunk.data();
               }
             }
             if (grpc::Status st = reader->Finish(); !st.ok()) return Fail(res, st);
             if (first)
               return Fail(res, grpc::Status(grpc::StatusCode::DATA_LOSS,
                                             absl::StrCat("alignd's export of sessions/", id,
                                                          " ended without a file")));
             Attachment(req, res, std::move(data), SafeContentType(type),
                        AttachmentName(filename, absl::StrCat(id, kind.extension)), kind.text);
           }));

  http.Get(absl::StrCat("/api/sessions/", kId, "/metrics"),
           api([training](const Request& req, Response& res, const Caller& caller) {
             absl::StatusOr<int64_t> max_points =
                 IntParam(req, "max_points", 0, 0, std::numeric_limits<int32_t>::max());
             if (!max_points.ok()) return Fail(res, ToGrpc(max_points.status()));
             absl::StatusOr<int64_t> start_seq =
                 IntParam(req, "start_seq", 0, 0, std::numeric_limits<int64_t>::max());
             if (!start_seq.ok()) return Fail(res, ToGrpc(start_seq.status()));
             v1::ListMetricsResponse all;
             v1::ListMetricsRequest r;
             r.set_parent(absl::StrCat("sessions/", req.matches[1].str()));
             r.set_max_points(static_cast<int32_t>(*max_points));
             r.set_start_seq(*start_seq);
             r.set_page_size(10000);
             if (grpc::Status st = EveryPage(
                     caller, r,
                     [&](auto* ctx, const auto& q, auto* page) {
                       return training->ListMetrics(ctx, q, page);
                     },
                     [](auto& x) { return x.mutable_events(); }, &all);
                 !st.ok())
               return Fail(res, st);
             Reply(req, res, Json(all));
           }));

  // Server-Sent Events from StreamMetrics. A browser's EventSource reconnects by itself with
  // the last id it saw in Last-Event-ID: the stream resumes after it, nothing twice.
  http.Get(absl::StrCat("/api/sessions/", kId, "/events"),
           api([training, stream_slot](const Request& req, Response& res, const Caller& caller) {
             absl::StatusOr<int64_t> start = StreamStart(req);
             if (!start.ok()) return Fail(res, ToGrpc(start.status()));
             std::shared_ptr<void> slot;
             if (!stream_slot(req, res, &slot)) return;
             auto request = std::make_shared<v1::StreamMetricsRequest>();
             request->set_parent(absl::StrCat("sessions/", req.matches[1].str()));
             request->set_start_seq(*start);
             auto ctx = std::shared_ptr<grpc::ClientContext>(caller.Context(/*unary=*/false));
             res.set_header("Cache-Control", "no-cache");
             res.set_header("X-Accel-Buffering", "no");  // proxies: do not hold the stream back
             // The slot goes with the provider, when cpp-httplib is done with the response.
             res.set_chunked_content_provider(
                 "text/event-stream",
                 [training, request, ctx, slot](size_t, httplib::DataSink& sink) {
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
           }));

  // Several sessions' StreamMetrics in one SSE response: a browser holds six HTTP/1.1
  // connections per host, so a page following a sweep's fifteen runs on fifteen streams
  // would stall. ?s=id:start,id:start,... Each event is `event: metric` with data
  // {"session": id, "event": MetricEvent}; `event: end` {"session", "end": Session};
  // `event: error` {"session", "code", "message"} for a stream alignd ended with an error.
  // One reader thread per session; the response ends when every stream has.
  http.Get("/api/events",
           api([training, stream_slot](const Request& req, Response& res, const Caller& caller) {
             if (req.get_param_value_count("s") > 1)
               return Fail(res, grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                             "s: given more than once"));
             absl::StatusOr<std::vector<Subscription>> parsed =
                 ParseSubscriptions(req.get_param_value("s"));
             if (!parsed.ok()) return Fail(res, ToGrpc(parsed.status()));
             std::shared_ptr<void> slot;
             if (!stream_slot(req, res, &slot)) return;
             res.set_header("Cache-Control", "no-cache");
             res.set_header("X-Accel-Buffering", "no");
             res.set_chunked_content_provider("text/event-stream",
                                              [training, subs = std::move(*parsed), caller, slot](
                                                  size_t, httplib::DataSink& sink) {
                                                return FollowAll(*training, subs, caller, sink);
                                              });
           }));

  // Experiments (ExperimentService): the list (?filter= as /api/sessions' is checked, then
  // ListExperimentsRequest.filter with every page), one, its statistics per group, a
  // comparison of two groups, and cancelling its sessions.
  http.Get("/api/experiments",
           api([experiments](const Request& req, Response& res, const Caller& caller) {
             absl::StatusOr<std::string> filter = FilterParam(req);
             if (!filter.ok()) return Fail(res, ToGrpc(filter.status()));
             v1::ListExperimentsResponse all;
             v1::ListExperimentsRequest r;
             r.set_page_size(1000);
             r.set_filter(*std::move(filter));
             if (grpc::Status st = EveryPage(
                     caller, r,
                     [&](auto* ctx, const auto& q, auto* page) {
                       return experiments->ListExperiments(ctx, q, page);
                     },
                     [](auto& x) { return x.mutable_experiments(); }, &all);
                 !st.ok())
               return Fail(res, st);
             Reply(req, res, Json(all));
           }));

  http.Get(absl::StrCat("/api/experiments/", kId),
           api([experiments](const Request& req, Response& res, const Caller& caller) {
             auto ctx = caller.Context();
             v1::GetExperimentRequest r;
             r.set_name(absl::StrCat("experiments/", req.matches[1].str()));
             v1::Experiment out;
             if (grpc::Status st = experiments->GetExperiment(ctx.get(), r, &out); !st.ok())
               return Fail(res, st);
             Reply(req, res, Json(out));
           }));

  // ?figures=a,b (default: every figure the logs have), ?every_steps=N (default 0: every
  // metric step).
  http.Get(absl::StrCat("/api/experiments/", kId, "/statistics"),
           api([experiments](const Request& req, Response& res, const Caller& caller) {
             absl::StatusOr<std::vector<std::string>> figures = FiguresParam(req);
             if (!figures.ok()) return Fail(res, ToGrpc(figures.status()));
             absl::StatusOr<int64_t> every =
                 IntParam(req, "every_steps", 0, 0, std::numeric_limits<int64_t>::max());
             if (!every.ok()) return Fail(res, ToGrpc(every.status()));
             v1::GetExperimentStatisticsRequest r;
             r.set_name(absl::StrCat("experiments/", req.matches[1].str()));
             for (std::string& f : *figures) r.add_figures(std::move(f));
             r.set_every_steps(*every);
             auto ctx = caller.Context();
             v1::ExperimentStatistics out;
             if (grpc::Status st = experiments->GetExperimentStatistics(ctx.get(), r, &out);
                 !st.ok())
               return Fail(res, st);
             Reply(req, res, Json(out));
           }));

  // ?a=g0&b=g1[&figure=best.eval]: CompareGroups.
  http.Get(absl::StrCat("/api/experiments/", kId, "/compare"),
           api([experiments](const Request& req, Response& res, const Caller& caller) {
             absl::StatusOr<CompareQuery> q = ParseCompareQuery(req);
             if (!q.ok()) return Fail(res, ToGrpc(q.status()));
             v1::CompareGroupsRequest r;
             r.set_name(absl::StrCat("experiments/", req.matches[1].str()));
             r.set_group_a(q->a);
             r.set_group_b(q->b);
             r.set_figure(q->figure);
             auto ctx = caller.Context();
             v1::GroupComparison out;
             if (grpc::Status st = experiments->CompareGroups(ctx.get(), r, &out); !st.ok())
               return Fail(res, st);
             Reply(req, res, Json(out));
           }));

  http.Post(absl::StrCat("/api/experiments/", kId, ":cancel"),
            api([experiments](const Request& req, Response& res, const Caller& caller) {
              auto ctx = caller.Context();
              v1::CancelExperimentRequest r;
              r.set_name(absl::StrCat("experiments/", req.matches[1].str()));
              v1::Experiment out;
              if (grpc::Status st = experiments->CancelExperiment(ctx.get(), r, &out); !st.ok())
                return Fail(res, st);
              Reply(req, res, Json(out));
            }));

  // The server's learning rules and their traits (ListRules): the create form's list.
  http.Get("/api/rules", api([training](const Request& req, Response& res, const Caller& caller) {
             auto ctx = caller.Context();
             v1::ListRulesResponse out;
             if (grpc::Status st = training->ListRules(ctx.get(), v1::ListRulesRequest(), &out);
                 !st.ok())
               return Fail(res, st);
             Reply(req, res, Json(out));
           }));

  http.Get("/api/datasets",
           api([datasets](const Request& req, Response& res, const Caller& caller) {
             v1::ListDatasetsResponse all;
             v1::ListDatasetsRequest r;
             r.set_page_size(1000);
             if (grpc::Status st = EveryPage(
                     caller, r,
                     [&](auto* ctx, const auto& q, auto* page) {
                       return datasets->ListDatasets(ctx, q, page);
                     },
                     [](auto& x) { return x.mutable_datasets(); }, &all);
                 !st.ok())
               return Fail(res, st);
             Reply(req, res, Json(all));
           }));
}

}  // namespace alignd::dashboard
