// Fuzz target: the CSV readers (core::ParseCsv and client::ParseCsvText). The first
// byte picks the options (classification or regression, targets, header line).
#include <cstddef>
#include <cstdint>
#include <string>

#include "client/data_files.h"
#include "core/dataset.h"

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
  auto p = alignd::client::ParseCsvText(text, "fuzz", o.classification, o.num_targets, o.header);
  if (p.ok() && static_cast<int64_t>(p->bytes.size()) % 4 != 0) __builtin_trap();
  return 0;
}
