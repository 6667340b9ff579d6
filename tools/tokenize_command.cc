// `tandem tokenize`: text to token ids as a JSON array, or (--decode) a
// JSON array of ids back to text. See docs/cli.md.
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"
#include "tools/cli_args.h"
#include "tools/cli_common.h"
#include "tools/commands.h"

ABSL_FLAG(std::string, tokenizer, "models/fortune",
          "a tokenizer.json file, or a model directory holding one");
ABSL_FLAG(bool, decode, false,
          "read a JSON array of token ids on stdin and print their text");
ABSL_FLAG(std::string, text, "", "encode this text instead of reading stdin");
ABSL_FLAG(bool, special_tokens, true,
          "encoding: add the tokenizer's special tokens (e.g. BOS); "
          "decoding: print special tokens' text (--nospecial-tokens skips "
          "them)");

namespace tandem {
namespace {

constexpr std::string_view kCommand = "tokenize";

const FlagScope& Scope() {
  static const FlagScope* scope = new FlagScope{{"tokenize_command.cc"}, {}};
  return *scope;
}

constexpr char kUsage[] =
    "Usage: tandem tokenize [--tokenizer PATH] [--text TEXT] < text\n"
    "       tandem tokenize [--tokenizer PATH] --decode < ids.json\n\n"
    "Encodes the text on stdin (all of it, a trailing newline included) or\n"
    "--text, printing the token ids as a JSON array; with --decode, reads a\n"
    "JSON array of ids and prints their text.\n\nFlags:\n";

// The ids of a JSON array of integers.
absl::StatusOr<std::vector<int32_t>> ParseIds(std::string_view text) {
  nlohmann::json json = nlohmann::json::parse(text, nullptr,
                                              /*allow_exceptions=*/false);
  if (json.is_discarded()) {
    return absl::InvalidArgumentError("stdin is not valid JSON");
  }
  if (!json.is_array()) {
    return absl::InvalidArgumentError(
        "stdin must hold a JSON array of token ids");
  }
  std::vector<int32_t> ids;
  for (size_t i = 0; i < json.size(); ++i) {
    const nlohmann::json& id = json[i];
    if (!id.is_number_integer() || id.get<int64_t>() < 0 ||
        id.get<int64_t>() > INT32_MAX) {
      return absl::InvalidArgumentError(
          absl::StrCat("element ", i, " (", id.dump(), ") is not a token id"));
    }
    ids.push_back(id.get<int32_t>());
  }
  return ids;
}

absl::StatusOr<std::string> Run(const Tokenizer& tokenizer,
                                const std::string& input, bool decode) {
  const bool special = absl::GetFlag(FLAGS_special_tokens);
  if (decode) {
    absl::StatusOr<std::vector<int32_t>> ids = ParseIds(input);
    if (!ids.ok()) return ids.status();
    return tokenizer.Decode(*ids, /*skip_special_tokens=*/!special);
  }
  absl::StatusOr<std::vector<int32_t>> ids = tokenizer.Encode(input, special);
  if (!ids.ok()) return ids.status();
  return absl::StrCat("[", absl::StrJoin(*ids, ","), "]\n");
}

int Tokenize() {
  const bool decode = absl::GetFlag(FLAGS_decode);
  const std::string text_flag = absl::GetFlag(FLAGS_text);
  if (decode && !text_flag.empty()) {
    return ReportError(
        kCommand,
        absl::InvalidArgumentError("--text and --decode do not go together"),
        kExitUsageError);
  }
  absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer =
      LoadTokenizer(absl::GetFlag(FLAGS_tokenizer));
  if (!tokenizer.ok()) {
    return ReportError(kCommand, tokenizer.status(), kExitRuntimeError);
  }
  absl::StatusOr<std::string> input =
      text_flag.empty() ? ReadInput("-")
                        : absl::StatusOr<std::string>(text_flag);
  if (!input.ok())
    return ReportError(kCommand, input.status(), kExitRuntimeError);
  absl::StatusOr<std::string> output = Run(**tokenizer, *input, decode);
  if (!output.ok()) {
    return ReportError(kCommand, output.status(), kExitRuntimeError);
  }
  absl::Status written = WriteStdout(*output);
  if (!written.ok()) return ReportError(kCommand, written, kExitRuntimeError);
  return 0;
}

}  // namespace

int RunTokenizeCommand(absl::Span<char* const> args) {
  int exit_code = 0;
  std::optional<ParsedArgs> parsed =
      ParseCommandArgs(args, Scope(), kCommand, kUsage, &exit_code);
  if (!parsed.has_value()) return exit_code;
  if (!parsed->positional.empty()) {
    return ReportError(kCommand,
                       absl::InvalidArgumentError(absl::StrCat(
                           "unexpected argument '", parsed->positional[0],
                           "' (text is read from stdin or --text)")),
                       kExitUsageError);
  }
  return Tokenize();
}

}  // namespace tandem
