// File: dashboard/request_checks.cc
#include "dashboard/request_checks.h"

#include <httplib.h>

#include <algorithm>
#include <iterator>
#include <limits>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace alignd::dashboard {
namespace {

// A client's bytes quoted in an error message: printable ASCII (the message is JSON and
// UTF-8), at most 64 of them.
std::string Quote(absl::string_view v) {
  const bool cut = v.size() > 64;
  return absl::StrCat("\"", absl::CHexEscape(v.substr(0, 64)), cut ? "...\"" : "\"");
}

// RFC 6750's token68: 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
bool IsToken68(absl::string_view t) {
  size_t n = 0;
  while (n < t.size() && (absl::ascii_isalnum(static_cast<unsigned char>(t[n])) ||
                          absl::StrContains("-._~+/", t[n])))
    ++n;
  if (n == 0) return false;
  while (n < t.size() && t[n] == '=') ++n;
  return n == t.size();
}

// An integer of a query or header: digits with an optional sign, nothing else.
absl::StatusOr<int64_t> Integer(absl::string_view what, absl::string_view v, int64_t min,
                                int64_t max) {
  int64_t x = 0;
  if (!absl::SimpleAtoi(v, &x) || v.empty() || absl::ascii_isspace(v.front()) ||
      absl::ascii_isspace(v.back()))
    return absl::InvalidArgumentError(absl::StrCat(what, ": ", Quote(v), " is not an integer"));
  if (x < min || x > max)
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": ", x, " is not in [", min, ", ", max, "]"));
  return x;
}

bool IsSessionId(absl::string_view id) {
  if (id.empty() || id.size() > 63) return false;
  for (size_t i = 0; i < id.size(); ++i) {
    const char c = id[i];
    const bool ok = absl::ascii_islower(c) || absl::ascii_isdigit(c) || (i > 0 && c == '-');
    if (!ok) return false;
  }
  return true;
}

// The length of the well-formed UTF-8 sequence at s[i] (RFC 3629: no overlong forms, no
// surrogates, at most U+10FFFF), 0 when the bytes there are not one.
size_t Utf8Length(absl::string_view s, size_t i) {
  const unsigned char c = static_cast<unsigned char>(s[i]);
  if (c < 0x80) return 1;
  size_t n = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // the second byte's range
  if (c >= 0xC2 && c <= 0xDF) {
    n = 1;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 2;
    if (c == 0xE0) lo = 0xA0;  // overlong
    if (c == 0xED) hi = 0x9F;  // surrogates
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 3;
    if (c == 0xF0) lo = 0x90;  // overlong
    if (c == 0xF4) hi = 0x8F;  // past U+10FFFF
  } else {
    return 0;
  }
  if (s.size() - i <= n) return 0;
  for (size_t k = 1; k <= n; ++k) {
    const unsigned char b = static_cast<unsigned char>(s[i + k]);
    if (k == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF)) return 0;
  }
  return n + 1;
}

bool IsUtf8(absl::string_view s) {
  for (size_t i = 0, n = 0; i < s.size(); i += n)
    if ((n = Utf8Length(s, i)) == 0) return false;
  return true;
}

absl::Status TooMany() {
  return absl::InvalidArgumentError(
      absl::StrCat("s: 1 to ", kMaxSubscriptions, " sessions as id:start_seq,..."));
}

}  // namespace

absl::StatusOr<std::optional<std::string>> BearerMetadata(absl::string_view header) {
  if (header.empty()) return std::nullopt;
  constexpr absl::string_view kScheme = "Bearer";
  auto refuse = [](absl::string_view why) {
    return absl::UnauthenticatedError(
        absl::StrCat("the Authorization header is not 'Bearer <token>': ", why));
  };
  if (!absl::StartsWithIgnoreCase(header, kScheme)) return refuse("another scheme");
  absl::string_view token = header.substr(kScheme.size());
  if (token.empty() || token.front() != ' ') return refuse("no space after Bearer");
  while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
  if (token.empty()) return refuse("no token");
  if (token.size() > kMaxTokenLength)
    return refuse(absl::StrCat("the token is longer than ", kMaxTokenLength, " characters"));
  if (!IsToken68(token))
    return refuse(
        "the token holds a character other than letters, digits, -._~+/ and a trailing =");
  return absl::StrCat(kScheme, " ", token);
}

absl::StatusOr<std::optional<std::string>> RequestAuthorization(const httplib::Request& req) {
  if (req.get_header_value_count("Authorization") > 1)
    return absl::UnauthenticatedError("more than one Authorization header");
  return BearerMetadata(req.get_header_value("Authorization"));
}

std::optional<Refusal> CheckFraming(const httplib::Request& req) {
  if (req.has_header("Transfer-Encoding"))
    return Refusal{411, absl::InvalidArgumentError(
                            "a request body must come with Content-Length, not Transfer-Encoding")};
  if (req.has_header("Content-Encoding") &&
      !absl::EqualsIgnoreCase(req.get_header_value("Content-Encoding"), "identity"))
    return Refusal{415, absl::InvalidArgumentError("a request body must not be compressed")};
  const size_t lengths = req.get_header_value_count("Content-Length");
  uint64_t length = 0;
  for (size_t i = 0; i < lengths; ++i) {
    const std::string v = req.get_header_value("Content-Length", i);
    uint64_t x = 0;
    if (v.empty() || !std::all_of(v.begin(), v.end(), absl::ascii_isdigit) ||
        !absl::SimpleAtoi(v, &x) || (i > 0 && x != length))
      return Refusal{400, absl::InvalidArgumentError(
                              absl::StrCat("Content-Length: ", Quote(v), " is not a length"))};
    length = x;
  }
  // cpp-httplib reads the bodies of these methods (and of DELETE when it has a length).
  const bool reads_body =
      req.method == "POST" || req.method == "PUT" || req.method == "PATCH" || req.method == "PRI";
  if (reads_body && lengths == 0)
    return Refusal{411, absl::InvalidArgumentError(
                            absl::StrCat("a ", req.method, " must say its Content-Length"))};
  if (!reads_body && req.method != "DELETE" && length > 0)
    return Refusal{400, absl::InvalidArgumentError(absl::StrCat("a ", req.method, " has no body"))};
  return std::nullopt;
}

absl::StatusOr<int64_t> IntParam(const httplib::Request& req, const char* name, int64_t dflt,
                                 int64_t min, int64_t max) {
  if (!req.has_param(name)) return dflt;
  if (req.get_param_value_count(name) > 1)
    return absl::InvalidArgumentError(absl::StrCat(name, ": given more than once"));
  return Integer(name, req.get_param_value(name), min, max);
}

absl::StatusOr<std::string> FilterParam(const httplib::Request& req) {
  if (!req.has_param("filter")) return std::string();
  if (req.get_param_value_count("filter") > 1)
    return absl::InvalidArgumentError("filter: given more than once");
  std::string filter = req.get_param_value("filter");
  if (filter.size() > kMaxFilterLength)
    return absl::InvalidArgumentError(absl::StrCat(
        "filter: ", filter.size(), " bytes, longer than the ", kMaxFilterLength, " alignd reads"));
  if (!IsUtf8(filter)) return absl::InvalidArgumentError("filter: not UTF-8 text");
  return filter;
}

namespace {

// A name of the query's figures or groups: 1-64 bytes of letters, digits, _ - and (with
// `dots`) '.'.
bool IsFigureOrGroup(absl::string_view v, bool dots) {
  if (v.empty() || v.size() > 64) return false;
  for (char c : v)
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-' &&
        !(dots && c == '.'))
      return false;
  return true;
}

// The query parameter `name` given at most once: its value, std::nullopt when absent.
absl::StatusOr<std::optional<std::string>> OnceParam(const httplib::Request& req,
                                                     const char* name) {
  if (!req.has_param(name)) return std::nullopt;
  if (req.get_param_value_count(name) > 1)
    return absl::InvalidArgumentError(absl::StrCat(name, ": given more than once"));
  return req.get_param_value(name);
}

}  // namespace

absl::StatusOr<std::vector<std::string>> FiguresParam(const httplib::Request& req) {
  absl::StatusOr<std::optional<std::string>> v = OnceParam(req, "figures");
  if (!v.ok()) return v.status();
  std::vector<std::string> out;
  if (!*v) return out;
  for (absl::string_view f : absl::StrSplit(**v, ',', absl::SkipEmpty())) {
    if (out.size() == kMaxFigures)
      return absl::InvalidArgumentError(
          absl::StrCat("figures: more than ", kMaxFigures, " figures"));
    if (!IsFigureOrGroup(f, /*dots=*/true))
      return absl::InvalidArgumentError(absl::StrCat(
          "figures: ", Quote(f), " is not a figure (1-64 of [A-Za-z0-9._-]: train.loss)"));
    out.emplace_back(f);
  }
  return out;
}

absl::StatusOr<CompareQuery> ParseCompareQuery(const httplib::Request& req) {
  CompareQuery q;
  for (auto [name, out] : {std::pair<const char*, std::string*>{"a", &q.a}, {"b", &q.b}}) {
    absl::StatusOr<std::optional<std::string>> v = OnceParam(req, name);
    if (!v.ok()) return v.status();
    if (!*v) return absl::InvalidArgumentError(absl::StrCat(name, ": required (a group: g0)"));
    if (!IsFigureOrGroup(**v, /*dots=*/false))
      return absl::InvalidArgumentError(
          absl::StrCat(name, ": ", Quote(**v), " is not a group id (1-64 of [A-Za-z0-9_-]: g0)"));
    *out = **std::move(v);
  }
  absl::StatusOr<std::optional<std::string>> figure = OnceParam(req, "figure");
  if (!figure.ok()) return figure.status();
  if (*figure && !(*figure)->empty()) {
    if (!IsFigureOrGroup(**figure, /*dots=*/true))
      return absl::InvalidArgumentError(absl::StrCat(
          "figure: ", Quote(**figure), " is not a figure (1-64 of [A-Za-z0-9._-]: best.eval)"));
    q.figure = **std::move(figure);
  }
  return q;
}

absl::StatusOr<int64_t> StreamStart(const httplib::Request& req) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  absl::StatusOr<int64_t> start = IntParam(req, "start_seq", 0, 0, kMax);
  if (!start.ok() || !req.has_header("Last-Event-ID")) return start;
  // The id an EventSource saw last (`id: {seq}`); the stream resumes after it.
  absl::StatusOr<int64_t> last =
      Integer("Last-Event-ID", req.get_header_value("Last-Event-ID"), 0, kMax - 1);
  if (!last.ok()) return last.status();
  return *last > 0 ? *last + 1 : *start;
}

absl::StatusOr<ExportQuery> ParseExportQuery(absl::string_view id, const httplib::Request& req) {
  if (!IsSessionId(id))
    return absl::InvalidArgumentError(
        absl::StrCat("session id ", Quote(id), " is not [a-z0-9][a-z0-9-]{0,62}"));
  const std::string formats = absl::StrJoin(kExportFormats, ", ");
  if (!req.has_param("format"))
    return absl::InvalidArgumentError(absl::StrCat("format: required (", formats, ")"));
  if (req.get_param_value_count("format") > 1)
    return absl::InvalidArgumentError("format: given more than once");
  ExportQuery q;
  q.format = req.get_param_value("format");
  if (std::find(std::begin(kExportFormats), std::end(kExportFormats), q.format) ==
      std::end(kExportFormats))
    return absl::InvalidArgumentError(
        absl::StrCat("format: ", Quote(q.format), " is not one of ", formats));
  if (req.has_param("snapshot")) {
    if (q.format != "safetensors" && q.format != "onnx")
      return absl::InvalidArgumentError(absl::StrCat(
          "snapshot: only safetensors and onnx export a snapshot's weights; ", q.format,
          q.format == "json" ? " exports the session" : " exports the metric log"));
    absl::StatusOr<int64_t> step =
        IntParam(req, "snapshot", 0, 0, std::numeric_limits<int64_t>::max());
    if (!step.ok()) return step.status();
    q.snapshot = *step;
  }
  return q;
}

std::string AttachmentName(absl::string_view name, absl::string_view fallback) {
  constexpr size_t kMax = 128;
  std::string out;
  for (char c : name)
    out += absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-'
               ? c
               : '_';
  // No hidden file, nothing a shell takes for an option.
  out.erase(0, std::min(out.size(), out.find_first_not_of(".-")));
  if (out.size() > kMax) {
    const size_t dot = out.rfind('.');
    const std::string ext =
        dot != std::string::npos && out.size() - dot <= 16 ? out.substr(dot) : "";
    out = out.substr(0, kMax - ext.size()) + ext;
  }
  if (out.empty()) return std::string(fallback);
  return out;
}

std::string SafeContentType(absl::string_view type) {
  const size_t slash = type.find('/');
  bool ok = type.size() <= 128 && slash != absl::string_view::npos && slash > 0 &&
            slash + 1 < type.size() && absl::ascii_isalnum(static_cast<unsigned char>(type[0]));
  for (char c : type)
    ok = ok && (absl::ascii_isalnum(static_cast<unsigned char>(c)) ||
                absl::StrContains("!#$&^_.+-/;= ", c));
  return ok ? std::string(type) : "application/octet-stream";
}

std::string ValidUtf8(absl::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const size_t n = Utf8Length(s, i);
    if (n == 0) {
      out += "\xEF\xBF\xBD";  // U+FFFD for each byte that is not UTF-8
      ++i;
    } else {
      out.append(s.data() + i, n);
      i += n;
    }
  }
  return out;
}

absl::StatusOr<std::vector<Subscription>> ParseSubscriptions(absl::string_view s) {
  std::vector<Subscription> subs;
  for (absl::string_view item : absl::StrSplit(s, ',', absl::SkipEmpty())) {
    if (subs.size() == kMaxSubscriptions) return TooMany();
    std::vector<absl::string_view> kv = absl::StrSplit(item, absl::MaxSplits(':', 1));
    Subscription sub{std::string(kv[0]), 0};
    bool ok = IsSessionId(sub.id);
    if (ok && kv.size() == 2 && !kv[1].empty()) {
      absl::StatusOr<int64_t> start =
          Integer("start", kv[1], 0, std::numeric_limits<int64_t>::max());
      ok = start.ok();
      if (ok) sub.start = *start;
    }
    if (!ok)
      return absl::InvalidArgumentError(absl::StrCat("s: ", Quote(item), " is not id:start_seq"));
    subs.push_back(std::move(sub));
  }
  if (subs.empty()) return TooMany();
  return subs;
}

std::shared_ptr<StreamLimiter> StreamLimiter::Create(int max_streams, int max_per_client) {
  return std::shared_ptr<StreamLimiter>(new StreamLimiter(max_streams, max_per_client));
}

absl::StatusOr<std::shared_ptr<void>> StreamLimiter::Acquire(const std::string& client) {
  {
    absl::MutexLock lock(&mu_);
    auto it = by_client_.find(client);
    const int mine = it == by_client_.end() ? 0 : it->second;
    if (mine >= max_per_client_)
      return absl::ResourceExhaustedError(
          absl::StrCat("this client has ", mine, " event streams open, the most one may have; ",
                       "close one (a page follows all its sessions on one)"));
    if (live_ >= max_streams_)
      return absl::UnavailableError(
          absl::StrCat("the dashboard has ", live_, " event streams open, the most it serves"));
    ++live_;
    ++by_client_[client];
  }
  std::shared_ptr<StreamLimiter> self = shared_from_this();
  return std::shared_ptr<void>(nullptr, [self, client](void*) { self->Release(client); });
}

void StreamLimiter::Release(const std::string& client) {
  absl::MutexLock lock(&mu_);
  --live_;
  if (auto it = by_client_.find(client); it != by_client_.end() && --it->second == 0)
    by_client_.erase(it);
}

int StreamLimiter::live() const {
  absl::MutexLock lock(&mu_);
  return live_;
}

}  // namespace alignd::dashboard
