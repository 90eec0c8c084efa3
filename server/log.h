// File: server/log.h
// -----------------------------------------------------------------------------
// Structured logs: one JSON object per line on stderr, with time, level and
// message plus any fields ({"time":...,"level":"info","msg":"rpc","method":...}).
// Thread-safe; a line is written with one call, so lines never interleave.
#ifndef ALIGND_SERVER_LOG_H_
#define ALIGND_SERVER_LOG_H_

#include <string>

#include <nlohmann/json.hpp>

namespace alignd::server {

void LogJson(const char* level, const std::string& msg, nlohmann::json fields = nlohmann::json::object());
inline void LogInfo(const std::string& msg, nlohmann::json f = nlohmann::json::object()) {
  LogJson("info", msg, std::move(f));
}
inline void LogWarn(const std::string& msg, nlohmann::json f = nlohmann::json::object()) {
  LogJson("warn", msg, std::move(f));
}
inline void LogError(const std::string& msg, nlohmann::json f = nlohmann::json::object()) {
  LogJson("error", msg, std::move(f));
}

}  // namespace alignd::server

#endif  // ALIGND_SERVER_LOG_H_
