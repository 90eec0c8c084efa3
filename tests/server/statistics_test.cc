// server/experiments/statistics.h against SciPy 1.10 (Debian's python3-scipy) on the same
// numbers: each reference below is what the quoted call printed.
#include "server/experiments/statistics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace alignd::server {
namespace {

std::vector<double> Linspace(double a, double b, int n) {
  std::vector<double> v(n);
  for (int i = 0; i < n; ++i) v[i] = a + (b - a) * i / (n - 1);
  return v;
}

TEST(StatisticsTest, SummaryIsMeanSdAndTheTInterval) {
  const Summary s = Summarize({1.0, 2.0, 4.0, NAN});
  EXPECT_EQ(s.n, 3);
  EXPECT_DOUBLE_EQ(s.mean, 7.0 / 3);
  EXPECT_NEAR(s.sd, std::sqrt((16.0 / 9 + 1.0 / 9 + 25.0 / 9) / 2), 1e-15);
  // scipy.stats.t.ppf(0.975, 2) = 4.302652729749464
  EXPECT_NEAR(s.ci_high - s.mean, 4.302652729749464 * s.sd / std::sqrt(3.0), 1e-12);
  EXPECT_NEAR(s.mean - s.ci_low, s.ci_high - s.mean, 1e-15);
  EXPECT_EQ(Summarize({5.0}).n, 1);
  EXPECT_TRUE(std::isnan(Summarize({5.0}).sd));
  EXPECT_TRUE(std::isnan(Summarize({}).mean));
}

TEST(StatisticsTest, PairedAsScipyWithTheExactWilcoxon) {
  // FA's and BP's test errors over five seeds.
  const std::vector<double> a = {0.0231, 0.0219, 0.0244, 0.0228, 0.0236};
  const std::vector<double> b = {0.0205, 0.0211, 0.0209, 0.0214, 0.0201};
  const PairedComparison c = ComparePaired(a, b);
  EXPECT_EQ(c.n, 5);
  EXPECT_NEAR(c.diff, 0.00236, 1e-15);
  EXPECT_NEAR(c.t, 4.304448487294716, 1e-9);       // ttest_rel(a, b).statistic
  EXPECT_NEAR(c.p_t, 0.01260120420422266, 1e-12);  // ttest_rel(a, b).pvalue
  EXPECT_NEAR(c.p_w, 0.0625, 1e-15);               // wilcoxon(a, b).pvalue: 2 / 2^5
  // The interval: t.ppf(0.975, 4) = 2.7764451051977987 times the differences' SD over sqrt(5).
  double ss = 0;
  for (int i = 0; i < 5; ++i) ss += std::pow(a[i] - b[i] - 0.00236, 2);
  EXPECT_NEAR(c.ci_high - c.diff, 2.7764451051977987 * std::sqrt(ss / 4) / std::sqrt(5.0), 1e-12);
  std::vector<double> x = Linspace(1, 2, 12), y = Linspace(1.1, 2.05, 12);
  for (int i = 0; i < 12; ++i) x[i] += std::sin(i);
  const PairedComparison d = ComparePaired(x, y);
  EXPECT_NEAR(d.diff, -0.040733486277724364, 1e-12);
  EXPECT_NEAR(d.t, -0.19251563660525753, 1e-9);
  EXPECT_NEAR(d.p_t, 0.8508464891619165, 1e-9);
  EXPECT_NEAR(d.p_w, 0.791015625, 1e-12);
}

TEST(StatisticsTest, WilcoxonApproximatesWithTiesAndZeros) {
  // numpy.round(default_rng(0).normal(0.3, 1, 60), 1): ties and two zeros -> the normal
  // approximation with the tie correction; wilcoxon(d).pvalue = 0.003186407114403248.
  const std::vector<double> d = {
      0.4,  0.2,  0.9,  0.4, -0.2, 0.7, 1.6,  1.2,  -0.4, -1.0, -0.3, 0.3,  -2.0, 0.1,  -0.9,
      -0.4, -0.2, -0.0, 0.7, 1.3,  0.2, 1.7,  -0.4, 0.7,  1.2,  0.4,  -0.4, -0.6, -0.2, 0.5,
      -0.7, 0.1,  0.1,  0.8, 0.5,  0.7, -0.4, 0.2,  1.1,  1.8,  -1.0, 1.8,  1.6,  1.1,  0.6,
      -0.0, 1.8,  2.3,  2.1, 1.6,  0.7, -0.9, 0.3,  1.0,  -1.0, 0.7,  0.7,  1.0,  -0.9, -0.4};
  EXPECT_NEAR(WilcoxonP(d), 0.003186407114403248, 1e-12);
  EXPECT_TRUE(std::isnan(WilcoxonP({0.0, 0.0})));
}

}  // namespace
}  // namespace alignd::server
