// File: dashboard/request_checks.h
// -----------------------------------------------------------------------------
// What alignd-dashboard accepts from a browser before any of it reaches alignd: the
// bearer token it forwards as gRPC metadata, the framing and size of request bodies, the
// integers of query strings and Last-Event-ID, the ?s= list of /api/events, the ?filter= of
// /api/sessions and /api/experiments, an experiment's statistics and comparison queries, the
// query of /api/sessions/{id}/export (and the file name and media type of
// alignd's export, which its answer carries in headers), and how many event streams may be live
// (each holds one of cpp-httplib's worker threads while it lives). Each check returns an error
// instead of passing on what it cannot vouch for: a value that reaches gRPC metadata unchecked
// makes gRPC abort the process (GRPC_CALL_ERROR_INVALID_METADATA), an unbounded body or stream
// count is one client's way to take the dashboard from everyone.
#ifndef ALIGND_DASHBOARD_REQUEST_CHECKS_H_
#define ALIGND_DASHBOARD_REQUEST_CHECKS_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace httplib {
struct Request;
}

namespace alignd::dashboard {

// The longest token the bridge forwards (alignctl's are 43 characters; a JWT is a few
// hundred). Longer values are refused rather than sent to meet alignd's metadata limit.
inline constexpr size_t kMaxTokenLength = 4096;

// The "authorization" metadata value for an Authorization header's value: "Bearer <token>"
// (the scheme in any case, then spaces, then an RFC 6750 token68: letters, digits,
// -._~+/ and trailing =), forwarded as "Bearer <token>". std::nullopt for no header.
// Returns Unauthenticated for anything else (another scheme, a space, tab, DEL, control
// or non-ASCII byte in the token, a token past kMaxTokenLength): never a value gRPC would
// refuse as metadata.
absl::StatusOr<std::optional<std::string>> BearerMetadata(absl::string_view header);

// The "authorization" metadata of a request: BearerMetadata of its Authorization header;
// Unauthenticated also for more than one such header.
absl::StatusOr<std::optional<std::string>> RequestAuthorization(const httplib::Request& req);

// A request refused before it is routed: its HTTP status and the error body's code and
// message. Its body is left unread, so the connection closes after the answer (what
// follows on it is not a request).
struct Refusal {
  int http_status = 400;
  absl::Status status;
};

// The framing every request's body must have, checked before cpp-httplib reads it (the
// pre-routing handler): a body only as Content-Length bytes (chunked or unframed bodies
// get 411: cpp-httplib would read them without its payload bound), not compressed (415:
// cpp-httplib would inflate them without a bound), and none on a GET, HEAD or OPTIONS
// (400). std::nullopt when the request may go on; its length is bounded by cpp-httplib's
// payload limit (413).
std::optional<Refusal> CheckFraming(const httplib::Request& req);

// The query parameter `name` as an integer in [min, max], `dflt` when absent. Returns
// InvalidArgument naming the parameter for anything else (not a number, out of range).
absl::StatusOr<int64_t> IntParam(const httplib::Request& req, const char* name, int64_t dflt,
                                 int64_t min, int64_t max);

// The longest ListSessions filter the bridge passes on: alignd's own bound on
// ListSessionsRequest.filter (4096, counted in bytes as alignd counts it).
inline constexpr size_t kMaxFilterLength = 4096;

// /api/sessions' ?filter= (URL-decoded): ListSessions' filter as it is, for alignd to read
// (an AIP-160 subset; alignd's INVALID_ARGUMENT says what it cannot read and where); "" when
// absent. Returns InvalidArgument for one given more than once, longer than kMaxFilterLength
// bytes, or not UTF-8 (a proto string that alignd could not parse).
absl::StatusOr<std::string> FilterParam(const httplib::Request& req);

// The figures of /api/experiments/{id}/statistics: ?figures= once, a comma list (empty items
// skipped) of at most kMaxFigures names of 1-64 bytes of [A-Za-z0-9._-] ("train.loss",
// "validation.error_rate", "alignment.h1.update_angle_mean"); none when absent (alignd then
// summarises every figure the logs have). Returns InvalidArgument naming what is not.
inline constexpr size_t kMaxFigures = 64;
absl::StatusOr<std::vector<std::string>> FiguresParam(const httplib::Request& req);

// What /api/experiments/{id}/compare asks for: ?a= and ?b= (group ids, "g0"), ?figure=
// (optional: "best.eval" when absent, as CompareGroups defaults).
struct CompareQuery {
  std::string a, b, figure;
};

// /api/experiments/{id}/compare's query: a and b once each, 1-64 bytes of [A-Za-z0-9_-];
// figure at most once, 1-64 bytes of [A-Za-z0-9._-] (empty: absent). Returns InvalidArgument naming
// what is not.
absl::StatusOr<CompareQuery> ParseCompareQuery(const httplib::Request& req);

// The first seq of /api/sessions/{id}/events: the Last-Event-ID header's seq + 1 when it
// holds a positive seq (an EventSource reconnecting), else ?start_seq= (default 0).
// Returns InvalidArgument for a malformed start_seq or Last-Event-ID.
absl::StatusOr<int64_t> StreamStart(const httplib::Request& req);

// What /api/sessions/{id}/export asks for: ?format= (alignctl's -f names) and ?snapshot=.
struct ExportQuery {
  std::string format;               // one of kExportFormats
  std::optional<int64_t> snapshot;  // the weights of this step; none: the latest
};

// The ?format= names of /api/sessions/{id}/export: the metric log as CSV, JSON lines or a
// TensorBoard event file, the session as JSON, a snapshot's weights as safetensors or ONNX
// (proto/alignd/v1/sessions.proto's ExportFormat, in its order).
inline constexpr absl::string_view kExportFormats[] = {"csv",  "jsonl",       "tfevents",
                                                       "json", "safetensors", "onnx"};

// /api/sessions/{id}/export's session id (the path's, [a-z0-9][a-z0-9-]{0,62}) and query:
// ?format= once, one of kExportFormats; ?snapshot= at most once, a step (an integer >= 0),
// and only with safetensors or onnx. Returns InvalidArgument naming what is not.
absl::StatusOr<ExportQuery> ParseExportQuery(absl::string_view id, const httplib::Request& req);

// A file name from alignd fit for `Content-Disposition: attachment; filename="..."`: each
// byte outside [A-Za-z0-9._-] becomes '_', leading dots and hyphens are dropped (no hidden
// file, no option to a shell), at most 128 bytes are kept (with an extension of up to 16);
// `fallback` when nothing is left.
std::string AttachmentName(absl::string_view name, absl::string_view fallback);

// A media type from alignd fit for Content-Type: "type/subtype" with optional parameters,
// of letters, digits and !#$&^_.+-/;= and spaces, at most 128 bytes; anything else is
// "application/octet-stream".
std::string SafeContentType(absl::string_view type);

// `s` as UTF-8 a JSON body may carry: each byte that does not begin a well-formed sequence
// becomes U+FFFD. For alignd's error messages, which may quote a client's bytes (a filter's
// lone byte of a multi-byte character): the proto JSON printer would drop it, and log.
std::string ValidUtf8(absl::string_view s);

// One session of /api/events: its id and first seq.
struct Subscription {
  std::string id;
  int64_t start = 0;
};

// The most sessions one /api/events response follows (one reader thread each).
inline constexpr size_t kMaxSubscriptions = 256;

// /api/events' ?s=id:start,id:start,... (":start" optional, 0): 1 to kMaxSubscriptions
// sessions, ids [a-z0-9][a-z0-9-]{0,62}, starts >= 0. Returns InvalidArgument naming the
// item that is not.
absl::StatusOr<std::vector<Subscription>> ParseSubscriptions(absl::string_view s);

// The live event streams (SSE responses), bounded in all and per client address: each one
// holds a cpp-httplib worker thread for its whole life, so the bound in all, below the
// pool's size, keeps threads for the API and /healthz, and the bound per client keeps one
// client from taking all of that. Thread-safe; held by shared_ptr (a slot refers to it).
class StreamLimiter : public std::enable_shared_from_this<StreamLimiter> {
 public:
  static std::shared_ptr<StreamLimiter> Create(int max_streams, int max_per_client);

  // A slot for one stream from `client` (its address), released when the last copy of
  // the returned handle goes. Returns ResourceExhausted when the client has its
  // max_per_client streams (HTTP 429), Unavailable when all max_streams are live (503).
  absl::StatusOr<std::shared_ptr<void>> Acquire(const std::string& client);

  // Streams live now, in all.
  int live() const;

 private:
  StreamLimiter(int max_streams, int max_per_client)
      : max_streams_(max_streams), max_per_client_(max_per_client) {}
  void Release(const std::string& client);

  const int max_streams_;
  const int max_per_client_;
  mutable absl::Mutex mu_;
  int live_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, int> by_client_ ABSL_GUARDED_BY(mu_);  // no zero counts
};

}  // namespace alignd::dashboard

#endif  // ALIGND_DASHBOARD_REQUEST_CHECKS_H_
