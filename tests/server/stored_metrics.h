// File: tests/server/stored_metrics.h
// A metric log for storage tests: step events with seq from..to, step = 10 seq.
#ifndef ALIGND_TESTS_SERVER_STORED_METRICS_H_
#define ALIGND_TESTS_SERVER_STORED_METRICS_H_

#include <vector>

#include "server/storage/storage.h"

namespace alignd::server {

inline std::vector<StoredMetric> Events(int from, int to) {
  std::vector<StoredMetric> out;
  for (int seq = from; seq <= to; ++seq) {
    StoredMetric m;
    m.step = seq * 10;
    m.event.set_seq(seq);
    m.event.mutable_step()->set_step(seq * 10);
    out.push_back(m);
  }
  return out;
}

}  // namespace alignd::server

#endif  // ALIGND_TESTS_SERVER_STORED_METRICS_H_
