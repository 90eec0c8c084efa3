// Fuzz target: an upload as the server sees it. Input: a 2-byte length L, L bytes of
// DatasetHeader (protobuf), then the payload. The header's digest is replaced by the
// payload's own (so that inputs reach the value checks), then the payload goes
// through DecodePayload and through the streaming Upload (BeginUpload, Append in
// chunks whose size comes from the header bytes, Finish) into a scratch data directory.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "server/sessions/dataset_store.h"
#include "server/storage/sqlite_storage.h"
#include "server/storage/storage.h"

namespace {

// The data directory, removed when the fuzzer exits.
std::string g_dir;
void RemoveDir() {
  std::error_code ec;
  std::filesystem::remove_all(g_dir, ec);
}

alignd::server::DatasetStore* Store() {
  static auto* storage = [] {
    g_dir = std::filesystem::temp_directory_path() /
            ("alignd_fuzz_upload_" + std::to_string(::getpid()));
    std::filesystem::remove_all(g_dir);
    std::atexit(RemoveDir);
    return alignd::server::OpenSqliteStorage(g_dir)->release();
  }();
  alignd::server::DatasetLimits limits;
  limits.max_dataset_bytes = 1 << 20;
  limits.max_chunk_bytes = 1 << 16;
  static auto* store = new alignd::server::DatasetStore(storage, limits);
  return store;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const size_t len = std::min<size_t>(size - 2, data[0] | (data[1] << 8));
  alignd::v1::DatasetHeader header;
  if (!header.ParseFromArray(data + 2, static_cast<int>(len))) return 0;
  const std::string payload(reinterpret_cast<const char*>(data + 2 + len), size - 2 - len);
  header.set_sha256(alignd::formats::Sha256Hex(payload));
  auto decoded = alignd::server::DecodePayload(header, payload);
  if (decoded.ok() && !alignd::core::ValidateDataset(*decoded).ok()) __builtin_trap();

  auto upload = Store()->BeginUpload(header);
  if (!upload.ok()) return 0;
  const size_t chunk = 1 + (len > 0 ? data[2] % 97 : 7);
  absl::Status s;
  for (size_t i = 0; i < payload.size() && s.ok(); i += chunk)
    s = (*upload)->Append(payload.substr(i, chunk));
  if (s.ok()) {
    auto stored = (*upload)->Finish();
    // Whatever the streaming checks accept, the decoder accepts, and the other way round.
    if (stored.ok() != decoded.ok()) __builtin_trap();
    if (stored.ok()) {
      auto loaded = Store()->Load(stored->name());
      if (!loaded.ok()) __builtin_trap();
      (void)Store()->Delete(stored->name(), [](const std::string&) { return false; });
    }
  }
  return 0;
}
