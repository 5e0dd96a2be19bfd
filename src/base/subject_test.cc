#include "base/subject.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "msgstore/limits.h"

namespace msgstore::base {
namespace {

std::vector<std::string> split(const std::string& text) {
  std::vector<std::string> tokens;
  std::size_t start = 0;
  while (true) {
    std::size_t dot = text.find('.', start);
    tokens.push_back(text.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return tokens;
}

// Token-list reference for subject_matches.
bool reference_matches(const std::string& pattern, const std::string& subject) {
  const auto p = split(pattern);
  const auto s = split(subject);
  for (std::size_t i = 0; i < p.size(); ++i) {
    if (p[i] == ">") return s.size() > i;
    if (i >= s.size()) return false;
    if (p[i] != "*" && p[i] != s[i]) return false;
  }
  return p.size() == s.size();
}

TEST(Subject, ValidSubjects) {
  for (const char* subject : {"a", "orders", "orders.created", "orders.eu.created", "a.b.c.d.e", "A-b_c.1.2",
                              "with:colon.and/slash", "\xC3\xA9t\xC3\xA9.unicode"}) {
    EXPECT_TRUE(validate_subject(subject).is_ok()) << subject;
  }
}

TEST(Subject, EmptyAndEmptyTokensRejected) {
  for (const char* subject : {"", ".", "..", ".a", "a.", "a..b", "a.b.", ".a.b"}) {
    Status status = validate_subject(subject);
    EXPECT_FALSE(status.is_ok()) << "'" << subject << "'";
    EXPECT_EQ(status.code(), ErrorCode::invalid_argument) << subject;
    EXPECT_FALSE(validate_subject_pattern(subject).is_ok()) << "'" << subject << "'";
  }
}

TEST(Subject, WildcardsRejectedInSubjects) {
  for (const char* subject : {"*", ">", "a.*", "a.>", "*.a", "a.*.b", ">.a"}) {
    Status status = validate_subject(subject);
    EXPECT_EQ(status.code(), ErrorCode::invalid_argument) << subject;
  }
}

TEST(Subject, WhitespaceAndControlCharactersRejected) {
  for (std::string subject : {std::string("a b"), std::string("a\tb"), std::string("a.b\n"), std::string(" a"),
                              std::string("a\rb"), std::string("a\x7F"), std::string("a\x01.b"),
                              std::string("a\0b", 3)}) {
    EXPECT_EQ(validate_subject(subject).code(), ErrorCode::invalid_argument) << subject;
    EXPECT_EQ(validate_subject_pattern(subject).code(), ErrorCode::invalid_argument) << subject;
  }
}

TEST(Subject, LengthAndTokenLimits) {
  std::string longest(limits::subject_bytes_max, 'x');
  EXPECT_TRUE(validate_subject(longest).is_ok());
  EXPECT_FALSE(validate_subject(longest + "x").is_ok());

  std::string tokens = "t";
  for (std::size_t i = 1; i < limits::subject_tokens_max; ++i) tokens += ".t";
  EXPECT_TRUE(validate_subject(tokens).is_ok());
  EXPECT_TRUE(validate_subject_pattern(tokens).is_ok());
  EXPECT_FALSE(validate_subject(tokens + ".t").is_ok());
  EXPECT_FALSE(validate_subject_pattern(tokens + ".>").is_ok());
}

TEST(SubjectPattern, Valid) {
  for (const char* pattern : {"a", "a.b", "*", ">", "a.*", "a.>", "*.b", "*.*", "a.*.c", "a.*.>", "*.>"}) {
    EXPECT_TRUE(validate_subject_pattern(pattern).is_ok()) << pattern;
  }
}

TEST(SubjectPattern, Invalid) {
  for (const char* pattern : {"", "a.>.b", ">.a", ">.>", "a*", "a.b*", "*a", "a.>b", ">a", "a.*x.c", "a..*", "a.*.", "a b.*"}) {
    Status status = validate_subject_pattern(pattern);
    EXPECT_EQ(status.code(), ErrorCode::invalid_argument) << "'" << pattern << "'";
  }
}

TEST(SubjectMatch, Exact) {
  EXPECT_TRUE(subject_matches("a", "a"));
  EXPECT_TRUE(subject_matches("a.b", "a.b"));
  EXPECT_FALSE(subject_matches("a.b", "a.c"));
  EXPECT_FALSE(subject_matches("a.b", "a.b.c"));
  EXPECT_FALSE(subject_matches("a.b.c", "a.b"));
  EXPECT_FALSE(subject_matches("a.b", "a"));
  EXPECT_FALSE(subject_matches("ab", "a"));
  EXPECT_FALSE(subject_matches("a", "ab"));
  EXPECT_FALSE(subject_matches("a.b", "a.bc"));
  EXPECT_FALSE(subject_matches("a.bc", "a.b"));
  EXPECT_FALSE(subject_matches("orders", "Orders"));
}

TEST(SubjectMatch, StarMatchesExactlyOneToken) {
  EXPECT_TRUE(subject_matches("*", "a"));
  EXPECT_FALSE(subject_matches("*", "a.b"));
  EXPECT_TRUE(subject_matches("a.*", "a.b"));
  EXPECT_TRUE(subject_matches("a.*", "a.anything-long"));
  EXPECT_FALSE(subject_matches("a.*", "a"));
  EXPECT_FALSE(subject_matches("a.*", "a.b.c"));
  EXPECT_FALSE(subject_matches("a.*", "b.c"));
  EXPECT_TRUE(subject_matches("*.b", "x.b"));
  EXPECT_FALSE(subject_matches("*.b", "x.c"));
  EXPECT_TRUE(subject_matches("a.*.c", "a.b.c"));
  EXPECT_FALSE(subject_matches("a.*.c", "a.b.d"));
  EXPECT_FALSE(subject_matches("a.*.c", "a.c"));
  EXPECT_TRUE(subject_matches("*.*", "x.y"));
  EXPECT_FALSE(subject_matches("*.*", "x"));
  EXPECT_FALSE(subject_matches("*.*", "x.y.z"));
}

TEST(SubjectMatch, GreaterMatchesOneOrMoreTokens) {
  EXPECT_TRUE(subject_matches(">", "a"));
  EXPECT_TRUE(subject_matches(">", "a.b.c"));
  EXPECT_TRUE(subject_matches("orders.>", "orders.eu"));
  EXPECT_TRUE(subject_matches("orders.>", "orders.eu.created"));
  EXPECT_FALSE(subject_matches("orders.>", "orders"));
  EXPECT_FALSE(subject_matches("orders.>", "order.eu"));
  EXPECT_FALSE(subject_matches("orders.>", "ordersx.eu"));
  EXPECT_TRUE(subject_matches("a.*.>", "a.b.c"));
  EXPECT_TRUE(subject_matches("a.*.>", "a.b.c.d"));
  EXPECT_FALSE(subject_matches("a.*.>", "a.b"));
  EXPECT_TRUE(subject_matches("*.>", "a.b"));
  EXPECT_FALSE(subject_matches("*.>", "a"));
}

TEST(SubjectMatch, AgreesWithTokenReferenceOnRandomInputs) {
  std::mt19937 random(3);
  const std::vector<std::string> subject_tokens = {"a", "b", "ab", "c"};
  const std::vector<std::string> pattern_tokens = {"a", "b", "ab", "c", "*", "*", ">"};
  int matches = 0;
  for (int round = 0; round < 20000; ++round) {
    std::string subject;
    const int subject_length = 1 + static_cast<int>(random() % 4);
    for (int i = 0; i < subject_length; ++i) {
      if (i) subject += '.';
      subject += subject_tokens[random() % subject_tokens.size()];
    }
    std::string pattern;
    const int pattern_length = 1 + static_cast<int>(random() % 4);
    for (int i = 0; i < pattern_length; ++i) {
      if (i) pattern += '.';
      std::string token = pattern_tokens[random() % pattern_tokens.size()];
      if (token == ">" && i + 1 != pattern_length) token = "*";
      pattern += token;
    }
    ASSERT_TRUE(validate_subject(subject).is_ok()) << subject;
    ASSERT_TRUE(validate_subject_pattern(pattern).is_ok()) << pattern;
    const bool expected = reference_matches(pattern, subject);
    ASSERT_EQ(subject_matches(pattern, subject), expected) << pattern << " vs " << subject;
    matches += expected;
  }
  // The generator produced both outcomes in quantity.
  EXPECT_GT(matches, 1000);
  EXPECT_LT(matches, 19000);
}

TEST(SubjectMatch, ErrorMessagesNameTheProblem) {
  EXPECT_NE(validate_subject("a..b").message().find("empty token"), std::string::npos);
  EXPECT_NE(validate_subject_pattern("a.>.b").message().find("last token"), std::string::npos);
  EXPECT_NE(validate_subject("a.*").message().find("wildcard"), std::string::npos);
}

}  // namespace
}  // namespace msgstore::base
