// File: dashboard/bridge.h
// -----------------------------------------------------------------------------
// alignd-dashboard's HTTP API: a gRPC client of alignd that speaks JSON and Server-Sent
// Events to browsers (docs/ARCHITECTURE.md, "The dashboard"). A separate process, not a
// part of alignd: it scales and deploys apart from the training servers, and alignd's
// surface stays gRPC only. Every call forwards the browser's `Authorization: Bearer` header
// as the call's metadata, so a user sees through the dashboard what alignctl shows them.
//
//   GET    /api/sessions[?filter=EXPR]      ListSessions, every page: {"sessions": [...]}, each
//                                           with its newest figures (latest_step, latest_eval);
//                                           ?filter= (URL-encoded, at most 4096 bytes) is
//                                           ListSessionsRequest.filter, sent with every page;
//                                           one alignd cannot read is its 400
//   GET    /api/sessions/{id}               GetSession
//   POST   /api/sessions                    CreateSession (body: a CreateSessionRequest as JSON)
//   POST   /api/sessions/{id}:pause         PauseSession (also :resume, :cancel)
//   DELETE /api/sessions/{id}               DeleteSession
//   GET    /api/sessions/{id}/metrics       ListMetrics, every page (?max_points=N&start_seq=S)
//   GET    /api/sessions/{id}/events        StreamMetrics as SSE from ?start_seq= or the
//                                           Last-Event-ID header (+1): `id: {seq}`, `data:
//                                           {event}`, heartbeats as comments; ends after the end
//                                           event
//   GET    /api/events?s=id:seq,id:seq      several sessions' StreamMetrics in one SSE
//                                           response (a browser has six connections per
//                                           host): `event: metric` {"session", "event"},
//                                           `event: end` {"session", "end"}, `event: error`
//                                           {"session", "code", "message"}
//   GET    /api/sessions/{id}/snapshots     ListSnapshots, every page
//   GET    /api/sessions/{id}/snapshots/{step|latest}           GetSnapshot (shapes)
//   GET    /api/sessions/{id}/snapshots/{step|latest}/{W0}.npy  one tensor as a .npy file
//   GET    /api/sessions/{id}/export?format=csv|jsonl|tfevents|json|safetensors|onnx
//          [&snapshot=STEP]                 ExportSession as a download: alignd's bytes, its
//                                           Content-Type and `Content-Disposition: attachment;
//                                           filename="..."` (its file name, [A-Za-z0-9._-]
//                                           only); the weights formats export the latest
//                                           weights unless ?snapshot= names a step
//   GET    /api/datasets                    ListDatasets, every page
//   GET    /api/experiments[?filter=EXPR]   ListExperiments, every page: {"experiments": [...]};
//                                           ?filter= checked as /api/sessions' and passed on
//   GET    /api/experiments/{id}            GetExperiment (groups, state, sessions ended)
//   GET    /api/experiments/{id}/statistics GetExperimentStatistics: per group and figure the
//          [?figures=a,b&every_steps=N]     n, mean, SD and 95 % interval at each step, and the
//                                           best validation summary; figures: a comma list (at
//                                           most 64 of [A-Za-z0-9._-]), default every figure
//   GET    /api/experiments/{id}/compare?a=g0&b=g1[&figure=best.eval]
//                                           CompareGroups: n, diff and its interval, t, p_t, p_w
//   POST   /api/experiments/{id}:cancel     CancelExperiment
//   GET    /healthz                         200 once alignd answers its health check
//
// JSON is the proto JSON mapping with the proto's field names. gRPC errors become HTTP
// statuses (NOT_FOUND 404, INVALID_ARGUMENT 400, UNAUTHENTICATED 401, PERMISSION_DENIED
// 403, RESOURCE_EXHAUSTED 429, FAILED_PRECONDITION 409, UNAVAILABLE 503, else 500) with
// {"code": "NOT_FOUND", "message": ...}.
//
// What a browser sends is checked before it reaches alignd (dashboard/request_checks.h):
// the Authorization header must be "Bearer <token68>" (else 401), bodies come with a
// Content-Length of at most Limits::max_body_bytes (else 411, 413, 415), query integers
// must parse (else 400), a session or experiment filter must be one UTF-8 value of at most
// 4096 bytes (else 400), an experiment's figures and groups must be names (else 400), an
// export's session id, format and snapshot must be valid (else 400), and event streams are bounded
// in all and per client address (past the bound: 429 or 503 with Retry-After), so that they leave
// worker threads for the API and /healthz. Every refusal has the JSON error body.
#ifndef ALIGND_DASHBOARD_BRIDGE_H_
#define ALIGND_DASHBOARD_BRIDGE_H_

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

namespace httplib {
class Server;
}

namespace alignd::dashboard {

// The HTTP status for a gRPC code.
int HttpStatus(grpc::StatusCode code);

// The bounds of what one request or client may take (docs/DEPLOY.md, "The dashboard").
struct Limits {
  // The longest request body: a CreateSessionRequest as JSON, the largest the API takes,
  // is under 1 KiB plus ~20 bytes per layer (network.sizes, layer_learning_rates), so
  // 64 KiB holds a network of over 2,000 layers.
  size_t max_body_bytes = 64 << 10;
  // Live event streams (SSE responses) in all: each holds a worker thread while it lives,
  // so this must stay below the HTTP pool's size, the rest kept for the API and /healthz.
  int max_streams = 48;
  // Live event streams from one client address (a page follows all its sessions on one).
  int max_streams_per_client = 8;
  // The deadline of each unary call to alignd.
  std::chrono::milliseconds call_deadline{60000};
};

// Registers the API's routes on `http`, with its checks: a pre-routing handler refusing
// unframed and compressed bodies, the payload bound, and an error handler that gives
// cpp-httplib's own refusals (400, 404, 413, 414) the JSON error body. Calls go to alignd
// over `channel`.
void AddApiRoutes(httplib::Server& http, std::shared_ptr<grpc::Channel> channel,
                  const Limits& limits = {});

}  // namespace alignd::dashboard

#endif  // ALIGND_DASHBOARD_BRIDGE_H_
