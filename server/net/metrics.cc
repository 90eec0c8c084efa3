// File: server/net/metrics.cc
#include "server/net/metrics.h"

#include <google/protobuf/descriptor.h>
#include <httplib.h>
#include <prometheus/client_metric.h>
#include <prometheus/metric_family.h>
#include <prometheus/text_serializer.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "alignd/v1/rule_names.h"
#include "base/status_macros.h"
#include "base/version.h"
#include "formats/formats.h"
#include "server/api/proto_convert.h"
#include "server/net/log.h"

namespace alignd::server {
namespace {

std::string RuleLabel(v1::Rule r) {
  const std::string name = v1::RuleShortName(r);
  return name.empty() ? "unknown" : name;
}

prometheus::MetricFamily Family(const std::string& name, const std::string& help,
                                prometheus::MetricType type) {
  prometheus::MetricFamily f;
  f.name = name;
  f.help = help;
  f.type = type;
  return f;
}

// "Basic base64(user:password)" against "user sha256(password)" entries, compared in full
// whatever matches so that the time says nothing.
bool BasicAuthOk(const std::map<std::string, std::string>& users, const std::string& header) {
  constexpr absl::string_view kBasic = "Basic ";
  std::string decoded;
  if (!absl::StartsWith(header, kBasic) ||
      !absl::Base64Unescape(absl::string_view(header).substr(kBasic.size()), &decoded))
    return false;
  const size_t colon = decoded.find(':');
  if (colon == std::string::npos) return false;
  auto it = users.find(decoded.substr(0, colon));
  formats::Sha256 h;
  h.Update(absl::string_view(decoded).substr(colon + 1));
  const std::string got = h.HexDigest();
  const std::string& want = it == users.end() ? got : it->second;
  unsigned diff = it == users.end();
  for (size_t i = 0; i < got.size(); ++i) diff |= got[i] ^ want[i];
  return diff == 0;
}

}  // namespace

class ServiceMetrics::SessionCollector : public prometheus::Collectable {
 public:
  SessionCollector(SessionManager* sessions, double retain_finished_s)
      : sessions_(sessions), retain_finished_s_(retain_finished_s) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    using prometheus::MetricType;
    auto build = Family("alignd_build_info", "The running alignd: version and git revision (1).",
                        MetricType::Gauge);
    auto by_state = Family("alignd_sessions", "Sessions by state.", MetricType::Gauge);
    auto steps = Family("alignd_session_steps_total",
                        "Steps this process has trained of the session (0 again after a restart).",
                        MetricType::Counter);
    auto step =
        Family("alignd_session_step", "The session's step (its progress).", MetricType::Gauge);
    auto total = Family("alignd_session_total_steps", "The steps the session's run takes.",
                        MetricType::Gauge);
    auto loss =
        Family("alignd_session_loss", "Batch loss at the last metric step.", MetricType::Gauge);
    auto acc = Family("alignd_session_accuracy_ratio",
                      "Batch accuracy at the last metric step (0 to 1).", MetricType::Gauge);
    auto nse = Family("alignd_session_nse",
                      "Batch normalised squared error at the last metric step.", MetricType::Gauge);
    auto eval_error = Family("alignd_session_eval_error_ratio",
                             "Error rate at the last evaluation (0 to 1).", MetricType::Gauge);
    auto eval_nse =
        Family("alignd_session_eval_nse", "NSE at the last evaluation.", MetricType::Gauge);
    auto angle =
        Family("alignd_session_update_angle_degrees",
               "Angle between the rule's hidden update and BP's (batch mean).", MetricType::Gauge);
    std::map<v1::SessionState, int> counts;
    for (int st = v1::SESSION_STATE_QUEUED; st <= v1::SESSION_STATE_STOPPED; ++st)
      counts[static_cast<v1::SessionState>(st)] = 0;
    auto add = [](prometheus::MetricFamily& f, std::vector<prometheus::ClientMetric::Label> labels,
                  double v, bool counter = false) {
      if (std::isnan(v)) return;
      prometheus::ClientMetric m;
      m.label = std::move(labels);
      if (counter)
        m.counter.value = v;
      else
        m.gauge.value = v;
      f.metric.push_back(std::move(m));
    };
    add(build, {{"version", ALIGND_VERSION}, {"revision", ALIGND_REVISION}}, 1);
    const int64_t now_s = absl::ToUnixSeconds(absl::Now());
    for (const v1::Session& r : sessions_->List(v1::SESSION_STATE_UNSPECIFIED)) {
      ++counts[r.state()];
      // Series per session only while it runs and for a while after it ends: a server
      // holding 10,000 sessions exports a few dozen, not 10,000 stale ones.
      const bool running = r.state() == v1::SESSION_STATE_RUNNING;
      const bool recent = r.has_end_time() && now_s - r.end_time().seconds() <= retain_finished_s_;
      if (!running && !recent) continue;
      auto s = sessions_->Find(r.name());
      if (!s.ok()) continue;
      const std::vector<prometheus::ClientMetric::Label> labels = {
          {"session", r.name()}, {"rule", RuleLabel(r.config().feedback().rule())}};
      add(steps, labels, static_cast<double>((*s)->steps_trained()), true);
      add(step, labels, static_cast<double>(r.step()));
      add(total, labels, static_cast<double>(r.total_steps()));
      // The newest figures are the record's (latest_step, latest_eval), as every client
      // reads them.
      if (r.has_latest_step()) {
        const v1::StepMetrics& l = r.latest_step();
        add(loss, labels, l.loss());
        add(acc, labels, l.accuracy());
        add(nse, labels, l.nse());
        for (const v1::LayerAlignment& a : l.alignment()) {
          auto with_layer = labels;
          with_layer.push_back({"layer", std::to_string(a.layer())});
          add(angle, with_layer, a.update_angle_mean());
        }
      }
      if (r.has_latest_eval()) {
        add(eval_error, labels, r.latest_eval().error_rate());
        add(eval_nse, labels, r.latest_eval().nse());
      }
    }
    for (const auto& [st, n] : counts) add(by_state, {{"state", StateName(st)}}, n);
    return {build, by_state, steps, step, total, loss, acc, nse, eval_error, eval_nse, angle};
  }

 private:
  SessionManager* const sessions_;
  const double retain_finished_s_;
};

absl::StatusOr<std::map<std::string, std::string>> ParseBasicAuthFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::map<std::string, std::string> users;
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    std::istringstream fields(line);
    std::string user, hash, extra;
    if (!(fields >> user) || user[0] == '#') continue;
    fields >> hash >> extra;
    bool hex = hash.size() == 64;
    for (char c : hash) hex = hex && std::isxdigit(static_cast<unsigned char>(c));
    if (!hex || !extra.empty())
      return absl::InvalidArgumentError(
          absl::StrCat(path, ":", n, ": want '<user> <sha256 of the password, hex>'"));
    users[user] = absl::AsciiStrToLower(hash);
  }
  if (users.empty()) return absl::InvalidArgumentError(absl::StrCat(path, ": no users"));
  return users;
}

absl::StatusOr<std::unique_ptr<ServiceMetrics>> ServiceMetrics::Start(
    const std::string& address, SessionManager* sessions, const MetricsOptions& options) {
  const MetricsSecurity& security = options.security;
  std::unique_ptr<ServiceMetrics> m(new ServiceMetrics());
  m->registry_ = std::make_shared<prometheus::Registry>();
  m->started_ = &prometheus::BuildCounter()
                     .Name("grpc_server_started_total")
                     .Help("RPCs started on the server.")
                     .Register(*m->registry_);
  m->handled_ = &prometheus::BuildCounter()
                     .Name("grpc_server_handled_total")
                     .Help("RPCs completed on the server, whatever their status.")
                     .Register(*m->registry_);
  m->handling_ = &prometheus::BuildHistogram()
                      .Name("grpc_server_handling_seconds")
                      .Help("Time from an RPC's start to its status, by method.")
                      .Register(*m->registry_);
  m->sessions_ = std::make_shared<SessionCollector>(sessions, options.retain_finished_s);
  std::map<std::string, std::string> users;
  if (!security.basic_auth_file.empty()) {
    ASSIGN_OR_RETURN(users, ParseBasicAuthFile(security.basic_auth_file));
  }
  if (!security.tls_cert.empty()) {
    auto tls =
        std::make_unique<httplib::SSLServer>(security.tls_cert.c_str(), security.tls_key.c_str());
    if (!tls->is_valid())
      return absl::FailedPreconditionError(absl::StrCat(
          "cannot serve /metrics over TLS with ", security.tls_cert, " and ", security.tls_key));
    m->http_ = std::move(tls);
  } else {
    m->http_ = std::make_unique<httplib::Server>();
  }
  ServiceMetrics* self = m.get();
  m->http_->Get("/metrics", [self, users = std::move(users)](const httplib::Request& req,
                                                             httplib::Response& res) {
    if (!users.empty() && !BasicAuthOk(users, req.get_header_value("Authorization"))) {
      res.status = 401;
      res.set_header("WWW-Authenticate", "Basic realm=\"alignd metrics\"");
      return;
    }
    std::vector<prometheus::MetricFamily> families = self->registry_->Collect();
    for (auto& f : self->sessions_->Collect()) families.push_back(std::move(f));
    {
      auto dropped = Family("alignd_log_lines_dropped_total",
                            "Log lines dropped because stderr was not read fast enough.",
                            prometheus::MetricType::Counter);
      prometheus::ClientMetric m;
      m.counter.value = static_cast<double>(LogLinesDropped());
      dropped.metric.push_back(std::move(m));
      families.push_back(std::move(dropped));
    }
    res.set_content(prometheus::TextSerializer().Serialize(families),
                    "text/plain; version=0.0.4; charset=utf-8");
  });
  const size_t colon = address.rfind(':');
  int port = 0;
  if (colon == std::string::npos || !absl::SimpleAtoi(address.substr(colon + 1), &port))
    return absl::InvalidArgumentError(
        absl::StrCat("--metrics_listen ", address, ": want host:port"));
  std::string host = address.substr(0, colon);
  if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
  m->port_ = port == 0 ? m->http_->bind_to_any_port(host)
                       : (m->http_->bind_to_port(host, port) ? port : -1);
  if (m->port_ <= 0)
    return absl::UnavailableError(absl::StrCat("cannot serve metrics on ", address));
  m->listener_ = std::thread([self] { self->http_->listen_after_bind(); });
  return m;
}

ServiceMetrics::~ServiceMetrics() {
  if (http_ != nullptr) http_->stop();
  if (listener_.joinable()) listener_.join();
}

int ServiceMetrics::port() const { return port_; }

const google::protobuf::MethodDescriptor* ServedMethod(const std::string& path) {
  if (path.size() < 4 || path[0] != '/') return nullptr;
  std::string full = path.substr(1);
  const size_t slash = full.find('/');
  if (slash == std::string::npos) return nullptr;
  full[slash] = '.';
  return google::protobuf::DescriptorPool::generated_pool()->FindMethodByName(full);
}

RpcLabels LabelsOf(const std::string& path) {
  RpcLabels l;
  // Only methods this binary serves get their own series: a client calling made-up
  // names must not mint new ones.
  const auto* m = ServedMethod(path);
  if (m == nullptr) return l;
  l.service = m->service()->full_name();
  l.method = m->name();
  l.type = m->client_streaming() ? (m->server_streaming() ? "bidi_stream" : "client_stream")
                                 : (m->server_streaming() ? "server_stream" : "unary");
  return l;
}

std::string CodeName(int code) {
  // As go-grpc-prometheus names them, so that its dashboards and alerts work here too.
  static const char* const kNames[] = {
      "OK",       "Canceled",       "Unknown",          "InvalidArgument",   "DeadlineExceeded",
      "NotFound", "AlreadyExists",  "PermissionDenied", "ResourceExhausted", "FailedPrecondition",
      "Aborted",  "OutOfRange",     "Unimplemented",    "Internal",          "Unavailable",
      "DataLoss", "Unauthenticated"};
  return code >= 0 && code <= 16 ? kNames[code] : "Unknown";
}

void ServiceMetrics::ObserveStart(const RpcLabels& l) {
  started_->Add({{"grpc_service", l.service}, {"grpc_method", l.method}, {"grpc_type", l.type}})
      .Increment();
}

void ServiceMetrics::ObserveHandled(const RpcLabels& l, int code, double seconds) {
  handled_
      ->Add({{"grpc_service", l.service},
             {"grpc_method", l.method},
             {"grpc_type", l.type},
             {"grpc_code", CodeName(code)}})
      .Increment();
  static const prometheus::Histogram::BucketBoundaries kBuckets = {
      1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1, 3, 10, 30};
  handling_
      ->Add({{"grpc_service", l.service}, {"grpc_method", l.method}, {"grpc_type", l.type}},
            kBuckets)
      .Observe(seconds);
}

}  // namespace alignd::server
