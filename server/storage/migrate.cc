// File: server/storage/migrate.cc
#include "server/storage/migrate.h"

#include <algorithm>
#include <memory>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "core/trainer.h"
#include "formats/formats.h"

namespace alignd::server {
namespace {

constexpr int kPage = 5000;  // metric events read and appended at a time

// The training step an event belongs to (what a restart cuts the log by).
int64_t StepOf(const v1::MetricEvent& e) {
  if (e.has_step()) return e.step().step();
  if (e.has_eval()) return e.eval().step();
  return 0;
}

void Mix(formats::Sha256& h, int64_t n) {
  h.Update(absl::string_view(reinterpret_cast<const char*>(&n), sizeof n));
}
void Mix(formats::Sha256& h, const std::string& bytes) {
  Mix(h, static_cast<int64_t>(bytes.size()));
  h.Update(bytes);
}

// What a session is in a store, as one digest: its record, its metric log, its
// checkpoint and its snapshots. Copies each part into `to` as it goes (if not null).
struct SessionDigest {
  std::string hex;
  int64_t events = 0, checkpoints = 0, snapshots = 0, bytes = 0;
};

absl::StatusOr<SessionDigest> DigestSession(Storage* s, const v1::Session& record, Storage* to) {
  const std::string& name = record.name();
  formats::Sha256 h;
  SessionDigest d;
  Mix(h, record.SerializeAsString());
  for (int64_t next = 1;;) {
    ASSIGN_OR_RETURN(std::vector<v1::MetricEvent> page, s->ReadMetrics(name, next, kPage));
    if (page.empty()) break;
    std::vector<StoredMetric> out;
    out.reserve(page.size());
    for (v1::MetricEvent& e : page) {
      const std::string bytes = e.SerializeAsString();
      Mix(h, e.seq());
      Mix(h, bytes);
      d.bytes += static_cast<int64_t>(bytes.size());
      next = e.seq() + 1;
      if (to != nullptr) out.push_back(StoredMetric{StepOf(e), std::move(e)});
    }
    d.events += static_cast<int64_t>(page.size());
    if (to != nullptr) RETURN_IF_ERROR(to->AppendMetrics(name, out));
  }
  auto checkpoint = s->GetCheckpoint(name);
  if (absl::IsNotFound(checkpoint.status()) && s->CheckpointStep(name).ok())
    return absl::DataLossError(absl::StrCat(name, ": its checkpoint is listed but cannot be read"));
  if (checkpoint.ok() && checkpoint->step < 0) {
    // From a data directory older than the step in the checkpoint's name: the step is the
    // one its bytes hold (as alignd's own start-up finds it). A -1 in the destination would
    // make the first claim cut the whole log.
    auto state = core::ParseState(checkpoint->bytes);
    if (!state.ok())
      return absl::DataLossError(
          absl::StrCat(name, ": its checkpoint cannot be parsed: ", state.status().message()));
    checkpoint->step = state->step;
  }
  if (checkpoint.ok()) {
    Mix(h, checkpoint->step);
    Mix(h, checkpoint->bytes);
    d.checkpoints = 1;
    d.bytes += static_cast<int64_t>(checkpoint->bytes.size());
    if (to != nullptr) RETURN_IF_ERROR(to->PutCheckpoint(name, *checkpoint));
  } else if (!absl::IsNotFound(checkpoint.status())) {
    return checkpoint.status();
  }
  ASSIGN_OR_RETURN(std::vector<SnapshotInfo> snapshots, s->ListSnapshots(name));
  for (const SnapshotInfo& info : snapshots) {
    ASSIGN_OR_RETURN(std::string bytes, s->GetSnapshot(name, info.step));
    Mix(h, info.step);
    Mix(h, bytes);
    d.bytes += static_cast<int64_t>(bytes.size());
    if (to != nullptr) RETURN_IF_ERROR(to->PutSnapshot(name, StoredState{info.step, bytes}));
  }
  d.snapshots = static_cast<int64_t>(snapshots.size());
  d.hex = h.HexDigest();
  return d;
}

absl::Status MigrateDatasets(Storage* from, Storage* to, MigrateReport& report,
                             const std::function<void(const std::string&)>& say) {
  for (std::string after;;) {
    ASSIGN_OR_RETURN(std::vector<v1::Dataset> page, from->ListDatasets(after, 100));
    if (page.empty()) return absl::OkStatus();
    for (const v1::Dataset& d : page) {
      after = d.name();
      ASSIGN_OR_RETURN(std::string payload, from->ReadDatasetPayload(d));
      const std::string digest = formats::Sha256Hex(payload);
      if (auto there = to->GetDataset(d.name()); there.ok()) {
        auto theirs = to->ReadDatasetPayload(*there);
        if (theirs.ok() && formats::Sha256Hex(*theirs) == digest &&
            there->SerializeAsString() == d.SerializeAsString()) {
          ++report.datasets_skipped;
          say(absl::StrCat(d.name(), ": already there (sha256 ", digest, ")"));
          continue;
        }
      }
      RETURN_IF_ERROR(to->WithDatasetLock([&]() -> absl::Status {
        ASSIGN_OR_RETURN(std::unique_ptr<BlobWriter> w, to->NewDatasetPayload());
        RETURN_IF_ERROR(w->Append(payload));
        RETURN_IF_ERROR(w->Commit(d.name()));
        return to->PutDataset(d);
      }));
      ASSIGN_OR_RETURN(v1::Dataset stored, to->GetDataset(d.name()));
      ASSIGN_OR_RETURN(std::string back, to->ReadDatasetPayload(stored));
      if (formats::Sha256Hex(back) != digest)
        return absl::DataLossError(absl::StrCat(d.name(),
                                                ": the payload read back from the "
                                                "destination differs from the source's"));
      ++report.datasets_copied;
      report.bytes += static_cast<int64_t>(payload.size());
      say(absl::StrCat(d.name(), ": copied, ", payload.size(), " bytes, sha256 ", digest));
    }
  }
}

absl::Status MigrateSession(Storage* from, Storage* to, v1::Session record, MigrateReport& report,
                            const std::function<void(const std::string&)>& say) {
  const std::string& name = record.name();
  // Arrives QUEUED: a replica claims it and resumes from the checkpoint (so the destination's
  // replicas must not run yet: one could claim it before it is read back).
  if (record.state() == v1::SESSION_STATE_RUNNING) record.set_state(v1::SESSION_STATE_QUEUED);
  ASSIGN_OR_RETURN(SessionDigest source, DigestSession(from, record, nullptr));
  if (auto there = to->GetSession(name); there.ok()) {
    ASSIGN_OR_RETURN(SessionDigest theirs, DigestSession(to, *there, nullptr));
    if (theirs.hex == source.hex) {
      ++report.sessions_skipped;
      say(absl::StrCat(name, ": already there (sha256 ", source.hex, ")"));
    } else {
      report.conflicts.push_back(name);
      say(absl::StrCat(name,
                       ": in the destination already and different (trained there since?); "
                       "left as it is"));
    }
    return absl::OkStatus();
  } else if (!absl::IsNotFound(there.status())) {
    return there.status();
  }
  // What an interrupted run left (no record: it comes last) goes first.
  if (absl::Status st = to->DeleteSession(name); !st.ok() && !absl::IsNotFound(st)) return st;
  ASSIGN_OR_RETURN(SessionDigest copied, DigestSession(from, record, to));
  RETURN_IF_ERROR(to->PutSession(record));
  ASSIGN_OR_RETURN(v1::Session stored, to->GetSession(name));
  ASSIGN_OR_RETURN(SessionDigest back, DigestSession(to, stored, nullptr));
  if (copied.hex != source.hex || back.hex != source.hex)
    return absl::DataLossError(absl::StrCat(name,
                                            ": read back from the destination, its digest is ",
                                            back.hex, "; the source's is ", source.hex));
  ++report.sessions_copied;
  report.events += copied.events;
  report.checkpoints += copied.checkpoints;
  report.snapshots += copied.snapshots;
  report.bytes += copied.bytes;
  say(absl::StrCat(name, ": copied (", v1::SessionState_Name(record.state()), "), ", copied.events,
                   " events, ", copied.checkpoints, " checkpoint, ", copied.snapshots,
                   " snapshots, sha256 ", source.hex));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<MigrateReport> Migrate(Storage* from, Storage* to,
                                      const std::function<void(const std::string&)>& progress) {
  auto say = [&](const std::string& line) {
    if (progress) progress(line);
  };
  MigrateReport report;
  RETURN_IF_ERROR(MigrateDatasets(from, to, report, say));
  ASSIGN_OR_RETURN(std::vector<v1::Session> sessions, from->ListSessions());
  // In the order they were created: the queue keeps its order on the replicas.
  std::stable_sort(sessions.begin(), sessions.end(),
                   [](const v1::Session& a, const v1::Session& b) {
                     return std::make_pair(a.create_time().seconds(), a.create_time().nanos()) <
                            std::make_pair(b.create_time().seconds(), b.create_time().nanos());
                   });
  for (v1::Session& s : sessions)
    RETURN_IF_ERROR(MigrateSession(from, to, std::move(s), report, say));
  // Experiments after their sessions: records only.
  ASSIGN_OR_RETURN(std::vector<v1::Experiment> experiments, from->ListExperiments());
  for (const v1::Experiment& e : experiments) {
    RETURN_IF_ERROR(to->PutExperiment(e));
    say(absl::StrCat(e.name(), ": copied"));
  }
  return report;
}

}  // namespace alignd::server
