// Fuzz target: alignd-dashboard's request handling, from the bytes a browser sends.
//
// The input is raw HTTP/1.1: one or more requests on one connection (request line,
// headers, body), processed by a real httplib::Server with the dashboard's own routes
// and checks (AddApiRoutes: pre-routing framing checks, the payload bound, the error
// handler, every /api route), one request after another as on a keep-alive connection.
// The routes call alignd over an in-process channel to a gRPC server whose services
// implement nothing (the generated bases), so every call gets UNIMPLEMENTED at once:
// what is fuzzed is what happens before and around the call. A header value that reached gRPC
// metadata unchecked makes gRPC abort the process (GRPC_CALL_ERROR_INVALID_METADATA),
// which is the crash this target exists to find.
//
// The same bytes also go, line by line, straight to the checks of request_checks.h,
// with their promises asserted: whatever BearerMetadata returns is legal metadata and
// begins with "Bearer "; ParseSubscriptions returns 1..kMaxSubscriptions items with
// well-formed ids and starts >= 0.
#include <grpc/grpc.h>
#include <grpc/slice.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <httplib.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "alignd/v1/datasets.grpc.pb.h"
#include "alignd/v1/sessions.grpc.pb.h"
#include "dashboard/bridge.h"
#include "dashboard/request_checks.h"

namespace {

// A connection whose reads come from the fuzz input and whose writes are dropped.
class FuzzedStream : public httplib::Stream {
 public:
  explicit FuzzedStream(absl::string_view in) : in_(in) {}
  bool is_readable() const override { return true; }
  bool is_writable() const override { return true; }
  ssize_t read(char* ptr, size_t size) override {
    const size_t n = std::min(size, in_.size());
    std::memcpy(ptr, in_.data(), n);
    in_.remove_prefix(n);
    return static_cast<ssize_t>(n);
  }
  ssize_t write(const char*, size_t size) override { return static_cast<ssize_t>(size); }
  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    ip = "127.0.0.1";
    port = 40000;
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    ip = "127.0.0.1";
    port = 8080;
  }
  socket_t socket() const override { return INVALID_SOCKET; }
  bool empty() const { return in_.empty(); }

 private:
  absl::string_view in_;
};

// httplib::Server with its one-request step opened up (process_request is protected).
class FuzzableServer : public httplib::Server {
 public:
  // Processes the requests of `stream` as one keep-alive connection would, at most 8.
  void ProcessConnection(FuzzedStream& stream) {
    bool closed = false;
    for (int i = 0; i < 8 && !closed && !stream.empty(); ++i)
      if (!process_request(stream, /*close_connection=*/false, closed, nullptr)) break;
  }
};

FuzzableServer* Server() {
  static FuzzableServer* http = [] {
    grpc::EnableDefaultHealthCheckService(true);
    // The generated bases: every method answers UNIMPLEMENTED.
    static alignd::v1::TrainingService::Service training;
    static alignd::v1::DatasetService::Service datasets;
    grpc::ServerBuilder builder;
    builder.RegisterService(&training);
    builder.RegisterService(&datasets);
    static std::unique_ptr<grpc::Server> grpc_server = builder.BuildAndStart();
    grpc::ChannelArguments args;
    auto channel = grpc_server->InProcessChannel(args);
    auto* server = new FuzzableServer;
    alignd::dashboard::Limits limits;
    limits.max_body_bytes = 4 << 10;  // small enough for inputs to cross it
    limits.max_streams = 4;
    limits.max_streams_per_client = 2;
    limits.call_deadline = std::chrono::milliseconds(2000);
    alignd::dashboard::AddApiRoutes(*server, channel, limits);
    return server;
  }();
  return http;
}

void CheckBearer(absl::string_view header) {
  auto md = alignd::dashboard::BearerMetadata(header);
  if (!md.ok()) {
    if (md.status().code() != absl::StatusCode::kUnauthenticated) __builtin_trap();
    return;
  }
  if (!md->has_value()) return;
  const std::string& v = **md;
  if (!absl::StartsWith(v, "Bearer ") || v.size() > alignd::dashboard::kMaxTokenLength + 7)
    __builtin_trap();
  grpc_slice slice = grpc_slice_from_copied_buffer(v.data(), v.size());
  const int legal = grpc_header_nonbin_value_is_legal(slice);
  grpc_slice_unref(slice);
  if (!legal) __builtin_trap();
}

void CheckSubscriptions(absl::string_view s) {
  auto subs = alignd::dashboard::ParseSubscriptions(s);
  if (!subs.ok()) {
    if (subs.status().code() != absl::StatusCode::kInvalidArgument) __builtin_trap();
    return;
  }
  if (subs->empty() || subs->size() > alignd::dashboard::kMaxSubscriptions) __builtin_trap();
  for (const auto& sub : *subs) {
    if (sub.start < 0 || sub.id.empty() || sub.id.size() > 63) __builtin_trap();
    for (char c : sub.id)
      if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) __builtin_trap();
    if (sub.id[0] == '-') __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view in(reinterpret_cast<const char*>(data), size);

  // Each line as an Authorization value (after "Authorization:" when it has it) and as
  // an /api/events list (after "s=" when it has it).
  for (absl::string_view rest = in; !rest.empty();) {
    const size_t nl = rest.find('\n');
    absl::string_view line = rest.substr(0, nl);
    rest = nl == absl::string_view::npos ? absl::string_view() : rest.substr(nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    absl::string_view value = line;
    if (absl::StartsWithIgnoreCase(value, "authorization:")) {
      value.remove_prefix(14);
      while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    }
    CheckBearer(value);
    absl::string_view list = line;
    if (const size_t at = list.find("s="); at != absl::string_view::npos)
      list.remove_prefix(at + 2);
    CheckSubscriptions(list);
  }

  FuzzedStream stream(in);
  Server()->ProcessConnection(stream);
  return 0;
}
