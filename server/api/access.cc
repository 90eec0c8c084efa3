// File: server/api/access.cc
// Who may see and change what (rpc_impl.h, "Access"; the roles: auth.h).
#include "base/status_macros.h"
#include "server/api/rpc_impl.h"

namespace alignd::server {

absl::StatusOr<v1::Session> SessionFor(SessionManager& sessions, const Caller& caller,
                                       const std::string& name) {
  ASSIGN_OR_RETURN(v1::Session s, sessions.Get(name));
  if (!MaySee(caller, s)) return NotFound(name);
  return s;
}

absl::StatusOr<v1::Session> SessionToChange(SessionManager& sessions, const Caller& caller,
                                            const std::string& name, absl::string_view action) {
  ASSIGN_OR_RETURN(v1::Session s, SessionFor(sessions, caller, name));
  RETURN_IF_ERROR(CheckMayWrite(caller, action));
  return s;
}

absl::StatusOr<v1::Dataset> DatasetFor(SessionManager& sessions, const Caller& caller,
                                       const std::string& name) {
  ASSIGN_OR_RETURN(v1::Dataset d, sessions.datasets()->Get(name));
  if (!MaySee(caller, d)) return NotFound(name);
  return VisibleTo(caller, std::move(d));
}

Requester RequesterOf(const SessionManager& sessions, const Caller& caller) {
  return Requester{caller.principal,
                   caller.role == Role::kUser ? sessions.options().quota_active_sessions : 0};
}

DatasetOwner DatasetOwnerOf(const Caller& caller) {
  return DatasetOwner{caller.principal, caller.role == Role::kUser};
}

}  // namespace alignd::server
