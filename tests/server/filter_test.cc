// server/api/filter.h: ListSessions' AIP-160 subset, parsed and matched.
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
  auto f = SessionFilter::Parse(text);
  EXPECT_TRUE(f.ok()) << text << ": " << f.status();
  if (!f.ok()) return "!";
  std::string out;
  for (const v1::Session* s : {&kFa, &kBp, &kDfa})
    if (f->Matches(*s)) out += s->name().back();
  return out;
}

TEST(SessionFilterTest, EmptyKeepsEverything) {
  EXPECT_EQ(Kept(""), "abc");
  EXPECT_EQ(Kept("   "), "abc");
}

TEST(SessionFilterTest, Comparisons) {
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

TEST(SessionFilterTest, OrBindsTighterThanAndAsAip160Says) {
  // a AND b OR c = a AND (b OR c)
  EXPECT_EQ(Kept("labels.study = width AND rule = fa OR rule = dfa"), "c");
  EXPECT_EQ(Kept("(labels.study = width AND rule = fa) OR rule = dfa"), "c");
  EXPECT_EQ(Kept("(labels.study = depth AND rule = fa) OR rule = dfa"), "ac");
  EXPECT_EQ(Kept("labels.study = depth rule = bp"), "b");  // juxtaposition is AND
  EXPECT_EQ(Kept("rule = fa OR rule = bp OR rule = dfa"), "abc");
}

TEST(SessionFilterTest, Negation) {
  EXPECT_EQ(Kept("NOT state = failed"), "ac");
  EXPECT_EQ(Kept("-state = failed"), "ac");
  EXPECT_EQ(Kept("labels.study = depth AND -rule = bp"), "a");
  EXPECT_EQ(Kept("NOT (rule = fa OR rule = bp)"), "c");
  EXPECT_EQ(Kept("labels.seed = -1"), "");  // after an operator, - starts a value
}

TEST(SessionFilterTest, QuotedStringsEscape) {
  v1::Session s = kFa;
  s.set_display_name("say \"hi\" \\o/");
  auto f = SessionFilter::Parse(R"(display_name = "say \"hi\" \\o/")");
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_TRUE(f->Matches(s));
  EXPECT_FALSE(f->Matches(kFa));
}

void ExpectBad(const std::string& text, const std::string& words) {
  auto f = SessionFilter::Parse(text);
  ASSERT_FALSE(f.ok()) << text;
  EXPECT_EQ(f.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(f.status().message()), HasSubstr(words)) << text;
  EXPECT_THAT(std::string(f.status().message()), HasSubstr("filter: ")) << text;
}

TEST(SessionFilterTest, ErrorsSayWhatAndWhere) {
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

}  // namespace
}  // namespace alignd::server
