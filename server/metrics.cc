// File: server/metrics.cc
#include "server/metrics.h"

#include <prometheus/client_metric.h>
#include <prometheus/metric_family.h>

#include <cmath>
#include <map>

#include "absl/strings/str_cat.h"
#include "alignd/v1/rule_names.h"
#include "server/log.h"
#include "server/proto_convert.h"

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

}  // namespace

class ServiceMetrics::SessionCollector : public prometheus::Collectable {
 public:
  explicit SessionCollector(SessionManager* sessions) : sessions_(sessions) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    using prometheus::MetricType;
    auto by_state = Family("alignd_sessions", "Sessions by state.", MetricType::Gauge);
    auto steps = Family("alignd_session_steps_total", "Steps trained.", MetricType::Counter);
    auto loss =
        Family("alignd_session_loss", "Batch loss at the last metric step.", MetricType::Gauge);
    auto acc = Family("alignd_session_accuracy", "Batch accuracy at the last metric step.",
                      MetricType::Gauge);
    auto nse =
        Family("alignd_session_nse", "Batch NSE at the last metric step.", MetricType::Gauge);
    auto eval_error = Family("alignd_session_eval_error", "Error rate at the last evaluation.",
                             MetricType::Gauge);
    auto eval_nse =
        Family("alignd_session_eval_nse", "NSE at the last evaluation.", MetricType::Gauge);
    auto angle =
        Family("alignd_session_update_angle_degrees",
               "Angle between the rule's hidden update and BP's (batch mean).", MetricType::Gauge);
    std::map<v1::SessionState, int> counts;
    for (int st = v1::SESSION_STATE_QUEUED; st <= v1::SESSION_STATE_CANCELLED; ++st)
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
    for (const v1::Session& r : sessions_->List(v1::SESSION_STATE_UNSPECIFIED)) {
      ++counts[r.state()];
      auto s = sessions_->Find(r.name());
      if (!s.ok()) continue;
      const LiveSession::Latest l = (*s)->latest();
      const std::vector<prometheus::ClientMetric::Label> labels = {
          {"session", r.name()}, {"rule", RuleLabel(r.config().feedback().rule())}};
      add(steps, labels, static_cast<double>(r.step()), true);
      add(loss, labels, l.loss);
      add(acc, labels, l.accuracy);
      add(nse, labels, l.nse);
      add(eval_error, labels, l.eval_error);
      add(eval_nse, labels, l.eval_nse);
      for (size_t i = 0; i < l.update_angle.size(); ++i) {
        auto with_layer = labels;
        with_layer.push_back({"layer", std::to_string(i + 1)});
        add(angle, with_layer, l.update_angle[i]);
      }
    }
    for (const auto& [st, n] : counts) add(by_state, {{"state", StateName(st)}}, n);
    return {by_state, steps, loss, acc, nse, eval_error, eval_nse, angle};
  }

 private:
  SessionManager* sessions_;
};

absl::StatusOr<std::unique_ptr<ServiceMetrics>> ServiceMetrics::Start(const std::string& address,
                                                                      SessionManager* sessions) {
  std::unique_ptr<ServiceMetrics> m(new ServiceMetrics());
  m->registry_ = std::make_shared<prometheus::Registry>();
  m->rpcs_ = &prometheus::BuildCounter()
                  .Name("alignd_rpcs_total")
                  .Help("RPCs answered, by method and gRPC code.")
                  .Register(*m->registry_);
  m->durations_ = &prometheus::BuildHistogram()
                       .Name("alignd_rpc_duration_seconds")
                       .Help("Time from an RPC's start to its status, by method.")
                       .Register(*m->registry_);
  m->sessions_ = std::make_shared<SessionCollector>(sessions);
  try {
    m->exposer_ = std::make_unique<prometheus::Exposer>(address);
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve metrics on ", address, ": ", e.what()));
  }
  m->exposer_->RegisterCollectable(m->registry_);
  m->exposer_->RegisterCollectable(m->sessions_);
  return m;
}

ServiceMetrics::~ServiceMetrics() = default;

int ServiceMetrics::port() const {
  const auto ports = exposer_->GetListeningPorts();
  return ports.empty() ? 0 : ports.front();
}

void ServiceMetrics::ObserveRpc(const std::string& method, int code, double seconds) {
  rpcs_->Add({{"method", method}, {"code", std::to_string(code)}}).Increment();
  static const prometheus::Histogram::BucketBoundaries kBuckets = {
      1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1, 3, 10, 30};
  durations_->Add({{"method", method}}, kBuckets).Observe(seconds);
}

}  // namespace alignd::server
