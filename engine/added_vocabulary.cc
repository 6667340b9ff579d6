#include "engine/added_vocabulary.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/status_macros.h"
#include "engine/tokenizer_json.h"
#include "engine/utf8.h"
#include "utf8proc.h"

namespace tandem {
namespace {

// Unicode White_Space.
bool IsWhiteSpace(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 ||
         c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 ||
         c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

// A letter, a digit or '_'.
bool IsWordChar(char32_t c) {
  if (c == '_') return true;
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(c))) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO:
      return true;
    default:
      return false;
  }
}

// The character that ends `text` (0 if empty). REQUIRES: valid UTF-8.
char32_t LastChar(std::string_view text) {
  if (text.empty()) return 0;
  size_t pos = text.size() - 1;
  while (pos > 0 && (static_cast<unsigned char>(text[pos]) & 0xC0) == 0x80) {
    --pos;
  }
  char32_t c = 0;
  DecodeUtf8Char(text, pos, &c);
  return c;
}

char32_t FirstChar(std::string_view text) {
  char32_t c = 0;
  if (!text.empty()) DecodeUtf8Char(text, 0, &c);
  return c;
}

// Start of the white space that ends text[0, end).
size_t WhiteSpaceRunBefore(std::string_view text, size_t end) {
  while (end > 0) {
    size_t pos = end - 1;
    while (pos > 0 && (static_cast<unsigned char>(text[pos]) & 0xC0) == 0x80) {
      --pos;
    }
    char32_t c = 0;
    DecodeUtf8Char(text, pos, &c);
    if (!IsWhiteSpace(c)) break;
    end = pos;
  }
  return end;
}

// End of the white space that starts at `begin`.
size_t WhiteSpaceRunAfter(std::string_view text, size_t begin) {
  while (begin < text.size()) {
    char32_t c = 0;
    const size_t len = DecodeUtf8Char(text, begin, &c);
    if (!IsWhiteSpace(c)) break;
    begin += len;
  }
  return begin;
}

absl::StatusOr<AddedToken> ParseAddedToken(const nlohmann::json& json,
                                           const std::string& path) {
  AddedToken token;
  TANDEM_ASSIGN_OR_RETURN(int64_t id, RequireInt(json, "id", path));
  if (id < 0 || id > INT32_MAX - 1) {
    return JsonError(JsonPath(path, "id"), "expected a non-negative id");
  }
  token.id = static_cast<int32_t>(id);
  TANDEM_ASSIGN_OR_RETURN(token.content, RequireString(json, "content", path));
  TANDEM_ASSIGN_OR_RETURN(token.special,
                          OptionalBool(json, "special", path, false));
  TANDEM_ASSIGN_OR_RETURN(token.single_word,
                          OptionalBool(json, "single_word", path, false));
  TANDEM_ASSIGN_OR_RETURN(token.lstrip,
                          OptionalBool(json, "lstrip", path, false));
  TANDEM_ASSIGN_OR_RETURN(token.rstrip,
                          OptionalBool(json, "rstrip", path, false));
  TANDEM_ASSIGN_OR_RETURN(
      token.normalized, OptionalBool(json, "normalized", path, !token.special));
  return token;
}

}  // namespace

void AddedVocabulary::Matcher::Add(std::string_view content, int32_t index) {
  int32_t node = 0;
  for (unsigned char b : content) {
    auto it = nodes_[node].children.find(b);
    if (it != nodes_[node].children.end()) {
      node = it->second;
      continue;
    }
    const auto child = static_cast<int32_t>(nodes_.size());
    nodes_[node].children.emplace(b, child);
    nodes_.emplace_back();
    node = child;
  }
  nodes_[node].token = index;
  first_byte_[static_cast<unsigned char>(content[0])] = true;
}

bool AddedVocabulary::Matcher::Find(std::string_view text, size_t from,
                                    size_t* begin, size_t* end,
                                    int32_t* index) const {
  for (size_t start = from; start < text.size(); ++start) {
    if (!first_byte_[static_cast<unsigned char>(text[start])]) continue;
    int32_t node = 0;
    int32_t best = -1;
    size_t best_end = 0;
    for (size_t pos = start; pos < text.size(); ++pos) {
      const auto& children = nodes_[node].children;
      auto it = children.find(static_cast<unsigned char>(text[pos]));
      if (it == children.end()) break;
      node = it->second;
      if (nodes_[node].token >= 0) {
        best = nodes_[node].token;
        best_end = pos + 1;
      }
    }
    if (best >= 0) {
      *begin = start;
      *end = best_end;
      *index = best;
      return true;
    }
  }
  return false;
}

absl::StatusOr<AddedVocabulary> AddedVocabulary::Create(
    std::vector<AddedToken> tokens, const Normalizer* normalizer) {
  AddedVocabulary vocab;
  vocab.tokens_ = std::move(tokens);
  for (size_t i = 0; i < vocab.tokens_.size(); ++i) {
    const AddedToken& token = vocab.tokens_[i];
    if (token.content.empty() || !IsValidUtf8(token.content)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "added token ", token.id, ": content must be non-empty UTF-8"));
    }
    if (!vocab.by_id_.emplace(token.id, i).second ||
        !vocab.by_content_.emplace(token.content, token.id).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("added token '", token.content, "' (id ", token.id,
                       "): id or content used twice"));
    }
    std::string pattern = token.content;
    if (token.normalized && normalizer != nullptr) {
      TANDEM_RETURN_IF_ERROR(normalizer->Normalize(&pattern));
    }
    vocab.decode_strings_.push_back(pattern);
    if (pattern.empty()) continue;
    (token.normalized ? vocab.normalized_ : vocab.raw_)
        .Add(pattern, static_cast<int32_t>(i));
  }
  return vocab;
}

absl::StatusOr<AddedVocabulary> AddedVocabulary::FromJson(
    const nlohmann::json& list, const Normalizer* normalizer,
    absl::FunctionRef<std::optional<int32_t>(std::string_view)> model_id_of,
    int32_t model_size) {
  if (list.is_null()) return Create({}, normalizer);
  if (!list.is_array()) return JsonError("added_tokens", "expected a list");
  std::vector<AddedToken> tokens;
  absl::flat_hash_map<std::string, size_t> seen_contents;
  std::optional<int32_t> max_id;
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string path = JsonPath("added_tokens", i);
    TANDEM_ASSIGN_OR_RETURN(AddedToken token, ParseAddedToken(list[i], path));
    if (auto id = model_id_of(token.content)) {
      token.id = *id;
    } else if (!max_id.has_value() || *max_id < model_size) {
      token.id = model_size;
    } else {
      token.id = *max_id + 1;
    }
    max_id = std::max(max_id.value_or(token.id), token.id);
    if (!seen_contents.emplace(token.content, i).second) {
      return JsonError(JsonPath(path, "content"),
                       absl::StrCat("'", token.content, "' is listed twice"));
    }
    tokens.push_back(std::move(token));
  }
  return Create(std::move(tokens), normalizer);
}

void AddedVocabulary::SplitWith(const Matcher& matcher, const PreToken& piece,
                                std::vector<Segment>* out) const {
  const std::string_view text = piece.text;
  size_t done = 0;    // text before this is emitted
  size_t search = 0;  // where the next search starts
  size_t begin = 0, end = 0;
  int32_t index = 0;
  while (search < text.size() &&
         matcher.Find(text, search, &begin, &end, &index)) {
    const AddedToken& token = tokens_[index];
    search = end;
    if (token.single_word &&
        ((begin > 0 && IsWordChar(LastChar(text.substr(0, begin)))) ||
         (end < text.size() && IsWordChar(FirstChar(text.substr(end)))))) {
      continue;
    }
    if (token.lstrip) begin = std::max(WhiteSpaceRunBefore(text, begin), done);
    if (token.rstrip) end = WhiteSpaceRunAfter(text, end);
    if (begin > done) {
      out->push_back({std::nullopt,
                      {std::string(text.substr(done, begin - done)),
                       piece.at_input_start && done == 0}});
    }
    out->push_back({token.id, {}});
    done = end;
    search = end;
  }
  if (done < text.size()) {
    out->push_back(
        {std::nullopt,
         {std::string(text.substr(done)), piece.at_input_start && done == 0}});
  }
}

absl::Status AddedVocabulary::Split(std::string_view text,
                                    const Normalizer* normalizer,
                                    std::vector<Segment>* out) const {
  std::vector<Segment> raw;
  SplitWith(raw_, PreToken{std::string(text), true}, &raw);
  for (Segment& segment : raw) {
    if (segment.token.has_value()) {
      out->push_back(std::move(segment));
      continue;
    }
    if (normalizer != nullptr) {
      TANDEM_RETURN_IF_ERROR(normalizer->Normalize(&segment.text.text));
    }
    if (segment.text.text.empty()) continue;
    if (normalized_.empty()) {
      out->push_back(std::move(segment));
    } else {
      SplitWith(normalized_, segment.text, out);
    }
  }
  return absl::OkStatus();
}

const std::string& AddedVocabulary::DecodeString(int32_t id) const {
  return decode_strings_[by_id_.at(id)];
}

const AddedToken* AddedVocabulary::FindById(int32_t id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &tokens_[it->second];
}

std::optional<int32_t> AddedVocabulary::IdOf(std::string_view content) const {
  auto it = by_content_.find(absl::string_view(content.data(), content.size()));
  if (it == by_content_.end()) return std::nullopt;
  return it->second;
}

}  // namespace tandem
