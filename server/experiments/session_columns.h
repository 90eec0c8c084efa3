// File: server/experiments/session_columns.h
// -----------------------------------------------------------------------------
// A session's metric log as the statistics read it (group_stats.h's SessionColumns), kept in
// memory between calls: an experiment's statistics are asked for again and again (a
// dashboard, a notebook), and reading and decoding its logs is most of their cost.
//
// What is kept is the columns of the log up to a seq, for the session with that name and
// create_time (a session deleted and made again under its name is another one). An ended
// session's log no longer changes: its columns are served as kept. A running session's log
// grows only at its end: the kept columns are extended with the events logged since (a log
// cut back by a restart, which is bit-identical up to its checkpoint, is read again from
// its start when it is shorter than what was kept). The least recently used are dropped
// past a budget of memory.
#ifndef ALIGND_SERVER_EXPERIMENTS_SESSION_COLUMNS_H_
#define ALIGND_SERVER_EXPERIMENTS_SESSION_COLUMNS_H_

#include <atomic>
#include <cstddef>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/experiments/group_stats.h"
#include "server/net/auth.h"
#include "server/sessions/session_manager.h"

namespace alignd::server {

// The columns of session `name`'s log up to its record's last_seq, as `caller` may see it
// (NotFound as SessionFor's). Events not yet stored are read from the session's ring.
absl::StatusOr<std::shared_ptr<const SessionColumns>> ColumnsOfSession(SessionManager& sessions,
                                                                       const Caller& caller,
                                                                       const std::string& name);

// The memory the kept columns may take in all (bytes; default 512 MiB); 0 keeps none. For
// tests and tools.
void SetSessionColumnsBudget(size_t bytes);
// Columns read from logs (not served from what was kept) since the process started.
int64_t SessionColumnsReads();

// Reads the stored experiments' sessions' logs into the kept columns, the newest experiment
// first, until the budget is used, so that the first statistics after a start are served from
// memory (alignd runs it on a thread of its own at start). Returns early once `stop` is set
// (looked at between sessions); errors only end it. The sessions it read, or -1 if stopped.
int WarmSessionColumns(SessionManager& sessions, const std::atomic<bool>& stop);

}  // namespace alignd::server

#endif  // ALIGND_SERVER_EXPERIMENTS_SESSION_COLUMNS_H_
