// Fuzz target: formats::ParseIdx, the IDX reader. It may not crash, overflow or allocate
// more than the input justifies; what it accepts is consistent (values = product of dims,
// every value finite).
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>

#include "formats/formats.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  auto a = alignd::formats::ParseIdx(bytes, "fuzz");
  if (a.ok()) {
    int64_t count = 1;
    for (int64_t d : a->dims) count *= d;
    if (count != static_cast<int64_t>(a->values.size())) __builtin_trap();
    for (float v : a->values)
      if (!std::isfinite(v)) __builtin_trap();
  }
  return 0;
}
