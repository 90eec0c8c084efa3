// server/api/filter.h: ListSessions' and ListExperiments' AIP-160 subset, parsed and matched.
#include "server/api/filter.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

namespace alignd::server {
namespace {

using ::testing::HasSubstr;

v1::Session S(const std::string& id, v1::Rule rule, v1::SessionState state,
              std::map<std::string, std::string> labels, const std::string& display = "") {
  v1::Session s;
  s.set_name("sessions/" + id);
  s.set_display_name(display);
  s.mutable_config()->mutable_feedback()->set_rule(rule);
  s.set_state(state);
  for (auto& [k, v] : labels) (*s.mutable_labels())[k] = v;
  s.set_train_dataset("datasets/mnist");
  s.set_owner("alice");
  return s;
}

const v1::Session kFa = S("a", v1::RULE_FEEDBACK_ALIGNMENT, v1::SESSION_STATE_SUCCEEDED,
                          {{"study", "depth"}, {"seed", "1"}}, "fa-1");
const v1::Session kBp = S("b", v1::RULE_BACKPROP, v1::SESSION_STATE_FAILED,
                          {{"study", "depth"}, {"seed", "2"}}, "bp-2");
const v1::Session kDfa = S("c", v1::RULE_DIRECT_FEEDBACK_ALIGNMENT, v1::SESSION_STATE_RUNNING,
                           {{"study", "width"}}, "dfa");

// Which of kFa, kBp, kDfa the filter keeps, as "abc" letters.
std::string Kept(const std::string& text) {
  auto f = ListFilter::Parse(text);
  EXPECT_TRUE(f.ok()) << text << ": " << f.status();
  if (!f.ok()) return "!";
  std::string out;
  for (const v1::Session* s : {&kFa, &kBp, &kDfa})
    if (f->Matches(*s)) out += s->name().back();
  return out;
}

TEST(ListFilterTest, EmptyKeepsEverything) {
  EXPECT_EQ(Kept(""), "abc");
  EXPECT_EQ(Kept("   "), "abc");
}

TEST(ListFilterTest, Comparisons) {
  EXPECT_EQ(Kept("labels.study = depth"), "ab");
  EXPECT_EQ(Kept("labels.study = \"width\""), "c");
  EXPECT_EQ(Kept("labels.study != depth"), "c");
  EXPECT_EQ(Kept("labels.seed:*"), "ab");
  EXPECT_EQ(Kept("labels.seed != 1"), "bc");  // an absent label equals nothing
  EXPECT_EQ(Kept("labels.study:depth"), "ab");
  EXPECT_EQ(Kept("rule = fa"), "a");
  EXPECT_EQ(Kept("rule = RULE_BACKPROP"), "b");
  EXPECT_EQ(Kept("rule != fa"), "bc");
  EXPECT_EQ(Kept("state = succeeded"), "a");
  EXPECT_EQ(Kept("state = SESSION_STATE_RUNNING"), "c");
  EXPECT_EQ(Kept("display_name = \"fa-*\""), "a");
  EXPECT_EQ(Kept("display_name = *"), "abc");
  EXPECT_EQ(Kept("name = sessions/b"), "b");
  EXPECT_EQ(Kept("train_dataset = datasets/mnist AND owner = alice"), "abc");
  EXPECT_EQ(Kept("eval_dataset = \"\""), "abc");
  EXPECT_EQ(Kept("experiment = \"\""), "abc");  // made alone
  EXPECT_EQ(Kept("experiment = experiments/x"), "");
}

TEST(ListFilterTest, OrBindsTighterThanAndAsAip160Says) {
  // a AND b OR c = a AND (b OR c)
  EXPECT_EQ(Kept("labels.study = width AND rule = fa OR rule = dfa"), "c");
  EXPECT_EQ(Kept("(labels.study = width AND rule = fa) OR rule = dfa"), "c");
  EXPECT_EQ(Kept("(labels.study = depth AND rule = fa) OR rule = dfa"), "ac");
  EXPECT_EQ(Kept("labels.study = depth rule = bp"), "b");  // juxtaposition is AND
  EXPECT_EQ(Kept("rule = fa OR rule = bp OR rule = dfa"), "abc");
}

TEST(ListFilterTest, Negation) {
  EXPECT_EQ(Kept("NOT state = failed"), "ac");
  EXPECT_EQ(Kept("-state = failed"), "ac");
  EXPECT_EQ(Kept("labels.study = depth AND -rule = bp"), "a");
  EXPECT_EQ(Kept("NOT (rule = fa OR rule = bp)"), "c");
  EXPECT_EQ(Kept("labels.seed = -1"), "");  // after an operator, - starts a value
}

TEST(ListFilterTest, QuotedStringsEscape) {
  v1::Session s = kFa;
  s.set_display_name("say \"hi\" \\o/");
  auto f = ListFilter::Parse(R"(display_name = "say \"hi\" \\o/")");
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_TRUE(f->Matches(s));
  EXPECT_FALSE(f->Matches(kFa));
}

void ExpectBad(const std::string& text, const std::string& words) {
  auto f = ListFilter::Parse(text);
  ASSERT_FALSE(f.ok()) << text;
  EXPECT_EQ(f.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(f.status().message()), HasSubstr(words)) << text;
  EXPECT_THAT(std::string(f.status().message()), HasSubstr("filter: ")) << text;
}

TEST(ListFilterTest, ErrorsSayWhatAndWhere) {
  ExpectBad("colour = red", "unknown field 'colour'");
  ExpectBad("rule = xx", "unknown rule 'xx'");
  ExpectBad("state = done", "unknown state 'done'");
  ExpectBad("rule fa", "'=', '!=' or ':' expected after rule at position 6");
  ExpectBad("rule =", "a value expected after rule =");
  ExpectBad("(rule = fa", "a '(' without its ')' at position 1");
  ExpectBad("rule = fa)", "unexpected ')' at position 10");
  ExpectBad("display_name = \"x", "closing quote");
  ExpectBad("rule = fa AND", "a comparison expected, the end found");
  ExpectBad("rule = fa & rule = bp", "unexpected '&' at position 11");
  ExpectBad("rule = fa \xc3\xa9", "unexpected '\\xc3' at position 11");  // UTF-8 stays valid
  ExpectBad("rule:*", "only a label can be absent");
  ExpectBad("labels. = x", "labels. without a key");
  ExpectBad(std::string(70, '(') + "rule = fa" + std::string(70, ')'), "nesting deeper than 64");
  ExpectBad(std::string(5000, ' '), "longer than 4096");
}

TEST(ListFilterTest, ExperimentsHaveTheirOwnFieldsAndStates) {
  v1::Experiment e;
  e.set_name("experiments/depth");
  e.set_owner("alice");
  e.set_state(v1::EXPERIMENT_STATE_RUNNING);
  (*e.mutable_labels())["study"] = "depth";
  e.add_rules(v1::RULE_BACKPROP);
  e.add_rules(v1::RULE_FEEDBACK_ALIGNMENT);
  auto keeps = [&](const std::string& text) {
    auto f = ListFilter::Parse(text, ListFilter::Of::kExperiments);
    EXPECT_TRUE(f.ok()) << text << ": " << f.status();
    return f.ok() && f->Matches(e);
  };
  EXPECT_TRUE(keeps("labels.study = depth AND state = running"));
  EXPECT_TRUE(keeps("rule = fa"));  // any of its rules
  EXPECT_TRUE(keeps("rule = RULE_BACKPROP"));
  EXPECT_FALSE(keeps("rule = dfa"));
  EXPECT_FALSE(keeps("state = EXPERIMENT_STATE_SUCCEEDED"));
  EXPECT_TRUE(keeps("name = experiments/dep* owner = alice"));
  // Without rules, the base config's rule.
  e.clear_rules();
  e.mutable_config()->mutable_feedback()->set_rule(v1::RULE_SIGN_SYMMETRY);
  EXPECT_TRUE(keeps("rule = sign"));
  // A session's fields and states are not an experiment's.
  auto bad = ListFilter::Parse("experiment = experiments/x", ListFilter::Of::kExperiments);
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("unknown field 'experiment'"));
  bad = ListFilter::Parse("state = paused", ListFilter::Of::kExperiments);
  EXPECT_THAT(std::string(bad.status().message()),
              HasSubstr("unknown state 'paused' (running, succeeded, cancelled)"));
  // A filter parsed for one kind matches nothing of the other.
  EXPECT_FALSE(ListFilter::Parse("", ListFilter::Of::kSessions)->Matches(e));
  EXPECT_FALSE(ListFilter::Parse("", ListFilter::Of::kExperiments)->Matches(kFa));
  EXPECT_TRUE(ListFilter::Parse("state = stopped").ok());  // sessions stop early too
}

}  // namespace
}  // namespace alignd::server
