// File: client/datasets_cmd.cc
// alignctl datasets list | get | delete | generate | upload (and the `upload` shortcut).
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "alignd/health/v1/health.grpc.pb.h"
#include "alignd/v1/datasets.grpc.pb.h"
#include "client/cli.h"
#include "client/commands.h"
#include "client/data_files.h"
#include "client/table.h"
#include "formats/formats.h"

namespace alignd::client {
namespace {

std::unique_ptr<v1::DatasetService::Stub> Stub() {
  return v1::DatasetService::NewStub(G().Channel());
}

void PrintDatasets(const std::vector<v1::Dataset>& ds) {
  const Output o = G().format();
  if (o == Output::kJson) {
    v1::ListDatasetsResponse out;
    for (const auto& d : ds) *out.add_datasets() = d;
    std::cout << Json(out) << "\n";
    return;
  }
  if (o == Output::kJsonl || o == Output::kName) {
    for (const auto& d : ds) std::cout << (o == Output::kName ? d.name() : Json(d, false)) << "\n";
    return;
  }
  const bool wide = o == Output::kWide;
  std::vector<std::string> headers = {"NAME", "DISPLAY NAME", ">EXAMPLES", "FEATURES", "TARGETS"};
  if (wide) headers.insert(headers.end(), {">BYTES", "SHA256", "GENERATOR"});
  Table t(headers);
  for (const auto& d : ds) {
    const std::string targets = d.target_kind() == v1::TARGET_KIND_CLASS_LABELS
                                    ? absl::StrCat(d.num_classes(), " classes")
                                    : absl::StrCat(d.target_dim(), " values");
    std::vector<std::string> row = {d.name(), d.display_name(), absl::StrCat(d.num_examples()),
                                    absl::StrJoin(d.feature_shape(), "x"), targets};
    if (wide)
      row.insert(row.end(),
                 {absl::StrCat(d.size_bytes()), d.sha256().substr(0, 16),
                  d.has_generator() ? v1::GeneratorSpec::Kind_Name(d.generator().kind()) : "-"});
    t.AddRow(row);
  }
  std::cout << t.Render();
}

void AddUpload(CLI::App* up) {
  struct Flags {
    std::vector<std::string> idx, npy;
    std::string csv, name, feature_shape;
    bool regression = false, header = false;
    int target_dim = 1;
  };
  auto f = std::make_shared<Flags>();
  up->add_option("--idx", f->idx, "IMAGES LABELS: an IDX pair, e.g. MNIST's (.gz too)")
      ->expected(2);
  up->add_option("--csv", f->csv,
                 "CSV file; label (or --target-dim targets) in the last column(s)");
  up->add_option("--npy", f->npy, "FEATURES TARGETS: two .npy files")->expected(2);
  up->add_flag("--regression", f->regression, "float targets instead of class labels");
  up->add_option("--target-dim", f->target_dim, "CSV regression: number of target columns")
      ->capture_default_str();
  up->add_flag("--header", f->header, "CSV: skip the first line");
  up->add_option("--feature-shape", f->feature_shape,
                 "CSV: the examples' image shape, CxHxW or HxW (e.g. 1x28x28), for conv nets");
  up->add_option("--name", f->name, "display name");
  up->callback([f] {
    absl::StatusOr<Payload> p = absl::InvalidArgumentError("give one of --idx, --csv, --npy");
    if (!f->idx.empty())
      p = ReadIdxPair(f->idx[0], f->idx[1]);
    else if (!f->csv.empty())
      p = ReadCsv(f->csv, !f->regression, f->target_dim, f->header);
    else if (!f->npy.empty())
      p = ReadNpyPair(f->npy[0], f->npy[1], !f->regression);
    if (p.ok() && !f->feature_shape.empty()) {
      if (f->csv.empty())
        p = absl::InvalidArgumentError(
            "--feature-shape is for --csv: IDX and .npy files carry their shape");
      else if (absl::Status st = SetFeatureShape(f->feature_shape, &*p); !st.ok())
        p = st;
    }
    if (!p.ok()) Fail(p.status());
    p->header.set_display_name(f->name);
    auto stub = Stub();
    grpc::ClientContext ctx;
    v1::Dataset d;
    auto writer = stub->UploadDataset(&ctx, &d);
    v1::UploadDatasetRequest req;
    *req.mutable_header() = p->header;
    bool ok = writer->Write(req);
    constexpr size_t kChunk = 1 << 20;
    const bool tty = isatty(2);
    for (size_t off = 0; ok && off < p->bytes.size(); off += kChunk) {
      req.Clear();
      req.set_chunk(p->bytes.substr(off, kChunk));
      ok = writer->Write(req);
      if (tty)
        std::fprintf(stderr, "\ruploading %zu / %zu MiB",
                     std::min(off + kChunk, p->bytes.size()) >> 20, p->bytes.size() >> 20);
    }
    if (tty) std::fprintf(stderr, "\n");
    writer->WritesDone();
    if (auto st = writer->Finish(); !st.ok()) Fail(st, "datasets upload");
    PrintOne(d, d.name(), [&] { std::cout << d.name() << "\n"; });
  });
}

}  // namespace

void AddDatasetCommands(CLI::App& app, CLI::App& shortcuts) {
  auto* ds = app.add_subcommand("datasets", "list, get, delete, generate or upload data sets");
  ds->require_subcommand(1);

  ds->add_subcommand("list", "list data sets")->callback([] {
    auto stub = Stub();
    std::vector<v1::Dataset> all;
    std::string token;
    do {
      grpc::ClientContext ctx;
      G().SetDeadline(ctx);
      v1::ListDatasetsRequest req;
      req.set_page_token(token);
      v1::ListDatasetsResponse resp;
      if (auto st = stub->ListDatasets(&ctx, req, &resp); !st.ok()) Fail(st, "datasets list");
      all.insert(all.end(), resp.datasets().begin(), resp.datasets().end());
      token = resp.next_page_token();
    } while (!token.empty());
    PrintDatasets(all);
  });

  auto name = std::make_shared<std::string>();
  auto* get = ds->add_subcommand("get", "show one data set");
  get->add_option("name", *name, "datasets/{id} or the id")->required();
  get->callback([name] {
    grpc::ClientContext ctx;
    G().SetDeadline(ctx);
    v1::GetDatasetRequest req;
    req.set_name(DatasetName(*name));
    v1::Dataset d;
    if (auto st = Stub()->GetDataset(&ctx, req, &d); !st.ok()) Fail(st, "datasets get");
    PrintOne(d, d.name(), [&] { PrintDatasets({d}); });
  });

  auto* del = ds->add_subcommand("delete", "delete a data set that no unfinished session uses");
  del->add_option("name", *name, "datasets/{id} or the id")->required();
  del->callback([name] {
    grpc::ClientContext ctx;
    G().SetDeadline(ctx);
    v1::DeleteDatasetRequest req;
    req.set_name(DatasetName(*name));
    google::protobuf::Empty e;
    if (auto st = Stub()->DeleteDataset(&ctx, req, &e); !st.ok()) Fail(st, "datasets delete");
    if (G().format() == Output::kName)
      std::cout << req.name() << "\n";
    else
      std::cout << "deleted " << req.name() << "\n";
  });

  struct Gen {
    std::string kind = "linear", split = "train", name;
    int64_t examples = 1000;
    int input_dim = 0, output_dim = 0;
    float noise = 0;
    uint64_t seed = 1;
  };
  auto g = std::make_shared<Gen>();
  auto* gen = ds->add_subcommand("generate", "make a built-in task's data set (no upload)");
  gen->add_option("--kind", g->kind, "linear | nonlinear | toy")->capture_default_str();
  gen->add_option("--split", g->split, "train | test (same teacher, other inputs)")
      ->capture_default_str();
  gen->add_option("--examples", g->examples, "number of examples")->capture_default_str();
  auto* in = gen->add_option("--input-dim", g->input_dim, "linear: input width (default 30)");
  auto* out = gen->add_option("--output-dim", g->output_dim, "linear: output width (default 10)");
  gen->add_option("--noise", g->noise, "linear: target noise SD")->capture_default_str();
  gen->add_option("--seed", g->seed, "teacher and input seed")->capture_default_str();
  gen->add_option("--name", g->name, "display name");
  gen->callback([g, in, out] {
    v1::CreateGeneratedDatasetRequest req;
    auto* s = req.mutable_spec();
    auto kind = ParseEnumValue(v1::GeneratorSpec::Kind_descriptor(), "KIND_", g->kind, "--kind");
    auto split =
        ParseEnumValue(v1::GeneratorSpec::Split_descriptor(), "SPLIT_", g->split, "--split");
    if (!kind.ok()) Fail(kind.status());
    if (!split.ok()) Fail(split.status());
    s->set_kind(static_cast<v1::GeneratorSpec::Kind>(*kind));
    s->set_split(static_cast<v1::GeneratorSpec::Split>(*split));
    s->set_num_examples(g->examples);
    if (in->count()) s->set_input_dim(g->input_dim);
    if (out->count()) s->set_output_dim(g->output_dim);
    s->set_noise(g->noise);
    s->set_seed(g->seed);
    req.set_display_name(g->name);
    grpc::ClientContext ctx;
    G().SetDeadline(ctx);
    v1::Dataset d;
    if (auto st = Stub()->CreateGeneratedDataset(&ctx, req, &d); !st.ok())
      Fail(st, "datasets generate");
    PrintOne(d, d.name(), [&] { std::cout << d.name() << "\n"; });
  });

  AddUpload(ds->add_subcommand("upload", "upload a data set from IDX, CSV or .npy files"));
  AddUpload(shortcuts.add_subcommand("upload", "= datasets upload")->group("Shortcuts"));
}

void AddHealthCommand(CLI::App& app) {
  app.add_subcommand("health", "is the server up and serving?")->callback([] {
    auto stub = grpc::health::v1::Health::NewStub(G().Channel());
    grpc::ClientContext ctx;
    G().SetDeadline(ctx);
    grpc::health::v1::HealthCheckRequest req;
    grpc::health::v1::HealthCheckResponse resp;
    if (auto st = stub->Check(&ctx, req, &resp); !st.ok()) Fail(st, "health");
    const std::string status =
        grpc::health::v1::HealthCheckResponse::ServingStatus_Name(resp.status());
    const Output o = G().format();
    if (o == Output::kJson || o == Output::kJsonl)
      std::printf("{\"server\": \"%s\", \"status\": \"%s\"}\n", G().server.c_str(), status.c_str());
    else
      std::printf("%s: %s\n", G().server.c_str(), status.c_str());
    std::exit(resp.status() == grpc::health::v1::HealthCheckResponse::SERVING ? 0 : 1);
  });
}

void AddTokenCommands(CLI::App& app) {
  CLI::App* token = app.add_subcommand(
      "token", "bearer tokens for alignd's --token_file (made here; the server is not called)");
  token->require_subcommand(1);
  auto principal = std::make_shared<std::string>();
  auto role = std::make_shared<std::string>("user");
  CLI::App* make = token->add_subcommand(
      "new",
      "a new random token for PRINCIPAL, and the line to append to alignd's --token_file (which "
      "holds only the token's SHA-256); then send alignd SIGHUP");
  make->add_option("principal", *principal, "who the token is for ([A-Za-z0-9._@-], 1-64)")
      ->required();
  make->add_option("role", *role,
                   "admin (everything), user (its own sessions and data sets) or viewer "
                   "(sees everything, changes nothing)")
      ->check(CLI::IsMember({"admin", "user", "viewer"}))
      ->capture_default_str();
  make->callback([principal, role] {
    for (char c : *principal)
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '@' &&
          c != '-')
        Fail(absl::InvalidArgumentError("a principal is 1-64 of [A-Za-z0-9._@-]"));
    if (principal->empty() || principal->size() > 64)
      Fail(absl::InvalidArgumentError("a principal is 1-64 of [A-Za-z0-9._@-]"));
    const std::string t = NewToken();
    formats::Sha256 h;
    h.Update(t);
    const std::string line = absl::StrCat(h.HexDigest(), " ", *principal, " ", *role);
    const Output o = G().format();
    if (o == Output::kJson || o == Output::kJsonl) {
      std::printf("{\"token\": \"%s\", \"token_file_line\": \"%s\"}\n", t.c_str(), line.c_str());
    } else {
      std::printf("token for %s (shown once; give it to them, e.g. as ALIGND_TOKEN):\n  %s\n",
                  principal->c_str(), t.c_str());
      std::printf("append to alignd's --token_file, then send alignd SIGHUP:\n  %s\n",
                  line.c_str());
    }
  });
}

}  // namespace alignd::client
