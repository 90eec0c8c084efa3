// File: client/cli.h
// -----------------------------------------------------------------------------
// What every alignctl command shares: the global flags (server, output format,
// timeout), the channel, errors and exit codes, output in the formats users ask for
// (-o table|wide|json|jsonl|name), and the parsing of names and flag values. Each command
// group registers itself in its own file (datasets_cmd.cc, sessions_cmd.cc,
// snapshots_cmd.cc) with CLI11 callbacks.
#ifndef ALIGND_CLIENT_CLI_H_
#define ALIGND_CLIENT_CLI_H_

#include <grpcpp/grpcpp.h>

#include <CLI/CLI.hpp>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "client/tls.h"
#include "google/protobuf/message.h"

namespace alignd::client {

enum class Output { kTable, kWide, kJson, kJsonl, kName };

struct Globals {
  std::string server;
  std::string output = "table";
  bool json = false;   // shorthand for -o json
  bool jsonl = false;  // shorthand for -o jsonl
  double timeout_s = 30;
  Security security;  // --tls, --ca, --cert, --key, --token (client/tls.h)

  Output format() const;
  // Exits with a message (code 2) if the security flags do not make credentials.
  std::shared_ptr<grpc::Channel> Channel() const;
  // A deadline of timeout_s from now (unary calls; streams have none).
  void SetDeadline(grpc::ClientContext& ctx) const;
};
Globals& G();

// Exit codes (the README's table): 0 success; 2 a bad request — the command line or the
// server's INVALID_ARGUMENT, OUT_OF_RANGE or FAILED_PRECONDITION (the request does not fit
// the resource's state); 3 not found; 4 the server is unreachable or shutting down
// (UNAVAILABLE, DEADLINE_EXCEEDED); 1 anything else (the gRPC code is printed).
int ExitCode(grpc::StatusCode code);
int ExitCode(absl::StatusCode code);
// Prints "alignctl: WHAT: CODE: message" (and a hint when the server is unreachable) and
// exits with ExitCode.
[[noreturn]] void Fail(const grpc::Status& s, const std::string& what);
[[noreturn]] void Fail(const absl::Status& s);

// Proto JSON mapping (proto field names; int64 as strings, as the mapping says).
std::string Json(const google::protobuf::Message& m, bool pretty = true);
// A number for a table: "-" for NaN.
std::string Num(double v, int precision = 4);

// Prints one resource the way -o asks: its JSON (json, jsonl), its name (name), or the
// given table (table, wide).
void PrintOne(const google::protobuf::Message& m, const std::string& name,
              const std::function<void()>& table);

// "abc" -> "sessions/abc"; a full name is kept. Likewise for data sets, and for snapshots
// ("abc" -> "sessions/abc/snapshots/latest", "abc/snapshots/5" -> "sessions/abc/snapshots/5").
std::string SessionName(const std::string& name_or_id);
std::string DatasetName(const std::string& name_or_id);
std::string SnapshotName(const std::string& name_or_id);

// "784,1000,10" -> {784, 1000, 10}; InvalidArgument naming the bad item ("30,abc").
absl::StatusOr<std::vector<int32_t>> ParseSizes(const std::string& text);
// "tanh" -> ACTIVATION_TANH through the enum's descriptor ("-" and case folded);
// InvalidArgument listing the accepted values.
absl::StatusOr<int> ParseEnumValue(const google::protobuf::EnumDescriptor* e,
                                   const std::string& prefix, const std::string& text,
                                   const std::string& flag);

}  // namespace alignd::client

#endif  // ALIGND_CLIENT_CLI_H_
