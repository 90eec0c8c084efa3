// File: client/create_request.h
// -----------------------------------------------------------------------------
// `alignctl sessions create`'s flags and the CreateSessionRequest they make. A --config
// file (a TrainingConfig as JSON) is the base; every flag given on the command line
// overrides its field (a flag not given leaves the file's value, or the server's
// default). A unit (tests/client/create_request_test.cc).
#ifndef ALIGND_CLIENT_CREATE_REQUEST_H_
#define ALIGND_CLIENT_CREATE_REQUEST_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "alignd/v1/sessions.pb.h"

namespace alignd::client {

struct CreateFlags {
  std::string dataset, eval_dataset, display_name, config_file, session_id, request_id;
  std::string config_json;  // the config file's text (read by the caller), or empty
  std::optional<std::string> sizes, layers, input_shape, hidden_activation, output_activation, loss,
      rule, init, feedback_distribution, optimizer, sign_mode;
  std::optional<float> lr, momentum, weight_decay, feedback_scale, init_scale, connection_sparsity,
      validation_fraction, pinv_damping;
  std::optional<int> batch_size, epochs, metrics_every, eval_every, threads;
  std::optional<int64_t> max_steps, snapshot_every, checkpoint_every;
  std::optional<uint64_t> seed;
  bool no_bias = false;
  std::vector<std::string> labels;  // "key=value", each
  std::string initial_weights;      // a safetensors file's bytes (read by the caller), or empty
};

// InvalidArgument naming the flag (or the config file's problem).
absl::StatusOr<v1::CreateSessionRequest> BuildCreateRequest(const CreateFlags& flags);

}  // namespace alignd::client

#endif  // ALIGND_CLIENT_CREATE_REQUEST_H_
