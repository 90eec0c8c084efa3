// Fuzz target: a TrainingConfig in JSON (alignctl --config, the Python client) through
// protobuf's JSON parser, the server's conversion and validation, and the memory
// estimate that admits sessions.
#include <google/protobuf/util/json_util.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "core/trainer.h"
#include "server/api/proto_convert.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string json(reinterpret_cast<const char*>(data), size);
  alignd::v1::TrainingConfig config;
  if (!google::protobuf::util::JsonStringToMessage(json, &config).ok()) return 0;
  auto options = alignd::server::ToTrainerOptions(config);
  if (!options.ok()) return 0;
  if (!alignd::core::ValidateOptions(*options).ok()) __builtin_trap();
  if (alignd::core::EstimateTrainingBytes(*options, 1000) < 0) __builtin_trap();
  return 0;
}
