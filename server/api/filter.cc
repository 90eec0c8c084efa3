// File: server/api/filter.cc
#include "server/api/filter.h"

#include <optional>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "alignd/v1/rule_names.h"

namespace alignd::server {

struct ListFilter::Node {
  enum class Kind { kAnd, kOr, kNot, kCompare } kind = Kind::kCompare;
  std::vector<std::shared_ptr<const Node>> children;
  // kCompare:
  enum class Op { kEq, kNe, kHas } op = Op::kEq;
  std::string field;  // "labels" for labels.KEY (key below), else the field's name
  std::string key;
  std::string value;    // text fields and labels; "*" with kHas: presence
  bool prefix = false;  // value ended in *: a prefix
  v1::Rule rule = v1::RULE_UNSPECIFIED;
  int state = 0;  // a SessionState or an ExperimentState
};

namespace {

using Node = ListFilter::Node;

struct Token {
  enum Kind { kWord, kString, kLParen, kRParen, kEq, kNe, kHas, kMinus, kEnd } kind;
  std::string text;
  size_t pos;
};

absl::Status Bad(size_t pos, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("filter: ", what, " at position ", pos + 1));
}

bool WordChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-' ||
         c == '/' || c == '*';
}

absl::StatusOr<std::vector<Token>> Lex(absl::string_view s) {
  std::vector<Token> out;
  size_t i = 0;
  while (i < s.size()) {
    const char c = s[i];
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      ++i;
    } else if (c == '(' || c == ')') {
      out.push_back({c == '(' ? Token::kLParen : Token::kRParen, std::string(1, c), i++});
    } else if (c == '=') {
      out.push_back({Token::kEq, "=", i++});
    } else if (c == ':') {
      out.push_back({Token::kHas, ":", i++});
    } else if (c == '!' && i + 1 < s.size() && s[i + 1] == '=') {
      out.push_back({Token::kNe, "!=", i});
      i += 2;
    } else if (c == '-' &&
               (out.empty() || (out.back().kind != Token::kEq && out.back().kind != Token::kNe &&
                                out.back().kind != Token::kHas))) {
      // "-" starting a term negates it; after an operator it begins a value ("-x").
      out.push_back({Token::kMinus, "-", i++});
    } else if (c == '"') {
      const size_t start = i++;
      std::string text;
      bool closed = false;
      while (i < s.size()) {
        if (s[i] == '\\' && i + 1 < s.size() && (s[i + 1] == '"' || s[i + 1] == '\\')) {
          text += s[i + 1];
          i += 2;
        } else if (s[i] == '"') {
          closed = true;
          ++i;
          break;
        } else {
          text += s[i++];
        }
      }
      if (!closed) return Bad(start, "a string without its closing quote");
      out.push_back({Token::kString, std::move(text), start});
    } else if (WordChar(c)) {
      const size_t start = i;
      while (i < s.size() && WordChar(s[i])) ++i;
      out.push_back({Token::kWord, std::string(s.substr(start, i - start)), start});
    } else {
      // A byte of a non-ASCII character is quoted escaped: the message stays valid UTF-8.
      return Bad(i, absl::StrCat("unexpected '", absl::CHexEscape(std::string(1, c)), "'"));
    }
  }
  out.push_back({Token::kEnd, "", s.size()});
  return out;
}

class Parser {
 public:
  Parser(std::vector<Token> t, ListFilter::Of of) : t_(std::move(t)), of_(of) {}

  absl::StatusOr<std::shared_ptr<const Node>> Parse() {
    auto root = Filter();
    if (!root.ok()) return root;
    if (Peek().kind != Token::kEnd)
      return Bad(Peek().pos, absl::StrCat("unexpected '", Peek().text, "'"));
    return root;
  }

 private:
  const Token& Peek() const { return t_[i_]; }
  bool IsKeyword(absl::string_view k) const {
    return Peek().kind == Token::kWord && Peek().text == k;
  }
  bool StartsTerm() const {
    const Token& t = Peek();
    return t.kind == Token::kLParen || t.kind == Token::kMinus ||
           (t.kind == Token::kWord && t.text != "AND" && t.text != "OR");
  }

  absl::StatusOr<std::shared_ptr<const Node>> Join(Node::Kind kind,
                                                   std::vector<std::shared_ptr<const Node>> c) {
    if (c.size() == 1) return c[0];
    auto n = std::make_shared<Node>();
    n->kind = kind;
    n->children = std::move(c);
    return std::shared_ptr<const Node>(n);
  }

  absl::StatusOr<std::shared_ptr<const Node>> Filter() {
    std::vector<std::shared_ptr<const Node>> all;
    for (;;) {
      auto s = Sequence();
      if (!s.ok()) return s;
      all.push_back(*s);
      if (!IsKeyword("AND")) break;
      ++i_;
    }
    return Join(Node::Kind::kAnd, std::move(all));
  }

  absl::StatusOr<std::shared_ptr<const Node>> Sequence() {
    std::vector<std::shared_ptr<const Node>> all;
    do {
      auto f = Factor();
      if (!f.ok()) return f;
      all.push_back(*f);
    } while (StartsTerm());
    return Join(Node::Kind::kAnd, std::move(all));
  }

  absl::StatusOr<std::shared_ptr<const Node>> Factor() {
    std::vector<std::shared_ptr<const Node>> all;
    for (;;) {
      auto t = Term();
      if (!t.ok()) return t;
      all.push_back(*t);
      if (!IsKeyword("OR")) break;
      ++i_;
    }
    return Join(Node::Kind::kOr, std::move(all));
  }

  absl::StatusOr<std::shared_ptr<const Node>> Term() {
    if (++depth_ > 65) return Bad(Peek().pos, "nesting deeper than 64");  // the term itself: 1
    bool negate = false;
    if (Peek().kind == Token::kMinus || IsKeyword("NOT")) {
      negate = true;
      ++i_;
    }
    absl::StatusOr<std::shared_ptr<const Node>> inner;
    if (Peek().kind == Token::kLParen) {
      const size_t open = Peek().pos;
      ++i_;
      inner = Filter();
      if (!inner.ok()) return inner;
      if (Peek().kind != Token::kRParen) return Bad(open, "a '(' without its ')'");
      ++i_;
    } else {
      inner = Comparison();
      if (!inner.ok()) return inner;
    }
    --depth_;
    if (!negate) return inner;
    auto n = std::make_shared<Node>();
    n->kind = Node::Kind::kNot;
    n->children = {*inner};
    return std::shared_ptr<const Node>(n);
  }

  absl::StatusOr<std::shared_ptr<const Node>> Comparison() {
    const Token field = Peek();
    if (field.kind != Token::kWord)
      return Bad(field.pos, field.kind == Token::kEnd
                                ? "a comparison expected, the end found"
                                : absl::StrCat("a field expected, '", field.text, "' found"));
    ++i_;
    auto n = std::make_shared<Node>();
    if (absl::StartsWith(field.text, "labels.")) {
      n->field = "labels";
      n->key = field.text.substr(7);
      if (n->key.empty()) return Bad(field.pos, "labels. without a key");
    } else if (field.text == "rule" || field.text == "state" || field.text == "name" ||
               field.text == "display_name" || field.text == "train_dataset" ||
               field.text == "eval_dataset" || field.text == "owner" ||
               (of_ == ListFilter::Of::kSessions &&
                (field.text == "experiment" || field.text == "experiment_group"))) {
      n->field = field.text;
    } else {
      return Bad(
          field.pos,
          absl::StrCat("unknown field '", field.text,
                       "' (labels.KEY, rule, state, name, display_name, "
                       "train_dataset, eval_dataset, owner",
                       of_ == ListFilter::Of::kSessions ? ", experiment, experiment_group)" : ")"));
    }
    const Token op = Peek();
    if (op.kind == Token::kEq) {
      n->op = Node::Op::kEq;
    } else if (op.kind == Token::kNe) {
      n->op = Node::Op::kNe;
    } else if (op.kind == Token::kHas) {
      n->op = Node::Op::kHas;
    } else {
      return Bad(op.pos, absl::StrCat("'=', '!=' or ':' expected after ", field.text));
    }
    ++i_;
    const Token value = Peek();
    if (value.kind != Token::kWord && value.kind != Token::kString)
      return Bad(value.pos, absl::StrCat("a value expected after ", field.text, " ", op.text));
    ++i_;
    n->value = value.text;
    if (n->op == Node::Op::kHas && !(value.kind == Token::kWord && value.text == "*"))
      n->op = Node::Op::kEq;  // k:v is k = v
    else if (n->op == Node::Op::kHas && n->field != "labels")
      return Bad(op.pos, absl::StrCat(field.text, ":* — only a label can be absent"));
    if (n->op == Node::Op::kHas) return std::shared_ptr<const Node>(n);
    if (n->field == "rule") {
      const auto rule = v1::RuleFromName(absl::AsciiStrToLower(n->value));
      const auto upper = v1::RuleFromName(absl::AsciiStrToUpper(n->value));
      if (!rule && !upper)
        return Bad(value.pos, absl::StrCat("unknown rule '", n->value,
                                           "' (bp, fa, dfa, sign, kp, pbp, shallow)"));
      n->rule = rule ? *rule : *upper;
    } else if (n->field == "state" && of_ == ListFilter::Of::kSessions) {
      std::string name = absl::AsciiStrToUpper(n->value);
      if (!absl::StartsWith(name, "SESSION_STATE_")) name = "SESSION_STATE_" + name;
      v1::SessionState state = v1::SESSION_STATE_UNSPECIFIED;
      if (!v1::SessionState_Parse(name, &state) || state == v1::SESSION_STATE_UNSPECIFIED)
        return Bad(value.pos, absl::StrCat("unknown state '", n->value,
                                           "' (queued, running, paused, succeeded, failed, "
                                           "cancelled, stopped)"));
      n->state = state;
    } else if (n->field == "state") {
      std::string name = absl::AsciiStrToUpper(n->value);
      if (!absl::StartsWith(name, "EXPERIMENT_STATE_")) name = "EXPERIMENT_STATE_" + name;
      v1::ExperimentState state = v1::EXPERIMENT_STATE_UNSPECIFIED;
      if (!v1::ExperimentState_Parse(name, &state) || state == v1::EXPERIMENT_STATE_UNSPECIFIED)
        return Bad(value.pos,
                   absl::StrCat("unknown state '", n->value, "' (running, succeeded, cancelled)"));
      n->state = state;
    } else if (absl::EndsWith(n->value, "*")) {
      n->prefix = true;
      n->value.pop_back();
    }
    return std::shared_ptr<const Node>(n);
  }

  std::vector<Token> t_;
  const ListFilter::Of of_;
  size_t i_ = 0;
  int depth_ = 0;
};

// What a compared field reads on a session and on an experiment.
bool RuleIs(const v1::Session& s, v1::Rule r) { return s.config().feedback().rule() == r; }
bool RuleIs(const v1::Experiment& e, v1::Rule r) {
  for (const auto& v : e.variants())
    if (v.rule() == r) return true;
  for (int x : e.rules())
    if (x == r) return true;
  return e.rules_size() == 0 && e.variants_size() == 0 && e.config().feedback().rule() == r;
}
std::optional<std::string> TextOf(const v1::Session& s, const std::string& field) {
  if (field == "experiment") return s.experiment();
  if (field == "experiment_group") return s.experiment_group();
  return std::nullopt;
}
std::optional<std::string> TextOf(const v1::Experiment&, const std::string&) {
  return std::nullopt;
}

template <typename T>
bool Eval(const Node& n, const T& s) {
  switch (n.kind) {
    case Node::Kind::kAnd:
      for (const auto& c : n.children)
        if (!Eval(*c, s)) return false;
      return true;
    case Node::Kind::kOr:
      for (const auto& c : n.children)
        if (Eval(*c, s)) return true;
      return false;
    case Node::Kind::kNot:
      return !Eval(*n.children[0], s);
    case Node::Kind::kCompare:
      break;
  }
  bool eq;
  if (n.field == "rule") {
    eq = RuleIs(s, n.rule);
  } else if (n.field == "state") {
    eq = static_cast<int>(s.state()) == n.state;
  } else {
    std::optional<std::string> have;
    if (n.field == "labels") {
      auto it = s.labels().find(n.key);
      if (it != s.labels().end()) have = it->second;
      if (n.op == Node::Op::kHas) return have.has_value();
    } else if (n.field == "name") {
      have = s.name();
    } else if (n.field == "display_name") {
      have = s.display_name();
    } else if (n.field == "train_dataset") {
      have = s.train_dataset();
    } else if (n.field == "eval_dataset") {
      have = s.eval_dataset();
    } else if (n.field == "owner") {
      have = s.owner();
    } else {
      have = TextOf(s, n.field);
    }
    eq = have && (n.prefix ? absl::StartsWith(*have, n.value) : *have == n.value);
  }
  return n.op == Node::Op::kNe ? !eq : eq;
}

}  // namespace

absl::StatusOr<ListFilter> ListFilter::Parse(absl::string_view text, Of of) {
  if (text.size() > 4096) return absl::InvalidArgumentError("filter: longer than 4096 characters");
  auto tokens = Lex(text);
  if (!tokens.ok()) return tokens.status();
  if (tokens->size() == 1) return ListFilter(nullptr, of);
  Parser p(*std::move(tokens), of);
  auto root = p.Parse();
  if (!root.ok()) return root.status();
  return ListFilter(*std::move(root), of);
}

bool ListFilter::Matches(const v1::Session& s) const {
  return of_ == Of::kSessions && (root_ == nullptr || Eval(*root_, s));
}

bool ListFilter::Matches(const v1::Experiment& e) const {
  return of_ == Of::kExperiments && (root_ == nullptr || Eval(*root_, e));
}

}  // namespace alignd::server
