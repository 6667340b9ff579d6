#include "engine/tokenizer.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/bpe_tokenizer.h"
#include "engine/byte_tokenizer.h"
#include "engine/status_macros.h"
#include "engine/tokenizer_json.h"
#include "engine/utf8.h"

namespace tandem {
namespace {

constexpr std::string_view kBosNames[] = {"<s>", "<|begin_of_text|>", "<bos>"};
constexpr std::string_view kEosNames[] = {"</s>",       "<|end_of_text|>",
                                          "<|eot_id|>", "<|endoftext|>",
                                          "<|im_end|>", "<eos>"};

// The top-level member `key`, or null when absent.
const nlohmann::json& MemberOrNull(const nlohmann::json& root,
                                   std::string_view key) {
  static const nlohmann::json* const kNull = new nlohmann::json(nullptr);
  auto it = root.find(key);
  return it == root.end() ? *kNull : *it;
}

// Whether `root` is the default model's tokenizer.json shape (see
// tokenizer.h): a pure byte BPE model, no normalizer or pre-tokenizer, a
// ByteFallback (+ Fuse) decoder and added tokens above the bytes.
bool IsByteShape(const nlohmann::json& root, const TokenizerParts& parts) {
  if (!parts.model->is_pure_byte_model() || parts.normalizer != nullptr ||
      parts.pre_tokenizer != nullptr) {
    return false;
  }
  for (const AddedToken& token : parts.added.tokens()) {
    if (token.id < 256) return false;
  }
  const nlohmann::json fallback = {{"type", "ByteFallback"}};
  const nlohmann::json fuse = {{"type", "Fuse"}};
  const nlohmann::json& decoder = MemberOrNull(root, "decoder");
  if (decoder == fallback) return true;
  if (!decoder.is_object() || decoder.value("type", "") != "Sequence") {
    return false;
  }
  const nlohmann::json steps = decoder.value("decoders", nlohmann::json());
  return steps == nlohmann::json::array({fallback}) ||
         steps == nlohmann::json::array({fallback, fuse});
}

absl::StatusOr<TokenizerParts> ParseParts(const nlohmann::json& root) {
  if (!root.is_object()) {
    return JsonError("(top level)", "expected an object");
  }
  TokenizerParts parts;
  TANDEM_ASSIGN_OR_RETURN(
      parts.normalizer,
      ParseNormalizer(MemberOrNull(root, "normalizer"), "normalizer"));
  TANDEM_ASSIGN_OR_RETURN(
      parts.pre_tokenizer,
      ParsePreTokenizer(MemberOrNull(root, "pre_tokenizer"), "pre_tokenizer"));
  TANDEM_ASSIGN_OR_RETURN(const nlohmann::json* model,
                          RequireField(root, "model", ""));
  TANDEM_ASSIGN_OR_RETURN(parts.model, BpeModel::FromJson(*model));
  const BpeModel& bpe = *parts.model;
  TANDEM_ASSIGN_OR_RETURN(
      parts.added,
      AddedVocabulary::FromJson(
          MemberOrNull(root, "added_tokens"), parts.normalizer.get(),
          [&bpe](std::string_view token) { return bpe.TokenToId(token); },
          bpe.size()));
  TANDEM_ASSIGN_OR_RETURN(
      parts.post_processor,
      PostProcessor::FromJson(MemberOrNull(root, "post_processor"),
                              "post_processor"));
  TANDEM_ASSIGN_OR_RETURN(
      parts.decoder,
      TokenDecoder::FromJson(MemberOrNull(root, "decoder"), "decoder"));
  return parts;
}

std::optional<int32_t> LookUp(const TokenizerParts& parts,
                              std::string_view token) {
  if (auto id = parts.added.IdOf(token)) return id;
  return parts.model->TokenToId(token);
}

absl::StatusOr<int32_t> LookUpNamed(const TokenizerParts& parts,
                                    const std::string& token,
                                    std::string_view what) {
  if (auto id = LookUp(parts, token)) return *id;
  return absl::InvalidArgumentError(
      absl::StrCat("tokenizer_config.json: ", AbslView(what), ": '", token,
                   "' is not a token"));
}

// BOS and EOS ids, by the precedence LoadTokenizer documents.
absl::StatusOr<SpecialTokenIds> ResolveSpecialIds(
    const TokenizerParts& parts, const TokenizerOptions& options) {
  SpecialTokenIds ids;
  if (options.bos_token_id.has_value()) {
    ids.bos = options.bos_token_id;
  } else if (options.bos_token.has_value()) {
    TANDEM_ASSIGN_OR_RETURN(
        ids.bos, LookUpNamed(parts, *options.bos_token, "bos_token"));
  } else if (!parts.post_processor.prefix().empty()) {
    ids.bos = parts.post_processor.prefix().front();
  } else {
    for (std::string_view name : kBosNames) {
      if (auto id = parts.added.IdOf(name)) {
        ids.bos = id;
        break;
      }
    }
  }
  if (!options.eos_token_ids.empty()) {
    ids.eos = options.eos_token_ids;
  } else if (options.eos_token.has_value()) {
    TANDEM_ASSIGN_OR_RETURN(
        int32_t eos, LookUpNamed(parts, *options.eos_token, "eos_token"));
    ids.eos.push_back(eos);
  } else {
    for (std::string_view name : kEosNames) {
      const std::optional<int32_t> id = parts.added.IdOf(name);
      if (id && parts.added.FindById(*id)->special) ids.eos.push_back(*id);
    }
  }
  return ids;
}

// The tokenizer_config.json add_bos_token / add_eos_token template, used
// when tokenizer.json has no post_processor.
PostProcessor ConfigTemplate(const TokenizerOptions& options,
                             const SpecialTokenIds& ids) {
  std::vector<int32_t> prefix, suffix;
  if (options.add_bos_token && ids.bos.has_value()) prefix.push_back(*ids.bos);
  if (options.add_eos_token && !ids.eos.empty()) suffix.push_back(ids.eos[0]);
  return PostProcessor(std::move(prefix), std::move(suffix));
}

absl::Status CheckIdsInRange(const SpecialTokenIds& ids,
                             const PostProcessor& post, int32_t vocab_size) {
  std::vector<int32_t> all = post.prefix();
  all.insert(all.end(), post.suffix().begin(), post.suffix().end());
  all.insert(all.end(), ids.eos.begin(), ids.eos.end());
  if (ids.bos.has_value()) all.push_back(*ids.bos);
  for (int32_t id : all) {
    if (id < 0 || id >= vocab_size) {
      return absl::InvalidArgumentError(
          absl::StrCat("special token id ", id,
                       " is outside the vocabulary [0, ", vocab_size, ")"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<int32_t>> Tokenizer::Encode(
    std::string_view text, bool add_special_tokens) const {
  if (!IsValidUtf8(text)) {
    return absl::InvalidArgumentError("text to encode is not valid UTF-8");
  }
  return EncodeValid(text, add_special_tokens);
}

absl::StatusOr<std::string> Tokenizer::Decode(absl::Span<const int32_t> ids,
                                              bool skip_special_tokens) const {
  const int32_t size = vocab_size();
  for (int32_t id : ids) {
    if (id < 0 || id >= size) {
      return absl::InvalidArgumentError(absl::StrCat(
          "token id ", id, " is outside the vocabulary [0, ", size, ")"));
    }
  }
  return DecodeValid(ids, skip_special_tokens);
}

bool Tokenizer::IsEos(int32_t id) const {
  return std::find(eos_ids().begin(), eos_ids().end(), id) != eos_ids().end();
}

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizerFromParsedJson(
    const nlohmann::json& root, const TokenizerOptions& options) {
  TANDEM_ASSIGN_OR_RETURN(TokenizerParts parts, ParseParts(root));
  TANDEM_ASSIGN_OR_RETURN(SpecialTokenIds ids,
                          ResolveSpecialIds(parts, options));
  if (MemberOrNull(root, "post_processor").is_null()) {
    parts.post_processor = ConfigTemplate(options, ids);
  }
  int32_t vocab_size = parts.model->size();
  for (const AddedToken& token : parts.added.tokens()) {
    vocab_size = std::max(vocab_size, token.id + 1);
  }
  TANDEM_RETURN_IF_ERROR(
      CheckIdsInRange(ids, parts.post_processor, vocab_size));
  if (options.allow_byte_tokenizer && IsByteShape(root, parts)) {
    return std::make_unique<ByteTokenizer>(std::move(parts.added),
                                           std::move(parts.post_processor),
                                           std::move(ids));
  }
  return std::make_unique<BpeTokenizer>(std::move(parts), std::move(ids));
}

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizerFromJson(
    std::string_view json_text, const TokenizerOptions& options) {
  nlohmann::json root;
  try {
    root = nlohmann::json::parse(json_text);
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("tokenizer.json: malformed JSON: ", e.what()));
  }
  return LoadTokenizerFromParsedJson(root, options);
}

}  // namespace tandem
