// alignd_example: the README's "Using the engine" C++ snippet, built so that it stays true.
#include <cstdio>
#include <memory>
#include <string>

#include "core/trainer.h"

using namespace alignd::core;

int main() {
  auto task = MakeLinearTask({.train_size = 2000, .test_size = 1000});
  TrainerOptions o;
  o.network.sizes = {30, 20, 10};
  o.network.hidden = Activation::kLinear;
  o.feedback.rule = Rule::kFeedbackAlignment;  // or ParseRule("fa")
  o.batch_size = 1;
  o.epochs = 4;
  o.metrics_every = 50;
  auto trainer = Trainer::Create(o, std::make_shared<const Dataset>(task->train),
                                 std::make_shared<const Dataset>(task->test));
  if (!trainer.ok()) {
    std::fprintf(stderr, "%s\n", trainer.status().ToString().c_str());
    return 1;
  }

  class Print : public TrainingObserver {
    bool OnStep(const StepMetrics& m) override {
      if (m.has_details && m.step % 1000 == 1)
        std::printf("%lld %.4f %.1f deg\n", (long long)m.step, m.loss,
                    m.alignment[0].update_angle_mean);
      return true;  // false stops (pause); Run() again continues
    }
  } print;
  absl::Status s = (*trainer)->Run(&print);
  std::string checkpoint = SerializeState((*trainer)->ExportState());  // continue bit for bit later
  std::printf("%s, checkpoint of %zu bytes\n", s.ToString().c_str(), checkpoint.size());
  return s.ok() ? 0 : 1;
}
