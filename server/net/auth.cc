// File: server/net/auth.cc
#include "server/net/auth.h"

#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "formats/formats.h"
#include "server/net/log.h"

namespace alignd::server {
namespace {

bool ValidPrincipal(absl::string_view p) {
  if (p.empty() || p.size() > 64) return false;
  for (char c : p)
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '@' &&
        c != '-')
      return false;
  return true;
}

bool IsHexDigest(absl::string_view h) {
  if (h.size() != 64) return false;
  for (char c : h)
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(c))) return false;
  return true;
}

constexpr char kNoToken[] = "this server wants a bearer token (alignctl --token, or ALIGND_TOKEN)";

}  // namespace

absl::string_view RoleName(Role role) {
  switch (role) {
    case Role::kAdmin:
      return "admin";
    case Role::kUser:
      return "user";
    case Role::kViewer:
      return "viewer";
  }
  return "?";
}

absl::StatusOr<Role> ParseRole(absl::string_view name) {
  for (Role r : {Role::kAdmin, Role::kUser, Role::kViewer})
    if (name == RoleName(r)) return r;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown role '", name, "' (admin, user or viewer)"));
}

bool MaySee(const Caller& caller, const v1::Session& session) {
  return caller.sees_all() || session.owner() == caller.principal;
}

bool MaySee(const Caller& caller, const v1::Dataset& dataset) {
  if (caller.sees_all()) return true;
  for (const std::string& o : dataset.owners())
    if (o == caller.principal) return true;
  return false;
}

absl::Status CheckMayWrite(const Caller& caller, absl::string_view action) {
  if (caller.may_write()) return absl::OkStatus();
  return absl::PermissionDeniedError(absl::StrCat(RoleName(caller.role), " '", caller.principal,
                                                  "' may not ", action, " (read-only role)"));
}

v1::Dataset VisibleTo(const Caller& caller, v1::Dataset dataset) {
  if (caller.sees_all()) return dataset;
  dataset.clear_owners();
  dataset.add_owners(caller.principal);
  return dataset;
}

absl::Status NotFound(absl::string_view name) {
  return absl::NotFoundError(absl::StrCat(name, " not found"));
}

std::string TokenHash(absl::string_view token) {
  formats::Sha256 h;
  h.Update(token);
  return h.HexDigest();
}

absl::StatusOr<TokenTable> TokenTable::Parse(absl::string_view text, absl::string_view origin) {
  TokenTable t;
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_no;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    std::vector<absl::string_view> f =
        absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    auto bad = [&](absl::string_view why) {
      return absl::InvalidArgumentError(absl::StrCat(origin, ":", line_no, ": ", why));
    };
    if (f.size() != 3) return bad("want '<sha256 of the token, hex> <principal> <role>'");
    std::string hash = absl::AsciiStrToLower(
        absl::StartsWith(f[0], "sha256:") ? f[0].substr(strlen("sha256:")) : f[0]);
    if (!IsHexDigest(hash))
      return bad(
          "the first field is not a SHA-256 in hex (64 digits): store the token's hash, "
          "never the token");
    if (!ValidPrincipal(f[1])) return bad("a principal is 1-64 of [A-Za-z0-9._@-]");
    absl::StatusOr<Role> role = ParseRole(f[2]);
    if (!role.ok()) return bad(role.status().message());
    if (!t.by_hash_.emplace(hash, TokenEntry{std::string(f[1]), *role}).second)
      return bad("this token hash is listed twice");
  }
  return t;
}

absl::StatusOr<TokenTable> TokenTable::Load(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read the token file ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return Parse(ss.str(), path);
}

const TokenEntry* TokenTable::Find(absl::string_view token) const {
  auto it = by_hash_.find(TokenHash(token));
  return it == by_hash_.end() ? nullptr : &it->second;
}

absl::StatusOr<std::shared_ptr<TokenAuthenticator>> TokenAuthenticator::Open(
    const std::string& path) {
  std::shared_ptr<TokenAuthenticator> a(new TokenAuthenticator(path));
  if (absl::Status s = a->Reload(); !s.ok()) return s;
  return a;
}

absl::Status TokenAuthenticator::Reload() {
  absl::StatusOr<TokenTable> t = TokenTable::Load(path_);
  if (!t.ok()) return t.status();
  auto table = std::make_shared<const TokenTable>(std::move(*t));
  absl::MutexLock l(&mu_);
  table_ = std::move(table);
  return absl::OkStatus();
}

size_t TokenAuthenticator::size() const {
  absl::MutexLock l(&mu_);
  return table_->size();
}

absl::StatusOr<TokenEntry> TokenAuthenticator::Authenticate(
    const std::string* authorization) const {
  if (authorization == nullptr) return absl::UnauthenticatedError(kNoToken);
  constexpr absl::string_view kBearer = "Bearer ";
  if (!absl::StartsWithIgnoreCase(*authorization, kBearer))
    return absl::UnauthenticatedError("the authorization metadata is not 'Bearer <token>'");
  std::shared_ptr<const TokenTable> table;
  {
    absl::MutexLock l(&mu_);
    table = table_;
  }
  const TokenEntry* e = table->Find(absl::string_view(*authorization).substr(kBearer.size()));
  if (e == nullptr)
    return absl::UnauthenticatedError("the bearer token is not valid here (unknown or revoked)");
  return *e;
}

grpc::Status TokenAuthenticator::Process(const InputMetadata& md, grpc::AuthContext*,
                                         OutputMetadata*, OutputMetadata*) {
  auto path = md.find(":path");
  const absl::string_view method =
      path == md.end() ? absl::string_view()
                       : absl::string_view(path->second.data(), path->second.size());
  if (absl::StartsWith(method, "/grpc.health.v1.Health/"))
    return grpc::Status::OK;  // probes carry no token
  // An early refusal: such a call never reaches the services nor their log line, so it gets
  // its own. What it admits is checked again per call (Identifier), and nothing is added to
  // the connection's AuthContext, nor the token consumed: Identify reads it from the call.
  auto auth = md.find("authorization");
  std::string value;
  if (auth != md.end()) value.assign(auth->second.data(), auth->second.size());
  absl::StatusOr<TokenEntry> e = Authenticate(auth == md.end() ? nullptr : &value);
  if (!e.ok()) {
    LogWarn("unauthenticated",
            {{"method", std::string(method)}, {"reason", std::string(e.status().message())}});
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, std::string(e.status().message()));
  }
  return grpc::Status::OK;
}

namespace {

// The call's own "authorization" value, or null.
const std::string* AuthorizationOf(const grpc::ServerContextBase& ctx, std::string* storage) {
  const auto& md = ctx.client_metadata();
  auto it = md.find("authorization");
  if (it == md.end()) return nullptr;
  storage->assign(it->second.data(), it->second.size());
  return storage;
}

}  // namespace

absl::StatusOr<Caller> Identifier::Identify(const grpc::ServerContextBase& ctx) const {
  if (tokens_ == nullptr) return Caller::Anonymous();
  std::string value;
  absl::StatusOr<TokenEntry> e = tokens_->Authenticate(AuthorizationOf(ctx, &value));
  if (!e.ok()) return e.status();
  return Caller{e->principal, e->role};
}

std::string Identifier::PrincipalOf(const grpc::ServerContextBase& ctx) const {
  if (tokens_ == nullptr) return "-";
  absl::StatusOr<Caller> c = Identify(ctx);
  return c.ok() ? c->principal : "-";
}

}  // namespace alignd::server
