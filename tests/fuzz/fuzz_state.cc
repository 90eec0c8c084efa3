// Fuzz target: core::ParseState (checkpoints and snapshots read back from disk). A
// state it accepts must serialize back to the same bytes and be safe to index by layer.
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/trainer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  auto st = alignd::core::ParseState(bytes);
  if (!st.ok()) return 0;
  if (alignd::core::SerializeState(*st) != bytes) __builtin_trap();
  for (size_t i = 0; i < st->weights.size(); ++i)
    if (st->biases.at(i).rows() != st->weights[i].rows()) __builtin_trap();
  (void)st->feedback.at(st->weights.size() - 1);
  return 0;
}
