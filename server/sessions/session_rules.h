// File: server/sessions/session_rules.h
// -----------------------------------------------------------------------------
// What a session's state allows, and the words alignd refuses with: one place, so that one
// alignd (session_manager.cc) and replicas on a shared database (pg_storage.cc) say the
// same thing for the same refusal.
#ifndef ALIGND_SERVER_SESSIONS_SESSION_RULES_H_
#define ALIGND_SERVER_SESSIONS_SESSION_RULES_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "alignd/v1/sessions.pb.h"
#include "server/api/proto_convert.h"

namespace alignd::server {

inline bool IsTerminal(v1::SessionState s) {
  return s == v1::SESSION_STATE_SUCCEEDED || s == v1::SESSION_STATE_FAILED ||
         s == v1::SESSION_STATE_CANCELLED || s == v1::SESSION_STATE_STOPPED;
}

inline absl::Status IllegalTransition(const std::string& session, v1::SessionState from,
                                      const char* op) {
  return absl::FailedPreconditionError(
      absl::StrCat("cannot ", op, " ", session, ": it is ", StateName(from)));
}

inline absl::Status QueueFull(int max_queued) {
  return absl::ResourceExhaustedError(
      absl::StrCat("the queue is full (", max_queued, " sessions, --max_queued); try again later"));
}

inline absl::Status TooManySessions(int held) {
  return absl::ResourceExhaustedError(
      absl::StrCat("the server holds ", held, " sessions (--max_sessions); delete some first"));
}

inline absl::Status QuotaExceeded(const std::string& owner, int active, int max_active) {
  return absl::ResourceExhaustedError(
      absl::StrCat("quota active_sessions: '", owner, "' has ", active,
                   " sessions queued or running, the most it may have (--quota_active_sessions ",
                   max_active, "); wait for one to finish, or pause or cancel one"));
}

inline absl::Status CannotDeleteActive(const std::string& session, v1::SessionState st) {
  return absl::FailedPreconditionError(
      absl::StrCat("cannot delete ", session, ": it is ", StateName(st), "; cancel it first"));
}

inline absl::Status DatasetInUse(const std::string& dataset) {
  return absl::FailedPreconditionError(absl::StrCat(
      dataset, " is used by a session that is not finished; cancel or delete the session first"));
}

}  // namespace alignd::server

#endif  // ALIGND_SERVER_SESSIONS_SESSION_RULES_H_
