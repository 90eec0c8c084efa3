// File: server/storage/file_blobs.cc
#include "server/storage/file_blobs.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "base/status_macros.h"
#include "formats/formats.h"
#include "server/api/resource_names.h"

namespace alignd::server {
namespace fs = std::filesystem;

namespace {

absl::Status Errno(const std::string& what) {
  return absl::InternalError(absl::StrCat(what, ": ", std::strerror(errno)));
}

// A temporary file's name, unique across every process that writes the folder: replicas
// share the blob volume, and in containers each of them is pid 1, so the pid alone names
// two writers' files alike. A random nonce per process, then a counter per write.
std::string TempSuffix() {
  static const std::string nonce = [] {
    std::random_device rd;
    return absl::StrCat(::getpid(), "_", absl::Hex(uint64_t{rd()} << 32 | rd(), absl::kZeroPad16));
  }();
  static std::atomic<uint64_t> counter{0};
  return absl::StrCat(nonce, "_", counter.fetch_add(1, std::memory_order_relaxed));
}

absl::Status FsyncPath(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags);
  if (fd < 0) return Errno("open " + path);
  const int r = ::fsync(fd);
  ::close(fd);
  return r == 0 ? absl::OkStatus() : Errno("fsync " + path);
}

}  // namespace

absl::Status AtomicWriteFile(const std::string& path, std::string_view bytes) {
  const fs::path p(path);
  std::error_code ec;
  fs::create_directories(p.parent_path(), ec);
  if (ec)
    return absl::InternalError(
        absl::StrCat("create ", p.parent_path().string(), ": ", ec.message()));
  // Per write, not per process: two writers of the same path at once each get their own.
  const std::string tmp = absl::StrCat(path, ".tmp", TempSuffix());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Errno("open " + tmp);
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t w = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (w < 0) {
      if (errno == EINTR) continue;
      const absl::Status s = Errno("write " + tmp);
      ::close(fd);
      ::unlink(tmp.c_str());
      return s;
    }
    done += static_cast<size_t>(w);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    const absl::Status s = Errno("fsync " + tmp);
    ::unlink(tmp.c_str());
    return s;
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const absl::Status s = Errno("rename " + tmp);
    ::unlink(tmp.c_str());
    return s;
  }
  return FsyncPath(p.parent_path().string(), O_RDONLY | O_DIRECTORY);
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

namespace {

// A data set's payload file: {datasets folder}/{id}.bin.
std::string PayloadFile(const std::string& datasets_dir, const std::string& id) {
  return (fs::path(datasets_dir) / (id + ".bin")).string();
}

// A file written under a temporary name and renamed into place by Commit. Writeback of
// what is written starts every kWritebackBytes (sync_file_range, which does not wait), so
// that Commit's fsync finds little left to write: 188 MB uploaded, it took 0.11-0.13 s
// of the upload's 0.6 s without, and waits for the last few MiB with.
class FileBlobWriter final : public BlobWriter {
 public:
  // In `dir`, where Commit puts the payload as {id}.bin.
  static absl::StatusOr<std::unique_ptr<BlobWriter>> Open(const std::string& dir) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) return absl::InternalError(absl::StrCat("create folder ", dir, ": ", ec.message()));
    std::string tmp = (fs::path(dir) / absl::StrCat(".upload-", TempSuffix(), ".part")).string();
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return Errno("open " + tmp);
    return std::unique_ptr<BlobWriter>(new FileBlobWriter(dir, std::move(tmp), fd));
  }
  ~FileBlobWriter() override {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(tmp_.c_str());
  }
  absl::Status Append(std::string_view bytes) override {
    if (fd_ < 0) return absl::FailedPreconditionError("blob already committed");
    size_t done = 0;
    while (done < bytes.size()) {
      const ssize_t w = ::write(fd_, bytes.data() + done, bytes.size() - done);
      if (w < 0) {
        if (errno == EINTR) continue;
        return Errno("write " + tmp_);
      }
      done += static_cast<size_t>(w);
    }
    written_ += static_cast<int64_t>(bytes.size());
    if (written_ - flushed_ >= kWritebackBytes) {
      // Advice: a failure here (a file system without it) only leaves the work to fsync.
      ::sync_file_range(fd_, flushed_, written_ - flushed_, SYNC_FILE_RANGE_WRITE);
      flushed_ = written_;
    }
    return absl::OkStatus();
  }
  absl::Status Commit(const std::string& name) override {
    if (fd_ < 0) return absl::FailedPreconditionError("blob already committed");
    ASSIGN_OR_RETURN(const std::string id, ParseDatasetName(name));
    const std::string path = PayloadFile(dir_, id);
    const int fd = fd_;
    fd_ = -1;
    if (::fsync(fd) != 0) {
      ::close(fd);
      return Errno("fsync " + tmp_);
    }
    if (::close(fd) != 0) return Errno("close " + tmp_);
    if (::rename(tmp_.c_str(), path.c_str()) != 0) return Errno("rename " + tmp_);
    committed_ = true;
    return FsyncPath(dir_, O_RDONLY | O_DIRECTORY);
  }

 private:
  FileBlobWriter(std::string dir, std::string tmp, int fd)
      : dir_(std::move(dir)), tmp_(std::move(tmp)), fd_(fd) {}
  static constexpr int64_t kWritebackBytes = int64_t{8} << 20;
  const std::string dir_, tmp_;
  int fd_;
  int64_t written_ = 0, flushed_ = 0;  // bytes written; bytes whose writeback was started
  bool committed_ = false;
};

// "checkpoint-{step}.bin" -> step; -1 for any other name.
int64_t CheckpointFileStep(const std::string& file) {
  int64_t step = -1;
  absl::string_view f = file;
  if (!absl::ConsumePrefix(&f, "checkpoint-") || !absl::ConsumeSuffix(&f, ".bin") ||
      !absl::SimpleAtoi(f, &step) || step < 0)
    return -1;
  return step;
}

}  // namespace

absl::Status FileBlobs::Prepare(const std::string& flag) const {
  std::error_code ec;
  fs::create_directories(DatasetsDir(), ec);
  if (ec)
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create ", flag, " ", root_, ": ", ec.message()));
  return absl::OkStatus();
}

void FileBlobs::ClearInterruptedUploads() const {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(DatasetsDir(), ec)) {
    const std::string f = e.path().filename().string();
    if (absl::StartsWith(f, ".upload-") && absl::EndsWith(f, ".part")) fs::remove(e.path(), ec);
  }
}

std::string FileBlobs::DatasetsDir() const { return (fs::path(root_) / "datasets").string(); }

absl::StatusOr<std::string> FileBlobs::SessionDir(const std::string& session) const {
  auto id = ParseSessionName(session);
  if (!id.ok()) return id.status();
  return (fs::path(root_) / "sessions" / *id).string();
}

absl::StatusOr<std::unique_ptr<BlobWriter>> FileBlobs::NewDatasetPayload() const {
  return FileBlobWriter::Open(DatasetsDir());
}

absl::StatusOr<std::string> FileBlobs::ReadDatasetPayload(const v1::Dataset& d) const {
  auto id = ParseDatasetName(d.name());
  if (!id.ok()) return id.status();
  auto bytes = ReadFile(PayloadFile(DatasetsDir(), *id));
  // A data directory written before ids covered the header's meaning names payload files
  // by the payload's SHA-256: read those where they are.
  if (!bytes.ok() && formats::IsSha256Hex(d.sha256()))
    bytes = ReadFile(PayloadFile(DatasetsDir(), d.sha256()));
  if (!bytes.ok()) return absl::NotFoundError(absl::StrCat(d.name(), ": payload is missing"));
  return bytes;
}

void FileBlobs::RemoveDatasetPayload(const std::string& name, const std::string& sha) const {
  auto id = ParseDatasetName(name);
  if (!id.ok()) return;
  std::error_code ec;
  fs::remove(PayloadFile(DatasetsDir(), *id), ec);
  // A data directory from before ids covered the header's meaning: the file is named by the
  // payload's SHA-256 (and no other record can share it: those ids were its first 16 digits).
  if (formats::IsSha256Hex(sha) && *id == sha.substr(0, 16))
    fs::remove(PayloadFile(DatasetsDir(), sha), ec);
}

// A checkpoint is the file checkpoint-{step}.bin: the step travels with the bytes in one
// atomic rename, so a kill at any moment leaves a (bytes, step) pair that belongs together
// (an index row written beside the file could disagree with it after a crash, and a
// restart would then cut the log back to one step and resume from another).
absl::Status FileBlobs::PutCheckpoint(const std::string& name, const StoredState& state) const {
  ASSIGN_OR_RETURN(const std::string dir, SessionDir(name));
  const fs::path file = fs::path(dir) / absl::StrCat("checkpoint-", state.step, ".bin");
  RETURN_IF_ERROR(AtomicWriteFile(file.string(), state.bytes));
  // The older ones (and a checkpoint.bin from an older data directory) go.
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string f = e.path().filename().string();
    if (e.path() != file && (f == "checkpoint.bin" || CheckpointFileStep(f) >= 0))
      fs::remove(e.path(), ec);
  }
  return absl::OkStatus();
}

absl::Status FileBlobs::WriteCheckpointFile(const std::string& name,
                                            const StoredState& state) const {
  ASSIGN_OR_RETURN(const std::string dir, SessionDir(name));
  return AtomicWriteFile((fs::path(dir) / absl::StrCat("checkpoint-", state.step, ".bin")).string(),
                         state.bytes);
}

absl::StatusOr<std::string> FileBlobs::ReadCheckpointFile(const std::string& name,
                                                          int64_t step) const {
  ASSIGN_OR_RETURN(const std::string dir, SessionDir(name));
  auto bytes = ReadFile((fs::path(dir) / absl::StrCat("checkpoint-", step, ".bin")).string());
  if (!bytes.ok())
    return absl::DataLossError(
        absl::StrCat(name, ": the checkpoint at step ", step, " is indexed but its file is gone"));
  return bytes;
}

void FileBlobs::RemoveCheckpointsBefore(const std::string& name, int64_t step) const {
  auto dir = SessionDir(name);
  if (!dir.ok()) return;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(*dir, ec)) {
    const int64_t s = CheckpointFileStep(e.path().filename().string());
    if (s >= 0 && s < step) fs::remove(e.path(), ec);
  }
}

absl::StatusOr<StoredState> FileBlobs::GetCheckpoint(const std::string& name) const {
  ASSIGN_OR_RETURN(const std::string dir, SessionDir(name));
  StoredState out;
  auto step = CheckpointStep(name);
  if (step.ok()) {
    auto bytes = ReadFile((fs::path(dir) / absl::StrCat("checkpoint-", *step, ".bin")).string());
    if (!bytes.ok()) return absl::NotFoundError(absl::StrCat(name, " has no checkpoint"));
    out.step = *step;
    out.bytes = std::move(*bytes);
    return out;
  }
  // A data directory from before the step was in the file name: step -1 (unknown).
  auto legacy = ReadFile((fs::path(dir) / "checkpoint.bin").string());
  if (!legacy.ok()) return absl::NotFoundError(absl::StrCat(name, " has no checkpoint"));
  out.step = -1;
  out.bytes = std::move(*legacy);
  return out;
}

absl::StatusOr<int64_t> FileBlobs::CheckpointStep(const std::string& name) const {
  ASSIGN_OR_RETURN(const std::string dir, SessionDir(name));
  int64_t newest = -1;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec))
    newest = std::max(newest, CheckpointFileStep(e.path().filename().string()));
  if (newest < 0) return absl::NotFoundError(absl::StrCat(name, " has no checkpoint"));
  return newest;
}

absl::Status FileBlobs::PutSnapshot(const std::string& name, const StoredState& state) const {
  ASSIGN_OR_RETURN(const std::string dir, SessionDir(name));
  return AtomicWriteFile(
      (fs::path(dir) / "snapshots" / (std::to_string(state.step) + ".bin")).string(), state.bytes);
}

absl::StatusOr<std::string> FileBlobs::GetSnapshot(const std::string& name, int64_t step) const {
  ASSIGN_OR_RETURN(const std::string dir, SessionDir(name));
  auto bytes = ReadFile((fs::path(dir) / "snapshots" / (std::to_string(step) + ".bin")).string());
  if (!bytes.ok())
    return absl::NotFoundError(absl::StrCat(name, "/snapshots/", step, " not found"));
  return bytes;
}

absl::Status FileBlobs::RemoveSession(const std::string& name) const {
  ASSIGN_OR_RETURN(const std::string dir, SessionDir(name));
  std::error_code ec;
  fs::remove_all(dir, ec);
  return absl::OkStatus();
}

}  // namespace alignd::server
