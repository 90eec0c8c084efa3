// File: server/net/rpc_log.cc
#include "server/net/rpc_log.h"

#include <google/protobuf/descriptor.h>
#include <grpcpp/server_context.h>

#include <chrono>
#include <string>
#include <utility>

#include "server/net/auth.h"
#include "server/net/log.h"
#include "server/net/metrics.h"

namespace alignd::server {
namespace {

using grpc::experimental::InterceptionHookPoints;

class RpcLog : public grpc::experimental::Interceptor {
 public:
  RpcLog(grpc::experimental::ServerRpcInfo* info, ServiceMetrics* metrics,
         const Identifier* identifier, std::shared_ptr<std::atomic<int64_t>> in_flight)
      : in_flight_(std::move(in_flight)),
        method_(info->method()),
        ctx_(info->server_context()),
        metrics_(metrics),
        identifier_(identifier),
        start_(std::chrono::steady_clock::now()) {
    in_flight_->fetch_add(1);
    if (metrics_ != nullptr) {
      labels_ = LabelsOf(method_);
      metrics_->ObserveStart(labels_);
    }
  }

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    // gRPC 1.51's callback handlers answer a request whose body does not parse with
    // UNIMPLEMENTED and no message (server_callback_handlers.h: "if deserialization or
    // reactor creator failed"); gRPC's status-code guide says INTERNAL. Our handlers
    // never throw (server/api/unary.h, stream_reactor.h), so for a method we serve that answer
    // means the body did not parse. Unknown methods keep UNIMPLEMENTED.
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      grpc::Status st = methods->GetSendStatus();
      if (st.error_code() == grpc::StatusCode::UNIMPLEMENTED && st.error_message().empty()) {
        if (const auto* m = ServedMethod(method_); m != nullptr) {
          st = grpc::Status(grpc::StatusCode::INTERNAL,
                            "the request body does not parse as " + m->input_type()->full_name());
          methods->ModifySendStatus(st);
        }
      }
      const double ms =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start_)
              .count();
      nlohmann::json f = {
          {"method", method_}, {"code", static_cast<int>(st.error_code())}, {"duration_ms", ms}};
      if (!st.ok()) f["error"] = st.error_message();
      if (ctx_ != nullptr) {
        f["peer"] = ctx_->peer();
        // This call's own token, looked up again: "-" with authentication off.
        f["principal"] = identifier_ != nullptr ? identifier_->PrincipalOf(*ctx_) : "-";
      }
      LogJson(st.ok() || st.error_code() == grpc::StatusCode::CANCELLED ? "info" : "warn", "rpc",
              std::move(f));
      if (metrics_ != nullptr)
        metrics_->ObserveHandled(labels_, static_cast<int>(st.error_code()), ms / 1000);
    }
    methods->Proceed();
  }

  ~RpcLog() override { in_flight_->fetch_sub(1); }

 private:
  std::shared_ptr<std::atomic<int64_t>> in_flight_;
  std::string method_;
  grpc::ServerContextBase* ctx_;
  ServiceMetrics* metrics_;
  const Identifier* identifier_;
  RpcLabels labels_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace

grpc::experimental::Interceptor* RpcLogFactory::CreateServerInterceptor(
    grpc::experimental::ServerRpcInfo* info) {
  return new RpcLog(info, metrics_, identifier_, in_flight_);
}

}  // namespace alignd::server
