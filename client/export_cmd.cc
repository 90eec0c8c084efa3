// File: client/export_cmd.cc
// alignctl sessions export: a session's metric log, the session itself or a snapshot's
// weights as the file other tools read (ExportSession; the formats are documented on
// proto/alignd/v1/sessions.proto's ExportFormat).
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "alignd/v1/sessions.grpc.pb.h"
#include "client/cli.h"
#include "client/commands.h"
#include "nlohmann/json.hpp"

namespace alignd::client {
namespace {

const std::map<std::string, v1::ExportFormat>& Formats() {
  static const auto* m = new std::map<std::string, v1::ExportFormat>{
      {"csv", v1::EXPORT_FORMAT_CSV},
      {"jsonl", v1::EXPORT_FORMAT_JSONL},
      {"tfevents", v1::EXPORT_FORMAT_TFEVENTS},
      {"json", v1::EXPORT_FORMAT_SESSION_JSON},
      {"safetensors", v1::EXPORT_FORMAT_SAFETENSORS},
      {"onnx", v1::EXPORT_FORMAT_ONNX},
  };
  return *m;
}

struct Exported {
  std::string filename;
  std::string data;
};

// The whole file, or exits with the call's status (nothing is written then).
Exported Fetch(const std::string& session, v1::ExportFormat format, const std::string& snapshot) {
  v1::ExportSessionRequest req;
  req.set_name(session);
  req.set_format(format);
  req.set_snapshot(snapshot);
  grpc::ClientContext ctx;  // a stream: no deadline (--timeout is per call)
  auto reader = v1::TrainingService::NewStub(G().Channel())->ExportSession(&ctx, req);
  Exported out;
  v1::ExportChunk chunk;
  bool first = true;
  while (reader->Read(&chunk)) {
    if (first) out.filename = chunk.filename();
    first = false;
    out.data += chunk.data();
  }
  if (auto st = reader->Finish(); !st.ok()) Fail(st, "sessions export " + session);
  if (first || out.filename.empty() || out.filename.find('/') != std::string::npos ||
      out.filename == "." || out.filename == "..")
    Fail(absl::DataLossError("the export arrived without a usable file name"));
  return out;
}

// Writes `data` to `path` whole or not at all: a temporary file beside it, then a rename
// (removed again if anything fails).
void WriteFile(const std::filesystem::path& path, const std::string& data) {
  std::error_code ec;
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path(), ec);
  if (ec)
    Fail(absl::UnavailableError(
        absl::StrCat("cannot make the folder ", path.parent_path().string(), ": ", ec.message())));
  const std::filesystem::path tmp = path.string() + ".part";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f.write(data.data(), static_cast<std::streamsize>(data.size()));
    f.close();
    if (!f) {
      std::filesystem::remove(tmp, ec);
      Fail(absl::UnavailableError(absl::StrCat("cannot write ", tmp.string())));
    }
  }
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    const std::string why = ec.message();
    std::filesystem::remove(tmp, ec);
    Fail(absl::UnavailableError(absl::StrCat("cannot write ", path.string(), ": ", why)));
  }
}

struct Options {
  std::vector<std::string> names;
  std::string filter;
  std::string format;
  std::string output;
  std::string dir = ".";
  std::string snapshot;
  bool side_file = true;
};

// The sessions a --filter matches (ListSessions, every page), by name.
std::vector<std::string> Matching(const std::string& filter) {
  v1::ListSessionsRequest req;
  req.set_filter(filter);
  std::vector<std::string> out;
  for (const v1::Session& s : ListAllSessions(req, "sessions export --filter"))
    out.push_back(s.name());
  if (out.empty())
    Fail(absl::NotFoundError(absl::StrCat("no session matches --filter '", filter, "'")));
  return out;
}

void Run(Options o) {
  const v1::ExportFormat format = Formats().at(o.format);
  if (!o.filter.empty()) {
    if (!o.names.empty())
      Fail(absl::InvalidArgumentError("give sessions by name or by --filter, not both"));
    o.names = Matching(o.filter);
  } else if (o.names.empty()) {
    Fail(absl::InvalidArgumentError("name the sessions to export, or give --filter"));
  }
  if (!o.output.empty() && o.names.size() > 1)
    Fail(
        absl::InvalidArgumentError("--file names one file: export one session with it, "
                                   "or several into --dir"));
  std::string snapshot;
  if (!o.snapshot.empty()) {
    if (o.names.size() > 1)
      Fail(absl::InvalidArgumentError("--snapshot names one session's step: export one session"));
    if (format != v1::EXPORT_FORMAT_SAFETENSORS && format != v1::EXPORT_FORMAT_ONNX)
      Fail(absl::InvalidArgumentError(
          "--snapshot is for safetensors and onnx; the other formats export the metric log"));
    int64_t step = 0;
    if (o.snapshot == "latest")
      snapshot = absl::StrCat(SessionName(o.names[0]), "/snapshots/latest");
    else if (absl::SimpleAtoi(o.snapshot, &step))
      snapshot = absl::StrCat(SessionName(o.names[0]), "/snapshots/", step);
    else
      snapshot = SnapshotName(o.snapshot);
  }
  const Output out = G().format();
  for (const auto& n : o.names) {
    const std::string session = SessionName(n);
    Exported e = Fetch(session, format, snapshot);
    if (o.output == "-") {
      std::fwrite(e.data.data(), 1, e.data.size(), stdout);
      continue;
    }
    // tfevents: a folder per session, so that `tensorboard --logdir DIR` shows each as a run.
    std::filesystem::path path;
    if (!o.output.empty())
      path = o.output;
    else if (format == v1::EXPORT_FORMAT_TFEVENTS)
      path = std::filesystem::path(o.dir) / session.substr(session.rfind('/') + 1) / e.filename;
    else
      path = std::filesystem::path(o.dir) / e.filename;
    WriteFile(path, e.data);
    std::vector<std::filesystem::path> written = {path};
    // CSV has no room for the config: the session's JSON goes beside it.
    if (format == v1::EXPORT_FORMAT_CSV && o.side_file) {
      std::filesystem::path side = path;
      side.replace_extension(".json");
      if (side == path) side += ".json";
      WriteFile(side, Fetch(session, v1::EXPORT_FORMAT_SESSION_JSON, "").data);
      written.push_back(side);
    }
    for (const auto& p : written) {
      std::error_code ec;
      const auto bytes = std::filesystem::file_size(p, ec);
      if (out == Output::kName)
        std::cout << p.string() << "\n";
      else if (out == Output::kJson || out == Output::kJsonl)
        std::cout
            << nlohmann::json{{"session", session}, {"path", p.string()}, {"bytes", bytes}}.dump()
            << "\n";
      else
        std::cout << p.string() << "  " << bytes << " bytes\n";
    }
  }
}

}  // namespace

void AddExportCommand(CLI::App* sessions) {
  auto o = std::make_shared<Options>();
  auto* c = sessions->add_subcommand(
      "export",
      "a session's metric log, config or weights as CSV, JSON lines, TensorBoard "
      "events, safetensors or ONNX");
  c->add_option("names", o->names, "sessions/{id} or ids");
  c->add_option("--filter", o->filter,
                "every session this ListSessions filter matches (sessions list --help), e.g. "
                "'labels.study = depth'");
  std::vector<std::string> names;
  for (const auto& [k, v] : Formats()) names.push_back(k);
  c->add_option("-f,--format", o->format, "what to write")->required()->check(CLI::IsMember(names));
  c->add_option("--file", o->output,
                "the file to write ('-': standard output); default: "
                "the server's file name in --dir");
  c->add_option("--dir", o->dir, "folder for the files (tfevents: DIR/{id}/events.out.tfevents.*)")
      ->capture_default_str();
  c->add_option("--snapshot", o->snapshot,
                "safetensors, onnx: the weights, a step or sessions/{id}/snapshots/{step}; "
                "default: the latest stored");
  c->add_flag("!--no-side-file", o->side_file, "csv: do not write the session's JSON beside it");
  c->footer(R"(Formats:
  csv          the metric log, a row per event (train, eval, validation), a column per figure
               and per hidden layer's alignment figure (h1.update_angle_mean, ...); the
               session's config and state go beside it as {id}.json
  jsonl        the metric log as JSON lines, the session first (NaN as null)
  tfevents     the metric log as a TensorBoard event file: tensorboard --logdir DIR
  json         the session: config, state, latest figures
  safetensors  a snapshot's W, b and B (C order, float32); the config in __metadata__
  onnx         the network with a snapshot's weights; outputs equal alignd's Predict
Files are written whole or not at all.

Examples:
  alignctl sessions export abc -f csv
  alignctl sessions export fa-1 fa-2 bp-1 -f tfevents --dir runs && tensorboard --logdir runs
  alignctl sessions export --filter 'labels.study = depth' -f tfevents --dir runs
  alignctl sessions export --filter 'labels.study = depth' -f csv --dir csv
  alignctl sessions export --filter 'experiment = "experiments/ID"' -f csv --dir csv
  alignctl sessions export abc -f onnx --snapshot 5000 --file abc.onnx)");
  c->callback([o] { Run(*o); });
}

}  // namespace alignd::client
