// Added tokens of a Hugging Face tokenizer.json ("added_tokens"): special
// tokens such as "<s>" or "<|im_start|>" and other whole tokens that are
// found in the input text before anything else happens, so that BPE never
// sees them.
//
// Matching follows Hugging Face: tokens with "normalized": false are found
// in the raw text; the text between them is then normalized and tokens with
// "normalized": true (their content normalized the same way) are found in
// it. At each position the leftmost match wins, the longest among those
// starting there, and the search resumes after it. "single_word" skips a
// match that touches a letter, digit or '_' on either side; "lstrip" and
// "rstrip" make the token swallow the white space before or after it.
//
// Ids, as Hugging Face assigns them when it loads a file: a token whose
// content is already in the model's vocabulary takes that id; the others
// take the next free ids from the vocabulary's size on, in list order. (The
// file's "id" fields agree with this in files Hugging Face wrote; where
// they do not, Hugging Face ignores them, and so does Tandem.) A token
// marked normalized decodes as its normalized content.
//
// Immutable after construction; thread-safe.
#ifndef TANDEM_ENGINE_ADDED_VOCABULARY_H_
#define TANDEM_ENGINE_ADDED_VOCABULARY_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/normalizer.h"
#include "engine/pretokenizer.h"
#include "nlohmann/json.hpp"

namespace tandem {

// One entry of "added_tokens"; the fields mean what they mean there.
struct AddedToken {
  int32_t id = 0;
  std::string content;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = false;
  bool special = false;
};

// One stretch of input: an added token, or normalized text between them.
struct Segment {
  std::optional<int32_t> token;  // set for an added token
  PreToken text;                 // otherwise: the normalized text
};

class AddedVocabulary {
 public:
  // An empty vocabulary: Split normalizes the whole text as one segment.
  AddedVocabulary() = default;

  // Builds the vocabulary from `tokens` with the ids they hold, normalizing
  // the content of tokens marked normalized with `normalizer` (may be
  // null). InvalidArgument if a token's content is empty, two tokens share
  // an id or a content, or the normalizer fails.
  static absl::StatusOr<AddedVocabulary> Create(std::vector<AddedToken> tokens,
                                                const Normalizer* normalizer);

  // Parses the "added_tokens" list of tokenizer.json (null means none),
  // assigns ids (see above) given the model's vocabulary `model_id_of` and
  // its size, and calls Create. InvalidArgument naming the field for a
  // malformed entry or a content listed twice.
  static absl::StatusOr<AddedVocabulary> FromJson(
      const nlohmann::json& list, const Normalizer* normalizer,
      absl::FunctionRef<std::optional<int32_t>(std::string_view)> model_id_of,
      int32_t model_size);

  // Cuts `text` into added tokens and normalized text segments, in order,
  // dropping empty text. REQUIRES: `text` is valid UTF-8 and `normalizer`
  // is the one given to Create. InvalidArgument if the normalizer fails.
  absl::Status Split(std::string_view text, const Normalizer* normalizer,
                     std::vector<Segment>* out) const;

  // The added token with this id, or nullptr.
  const AddedToken* FindById(int32_t id) const;

  // The id of the added token whose content is exactly `content`.
  std::optional<int32_t> IdOf(std::string_view content) const;

  // The string added token `id` decodes from: its content, normalized if
  // the token is marked normalized. REQUIRES: FindById(id) is not null.
  const std::string& DecodeString(int32_t id) const;

  const std::vector<AddedToken>& tokens() const { return tokens_; }

 private:
  // A byte trie over token contents that finds leftmost-longest matches.
  class Matcher {
   public:
    void Add(std::string_view content, int32_t index);
    bool empty() const { return nodes_.size() <= 1; }
    // The first match at or after `from`: [begin, end) and token index.
    bool Find(std::string_view text, size_t from, size_t* begin, size_t* end,
              int32_t* index) const;

   private:
    struct Node {
      absl::flat_hash_map<unsigned char, int32_t> children;
      int32_t token = -1;
    };
    std::vector<Node> nodes_ = std::vector<Node>(1);
    bool first_byte_[256] = {};
  };

  void SplitWith(const Matcher& matcher, const PreToken& piece,
                 std::vector<Segment>* out) const;

  std::vector<AddedToken> tokens_;
  std::vector<std::string> decode_strings_;  // parallel to tokens_
  absl::flat_hash_map<int32_t, size_t> by_id_;
  absl::flat_hash_map<std::string, int32_t> by_content_;
  Matcher raw_;         // normalized: false, on raw text
  Matcher normalized_;  // normalized: true, on normalized text
};

}  // namespace tandem

#endif  // TANDEM_ENGINE_ADDED_VOCABULARY_H_
