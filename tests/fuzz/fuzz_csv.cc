// Fuzz target: the CSV path (formats::ParseCsv, ExamplesFromCsv, core's data set from
// it). The first byte picks the options (classification or regression, targets, header
// line, classes). Whatever is accepted is a valid engine data set and a payload of the
// size its shape says.
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/dataset.h"
#include "formats/formats.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t mode = data[0];
  const std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
  alignd::core::CsvOptions o;
  o.classification = (mode & 1) != 0;
  o.num_targets = 1 + ((mode >> 1) & 3);
  o.header = (mode & 8) != 0;
  o.num_classes = (mode >> 4) & 7;
  auto d = alignd::core::ParseCsv(text, "fuzz", o);
  if (d.ok() && !alignd::core::ValidateDataset(*d).ok()) __builtin_trap();
  if (d.ok()) {
    const auto e = alignd::core::ExamplesFromDataset(*d);
    const std::string payload = alignd::formats::EncodePayload(e);
    if (static_cast<int64_t>(payload.size()) !=
        alignd::formats::PayloadBytes(alignd::formats::ShapeOf(e)))
      __builtin_trap();
  }
  return 0;
}
