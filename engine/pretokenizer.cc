#include "engine/pretokenizer.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "engine/byte_level.h"
#include "engine/status_macros.h"
#include "engine/tokenizer_json.h"
#include "engine/tokenizer_regex.h"

namespace tandem {
namespace {

// GPT-2's word pattern, which ByteLevel uses when use_regex is set.
constexpr std::string_view kGpt2Pattern =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|"
    "\\s+(?!\\S)|\\s+";

enum class Behavior {
  kRemoved,
  kIsolated,
  kMergedWithPrevious,
  kMergedWithNext,
  kContiguous,
};

// A [begin, end) part of a piece and whether the pattern matched it.
struct Part {
  size_t begin;
  size_t end;
  bool matched;
};

// Cuts `text` into alternating unmatched and matched parts covering it.
std::vector<Part> PartsFromMatches(size_t size,
                                   const std::vector<MatchSpan>& matches,
                                   bool invert) {
  std::vector<Part> parts;
  if (size == 0) return {{0, 0, invert}};
  size_t prev = 0;
  for (const auto& [begin, end] : matches) {
    if (begin != prev) parts.push_back({prev, begin, invert});
    parts.push_back({begin, end, !invert});
    prev = end;
  }
  if (prev != size) parts.push_back({prev, size, invert});
  return parts;
}

// Applies `behavior`: returns the parts to keep (merged as it says).
std::vector<Part> ApplyBehavior(std::vector<Part> parts, Behavior behavior) {
  std::vector<Part> out;
  bool previous_matched = false;
  switch (behavior) {
    case Behavior::kIsolated:
      return parts;
    case Behavior::kRemoved:
      for (const Part& p : parts) {
        if (!p.matched) out.push_back(p);
      }
      return out;
    case Behavior::kContiguous:
      for (const Part& p : parts) {
        if (p.matched == previous_matched && !out.empty()) {
          out.back().end = p.end;
        } else {
          out.push_back(p);
        }
        previous_matched = p.matched;
      }
      return out;
    case Behavior::kMergedWithPrevious:
      for (const Part& p : parts) {
        if (p.matched && !previous_matched && !out.empty()) {
          out.back().end = p.end;
        } else {
          out.push_back(p);
        }
        previous_matched = p.matched;
      }
      return out;
    case Behavior::kMergedWithNext:
      for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
        if (it->matched && !previous_matched && !out.empty()) {
          out.back().begin = it->begin;
        } else {
          out.push_back(*it);
        }
        previous_matched = it->matched;
      }
      return std::vector<Part>(out.rbegin(), out.rend());
  }
  return parts;
}

// Appends the non-empty words of `piece` cut at `matches` to `out`.
void CutPiece(const PreToken& piece, const std::vector<MatchSpan>& matches,
              Behavior behavior, bool invert, std::vector<PreToken>* out) {
  for (const Part& p : ApplyBehavior(
           PartsFromMatches(piece.text.size(), matches, invert), behavior)) {
    if (p.end == p.begin) continue;
    out->push_back({piece.text.substr(p.begin, p.end - p.begin),
                    piece.at_input_start && p.begin == 0});
  }
}

class SplitPreTokenizer : public PreTokenizer {
 public:
  SplitPreTokenizer(TokenizerRegex regex, Behavior behavior, bool invert)
      : regex_(std::move(regex)), behavior_(behavior), invert_(invert) {}

  absl::Status PreTokenize(std::vector<PreToken>* pieces) const override {
    std::vector<PreToken> out;
    std::vector<MatchSpan> matches;
    for (const PreToken& piece : *pieces) {
      matches.clear();
      TANDEM_RETURN_IF_ERROR(regex_.FindAll(piece.text, &matches));
      CutPiece(piece, matches, behavior_, invert_, &out);
    }
    *pieces = std::move(out);
    return absl::OkStatus();
  }

 private:
  TokenizerRegex regex_;
  Behavior behavior_;
  bool invert_;
};

class ByteLevelPreTokenizer : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(bool add_prefix_space,
                        std::optional<TokenizerRegex> regex)
      : add_prefix_space_(add_prefix_space), regex_(std::move(regex)) {}

  absl::Status PreTokenize(std::vector<PreToken>* pieces) const override {
    std::vector<PreToken> words;
    std::vector<MatchSpan> matches;
    for (PreToken& piece : *pieces) {
      if (add_prefix_space_ && piece.text.compare(0, 1, " ") != 0) {
        piece.text.insert(piece.text.begin(), ' ');
      }
      if (!regex_.has_value()) {
        if (!piece.text.empty()) words.push_back(std::move(piece));
        continue;
      }
      matches.clear();
      TANDEM_RETURN_IF_ERROR(regex_->FindAll(piece.text, &matches));
      CutPiece(piece, matches, Behavior::kIsolated, false, &words);
    }
    for (PreToken& word : words) {
      std::string mapped;
      mapped.reserve(word.text.size() * 2);
      AppendByteLevelChars(word.text, &mapped);
      word.text = std::move(mapped);
    }
    *pieces = std::move(words);
    return absl::OkStatus();
  }

 private:
  bool add_prefix_space_;
  std::optional<TokenizerRegex> regex_;
};

enum class PrependScheme { kAlways, kFirst, kNever };

class MetaspacePreTokenizer : public PreTokenizer {
 public:
  MetaspacePreTokenizer(std::string replacement, PrependScheme scheme,
                        std::optional<TokenizerRegex> splitter)
      : replacement_(std::move(replacement)),
        scheme_(scheme),
        splitter_(std::move(splitter)) {}

  absl::Status PreTokenize(std::vector<PreToken>* pieces) const override {
    std::vector<PreToken> words;
    std::vector<MatchSpan> matches;
    for (PreToken& piece : *pieces) {
      piece.text = absl::StrReplaceAll(piece.text, {{" ", replacement_}});
      const bool prepend =
          scheme_ == PrependScheme::kAlways ||
          (scheme_ == PrependScheme::kFirst && piece.at_input_start);
      if (prepend &&
          piece.text.compare(0, replacement_.size(), replacement_) != 0) {
        piece.text.insert(0, replacement_);
      }
      if (!splitter_.has_value()) {
        if (!piece.text.empty()) words.push_back(std::move(piece));
        continue;
      }
      matches.clear();
      TANDEM_RETURN_IF_ERROR(splitter_->FindAll(piece.text, &matches));
      CutPiece(piece, matches, Behavior::kMergedWithNext, false, &words);
    }
    *pieces = std::move(words);
    return absl::OkStatus();
  }

 private:
  std::string replacement_;
  PrependScheme scheme_;
  std::optional<TokenizerRegex> splitter_;
};

class SequencePreTokenizer : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(
      std::vector<std::unique_ptr<PreTokenizer>> parts)
      : parts_(std::move(parts)) {}

  absl::Status PreTokenize(std::vector<PreToken>* pieces) const override {
    for (const auto& part : parts_) {
      TANDEM_RETURN_IF_ERROR(part->PreTokenize(pieces));
    }
    return absl::OkStatus();
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> parts_;
};

absl::StatusOr<Behavior> ParseBehavior(const nlohmann::json& json,
                                       std::string_view path) {
  TANDEM_ASSIGN_OR_RETURN(std::string name,
                          RequireString(json, "behavior", path));
  if (name == "Removed") return Behavior::kRemoved;
  if (name == "Isolated") return Behavior::kIsolated;
  if (name == "MergedWithPrevious") return Behavior::kMergedWithPrevious;
  if (name == "MergedWithNext") return Behavior::kMergedWithNext;
  if (name == "Contiguous") return Behavior::kContiguous;
  return JsonError(JsonPath(path, "behavior"),
                   absl::StrCat("unknown split behavior '", name, "'"));
}

absl::StatusOr<std::unique_ptr<PreTokenizer>> ParseSplit(
    const nlohmann::json& json, std::string_view path) {
  bool is_regex = false;
  TANDEM_ASSIGN_OR_RETURN(std::string pattern,
                          PatternField(json, path, &is_regex));
  TANDEM_ASSIGN_OR_RETURN(Behavior behavior, ParseBehavior(json, path));
  TANDEM_ASSIGN_OR_RETURN(bool invert,
                          OptionalBool(json, "invert", path, false));
  TANDEM_ASSIGN_OR_RETURN(
      TokenizerRegex regex,
      TokenizerRegex::Compile(
          pattern, !is_regex,
          JsonPath(path, is_regex ? "pattern.Regex" : "pattern.String")));
  return std::make_unique<SplitPreTokenizer>(std::move(regex), behavior,
                                             invert);
}

absl::StatusOr<std::unique_ptr<PreTokenizer>> ParseByteLevel(
    const nlohmann::json& json, std::string_view path) {
  TANDEM_ASSIGN_OR_RETURN(bool prefix,
                          OptionalBool(json, "add_prefix_space", path, true));
  TANDEM_ASSIGN_OR_RETURN(bool use_regex,
                          OptionalBool(json, "use_regex", path, true));
  std::optional<TokenizerRegex> regex;
  if (use_regex) {
    TANDEM_ASSIGN_OR_RETURN(regex,
                            TokenizerRegex::Compile(kGpt2Pattern, false, path));
  }
  return std::make_unique<ByteLevelPreTokenizer>(prefix, std::move(regex));
}

absl::StatusOr<PrependScheme> ParsePrependScheme(const nlohmann::json& json,
                                                 std::string_view path) {
  if (json.contains("prepend_scheme")) {
    TANDEM_ASSIGN_OR_RETURN(std::string scheme,
                            RequireString(json, "prepend_scheme", path));
    if (scheme == "always") return PrependScheme::kAlways;
    if (scheme == "first") return PrependScheme::kFirst;
    if (scheme == "never") return PrependScheme::kNever;
    return JsonError(JsonPath(path, "prepend_scheme"),
                     absl::StrCat("unknown prepend_scheme '", scheme, "'"));
  }
  // Older files say add_prefix_space instead.
  TANDEM_ASSIGN_OR_RETURN(bool prefix,
                          OptionalBool(json, "add_prefix_space", path, true));
  return prefix ? PrependScheme::kAlways : PrependScheme::kNever;
}

absl::StatusOr<std::unique_ptr<PreTokenizer>> ParseMetaspace(
    const nlohmann::json& json, std::string_view path) {
  TANDEM_ASSIGN_OR_RETURN(std::string replacement,
                          RequireString(json, "replacement", path));
  if (replacement.empty()) {
    return JsonError(JsonPath(path, "replacement"), "must not be empty");
  }
  TANDEM_ASSIGN_OR_RETURN(PrependScheme scheme, ParsePrependScheme(json, path));
  TANDEM_ASSIGN_OR_RETURN(bool split, OptionalBool(json, "split", path, true));
  std::optional<TokenizerRegex> splitter;
  if (split) {
    TANDEM_ASSIGN_OR_RETURN(
        splitter, TokenizerRegex::Compile(replacement, /*literal=*/true,
                                          JsonPath(path, "replacement")));
  }
  return std::make_unique<MetaspacePreTokenizer>(std::move(replacement), scheme,
                                                 std::move(splitter));
}

absl::StatusOr<std::unique_ptr<PreTokenizer>> ParseSequence(
    const nlohmann::json& json, std::string_view path) {
  TANDEM_ASSIGN_OR_RETURN(const nlohmann::json* list,
                          RequireField(json, "pretokenizers", path));
  const std::string list_path = JsonPath(path, "pretokenizers");
  if (!list->is_array()) return JsonError(list_path, "expected a list");
  std::vector<std::unique_ptr<PreTokenizer>> parts;
  for (size_t i = 0; i < list->size(); ++i) {
    TANDEM_ASSIGN_OR_RETURN(
        auto part, ParsePreTokenizer((*list)[i], JsonPath(list_path, i)));
    if (part != nullptr) parts.push_back(std::move(part));
  }
  return std::make_unique<SequencePreTokenizer>(std::move(parts));
}

}  // namespace

absl::StatusOr<std::unique_ptr<PreTokenizer>> ParsePreTokenizer(
    const nlohmann::json& json, std::string_view path) {
  if (json.is_null()) return nullptr;
  TANDEM_ASSIGN_OR_RETURN(std::string type, ComponentType(json, path));
  if (type == "Split") return ParseSplit(json, path);
  if (type == "ByteLevel") return ParseByteLevel(json, path);
  if (type == "Metaspace") return ParseMetaspace(json, path);
  if (type == "Sequence") return ParseSequence(json, path);
  return UnsupportedType("pre_tokenizer", type);
}

}  // namespace tandem
