// File: server/experiments/statistics.cc
#include "server/experiments/statistics.h"

#include <algorithm>
#include <boost/math/distributions/normal.hpp>
#include <boost/math/distributions/students_t.hpp>
#include <cmath>
#include <limits>
#include <numeric>

#include "absl/types/span.h"

namespace alignd::server {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

double TQuantile975(int dof) {
  // The summaries of an experiment ask for the same few (its groups' sizes) over and over.
  constexpr int kTable = 256;
  static const std::vector<double> table = [] {
    std::vector<double> t(kTable + 1, kNaN);
    for (int d = 1; d <= kTable; ++d)
      t[d] = boost::math::quantile(boost::math::students_t_distribution<double>(d), 0.975);
    return t;
  }();
  if (dof >= 1 && dof <= kTable) return table[dof];
  return boost::math::quantile(boost::math::students_t_distribution<double>(dof), 0.975);
}

}  // namespace

Summary Summarize(const std::vector<double>& xs) { return Summarize(xs.data(), xs.size()); }

Summary Summarize(const double* xs, size_t size) {
  Summary s;
  double sum = 0;
  for (const double x : absl::MakeConstSpan(xs, size))
    if (!std::isnan(x)) {
      ++s.n;
      sum += x;
    }
  if (s.n == 0) {
    s.mean = s.sd = s.ci_low = s.ci_high = kNaN;
    return s;
  }
  s.mean = sum / s.n;
  if (s.n < 2) {
    s.sd = s.ci_low = s.ci_high = kNaN;
    return s;
  }
  double ss = 0;
  for (const double x : absl::MakeConstSpan(xs, size))
    if (!std::isnan(x)) ss += (x - s.mean) * (x - s.mean);
  s.sd = std::sqrt(ss / (s.n - 1));
  const double half = TQuantile975(s.n - 1) * s.sd / std::sqrt(double(s.n));
  s.ci_low = s.mean - half;
  s.ci_high = s.mean + half;
  return s;
}

double WilcoxonP(const std::vector<double>& all) {
  std::vector<double> d;
  for (double x : all)
    if (x != 0 && !std::isnan(x)) d.push_back(x);
  const int n = static_cast<int>(d.size());
  if (n == 0) return kNaN;
  // Ranks of |d|, ties averaged.
  std::vector<int> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(),
            [&](int i, int j) { return std::fabs(d[i]) < std::fabs(d[j]); });
  std::vector<double> rank(n);
  double tie_term = 0;  // sum over tie groups of t^3 - t
  for (int i = 0; i < n;) {
    int j = i;
    while (j + 1 < n && std::fabs(d[order[j + 1]]) == std::fabs(d[order[i]])) ++j;
    const double r = (i + j + 2) / 2.0;
    for (int k = i; k <= j; ++k) rank[order[k]] = r;
    const double t = j - i + 1;
    tie_term += t * t * t - t;
    i = j + 1;
  }
  double r_plus = 0, r_minus = 0;
  for (int i = 0; i < n; ++i) (d[i] > 0 ? r_plus : r_minus) += rank[i];
  if (n <= 50 && static_cast<int>(std::count(all.begin(), all.end(), 0.0)) == 0) {
    // Exact: the number of sign assignments giving each sum of ranks 1..n (as SciPy's
    // exact distribution, which ignores ties).
    const int max = n * (n + 1) / 2;
    std::vector<double> count(max + 1, 0.0);
    count[0] = 1;
    for (int r = 1; r <= n; ++r)
      for (int s = max; s >= r; --s) count[s] += count[s - r];
    const double total = std::ldexp(1.0, n);
    const double stat = std::min(r_plus, r_minus);
    double cdf = 0;
    for (int s = 0; s <= max && s <= stat; ++s) cdf += count[s];
    return std::min(1.0, 2.0 * cdf / total);
  }
  const double mean = n * (n + 1) / 4.0;
  const double var = n * (n + 1) * (2.0 * n + 1) / 24.0 - tie_term / 48.0;
  if (var <= 0) return kNaN;
  const double z = (std::min(r_plus, r_minus) - mean) / std::sqrt(var);
  return std::min(1.0, 2.0 * boost::math::cdf(boost::math::normal_distribution<double>(), z));
}

PairedComparison ComparePaired(const std::vector<double>& a, const std::vector<double>& b) {
  std::vector<double> d;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i)
    if (!std::isnan(a[i]) && !std::isnan(b[i])) d.push_back(a[i] - b[i]);
  PairedComparison c;
  const Summary s = Summarize(d);
  c.n = s.n;
  c.diff = s.mean;
  c.ci_low = s.ci_low;
  c.ci_high = s.ci_high;
  if (s.n < 2 || !(s.sd > 0)) {
    c.t = c.p_t = kNaN;
  } else {
    c.t = s.mean / (s.sd / std::sqrt(double(s.n)));
    boost::math::students_t_distribution<double> dist(s.n - 1);
    c.p_t = 2.0 * boost::math::cdf(boost::math::complement(dist, std::fabs(c.t)));
  }
  c.p_w = WilcoxonP(d);
  return c;
}

}  // namespace alignd::server
