// File: tests/temp_postgres.h
// -----------------------------------------------------------------------------
// A real PostgreSQL server for a test binary: initdb in a temporary directory, pg_ctl start
// on a unix socket there (no TCP port), one database per test (Database), stopped and
// removed when the binary exits. PostgreSQL refuses to run as root: as root, initdb and
// postgres run as the `postgres` user that Debian's package creates.
// Needs Debian's postgresql package (deploy/install-deps.sh installs it for make test);
// without it the tests that use it fail, saying so.
#ifndef ALIGND_TESTS_TEMP_POSTGRES_H_
#define ALIGND_TESTS_TEMP_POSTGRES_H_

#include <pwd.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace alignd::testing {

class TempPostgres {
 public:
  // The binary's server, started on first use. nullptr (with `error()` saying why) if it
  // could not be started.
  static TempPostgres* Get() {
    static TempPostgres* pg = [] {
      auto* p = new TempPostgres;
      p->Start();
      return p;
    }();
    return pg->ok_ ? pg : nullptr;
  }
  static std::string error() { return Get() ? "" : last_error(); }

  // A libpq connection string for a new, empty database `name` (dropped first if present).
  std::string Database(const std::string& name) {
    Psql(absl::StrCat("DROP DATABASE IF EXISTS \"", name, "\" WITH (FORCE)"));
    Psql(absl::StrCat("CREATE DATABASE \"", name, "\""));
    return Conninfo(name);
  }
  std::string Conninfo(const std::string& db) const {
    return absl::StrCat("host=", dir_, " port=", kPort, " user=alignd dbname=", db);
  }
  const std::string& dir() const { return dir_; }
  // pg_ctl stop / start: PostgreSQL going away and coming back (the data kept).
  bool Stop() { return Run(absl::StrCat(PgCtl(), " stop -m fast -w")); }
  bool Restart() { return Run(StartCommand()); }

 private:
  static constexpr int kPort = 5432;  // on the socket in dir_, not TCP: no clash
  static std::string& last_error() {
    static std::string e;
    return e;
  }

  ~TempPostgres() = default;  // never: the server is stopped by the atexit hook

  static std::string Output(const std::string& cmd) {
    std::string out;
    if (FILE* f = ::popen(cmd.c_str(), "r")) {
      char buf[512];
      while (size_t n = ::fread(buf, 1, sizeof buf, f)) out.append(buf, n);
      ::pclose(f);
    }
    return std::string(absl::StripAsciiWhitespace(out));
  }
  // As the postgres user when we are root.
  std::string As(const std::string& cmd) const {
    return ::geteuid() == 0 ? absl::StrCat("runuser -u postgres -- ", cmd) : cmd;
  }
  bool Run(const std::string& cmd) const {
    return std::system(As(cmd + " >> " + dir_ + "/commands.log 2>&1").c_str()) == 0;
  }
  // --no-sync and fsync=off: a test's database need not survive a power cut.
  std::string StartCommand() const {
    return absl::StrCat(PgCtl(), " start -w -l ", dir_, "/log -o \"-k ", dir_, " -p ", kPort,
                        " -c listen_addresses='' -c fsync=off -c synchronous_commit=off",
                        " -c full_page_writes=off -c max_connections=200\"");
  }
  std::string PgCtl() const { return absl::StrCat(bin_, "/pg_ctl -D ", dir_, "/data"); }
  void Psql(const std::string& sql) const {
    Run(absl::StrCat(bin_, "/psql -X -q -h ", dir_, " -p ", kPort, " -U alignd -d postgres -c '",
                     sql, "'"));
  }

  void Start() {
    bin_ = Output("pg_config --bindir 2>/dev/null");
    if (bin_.empty() || !std::filesystem::exists(bin_ + "/initdb")) {
      // pg_config (libpq-dev) names the client's version; the server's binaries are here.
      for (const char* v : {"15", "16", "17", "14"})
        if (std::filesystem::exists(absl::StrCat("/usr/lib/postgresql/", v, "/bin/initdb"))) {
          bin_ = absl::StrCat("/usr/lib/postgresql/", v, "/bin");
          break;
        }
    }
    if (!std::filesystem::exists(bin_ + "/initdb")) {
      last_error() = "PostgreSQL's server is not installed (apt install postgresql)";
      return;
    }
    char tmpl[] = "/tmp/alignd_pg_XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) {
      last_error() = "mkdtemp failed";
      return;
    }
    dir_ = tmpl;
    if (::geteuid() == 0) {
      if (passwd* pw = ::getpwnam("postgres")) {
        if (::chown(dir_.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
          last_error() = "chown " + dir_ + " failed";
          return;
        }
      } else {
        last_error() = "running as root and there is no postgres user to run PostgreSQL as";
        return;
      }
    }
    ::chmod(dir_.c_str(), 0755);
    if (!Run(absl::StrCat(bin_, "/initdb -D ", dir_, "/data -U alignd -A trust --no-sync")) ||
        !Run(StartCommand())) {
      last_error() = absl::StrCat("initdb or pg_ctl start failed; see ", dir_, "/commands.log");
      return;
    }
    ok_ = true;
    static std::string stop, remove;
    stop = As(absl::StrCat(PgCtl(), " stop -m immediate -w >/dev/null 2>&1"));
    remove = As(absl::StrCat("rm -rf ", dir_));
    std::atexit([] {
      (void)!std::system(stop.c_str());
      if (std::getenv("ALIGND_KEEP_TEST_DIRS") == nullptr) (void)!std::system(remove.c_str());
    });
  }

  std::string bin_, dir_;
  bool ok_ = false;
};

}  // namespace alignd::testing

#endif  // ALIGND_TESTS_TEMP_POSTGRES_H_
