// File: client/cli.cc
#include "client/cli.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/util/json_util.h"

namespace alignd::client {

Globals& G() {
  static Globals g;
  return g;
}

Output Globals::format() const {
  if (json) return Output::kJson;
  if (jsonl) return Output::kJsonl;
  if (output == "wide") return Output::kWide;
  if (output == "json") return Output::kJson;
  if (output == "jsonl") return Output::kJsonl;
  if (output == "name") return Output::kName;
  return Output::kTable;
}

std::shared_ptr<grpc::Channel> Globals::Channel() const {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  if (!security.server_name.empty()) args.SetSslTargetNameOverride(security.server_name);
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> creds = ChannelCredentials(security);
  if (!creds.ok()) Fail(creds.status());
  return grpc::CreateCustomChannel(server, *creds, args);
}

void Globals::SetDeadline(grpc::ClientContext& ctx) const {
  ctx.set_deadline(std::chrono::system_clock::now() +
                   std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000)));
}

int ExitCode(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return 0;
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::OUT_OF_RANGE:
    case grpc::StatusCode::FAILED_PRECONDITION:
      return 2;
    case grpc::StatusCode::NOT_FOUND:
      return 3;
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return 4;
    default:
      return 1;
  }
}

int ExitCode(absl::StatusCode code) { return ExitCode(static_cast<grpc::StatusCode>(code)); }

void Fail(const grpc::Status& s, const std::string& what) {
  const std::string code = absl::StatusCodeToString(static_cast<absl::StatusCode>(s.error_code()));
  std::cerr << "alignctl: " << what << ": " << absl::AsciiStrToUpper(code) << ": "
            << s.error_message() << "\n";
  if (s.error_code() == grpc::StatusCode::UNAVAILABLE) {
    if (std::string why = DiagnoseTls(G().server, G().security); !why.empty())
      std::cerr << "  TLS: " << why << "\n";
    else if (G().security.uses_tls())
      std::cerr << "  (is alignd running at " << G().server << "? set --server or ALIGND_SERVER)\n";
    else
      std::cerr << "  (is alignd running at " << G().server
                << "? set --server or ALIGND_SERVER; if it serves TLS, add --tls and --ca)\n";
  } else if (s.error_code() == grpc::StatusCode::UNAUTHENTICATED) {
    std::cerr << "  (give a token: --token-file FILE, --token, or ALIGND_TOKEN; an admin makes one "
                 "with `alignctl token new`)\n";
  }
  std::exit(ExitCode(s.error_code()));
}

void Fail(const absl::Status& s) {
  std::cerr << "alignctl: " << s.message() << "\n";
  std::exit(ExitCode(s.code()));
}

std::string Json(const google::protobuf::Message& m, bool pretty) {
  std::string out;
  google::protobuf::util::JsonPrintOptions o;
  o.add_whitespace = pretty;
  o.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(m, &out, o);
  if (pretty && !out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

std::string Num(double v, int precision) {
  if (std::isnan(v)) return "-";
  std::ostringstream s;
  s.precision(precision);
  s << v;
  return s.str();
}

void PrintOne(const google::protobuf::Message& m, const std::string& name,
              const std::function<void()>& table) {
  switch (G().format()) {
    case Output::kJson:
      std::cout << Json(m) << "\n";
      break;
    case Output::kJsonl:
      std::cout << Json(m, false) << "\n";
      break;
    case Output::kName:
      std::cout << name << "\n";
      break;
    default:
      table();
  }
}

namespace {
std::string WithPrefix(const std::string& prefix, const std::string& s) {
  return absl::StartsWith(s, prefix) ? s : prefix + s;
}
}  // namespace

std::string SessionName(const std::string& s) { return WithPrefix("sessions/", s); }
std::string DatasetName(const std::string& s) { return WithPrefix("datasets/", s); }
std::string SnapshotName(const std::string& s) {
  const std::string full = WithPrefix("sessions/", s);
  return absl::StrContains(full, "/snapshots/") ? full : full + "/snapshots/latest";
}

absl::StatusOr<std::vector<int32_t>> ParseSizes(const std::string& text) {
  std::vector<int32_t> out;
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    int32_t v = 0;
    if (!absl::SimpleAtoi(part, &v) || v < 1)
      return absl::InvalidArgumentError(absl::StrCat(
          "--sizes '", text, "': '", part, "' is not a positive whole number (e.g. 784,1000,10)"));
    out.push_back(v);
  }
  if (out.size() < 2)
    return absl::InvalidArgumentError(
        absl::StrCat("--sizes '", text, "' needs at least two widths: input and output"));
  return out;
}

absl::StatusOr<int> ParseEnumValue(const google::protobuf::EnumDescriptor* e,
                                   const std::string& prefix, const std::string& text,
                                   const std::string& flag) {
  std::string upper = prefix;
  for (char c : text)
    upper += static_cast<char>(c == '-' ? '_' : std::toupper(static_cast<unsigned char>(c)));
  std::vector<std::string> known;
  for (int i = 0; i < e->value_count(); ++i) {
    const std::string& n = e->value(i)->name();
    if (absl::EndsWith(n, "UNSPECIFIED")) continue;
    if (n == upper || n == text) return e->value(i)->number();
    known.push_back(absl::AsciiStrToLower(n.substr(prefix.size())));
  }
  return absl::InvalidArgumentError(
      absl::StrCat(flag, " '", text, "' is not one of: ", absl::StrJoin(known, ", ")));
}

}  // namespace alignd::client
