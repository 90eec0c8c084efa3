// File: server/rpc_log.cc
#include "server/rpc_log.h"

#include <chrono>
#include <string>

#include <grpcpp/server_context.h>

#include "server/log.h"
#include "server/metrics.h"

namespace alignd::server {
namespace {

using grpc::experimental::InterceptionHookPoints;

class RpcLog : public grpc::experimental::Interceptor {
 public:
  RpcLog(grpc::experimental::ServerRpcInfo* info, ServiceMetrics* metrics)
      : method_(info->method()), ctx_(info->server_context()), metrics_(metrics),
        start_(std::chrono::steady_clock::now()) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      const grpc::Status st = methods->GetSendStatus();
      const double ms =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start_).count();
      nlohmann::json f = {{"method", method_}, {"code", static_cast<int>(st.error_code())},
                          {"duration_ms", ms}};
      if (!st.ok()) f["error"] = st.error_message();
      if (ctx_ != nullptr) f["peer"] = ctx_->peer();
      LogJson(st.ok() || st.error_code() == grpc::StatusCode::CANCELLED ? "info" : "warn", "rpc", std::move(f));
      if (metrics_ != nullptr) metrics_->ObserveRpc(method_, static_cast<int>(st.error_code()), ms / 1000);
    }
    methods->Proceed();
  }

 private:
  std::string method_;
  grpc::ServerContextBase* ctx_;
  ServiceMetrics* metrics_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace

grpc::experimental::Interceptor* RpcLogFactory::CreateServerInterceptor(grpc::experimental::ServerRpcInfo* info) {
  return new RpcLog(info, metrics_);
}

}  // namespace alignd::server
