// Tokenizer built from GGUF metadata (tokenizer.ggml.*), behaving like
// llama.cpp's for the vocabularies BitNet models ship:
//
//  * "gpt2": GPT-2 style byte-level BPE. Merges are ranked by their index in
//    tokenizer.ggml.merges. The pre-tokenizer is chosen by
//    tokenizer.ggml.pre:
//      - "default" (or missing): llama.cpp's default pipeline, four regexes
//        applied one after the other: [\p{P}$+<=>^~|]+, the GPT-2 regex,
//        \p{N}+, [0-9][0-9][0-9];
//      - "gpt-2" / "gpt2": the GPT-2 regex
//        's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)
//      - "llama-bpe" / "llama3" / "llama-v3" / "falcon3": LLaMA-3's regex
//        (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
//        ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//        and "ignore merges": a pre-token that is itself a vocabulary entry is
//        emitted whole.
//    Each regex splits every chunk produced by the previous one into its
//    matches; text between matches stays a chunk of its own (llama.cpp's
//    unicode_regex_split). Regexes run on PCRE2 (UTF + UCP, JIT when
//    available); \s is spelled out as llama.cpp's whitespace set.
//  * "llama": SentencePiece-style BPE: text gets a leading space
//    (tokenizer.ggml.add_space_prefix, default true), spaces become U+2581
//    "▁", adjacent symbols merge while the merged text is a token, highest
//    tokenizer.ggml.scores first; whatever does not form a token falls back
//    to byte tokens <0xXX> (or the unknown token when the vocabulary has
//    none).
//
// Special tokens: tokens of type CONTROL / UNKNOWN are recognised in the input
// text only when parseSpecial is set (off by default, as in llama.cpp);
// USER_DEFINED tokens are always split out first. Longer special tokens are
// matched first, like llama.cpp's tokenizer_st_partition.
//
// Invalid UTF-8 in the input never fails and is not replaced: every byte that
// is not part of a well-formed UTF-8 sequence becomes a pre-token of its own
// and is encoded as that byte's token (byte-level BPE) or byte-fallback token
// (SentencePiece), so decode(encode(s)) == s for any bytes s when the
// vocabulary has all byte tokens. (llama.cpp replaces such bytes by U+FFFD
// before tokenizing instead.)
//
// Decoding: decode() concatenates token pieces and returns raw bytes (a cut
// in the middle of a multi-byte character stays cut). StreamDecoder is the
// incremental form for generation: it returns only complete, valid UTF-8,
// holding back an incomplete sequence until the next token completes it.
//
// Thread safety: a Tokenizer is immutable after construction; encode/decode
// may be called concurrently. A StreamDecoder is single-threaded state.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace tern::gguf {
class File;
}

namespace tern::tokenizer {

// tokenizer.ggml.token_type values (llama.cpp's llama_token_type).
enum class TokenType : int32_t {
  Undefined = 0,
  Normal = 1,
  Unknown = 2,
  Control = 3,
  UserDefined = 4,
  Unused = 5,
  Byte = 6,
};

enum class VocabKind { BytePairGpt2, SentencePiece };
enum class PreTokenizerKind { Default, Gpt2, Llama3, None };

// The vocabulary as plain data: what fromGGUF reads from the metadata, and
// what tests (or other front ends) can fill in directly. Key names in errors
// are the GGUF ones (tokenizer.ggml.*).
struct VocabData {
  std::string model = "gpt2";      // tokenizer.ggml.model: "gpt2" | "llama"
  std::string pre;                 // tokenizer.ggml.pre ("" = default)
  std::vector<std::string> tokens; // tokenizer.ggml.tokens (required)
  std::vector<int32_t> tokenTypes; // tokenizer.ggml.token_type (empty: all normal)
  std::vector<float> scores;       // tokenizer.ggml.scores (empty: all 0)
  std::vector<std::string> merges; // tokenizer.ggml.merges ("left right"; gpt2 only)
  // Special ids; nullopt = not given (model defaults apply: SentencePiece
  // uses bos 1, eos 2, unk 0 when the vocabulary is large enough).
  std::optional<int64_t> bos, eos, eot, eom, unk, pad;
  std::optional<bool> addBos, addEos, addSpacePrefix;
};

struct DecodeOptions {
  // Render CONTROL/UNKNOWN tokens as their text (e.g. "<|eot_id|>") instead
  // of nothing.
  bool renderSpecial = false;
  // SentencePiece with add_space_prefix: drop one leading space from the
  // first text produced (undoing the prefix encode added). Ignored otherwise.
  bool stripLeadingSpace = true;
  // llama_detokenize's clean_up_tokenization_spaces passes (" ." -> ".",
  // " 's" -> "'s", ...). Lossy; off by default.
  bool cleanSpaces = false;
};

namespace detail {
// Transparent hashing so that maps keyed by std::string accept
// std::string_view lookups without building a string.
struct SvHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
struct SvEq {
  using is_transparent = void;
  bool operator()(std::string_view a, std::string_view b) const { return a == b; }
};
} // namespace detail

class Tokenizer {
public:
  // Reads tokenizer.ggml.* from the file. Errors name the key at fault.
  static absl::StatusOr<Tokenizer> fromGGUF(const gguf::File &file);
  // Builds from plain data (same validation as fromGGUF).
  static absl::StatusOr<Tokenizer> fromVocab(VocabData vocab);

  Tokenizer(Tokenizer &&) noexcept;
  Tokenizer &operator=(Tokenizer &&) noexcept;
  Tokenizer(const Tokenizer &);
  Tokenizer &operator=(const Tokenizer &);
  ~Tokenizer();

  // Tokenizes `text` (any bytes). addSpecial: prepend BOS when the metadata
  // says so (tokenizer.ggml.add_bos_token; default true for "llama" and
  // LLaMA-3 vocabularies, false for other gpt2 ones) and append EOS when
  // tokenizer.ggml.add_eos_token is true -- llama.cpp's add_special.
  // parseSpecial: recognise control-token text like "<|begin_of_text|>".
  std::vector<int32_t> encode(std::string_view text, bool addSpecial,
                              bool parseSpecial = false) const;

  // Concatenated pieces of `ids` (raw bytes). Ids out of range are skipped.
  std::string decode(std::span<const int32_t> ids, const DecodeOptions &opts = {}) const;

  // The vocabulary entry as stored in GGUF (e.g. "Ġthe", "▁the", "<0x0A>").
  // Empty for ids out of range.
  std::string_view tokenText(int32_t id) const;
  // The bytes this token contributes to decoded text ("" for control tokens
  // unless renderSpecial). Empty for ids out of range.
  std::string_view tokenPiece(int32_t id, bool renderSpecial = false) const;
  TokenType tokenType(int32_t id) const;
  std::optional<int32_t> findToken(std::string_view text) const;

  int32_t bos() const { return bos_; } // -1 when the model has none
  int32_t eos() const { return eos_; }
  int32_t eot() const { return eot_; }
  int32_t eom() const { return eom_; }
  int32_t unk() const { return unk_; }
  int32_t pad() const { return pad_; }
  bool addBos() const { return addBos_; }
  bool addEos() const { return addEos_; }
  bool addSpacePrefix() const { return addSpacePrefix_; }
  // End of generation: eos, eot, eom and tokens named like "<|eot_id|>",
  // "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|eom_id|>",
  // "<EOT>" (llama.cpp's list).
  bool isEog(int32_t id) const { return eog_.contains(id); }
  size_t vocabSize() const { return tokens_.size(); }
  VocabKind kind() const { return kind_; }
  PreTokenizerKind preTokenizer() const { return pre_; }
  size_t numMerges() const { return merges_.size(); }

  // Implementation detail shared with the .cpp (compiled regex pipeline).
  struct PreTok;

private:
  Tokenizer();
  struct Fragment {
    bool isToken;
    int32_t id;
    size_t off, len;
  };
  struct MergeInfo {
    int32_t rank;
    int32_t result;
  };
  void partition(std::string_view text, bool parseSpecial, std::vector<Fragment> &out) const;
  void encodeBpeFragment(std::string_view text, std::vector<int32_t> &out) const;
  void bpeWord(std::string_view word, std::vector<int32_t> &out) const;
  void encodeSpmFragment(std::string_view text, bool prefixSpace, std::vector<int32_t> &out) const;
  void emitSpmByte(uint8_t b, std::vector<int32_t> &out) const;
  std::string toByteLevel(std::string_view raw) const;
  absl::Status build(VocabData &v);

  VocabKind kind_ = VocabKind::BytePairGpt2;
  PreTokenizerKind pre_ = PreTokenizerKind::Default;
  bool ignoreMerges_ = false;
  std::vector<std::string> tokens_;
  std::vector<TokenType> types_;
  std::vector<float> scores_;
  std::vector<std::string> pieces_; // decoded bytes (special tokens: "")
  absl::flat_hash_map<std::string, int32_t, detail::SvHash, detail::SvEq> tokenToId_;
  absl::flat_hash_map<uint64_t, MergeInfo> merges_; // (left<<32|right)
  std::vector<int32_t> specials_;                   // CONTROL/UNKNOWN/USER_DEFINED, longest first
  bool hasUserDefined_ = false;
  int32_t byteToken_[256]; // gpt2: token of byte b; spm: <0xXX> or -1
  int32_t bos_ = -1, eos_ = -1, eot_ = -1, eom_ = -1, unk_ = -1, pad_ = -1;
  bool addBos_ = false, addEos_ = false, addSpacePrefix_ = false;
  absl::flat_hash_set<int32_t> eog_;
  std::shared_ptr<const PreTok> preTok_;
};

// Incremental detokenizer: push() token ids one at a time and get back the
// text they complete, always valid UTF-8. Bytes of an unfinished multi-byte
// sequence are held back until a later token completes them; bytes that can
// never form a valid sequence come out as U+FFFD (one per maximal invalid
// subpart, as Unicode recommends). flush() returns what is held back (an
// incomplete tail becomes U+FFFD) and resets the state.
class StreamDecoder {
public:
  explicit StreamDecoder(const Tokenizer &tok, DecodeOptions opts = {});
  std::string push(int32_t id);
  std::string flush();
  void reset();
  // Bytes currently held back (0..3).
  size_t pending() const { return pending_.size(); }

private:
  const Tokenizer *tok_;
  DecodeOptions opts_;
  bool atStart_ = true;
  std::string pending_;
};

namespace utf8 {
// Length of the well-formed UTF-8 sequence at the start of s (1..4), or 0
// when s is empty or starts with an ill-formed sequence.
size_t validPrefixLen(std::string_view s);
// Appends s to out with every ill-formed subpart replaced by U+FFFD.
// When holdIncomplete is set, an incomplete but so-far valid sequence at the
// very end is not written; its length is returned.
size_t sanitize(std::string_view s, std::string &out, bool holdIncomplete);
} // namespace utf8

} // namespace tern::tokenizer
