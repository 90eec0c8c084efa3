// File: client/create_request.cc
#include "client/create_request.h"

#include "absl/strings/str_cat.h"
#include "alignd/v1/rule_names.h"
#include "base/status_macros.h"
#include "client/cli.h"
#include "client/layers.h"
#include "google/protobuf/util/json_util.h"

namespace alignd::client {

absl::StatusOr<v1::CreateSessionRequest> BuildCreateRequest(const CreateFlags& f) {
  v1::CreateSessionRequest r;
  v1::Session* s = r.mutable_session();
  v1::TrainingConfig* c = s->mutable_config();
  if (!f.config_json.empty()) {
    auto st = google::protobuf::util::JsonStringToMessage(f.config_json, c);
    if (!st.ok())
      return absl::InvalidArgumentError(absl::StrCat(
          "--config ", f.config_file, " is not a TrainingConfig in JSON: ", st.ToString()));
  }
  s->set_train_dataset(DatasetName(f.dataset));
  if (!f.eval_dataset.empty()) s->set_eval_dataset(DatasetName(f.eval_dataset));
  s->set_display_name(f.display_name);
  for (const std::string& kv : f.labels) {
    const auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0)
      return absl::InvalidArgumentError(
          absl::StrCat("--label '", kv, "': give key=value (e.g. --label study=depth)"));
    (*s->mutable_labels())[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  r.set_initial_weights(f.initial_weights);
  r.set_session_id(f.session_id);
  r.set_request_id(f.request_id);
  if (f.snapshot_every) s->set_snapshot_every(*f.snapshot_every);
  if (f.checkpoint_every) s->set_checkpoint_every(*f.checkpoint_every);
  auto* net = c->mutable_network();
  // --layers replaces the file's network (its sizes too: the server derives them), --sizes
  // alone replaces it with dense layers.
  if (f.layers) {
    ASSIGN_OR_RETURN(std::vector<v1::LayerSpec> layers, ParseLayers(*f.layers));
    net->clear_layers();
    for (const v1::LayerSpec& l : layers) *net->add_layers() = l;
    if (!f.sizes) net->clear_sizes();
  }
  if (f.sizes) {
    ASSIGN_OR_RETURN(std::vector<int32_t> sizes, ParseSizes(*f.sizes));
    net->clear_sizes();
    for (int32_t v : sizes) net->add_sizes(v);
    if (!f.layers) net->clear_layers();
  }
  if (f.input_shape) {
    ASSIGN_OR_RETURN(*net->mutable_input_shape(), ParseImageShape(*f.input_shape));
  }
  if (f.hidden_activation) {
    ASSIGN_OR_RETURN(int v, ParseEnumValue(v1::Activation_descriptor(), "ACTIVATION_",
                                           *f.hidden_activation, "--hidden-activation"));
    net->set_hidden_activation(static_cast<v1::Activation>(v));
  }
  if (f.output_activation) {
    ASSIGN_OR_RETURN(int v, ParseEnumValue(v1::Activation_descriptor(), "ACTIVATION_",
                                           *f.output_activation, "--output-activation"));
    net->set_output_activation(static_cast<v1::Activation>(v));
  }
  if (f.loss) {
    const std::string loss = *f.loss == "mse" ? "squared_error" : *f.loss;
    ASSIGN_OR_RETURN(int v, ParseEnumValue(v1::Loss_descriptor(), "LOSS_", loss, "--loss"));
    net->set_loss(static_cast<v1::Loss>(v));
  }
  if (f.no_bias) net->set_bias(false);
  if (f.connection_sparsity) net->set_connection_sparsity(*f.connection_sparsity);
  if (f.rule) {
    auto rule = v1::RuleFromName(*f.rule);
    if (!rule) {
      std::string known;
      for (v1::Rule r : v1::AllRules())
        absl::StrAppend(&known, known.empty() ? "" : ", ", v1::RuleShortName(r));
      return absl::InvalidArgumentError(
          absl::StrCat("--rule '", *f.rule, "' is not one of: ", known));
    }
    c->mutable_feedback()->set_rule(*rule);
  }
  if (f.feedback_scale) c->mutable_feedback()->set_scale(*f.feedback_scale);
  if (f.feedback_distribution) {
    ASSIGN_OR_RETURN(int v, ParseEnumValue(v1::Distribution_descriptor(), "DISTRIBUTION_",
                                           *f.feedback_distribution, "--feedback-distribution"));
    c->mutable_feedback()->set_distribution(static_cast<v1::Distribution>(v));
  }
  if (f.sign_mode) {
    const std::string mode =  // the short names alignd_train and the papers use
        *f.sign_mode == "usf"    ? "uniform"
        : *f.sign_mode == "frsf" ? "fixed_random"
        : *f.sign_mode == "brsf" ? "batch_random"
                                 : *f.sign_mode;
    ASSIGN_OR_RETURN(int v, ParseEnumValue(v1::SignSymmetryMode_descriptor(), "SIGN_SYMMETRY_MODE_",
                                           mode, "--sign-mode"));
    c->mutable_feedback()->set_sign_mode(static_cast<v1::SignSymmetryMode>(v));
  }
  if (f.pinv_damping) c->mutable_feedback()->set_pinv_damping(*f.pinv_damping);
  if (f.init) {
    ASSIGN_OR_RETURN(
        int v, ParseEnumValue(v1::WeightInit_descriptor(), "WEIGHT_INIT_", *f.init, "--init"));
    c->mutable_init()->set_kind(static_cast<v1::WeightInit>(v));
  }
  if (f.init_scale) c->mutable_init()->set_scale(*f.init_scale);
  if (f.optimizer) {
    ASSIGN_OR_RETURN(int v, ParseEnumValue(v1::Optimizer_descriptor(), "OPTIMIZER_", *f.optimizer,
                                           "--optimizer"));
    c->mutable_optimizer()->set_kind(static_cast<v1::Optimizer>(v));
  }
  if (f.lr) c->mutable_optimizer()->set_learning_rate(*f.lr);
  if (f.momentum) c->mutable_optimizer()->set_momentum(*f.momentum);
  if (f.weight_decay) c->mutable_optimizer()->set_weight_decay(*f.weight_decay);
  if (f.batch_size) c->set_batch_size(*f.batch_size);
  if (f.epochs) c->set_epochs(*f.epochs);
  if (f.max_steps) c->set_max_steps(*f.max_steps);
  if (f.seed) c->set_seed(*f.seed);
  if (f.metrics_every) c->set_metrics_every(*f.metrics_every);
  if (f.eval_every) c->set_eval_every(*f.eval_every);
  if (f.threads) c->set_threads(*f.threads);
  if (f.validation_fraction) c->set_validation_fraction(*f.validation_fraction);
  return r;
}

}  // namespace alignd::client
