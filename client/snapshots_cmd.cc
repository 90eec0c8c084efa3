// File: client/snapshots_cmd.cc
// alignctl snapshots list | get | download.
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "alignd/v1/sessions.grpc.pb.h"
#include "client/cli.h"
#include "client/commands.h"
#include "client/data_files.h"
#include "client/table.h"
#include "formats/formats.h"
#include "google/protobuf/util/time_util.h"

namespace alignd::client {
namespace {

std::unique_ptr<v1::TrainingService::Stub> Stub() {
  return v1::TrainingService::NewStub(G().Channel());
}

// Stores a column-major rows x cols matrix as a C-order .npy array.
absl::Status WriteMatrixNpy(const std::string& path, int64_t rows, int64_t cols,
                            const float* col_major) {
  std::vector<float> row_major(static_cast<size_t>(rows * cols));
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) row_major[i * cols + j] = col_major[j * rows + i];
  return WriteNpy(path, rows, cols, row_major.data());
}

}  // namespace

void AddSnapshotCommands(CLI::App& app) {
  auto* sn = app.add_subcommand("snapshots", "list, describe and download weight snapshots");
  sn->require_subcommand(1);

  auto session = std::make_shared<std::string>();
  auto* list = sn->add_subcommand("list", "a session's stored snapshots");
  list->add_option("session", *session, "sessions/{id} or the id")->required();
  list->callback([session] {
    auto stub = Stub();
    std::vector<v1::Snapshot> all;
    std::string token;
    do {
      grpc::ClientContext ctx;
      G().SetDeadline(ctx);
      v1::ListSnapshotsRequest req;
      req.set_parent(SessionName(*session));
      req.set_page_token(token);
      v1::ListSnapshotsResponse resp;
      if (auto st = stub->ListSnapshots(&ctx, req, &resp); !st.ok()) Fail(st, "snapshots list");
      all.insert(all.end(), resp.snapshots().begin(), resp.snapshots().end());
      token = resp.next_page_token();
    } while (!token.empty());
    const Output o = G().format();
    if (o == Output::kJson) {
      v1::ListSnapshotsResponse out;
      for (const auto& s : all) *out.add_snapshots() = s;
      std::cout << Json(out) << "\n";
      return;
    }
    Table t({"NAME", ">STEP", "CREATED"});
    for (const auto& s : all) {
      if (o == Output::kJsonl || o == Output::kName) {
        std::cout << (o == Output::kName ? s.name() : Json(s, false)) << "\n";
        continue;
      }
      t.AddRow({s.name(), absl::StrCat(s.step()),
                s.has_create_time() ? google::protobuf::util::TimeUtil::ToString(s.create_time())
                                    : "-"});
    }
    if (o == Output::kTable || o == Output::kWide) std::cout << t.Render();
  });

  auto name = std::make_shared<std::string>();
  auto* get = sn->add_subcommand("get", "a snapshot's step, epoch and tensor shapes");
  get->add_option("name", *name, "sessions/{id}/snapshots/{step}; a session alone: its latest")
      ->required();
  get->callback([name] {
    v1::GetSnapshotRequest req;
    req.set_name(SnapshotName(*name));
    grpc::ClientContext ctx;
    G().SetDeadline(ctx);
    v1::Snapshot s;
    if (auto st = Stub()->GetSnapshot(&ctx, req, &s); !st.ok()) Fail(st, "snapshots get");
    PrintOne(s, s.name(), [&] {
      std::cout << s.name() << "  step " << s.step() << ", epoch " << s.epoch() << ", "
                << s.total_values() << " values\n";
      Table t({"TENSOR", "LAYER", ">ROWS", ">COLS", "SHAPE"});
      for (const auto& shape : s.shapes()) {
        // The layer's kind from the label's number ("W3": layer 3).
        std::string kind = "-";
        int layer = -1;
        if (shape.label().size() > 1 && absl::SimpleAtoi(shape.label().substr(1), &layer) &&
            layer >= 0 && layer < s.layer_kinds_size()) {
          kind = v1::LayerKind_Name(s.layer_kinds(layer));
          if (absl::StartsWith(kind, "LAYER_KIND_")) kind = absl::AsciiStrToLower(kind.substr(11));
        }
        t.AddRow({shape.label(), kind, absl::StrCat(shape.rows()), absl::StrCat(shape.cols()),
                  absl::StrJoin(shape.dims(), "x")});
      }
      std::cout << t.Render();
    });
  });

  auto out = std::make_shared<std::string>(".");
  auto* dl = sn->add_subcommand("download", "write a snapshot's matrices as .npy files");
  dl->add_option("name", *name, "sessions/{id}/snapshots/{step}; a session alone: its latest")
      ->required();
  dl->add_option("--out", *out, "folder for W0.npy, b0.npy, B1.npy, ...")->capture_default_str();
  dl->callback([name, out] {
    v1::ReadSnapshotRequest req;
    req.set_name(SnapshotName(*name));
    grpc::ClientContext ctx;
    auto reader = Stub()->ReadSnapshot(&ctx, req);
    v1::SnapshotChunk chunk;
    v1::Snapshot header;
    std::vector<float> values;
    while (reader->Read(&chunk)) {
      if (chunk.has_header()) {
        header = chunk.header();
        values.reserve(static_cast<size_t>(header.total_values()));
      } else {
        values.insert(values.end(), chunk.values().data().begin(), chunk.values().data().end());
      }
    }
    if (auto st = reader->Finish(); !st.ok()) Fail(st, "snapshots download");
    if (static_cast<int64_t>(values.size()) != header.total_values())
      Fail(absl::DataLossError("the snapshot arrived incomplete"));
    std::filesystem::create_directories(*out);
    int64_t off = 0;
    const Output o = G().format();
    for (const auto& shape : header.shapes()) {
      if (shape.rows() * shape.cols() > 0) {
        const std::string path = *out + "/" + shape.label() + ".npy";
        // A conv kernel is in C order of its 4 dims on the wire, as the file wants it.
        const bool kernel = shape.dims_size() == 4;
        const std::vector<int64_t> dims(shape.dims().begin(), shape.dims().end());
        if (auto st = kernel
                          ? formats::WriteNpy(path, dims, values.data() + off)
                          : WriteMatrixNpy(path, shape.rows(), shape.cols(), values.data() + off);
            !st.ok())
          Fail(st);
        if (o == Output::kTable || o == Output::kWide)
          std::printf("%s  %s\n", path.c_str(),
                      kernel ? absl::StrJoin(dims, " x ").c_str()
                             : absl::StrCat(shape.rows(), " x ", shape.cols()).c_str());
        if (o == Output::kName) std::printf("%s\n", path.c_str());
      }
      off += shape.rows() * shape.cols();
    }
    if (o == Output::kJson || o == Output::kJsonl)
      std::cout << Json(header, o == Output::kJson) << "\n";
  });
}

}  // namespace alignd::client
