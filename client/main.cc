// File: client/main.cc
// alignctl: the command line of alignd. `alignctl --help`, `alignctl GROUP --help`,
// `alignctl GROUP VERB --help`. The groups are in commands.h; what they share in cli.h.
//
//   alignctl health
//   alignctl datasets generate --kind linear --examples 2000
//   alignctl datasets upload --idx train-images-idx3-ubyte train-labels-idx1-ubyte --name mnist
//   alignctl sessions create --dataset 1f3a... --sizes 30,20,10 --rule fa --watch
//   alignctl sessions list -o wide
//   alignctl sessions watch abc def
//   alignctl snapshots download abc --out weights/
#include <grpc/support/log.h>

#include <cstdlib>

#include "base/version.h"
#include "client/cli.h"
#include "client/commands.h"

int main(int argc, char** argv) {
  using namespace alignd::client;
  // gRPC's own log lines (a failed handshake, say) would come before our message, which says
  // the same in words (client/tls.h); GRPC_VERBOSITY brings them back.
  if (std::getenv("GRPC_VERBOSITY") == nullptr) gpr_set_log_function([](gpr_log_func_args*) {});
  CLI::App app{"alignctl: drive alignd, the training service for backprop and feedback alignment"};
  app.require_subcommand(1);
  app.set_version_flag("--version",
                       std::string("alignctl ") + ALIGND_VERSION + " (" + ALIGND_REVISION + ")");
  Globals& g = G();
  g.server = std::getenv("ALIGND_SERVER") ? std::getenv("ALIGND_SERVER") : "localhost:50051";
  app.add_option("--server", g.server,
                 "alignd address (default $ALIGND_SERVER or localhost:50051)");
  app.add_option("-o,--output", g.output,
                 "table | wide | json | jsonl | name (json: one document; jsonl: a line per item "
                 "or event; name: resource names only)")
      ->check(CLI::IsMember({"table", "wide", "json", "jsonl", "name"}))
      ->capture_default_str();
  app.add_flag("--json", g.json, "= -o json");
  app.add_flag("--jsonl", g.jsonl, "= -o jsonl");
  app.add_option("--timeout", g.timeout_s, "seconds per call (not streams)")->capture_default_str();
  // Security (docs/DEPLOY.md). The environment gives the defaults; flags win.
  auto env = [](const char* name) {
    const char* v = std::getenv(name);
    return v ? std::string(v) : std::string();
  };
  Security& sec = g.security;
  sec.tls = !env("ALIGND_TLS").empty() && env("ALIGND_TLS") != "0";
  sec.ca = env("ALIGND_CA");
  sec.cert = env("ALIGND_CERT");
  sec.key = env("ALIGND_KEY");
  sec.token = env("ALIGND_TOKEN");
  sec.token_file = env("ALIGND_TOKEN_FILE");
  const char* group =
      "Security (env ALIGND_TLS, ALIGND_CA, ALIGND_CERT, ALIGND_KEY, "
      "ALIGND_TOKEN, ALIGND_TOKEN_FILE)";
  app.add_flag("--tls", sec.tls, "speak TLS (implied by --ca, --cert, --key)")->group(group);
  app.add_option("--ca", sec.ca,
                 "PEM CA bundle the server's certificate must chain to "
                 "(default: the system's)")
      ->group(group);
  app.add_option("--cert", sec.cert, "PEM client certificate, for servers that want one (mTLS)")
      ->group(group);
  app.add_option("--key", sec.key, "the private key of --cert")->group(group);
  app.add_option("--token", sec.token,
                 "bearer token (visible to other users in `ps`: prefer --token-file or "
                 "ALIGND_TOKEN)")
      ->group(group);
  app.add_option("--token-file", sec.token_file, "read the bearer token from this file")
      ->group(group);
  app.add_option("--tls-server-name", sec.server_name,
                 "the name the server's certificate must hold, when --server is an address it "
                 "does not")
      ->group(group);

  AddHealthCommand(app);
  AddTokenCommands(app);
  AddDatasetCommands(app, app);
  AddSessionCommands(app, app);
  AddSnapshotCommands(app);
  AddExperimentCommands(app);
  app.footer(
      "Names: a bare id stands for its resource (abc = sessions/abc in session commands).\n"
      "Exit codes: 0 ok; 2 bad request (command line, INVALID_ARGUMENT, FAILED_PRECONDITION,\n"
      "OUT_OF_RANGE); 3 not found; 4 server unreachable (UNAVAILABLE, DEADLINE_EXCEEDED);\n"
      "1 anything else.");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : 2;  // a bad command line is a bad request
  }
  return 0;
}
