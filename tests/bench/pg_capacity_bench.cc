// pg_capacity_bench: what one PostgreSQL accepts from replicas' trainers, through the same
// code a holder writes with (Cluster::Fenced: each metric batch a transaction that checks the
// epoch, stores the events and the record and NOTIFYs; each checkpoint a file on the blob
// folder and its index row under the epoch). N sessions are claimed by R "replicas" (storages
// with their own connection pools, as R alignd processes would have), and one thread per
// session writes as its recorder would, as fast as the database takes it:
//   metrics      a batch of `batch` events per transaction (the writer gathers 20 ms of events:
//                2 at the paper's cadence of ~100 events/s, more when a session logs every step)
//   checkpoints  a checkpoint of `bytes` bytes per call
// It prints events/s, transactions/s and checkpoints/s in all, and from them how many sessions
// at the paper's cadences one PostgreSQL serves. PostgreSQL is started here (initdb + pg_ctl in
// a temporary directory, as the tests do) and shares this machine's cores with the writers.
// Usage: pg_capacity_bench [seconds per row, default 4]
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/sessions/cluster.h"
#include "server/storage/pg_storage.h"
#include "server/storage/storage.h"
#include "tests/temp_postgres.h"

namespace {

using alignd::server::Cluster;
using alignd::server::OpenPostgresStorage;
using alignd::server::PostgresOptions;
using alignd::server::Storage;
using alignd::server::StoredMetric;
using alignd::server::StoredState;
namespace v1 = alignd::v1;

struct Row {
  int replicas, sessions, batch;
  int64_t checkpoint_bytes;  // 0: metrics only
};

struct Result {
  double per_s = 0, tx_per_s = 0;
};

Result Run(alignd::testing::TempPostgres* pg, const Row& row, double seconds, int index) {
  const std::string db = absl::StrCat("capacity", index);
  PostgresOptions o;
  o.conninfo = pg->Database(db);
  o.blobs_dir = absl::StrCat("/tmp/alignd_capacity_blobs_", index);
  std::filesystem::remove_all(o.blobs_dir);
  std::vector<std::unique_ptr<Storage>> replicas;
  for (int r = 0; r < row.replicas; ++r) {
    auto s = OpenPostgresStorage(o);
    if (!s.ok()) {
      std::fprintf(stderr, "pg_capacity_bench: %s\n", std::string(s.status().message()).c_str());
      std::exit(1);
    }
    replicas.push_back(std::move(*s));
  }
  // N sessions, each claimed by a replica in turn: a holder's fenced view of each.
  std::vector<std::unique_ptr<Storage>> fenced;
  for (int i = 0; i < row.sessions; ++i) {
    Cluster* c = replicas[i % row.replicas]->cluster();
    v1::Session r;
    r.set_name(absl::StrFormat("sessions/%012d", i));
    r.set_state(v1::SESSION_STATE_QUEUED);
    r.mutable_config()->set_threads(1);
    if (!c->Insert(r, {}).ok()) std::exit(1);
    auto claimed = c->Claim(1 << 20, 600000, {});
    if (!claimed.ok() || !claimed->has_value()) std::exit(1);
    const v1::Session live = (*claimed)->record;
    fenced.push_back(c->Fenced(live.name(), (*claimed)->epoch, [live] { return live; }));
  }
  std::atomic<bool> stop{false};
  std::atomic<int64_t> items{0}, txs{0}, errors{0};
  std::vector<std::thread> writers;
  for (int i = 0; i < row.sessions; ++i) {
    writers.emplace_back([&, i] {
      Storage* s = fenced[i].get();
      const std::string name = absl::StrFormat("sessions/%012d", i);
      int64_t seq = 0, step = 0;
      const std::string bytes(static_cast<size_t>(row.checkpoint_bytes), 'c');
      while (!stop.load()) {
        absl::Status st;
        if (row.checkpoint_bytes > 0) {
          step += 1000;
          st = s->PutCheckpoint(name, StoredState{step, bytes});
          if (st.ok()) items.fetch_add(1);
        } else {
          std::vector<StoredMetric> batch(row.batch);
          for (StoredMetric& m : batch) {
            step += 1000;
            m.step = step;
            m.event.set_seq(++seq);
            auto* e = m.event.mutable_step();  // a step event of a 3-layer net, as recorded
            e->set_step(step);
            e->set_loss(0.25);
            e->set_accuracy(0.9);
            for (int l = 0; l < 2; ++l) {
              auto* a = e->add_alignment();
              a->set_layer(l);
              a->set_update_angle_mean(42);
              a->set_positive_fraction(0.9);
            }
          }
          st = s->AppendMetrics(name, batch);
          if (st.ok()) items.fetch_add(row.batch);
        }
        if (st.ok())
          txs.fetch_add(1);
        else
          errors.fetch_add(1);
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // warm up
  const int64_t i0 = items.load(), t0 = txs.load();
  const auto start = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const int64_t i1 = items.load(), t1 = txs.load();
  stop = true;
  for (auto& w : writers) w.join();
  if (errors.load() > 0)
    std::fprintf(stderr, "pg_capacity_bench: %ld writes failed\n", errors.load());
  std::filesystem::remove_all(o.blobs_dir);
  return Result{(i1 - i0) / dt, (t1 - t0) / dt};
}

}  // namespace

int main(int argc, char** argv) {
  const double seconds = argc > 1 ? std::atof(argv[1]) : 4.0;
  auto* pg = alignd::testing::TempPostgres::Get();
  if (pg == nullptr) {
    std::fprintf(stderr, "pg_capacity_bench: %s\n", alignd::testing::TempPostgres::error().c_str());
    return 1;
  }
  // The paper's cadence: batch 1 at ~100k steps/s, an event every 1,000 steps: ~100 events/s,
  // 2 per 20 ms batch, 50 transactions/s per session; a checkpoint every 100,000 steps: ~1/s.
  constexpr double kTxPerSession = 50, kCheckpointsPerSession = 1;
  const Row rows[] = {{2, 8, 2, 0},    {4, 32, 2, 0},    {4, 64, 2, 0},     {4, 32, 200, 0},
                      {4, 8, 0, 4096}, {4, 32, 0, 4096}, {4, 8, 0, 1 << 20}};
  std::printf(
      "pg_capacity_bench: one PostgreSQL 15 on this machine (its cores shared with the writers)\n");
  std::printf("%8s %8s %22s %14s %14s %26s\n", "replicas", "sessions", "write", "items/s", "tx/s",
              "sessions at paper cadence");
  int index = 0;
  for (const Row& row : rows) {
    const Result r = Run(pg, row, seconds, index++);
    const std::string what = row.checkpoint_bytes > 0
                                 ? absl::StrCat("checkpoint ", row.checkpoint_bytes >> 10, " KiB")
                                 : absl::StrCat("metrics, ", row.batch, "/batch");
    // The paper's cadence: 2 events a batch (metrics) or 1 checkpoint a second; other rows
    // show the heavier cadences' throughput alone.
    const bool paper = row.checkpoint_bytes > 0 || row.batch == 2;
    const double served =
        row.checkpoint_bytes > 0 ? r.per_s / kCheckpointsPerSession : r.tx_per_s / kTxPerSession;
    std::printf("%8d %8d %22s %14.0f %14.0f %26s\n", row.replicas, row.sessions, what.c_str(),
                r.per_s, r.tx_per_s, paper ? absl::StrFormat("%.0f", served).c_str() : "-");
    std::fflush(stdout);
  }
  return 0;
}
