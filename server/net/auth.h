// File: server/net/auth.h
// -----------------------------------------------------------------------------
// Who is calling, and what they may touch (docs/DEPLOY.md, "Tokens and roles").
//
// Authentication happens in one place: TokenAuthenticator, gRPC's AuthMetadataProcessor
// on the TLS port. It reads "authorization: Bearer <token>", hashes the token (SHA-256)
// and looks the hash up in the token file, one line per token:
//
//   # sha256(token) in hex            principal   role
//   9f86d081884c7d659a2feaa0c55ad0...  alice       user
//
// (`alignctl token new alice user` makes a token and its line.) A call without a token,
// or with one the file does not hold, ends there with UNAUTHENTICATED; the health
// service alone needs none (probes). The file is read again on Reload() (SIGHUP): a
// revoked token stops working at once, the file's other tokens are not disturbed.
//
// Who a call is comes from that call's own metadata, every time: Identifier::Identify
// looks the call's token up again. Never from the AuthContext: gRPC keeps one per
// connection, so a property the processor added for one call would still be there for
// every later call on that connection, whoever makes it (grpc/grpc#28809) — one channel
// carrying several users' tokens (alignd-dashboard, a notebook) would make every call
// the connection's first caller. The processor only turns the tokenless and the unknown
// away early; it adds nothing to the AuthContext and leaves the metadata in place.
//
// Authorization is the services' (rpc_impl.h), through the predicates below:
//   admin   sees and changes everything;
//   user    sees and changes what it created (sessions, data sets, their metrics and
//           snapshots); anything else is NOT_FOUND, exactly as if it did not exist;
//   viewer  sees everything, changes nothing (PERMISSION_DENIED): dashboards.
// With authentication off (no token file) every caller is Caller::Anonymous(), an admin
// without a name, and what it creates has no owner.
#ifndef ALIGND_SERVER_NET_AUTH_H_
#define ALIGND_SERVER_NET_AUTH_H_

#include <grpcpp/security/auth_metadata_processor.h>
#include <grpcpp/server_context.h>

#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "alignd/v1/datasets.pb.h"
#include "alignd/v1/sessions.pb.h"

namespace alignd::server {

enum class Role { kAdmin, kUser, kViewer };
absl::string_view RoleName(Role role);
absl::StatusOr<Role> ParseRole(absl::string_view name);

struct Caller {
  std::string principal;  // empty: authentication is off
  Role role = Role::kAdmin;

  static Caller Anonymous() { return Caller{}; }
  bool authenticated() const { return !principal.empty(); }
  bool sees_all() const { return role != Role::kUser; }
  bool may_write() const { return role != Role::kViewer; }
  // What a log line says: the principal, or "-" with authentication off.
  std::string log_name() const { return principal.empty() ? "-" : principal; }
};

// Whether `caller` may see (and, if it may write at all, change) the resource.
bool MaySee(const Caller& caller, const v1::Session& session);
bool MaySee(const Caller& caller, const v1::Dataset& dataset);
// PermissionDenied for a viewer ("viewer 'grafana' may not <action>").
absl::Status CheckMayWrite(const Caller& caller, absl::string_view action);
// A data set as `caller` may see it: others' names removed from `owners` unless it sees all.
v1::Dataset VisibleTo(const Caller& caller, v1::Dataset dataset);
// The NotFound a caller gets for what it may not see: the same words as for what is absent.
absl::Status NotFound(absl::string_view name);

struct TokenEntry {
  std::string principal;
  Role role = Role::kUser;
};

// The token file, parsed: hash -> principal and role.
class TokenTable {
 public:
  // InvalidArgument naming the line for a malformed one (not 64 hex digits, an unknown
  // role, a principal that is not [A-Za-z0-9._@-]{1,64}, a hash listed twice).
  static absl::StatusOr<TokenTable> Parse(absl::string_view text, absl::string_view origin);
  static absl::StatusOr<TokenTable> Load(const std::string& path);

  // The entry of a presented token (hashed here), or null.
  const TokenEntry* Find(absl::string_view token) const;
  size_t size() const { return by_hash_.size(); }

 private:
  std::map<std::string, TokenEntry> by_hash_;  // lowercase hex SHA-256 -> entry
};

// SHA-256 of a token, lowercase hex: what the token file holds.
std::string TokenHash(absl::string_view token);

class TokenAuthenticator final : public grpc::AuthMetadataProcessor {
 public:
  // Reads `path` now; an error if it cannot be read or parsed.
  static absl::StatusOr<std::shared_ptr<TokenAuthenticator>> Open(const std::string& path);

  // The lookup is in memory: run on gRPC's own thread.
  bool IsBlocking() const override { return false; }
  grpc::Status Process(const InputMetadata& auth_metadata, grpc::AuthContext* context,
                       OutputMetadata* consumed_auth_metadata,
                       OutputMetadata* response_metadata) override;

  // Reads the file again; on an error the table in use stays.
  absl::Status Reload();
  size_t size() const;

  // The entry of a call's "authorization" metadata value ("Bearer <token>"), or
  // UNAUTHENTICATED saying what is wrong (no token, not Bearer, unknown or revoked).
  absl::StatusOr<TokenEntry> Authenticate(const std::string* authorization) const;

 private:
  explicit TokenAuthenticator(std::string path) : path_(std::move(path)) {}
  const std::string path_;
  mutable absl::Mutex mu_;
  std::shared_ptr<const TokenTable> table_ ABSL_GUARDED_BY(mu_);
};

// Tells who is calling, from the call's own metadata. With `tokens` (a token file is in
// use) the call's bearer token is looked up for every call, and a call without a valid one
// is UNAUTHENTICATED (the authenticator already ended it; this is the lock that counts);
// without, every caller is Caller::Anonymous().
class Identifier {
 public:
  Identifier() = default;
  explicit Identifier(std::shared_ptr<const TokenAuthenticator> tokens)
      : tokens_(std::move(tokens)) {}
  absl::StatusOr<Caller> Identify(const grpc::ServerContextBase& ctx) const;
  bool required() const { return tokens_ != nullptr; }
  // The principal of a call for its log line: "-" with authentication off or for a call
  // without a valid token.
  std::string PrincipalOf(const grpc::ServerContextBase& ctx) const;

 private:
  std::shared_ptr<const TokenAuthenticator> tokens_;
};

}  // namespace alignd::server

#endif  // ALIGND_SERVER_NET_AUTH_H_
