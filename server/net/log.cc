// File: server/net/log.cc
#include "server/net/log.h"

#include <google/protobuf/stubs/logging.h>
#include <grpc/support/log.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <deque>
#include <mutex>
#include <thread>

#include "absl/debugging/failure_signal_handler.h"
#include "absl/debugging/symbolize.h"

namespace alignd::server {

namespace {

std::string Format(const char* level, const std::string& msg, nlohmann::json fields);

// The sink: a bounded queue of whole lines and one writer thread. A caller (an RPC on its
// way to sending its status) formats and queues, and never waits for stderr: if whoever
// reads it stops reading (a full pipe), write(2) blocks the writer only; once the queue is
// full, lines are dropped and counted, and the writer says how many when it can write
// again.
class Sink {
 public:
  static constexpr size_t kMaxQueuedBytes = size_t{4} << 20;
  static constexpr size_t kMaxQueuedLines = 16384;

  static Sink& Get() {
    static Sink* sink = [] {
      auto* s = new Sink();  // never destroyed: logging goes on through static destruction
      std::atexit([] { Sink::Get().Drain(std::chrono::seconds(2)); });
      return s;
    }();
    return *sink;
  }

  void Push(std::string line) {
    {
      std::lock_guard<std::mutex> l(mu_);
      if (lines_.size() >= kMaxQueuedLines || bytes_ + line.size() > kMaxQueuedBytes) {
        dropped_.fetch_add(1, std::memory_order_relaxed);
        ++unreported_;
        return;
      }
      bytes_ += line.size();
      lines_.push_back(std::move(line));
      if (!writer_started_) {
        writer_started_ = true;
        std::thread([this] { Loop(); }).detach();
      }
    }
    wake_.notify_one();
  }

  // Waits (at most `limit`) until every queued line is written.
  void Drain(std::chrono::milliseconds limit) {
    std::unique_lock<std::mutex> l(mu_);
    idle_.wait_for(l, limit, [&] { return lines_.empty() && !writing_; });
  }

  uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }

 private:
  void Loop() {
    std::deque<std::string> batch;
    for (;;) {
      uint64_t lost = 0;
      {
        std::unique_lock<std::mutex> l(mu_);
        writing_ = false;
        idle_.notify_all();
        wake_.wait(l, [&] { return !lines_.empty(); });
        batch.swap(lines_);
        bytes_ = 0;
        writing_ = true;
        lost = unreported_;
        unreported_ = 0;
      }
      std::string text;
      for (std::string& line : batch) text += line;
      batch.clear();
      WriteAll(text);
      if (lost > 0) {
        // The sink took lines again: say what it lost, in the stream it lost them from.
        WriteAll(Format("warn", "log lines dropped",
                        {{"dropped", lost},
                         {"dropped_total", dropped()},
                         {"why", "stderr was not read fast enough (a full pipe)"}}));
      }
    }
  }

  static void WriteAll(const std::string& text) {
    size_t done = 0;
    while (done < text.size()) {
      const ssize_t n = ::write(2, text.data() + done, text.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;  // stderr closed or broken: nothing to be done
      done += static_cast<size_t>(n);
    }
  }

  std::mutex mu_;
  std::condition_variable wake_, idle_;
  std::deque<std::string> lines_;
  size_t bytes_ = 0;
  uint64_t unreported_ = 0;
  bool writer_started_ = false, writing_ = false;
  std::atomic<uint64_t> dropped_{0};
};

std::string Format(const char* level, const std::string& msg, nlohmann::json fields) {
  using namespace std::chrono;
  const auto now = system_clock::now();
  const std::time_t t = system_clock::to_time_t(now);
  const auto ms = duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm;
  gmtime_r(&t, &tm);
  char ts[96];
  std::snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
  nlohmann::json line = {{"time", ts}, {"level", level}, {"msg", msg}};
  line.update(fields);
  std::string text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  text += '\n';
  return text;
}

}  // namespace

void LogJson(const char* level, const std::string& msg, nlohmann::json fields) {
  Sink::Get().Push(Format(level, msg, std::move(fields)));
}

void FlushLogs() { Sink::Get().Drain(std::chrono::seconds(2)); }

uint64_t LogLinesDropped() { return Sink::Get().dropped(); }

namespace {

void ProtobufLog(google::protobuf::LogLevel level, const char* file, int line,
                 const std::string& message) {
  const char* lvl = level >= google::protobuf::LOGLEVEL_ERROR     ? "error"
                    : level == google::protobuf::LOGLEVEL_WARNING ? "warn"
                                                                  : "info";
  LogJson(lvl, "protobuf", {{"file", file ? file : ""}, {"line", line}, {"message", message}});
}

void GrpcLog(gpr_log_func_args* args) {
  const char* lvl = args->severity == GPR_LOG_SEVERITY_ERROR  ? "error"
                    : args->severity == GPR_LOG_SEVERITY_INFO ? "info"
                                                              : "debug";
  LogJson(lvl, "grpc",
          {{"file", args->file ? args->file : ""},
           {"line", args->line},
           {"message", args->message ? args->message : ""}});
}

// ---- Crash lines: only async-signal-safe calls (clock_gettime, write) and a static buffer.

char g_crash_line[8192];

size_t AppendRaw(size_t pos, const char* text) {
  while (*text != '\0' && pos < sizeof g_crash_line - 8) g_crash_line[pos++] = *text++;
  return pos;
}

size_t AppendUnsigned(size_t pos, unsigned long v, int width) {
  char digits[24];
  int n = 0;
  do {
    digits[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v > 0 || n < width);
  while (n > 0 && pos < sizeof g_crash_line - 8) g_crash_line[pos++] = digits[--n];
  return pos;
}

// UTC date from days since 1970-01-01 (Howard Hinnant's civil_from_days).
void CivilFromDays(long z, long* y, unsigned* m, unsigned* d) {
  z += 719468;
  const long era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = static_cast<long>(yoe) + era * 400 + (*m <= 2);
}

void CrashWriter(const char* text) {
  if (text == nullptr) return;  // "flush": every line is written whole already
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  long y;
  unsigned mo, d;
  CivilFromDays(ts.tv_sec / 86400, &y, &mo, &d);
  const long secs = ts.tv_sec % 86400;
  size_t pos = AppendRaw(0, "{\"time\":\"");
  pos = AppendUnsigned(pos, static_cast<unsigned long>(y), 4);
  pos = AppendRaw(pos, "-");
  pos = AppendUnsigned(pos, mo, 2);
  pos = AppendRaw(pos, "-");
  pos = AppendUnsigned(pos, d, 2);
  pos = AppendRaw(pos, "T");
  pos = AppendUnsigned(pos, static_cast<unsigned long>(secs / 3600), 2);
  pos = AppendRaw(pos, ":");
  pos = AppendUnsigned(pos, static_cast<unsigned long>(secs / 60 % 60), 2);
  pos = AppendRaw(pos, ":");
  pos = AppendUnsigned(pos, static_cast<unsigned long>(secs % 60), 2);
  pos = AppendRaw(pos, ".");
  pos = AppendUnsigned(pos, static_cast<unsigned long>(ts.tv_nsec / 1000000), 3);
  pos = AppendRaw(pos, "Z\",\"level\":\"fatal\",\"msg\":\"crash\",\"text\":\"");
  // The text, JSON-escaped, without its trailing newline.
  size_t len = std::strlen(text);
  while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r')) --len;
  static const char kHex[] = "0123456789abcdef";
  for (size_t i = 0; i < len && pos < sizeof g_crash_line - 16; ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c == '"' || c == '\\') {
      g_crash_line[pos++] = '\\';
      g_crash_line[pos++] = static_cast<char>(c);
    } else if (c < 0x20) {
      g_crash_line[pos++] = '\\';
      g_crash_line[pos++] = 'u';
      g_crash_line[pos++] = '0';
      g_crash_line[pos++] = '0';
      g_crash_line[pos++] = kHex[c >> 4];
      g_crash_line[pos++] = kHex[c & 15];
    } else {
      g_crash_line[pos++] = static_cast<char>(c);
    }
  }
  pos = AppendRaw(pos, "\"}\n");
  ssize_t unused = ::write(2, g_crash_line, pos);
  (void)unused;
}

}  // namespace

void RouteLibraryLogs() {
  google::protobuf::SetLogHandler(&ProtobufLog);
  gpr_set_log_function(&GrpcLog);
}

void InstallCrashHandler(const char* argv0) {
  absl::InitializeSymbolizer(argv0);
  absl::FailureSignalHandlerOptions options;
  options.writerfn = &CrashWriter;
  absl::InstallFailureSignalHandler(options);
}

}  // namespace alignd::server
