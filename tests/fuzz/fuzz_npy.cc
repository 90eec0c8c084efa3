// Fuzz target: formats::ParseNpy (.npy headers and data).
#include <cstddef>
#include <cstdint>
#include <string>

#include "formats/formats.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  auto a = alignd::formats::ParseNpy(bytes, "fuzz");
  if (a.ok()) {
    int64_t count = 1;
    for (int64_t d : a->dims) count *= d;  // checked by the parser: must not overflow here
    if (count != static_cast<int64_t>(a->values.size())) __builtin_trap();
  }
  return 0;
}
