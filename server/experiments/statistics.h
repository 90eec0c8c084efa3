// File: server/experiments/statistics.h
// -----------------------------------------------------------------------------
// The statistics of an experiment's seed groups: a sample's
// n, mean, standard deviation and the 95 % confidence interval of its mean (Student's t),
// and the paired comparison of two groups over the same seeds — the mean difference with its
// 95 % interval, the paired t-test's two-sided p and the Wilcoxon signed-rank test's two-sided
// p — computed as SciPy 1.10 computes them (scipy.stats.t, ttest_rel, wilcoxon with its
// defaults), which tools/repro used until now. NaN values are left out of a sample; a pair
// with a NaN is left out of a comparison.
#ifndef ALIGND_SERVER_EXPERIMENTS_STATISTICS_H_
#define ALIGND_SERVER_EXPERIMENTS_STATISTICS_H_

#include <cstddef>
#include <vector>

namespace alignd::server {

struct Summary {
  int n = 0;
  double mean = 0, sd = 0;         // sd: the sample's (n - 1); NaN for n < 2
  double ci_low = 0, ci_high = 0;  // mean -+ t(0.975, n - 1) sd / sqrt(n); NaN for n < 2
};
Summary Summarize(const std::vector<double>& xs);
Summary Summarize(const double* xs, size_t size);

struct PairedComparison {
  int n = 0;        // pairs with both values
  double diff = 0;  // mean of a - b
  double ci_low = 0, ci_high = 0;
  double t = 0, p_t = 0;  // paired t-test; NaN for n < 2 or no spread
  double p_w = 0;         // Wilcoxon signed-rank, two-sided; NaN when every difference is 0
};
PairedComparison ComparePaired(const std::vector<double>& a, const std::vector<double>& b);

// The Wilcoxon signed-rank test's two-sided p for differences `d` (zeros dropped, as
// SciPy's zero_method="wilcox"): exact (the distribution of the signed-rank sum over all
// 2^n signs) for n <= 50 without zeros, else the normal approximation with the tie
// correction and no continuity correction.
double WilcoxonP(const std::vector<double>& d);

}  // namespace alignd::server

#endif  // ALIGND_SERVER_EXPERIMENTS_STATISTICS_H_
