// File: server/net/log.h
// -----------------------------------------------------------------------------
// Structured logs: one JSON object per line on stderr, with time, level and
// message plus any fields ({"time":...,"level":"info","msg":"rpc","method":...}).
// Thread-safe, and never blocks its caller on stderr: lines go into a bounded queue (4 MiB,
// 16384 lines) that one writer thread empties, whole lines only, so lines never
// interleave. When nobody reads stderr (a full pipe) the queue fills and further lines are
// dropped and counted (LogLinesDropped, alignd_log_lines_dropped_total); when the sink
// takes lines again, a "log lines dropped" line says how many. At exit the queue is written
// out (at most 2 s).
#ifndef ALIGND_SERVER_NET_LOG_H_
#define ALIGND_SERVER_NET_LOG_H_

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

namespace alignd::server {

void LogJson(const char* level, const std::string& msg,
             nlohmann::json fields = nlohmann::json::object());
// Waits (at most 2 s) until every line logged so far is written.
void FlushLogs();
// Lines dropped since the process started because the queue was full.
uint64_t LogLinesDropped();

inline void LogInfo(const std::string& msg, nlohmann::json f = nlohmann::json::object()) {
  LogJson("info", msg, std::move(f));
}
inline void LogWarn(const std::string& msg, nlohmann::json f = nlohmann::json::object()) {
  LogJson("warn", msg, std::move(f));
}
inline void LogError(const std::string& msg, nlohmann::json f = nlohmann::json::object()) {
  LogJson("error", msg, std::move(f));
}

// Routes what libprotobuf and gRPC's core log (parse errors, transport warnings) into
// the JSON log, so that every line on stderr is one JSON object.
void RouteLibraryLogs();

// Installs a failure signal handler (SIGSEGV, SIGABRT, SIGBUS, SIGFPE, SIGILL, SIGTRAP):
// before the process dies it writes the signal and a symbolized stack trace to the log,
// as JSON lines {"level":"fatal","msg":"crash","text":...}. Async-signal-safe writer.
void InstallCrashHandler(const char* argv0);

}  // namespace alignd::server

#endif  // ALIGND_SERVER_NET_LOG_H_
