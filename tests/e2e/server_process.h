// File: tests/e2e/server_process.h
// -----------------------------------------------------------------------------
// A real alignd process for end-to-end tests: started with posix_spawn (no fork in
// a process with gRPC threads) on 127.0.0.1 and an ephemeral port, with its own
// data directory; stopped with SIGTERM or killed with SIGKILL.
#ifndef ALIGND_TESTS_E2E_SERVER_PROCESS_H_
#define ALIGND_TESTS_E2E_SERVER_PROCESS_H_

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

extern char** environ;

namespace alignd::testing {

class ServerProcess {
 public:
  ServerProcess(const std::string& binary, const std::string& data_dir,
                std::vector<std::string> extra = {}) {
    int out[2];
    if (pipe(out) != 0) throw std::runtime_error("pipe");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], 1);
    posix_spawn_file_actions_addclose(&actions, out[0]);
    std::vector<std::string> args = {binary,        "--listen",   "127.0.0.1:0", "--metrics_listen",
                                     "127.0.0.1:0", "--data_dir", data_dir};
    args.insert(args.end(), extra.begin(), extra.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    if (posix_spawn(&pid_, binary.c_str(), &actions, nullptr, argv.data(), environ) != 0)
      throw std::runtime_error("cannot start " + binary);
    posix_spawn_file_actions_destroy(&actions);
    close(out[1]);
    // "alignd listening on 127.0.0.1:PORT"
    FILE* f = fdopen(out[0], "r");
    char line[256] = {0};
    if (fgets(line, sizeof line, f) == nullptr) throw std::runtime_error("alignd printed nothing");
    std::string s(line);
    const size_t colon = s.rfind(':');
    port_ = std::stoi(s.substr(colon + 1));
    stdout_ = f;
  }
  ~ServerProcess() {
    if (pid_ > 0) Kill();
    if (stdout_) fclose(stdout_);
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  // SIGKILL: nothing is flushed or checkpointed.
  void Kill() { Signal(SIGKILL); }
  // SIGTERM: graceful; returns the exit status.
  int Stop() { return Signal(SIGTERM); }

 private:
  int Signal(int sig) {
    if (pid_ <= 0) return -1;
    kill(pid_, sig);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return status;
  }
  pid_t pid_ = -1;
  int port_ = 0;
  FILE* stdout_ = nullptr;
};

}  // namespace alignd::testing

#endif  // ALIGND_TESTS_E2E_SERVER_PROCESS_H_
