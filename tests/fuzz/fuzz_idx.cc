// Fuzz target: core::ParseIdx and client::ParseIdxBytes, the two IDX readers, on the
// same bytes. Neither may crash, overflow or allocate more than the input justifies;
// where both accept the input they agree on its shape.
#include <cstddef>
#include <cstdint>
#include <string>

#include "client/data_files.h"
#include "core/dataset.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  auto core_array = alignd::core::ParseIdx(bytes, "fuzz");
  auto client_array = alignd::client::ParseIdxBytes(bytes, "fuzz");
  if (core_array.ok() && client_array.ok() && core_array->dims != client_array->dims)
    __builtin_trap();
  return 0;
}
