// File: server/sessions/dataset_store.h
// -----------------------------------------------------------------------------
// Data sets as the service sees them: uploads checked and stored content-addressed,
// built-in generators, and a cache of the engine's in-memory copies.
//
// An upload streams into a temporary file while its SHA-256 is computed and every
// value is checked (finite floats, labels in range); Finish() checks the size and the
// digest, and only then renames the file into place and writes the record. Anything else (an error,
// a dropped connection: the Upload is destroyed unfinished) removes the temporary file, so nothing
// becomes visible.
//
// Thread-safe.
#ifndef ALIGND_SERVER_SESSIONS_DATASET_STORE_H_
#define ALIGND_SERVER_SESSIONS_DATASET_STORE_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "alignd/v1/datasets.pb.h"
#include "core/dataset.h"
#include "formats/formats.h"
#include "server/storage/storage.h"

namespace alignd::server {

struct DatasetLimits {
  int64_t max_dataset_bytes = int64_t{2} << 30;  // 2 GiB
  int64_t max_chunk_bytes = int64_t{1} << 20;    // 1 MiB
  // Decoded data sets kept in memory after their last session lets go (least recently used
  // first out), so that the next session on them starts at once.
  int64_t cache_bytes = int64_t{2} << 30;
  // Per principal (role user; docs/DEPLOY.md): payload bytes of the data sets it owns, a
  // shared one counted in full for each of its owners. 0: no limit.
  int64_t quota_stored_bytes = 0;
};

// Who stores a data set, and whether the stored-bytes quota applies to them.
struct DatasetOwner {
  std::string principal;  // empty with authentication off: no owner is recorded
  bool quota = false;     // DatasetLimits::quota_stored_bytes applies
};

// The payload layout is formats/formats.h's (see DatasetHeader in datasets.proto); these
// adapt it to the wire header. -1 if the header's sizes are out of range.
int64_t PayloadBytes(const v1::DatasetHeader& header);
// The payload of an engine data set, as an upload would send it.
std::string EncodePayload(const core::Dataset& d);
// A data set's id (its name is "datasets/" + id): a digest of the payload's SHA-256 and
// of what the header says the bytes mean (examples, feature shape, classes or target
// width), so the same bytes declared differently are two data sets, not one.
std::string DatasetId(const v1::DatasetHeader& header);

class DatasetStore {
 public:
  // `storage` must outlive the store.
  DatasetStore(Storage* storage, DatasetLimits limits) : storage_(storage), limits_(limits) {}

  // One upload, fed chunk by chunk from one thread at a time. Append checks the chunk's
  // size and values on the caller's thread and hands it to the upload's own thread, which
  // hashes it and writes it to the temporary file, in order: the caller (a gRPC callback
  // thread) goes back to reading the next chunk while the last one is hashed and written.
  // Append waits only when kMaxPendingBytes are not yet written (a slow disk).
  class Upload {
   public:
    ~Upload();  // unless Finish() succeeded, nothing of it is stored
    // InvalidArgument if the chunk is over the limit, past the declared size, or holds a
    // bad value; an error of the writing thread (a full disk) is returned by the next call.
    absl::Status Append(std::string chunk);
    // The payload's SHA-256, after the last chunk, when the header came without one (a
    // client can then hash while it sends).
    absl::Status SetSha256(const std::string& sha256);
    absl::StatusOr<v1::Dataset> Finish();

    static constexpr int64_t kMaxPendingBytes = int64_t{16} << 20;

   private:
    friend class DatasetStore;
    Upload(DatasetStore* store, v1::DatasetHeader header, std::unique_ptr<BlobWriter> payload,
           DatasetOwner by);
    // Checks each complete 4-byte value as it streams in (finite floats, labels in range).
    absl::Status CheckValues(const char* p, size_t n);
    void WriteLoop();  // the upload's thread: hash and write what Append queued
    // Stops the thread after it has written everything queued; its status.
    absl::Status Drain();

    DatasetStore* store_;
    const DatasetOwner by_;
    v1::DatasetHeader header_;
    std::unique_ptr<BlobWriter> payload_;  // written by the thread only, until Drain
    int64_t received_ = 0;
    int64_t expected_;
    int64_t values_checked_ = 0;
    char carry_[4];
    int carry_size_ = 0;
    std::unique_ptr<formats::Sha256> hasher_;  // the thread's, until Drain
    std::string trailing_sha256_;

    absl::Mutex mu_;
    std::deque<std::string> pending_ ABSL_GUARDED_BY(mu_);
    int64_t pending_bytes_ ABSL_GUARDED_BY(mu_) = 0;
    bool closing_ ABSL_GUARDED_BY(mu_) = false;
    absl::Status write_status_ ABSL_GUARDED_BY(mu_);
    std::thread writer_;
  };

  // Checks the header (InvalidArgument naming the field; ResourceExhausted over the size
  // limit or `by`'s quota) and opens a temporary file. The data set will be `by`'s (with
  // its other owners', if the same content is stored already).
  absl::StatusOr<std::unique_ptr<Upload>> BeginUpload(const v1::DatasetHeader& header,
                                                      const DatasetOwner& by = {});
  absl::StatusOr<v1::Dataset> Generate(const v1::GeneratorSpec& spec,
                                       const std::string& display_name,
                                       const DatasetOwner& by = {});

  absl::StatusOr<v1::Dataset> Get(const std::string& name);
  // The engine's copy, loaded once and shared.
  absl::StatusOr<std::shared_ptr<const core::Dataset>> Load(const std::string& name);
  // `in_use(name)` says whether a live session uses it: then FailedPrecondition. With
  // `owner`, only that owner is removed while others remain (the payload stays, in use or
  // not); the last owner's delete removes the data set.
  absl::Status Delete(const std::string& name,
                      const std::function<bool(const std::string&)>& in_use,
                      const std::string& owner = "");
  const DatasetLimits& limits() const { return limits_; }

 private:
  // Commits a validated payload and writes its record (or adds `by` to the owners of the
  // same data set stored before). ResourceExhausted over `by`'s quota.
  absl::StatusOr<v1::Dataset> Commit(v1::Dataset meta, std::unique_ptr<BlobWriter> payload,
                                     const DatasetOwner& by);
  // Commit's work, under mu_ and the storage's data set lock.
  absl::StatusOr<v1::Dataset> CommitLocked(v1::Dataset meta, std::unique_ptr<BlobWriter> payload,
                                           const DatasetOwner& by)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // ResourceExhausted if `by` would own more than its quota with `more` bytes added.
  absl::Status CheckQuota(const DatasetOwner& by, int64_t more);

  Storage* const storage_;
  const DatasetLimits limits_;
  absl::Mutex mu_;
  struct Cached {
    std::shared_ptr<const core::Dataset> data;
    int64_t bytes = 0;
    uint64_t last_use = 0;
  };
  void Evict() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::map<std::string, Cached> cache_ ABSL_GUARDED_BY(mu_);
  uint64_t clock_ ABSL_GUARDED_BY(mu_) = 0;
};

// Parses and validates a payload against its header (InvalidArgument says what and where).
absl::StatusOr<core::Dataset> DecodePayload(const v1::DatasetHeader& header,
                                            const std::string& bytes);

}  // namespace alignd::server

#endif  // ALIGND_SERVER_SESSIONS_DATASET_STORE_H_
