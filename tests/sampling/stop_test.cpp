// Stop strings over a detokenized stream, and end-of-generation ids.
#include "runtime/sampling/stop.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace tern::sampling {
namespace {

// Feeds `pieces` and returns what was shown (flushed at the end unless stopped).
std::string feed(StopStrings &s, const std::vector<std::string> &pieces) {
  std::string shown;
  for (const std::string &p : pieces) {
    StopStrings::Step st = s.push(p);
    shown += st.text;
    if (st.stopped)
      return shown;
  }
  return shown + s.flush();
}

TEST(StopStrings, NoStopStringsPassEverythingThrough) {
  StopStrings s;
  EXPECT_EQ(s.push("Hello").text, "Hello");
  EXPECT_EQ(s.withheld(), 0u);
  EXPECT_FALSE(s.stopped());
}

TEST(StopStrings, MatchInsideOnePiece) {
  StopStrings s({"</s>"});
  StopStrings::Step st = s.push("Hello</s>world");
  EXPECT_TRUE(st.stopped);
  EXPECT_EQ(st.text, "Hello");
  EXPECT_TRUE(s.stopped());
  EXPECT_TRUE(s.push("more").stopped);
  EXPECT_EQ(s.push("more").text, "");
  EXPECT_EQ(s.flush(), "");
}

TEST(StopStrings, MatchSpanningTokensIsWithheldThenDropped) {
  StopStrings s({"User:"});
  StopStrings::Step a = s.push("Fine. Us");
  EXPECT_EQ(a.text, "Fine. ");
  EXPECT_FALSE(a.stopped);
  EXPECT_EQ(s.withheld(), 2u);
  StopStrings::Step b = s.push("er");
  EXPECT_EQ(b.text, "");
  EXPECT_EQ(s.withheld(), 4u);
  StopStrings::Step c = s.push(": hi");
  EXPECT_TRUE(c.stopped);
  EXPECT_EQ(c.text, "");
}

TEST(StopStrings, WithheldPrefixIsReleasedWhenItDiverges) {
  StopStrings s({"User:"});
  EXPECT_EQ(s.push("a U").text, "a ");
  EXPECT_EQ(s.push("se").text, "");
  StopStrings::Step st = s.push("ful");
  EXPECT_FALSE(st.stopped);
  EXPECT_EQ(st.text, "Useful");
  EXPECT_EQ(s.withheld(), 0u);
}

TEST(StopStrings, RestartsInsideAWithheldPrefix) {
  // "ababc" contains "abc" starting inside the first withheld "ab".
  StopStrings s({"abc"});
  EXPECT_EQ(feed(s, {"x", "a", "b", "a", "b", "c", "tail"}), "xab");
  EXPECT_TRUE(s.stopped());
}

TEST(StopStrings, EarliestOfSeveralStopStringsWins) {
  StopStrings s({"world", "lo w", "\n\n"});
  EXPECT_EQ(feed(s, {"hel", "lo", " wor", "ld"}), "hel");
  StopStrings t({"world", "\n\n"});
  EXPECT_EQ(feed(t, {"a\n", "\nworld"}), "a");
}

TEST(StopStrings, FlushReleasesAPrefixThatNeverCompleted) {
  StopStrings s({"<|eot_id|>"});
  std::string shown = s.push("done <|eot").text;
  EXPECT_EQ(shown, "done ");
  EXPECT_EQ(s.flush(), "<|eot");
  EXPECT_FALSE(s.stopped());
}

TEST(StopStrings, EmptyStopStringsAreIgnoredAndResetWorks) {
  StopStrings s({"", "X"});
  EXPECT_EQ(feed(s, {"abc", "dXe"}), "abcd");
  s.reset();
  EXPECT_FALSE(s.stopped());
  EXPECT_EQ(feed(s, {"no stop"}), "no stop");
}

TEST(StopStrings, ByteLevelMatchOnUtf8) {
  StopStrings s({"\xC3\xA9t\xC3\xA9"}); // "été"
  EXPECT_EQ(feed(s, {"un \xC3\xA9", "t", "\xC3\xA9 chaud"}), "un ");
}

TEST(StopStrings, EveryCutOfTheStreamGivesTheSameText) {
  // Whatever the token boundaries, the shown text is the text before the
  // first stop string.
  const std::string text = "The answer is 42.\nUser: next question\nAssistant:";
  const std::vector<std::string> stops = {"\nUser:", "Assistant:"};
  const std::string want = "The answer is 42.";
  for (size_t cut1 = 0; cut1 <= text.size(); ++cut1)
    for (size_t cut2 = cut1; cut2 <= text.size(); cut2 += 3) {
      StopStrings s(stops);
      const std::string got =
          feed(s, {text.substr(0, cut1), text.substr(cut1, cut2 - cut1), text.substr(cut2)});
      ASSERT_EQ(got, want) << cut1 << " " << cut2;
      ASSERT_TRUE(s.stopped());
    }
}

TEST(EndOfGeneration, IdsSortedUniqueNegativesIgnored) {
  const int32_t ids[] = {128009, -1, 128001, 128009};
  EndOfGeneration e(ids);
  EXPECT_TRUE(e.contains(128001));
  EXPECT_TRUE(e.contains(128009));
  EXPECT_FALSE(e.contains(-1));
  EXPECT_FALSE(e.contains(0));
  EXPECT_EQ(e.ids().size(), 2u);
  EXPECT_FALSE(EndOfGeneration().contains(0));
}

} // namespace
} // namespace tern::sampling
