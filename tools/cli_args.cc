#include "tools/cli_args.h"

#include <algorithm>
#include <filesystem>
#include <optional>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/flags/commandlineflag.h"
#include "absl/flags/reflection.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"

namespace tandem {
namespace {

bool InScope(const absl::CommandLineFlag& flag, const FlagScope& scope) {
  const std::string base =
      std::filesystem::path(flag.Filename()).filename().string();
  return std::find(scope.files.begin(), scope.files.end(), base) !=
         scope.files.end();
}

// The scope's prefix (std::string_view) as Abseil's string_view.
absl::string_view Prefix(const FlagScope& scope) {
  return absl::string_view(scope.prefix.data(), scope.prefix.size());
}

absl::CommandLineFlag* FindInScope(absl::string_view name,
                                   const FlagScope& scope) {
  absl::CommandLineFlag* flag =
      absl::FindCommandLineFlag(absl::StrCat(Prefix(scope), name));
  return flag != nullptr && InScope(*flag, scope) ? flag : nullptr;
}

// The name a user gives `flag` (underscore spelling): its name without the
// scope's prefix.
std::string PublicName(const absl::CommandLineFlag& flag,
                       const FlagScope& scope) {
  absl::string_view name = flag.Name();
  absl::ConsumePrefix(&name, Prefix(scope));
  return std::string(name);
}

std::string Dashed(absl::string_view name) {
  return absl::StrReplaceAll(name, {{"_", "-"}});
}

// One "--name[=value]" argument, its name in underscore spelling.
struct FlagArg {
  std::string name;
  std::optional<std::string> value;
};

FlagArg SplitFlagArg(absl::string_view arg) {
  arg.remove_prefix(absl::StartsWith(arg, "--") ? 2 : 1);
  FlagArg out;
  const size_t eq = arg.find('=');
  out.name = absl::StrReplaceAll(arg.substr(0, eq), {{"-", "_"}});
  if (eq != absl::string_view::npos)
    out.value = std::string(arg.substr(eq + 1));
  return out;
}

// `text` as lines of at most `width` columns (longer words stay whole),
// each starting with `indent` and ending in a newline.
std::string Wrap(const std::string& text, const std::string& indent,
                 size_t width) {
  std::string out, line;
  for (absl::string_view word :
       absl::StrSplit(text, absl::ByAnyChar(" \n"), absl::SkipEmpty())) {
    if (!line.empty() &&
        indent.size() + line.size() + 1 + word.size() > width) {
      absl::StrAppend(&out, indent, line, "\n");
      line.clear();
    }
    absl::StrAppend(&line, line.empty() ? "" : " ", word);
  }
  if (!line.empty()) absl::StrAppend(&out, indent, line, "\n");
  return out;
}

class Parser {
 public:
  Parser(absl::Span<char* const> args, const FlagScope& scope)
      : args_(args), scope_(scope) {}

  absl::StatusOr<ParsedArgs> Run() {
    for (i_ = 0; i_ < args_.size(); ++i_) {
      const absl::string_view arg = args_[i_];
      if (arg == "--") {
        for (++i_; i_ < args_.size(); ++i_)
          out_.positional.push_back(args_[i_]);
        break;
      }
      if (arg.size() < 2 || arg[0] != '-') {
        out_.positional.emplace_back(arg);
        continue;
      }
      absl::Status status = Flag(arg);
      if (!status.ok()) return status;
    }
    return std::move(out_);
  }

 private:
  absl::Status Flag(absl::string_view arg) {
    FlagArg parsed = SplitFlagArg(arg);
    if (parsed.name == "help" || parsed.name == "h" ||
        parsed.name == "helpfull") {
      out_.help = true;
      return absl::OkStatus();
    }
    absl::CommandLineFlag* flag = FindInScope(parsed.name, scope_);
    if (flag == nullptr && !parsed.value.has_value()) {
      // --noflag / --no-flag for a bool flag.
      for (absl::string_view prefix : {"no_", "no"}) {
        if (!absl::StartsWith(parsed.name, prefix)) continue;
        absl::CommandLineFlag* negated =
            FindInScope(parsed.name.substr(prefix.size()), scope_);
        if (negated != nullptr && negated->IsOfType<bool>()) {
          return Set(*negated, "false", arg);
        }
      }
    }
    if (flag == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown flag ", SplitAtEquals(arg)));
    }
    if (!parsed.value.has_value()) {
      if (flag->IsOfType<bool>()) return Set(*flag, "true", arg);
      if (i_ + 1 >= args_.size()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "flag --", Dashed(PublicName(*flag, scope_)), " needs a value"));
      }
      parsed.value = args_[++i_];
    }
    return Set(*flag, *parsed.value, arg);
  }

  static absl::string_view SplitAtEquals(absl::string_view arg) {
    return arg.substr(0, arg.find('='));
  }

  absl::Status Set(absl::CommandLineFlag& flag, const std::string& value,
                   absl::string_view arg) {
    const std::string name = PublicName(flag, scope_);
    const bool repeatable =
        std::find(scope_.repeatable.begin(), scope_.repeatable.end(), name) !=
        scope_.repeatable.end();
    if (!seen_.insert(name).second && !repeatable) {
      return absl::InvalidArgumentError(
          absl::StrCat("flag --", Dashed(name), " given more than once"));
    }
    std::string error;
    if (!flag.ParseFrom(value, &error)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "invalid value '", value, "' for --", Dashed(name), ": ", error));
    }
    if (repeatable) out_.repeated[name].push_back(value);
    return absl::OkStatus();
  }

  absl::Span<char* const> args_;
  const FlagScope& scope_;
  size_t i_ = 0;
  ParsedArgs out_;
  absl::flat_hash_set<std::string> seen_;
};

}  // namespace

absl::StatusOr<ParsedArgs> ParseArgs(absl::Span<char* const> args,
                                     const FlagScope& scope) {
  return Parser(args, scope).Run();
}

std::string FlagsHelp(const FlagScope& scope) {
  std::vector<const absl::CommandLineFlag*> flags;
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    if (InScope(*flag, scope) && absl::StartsWith(name, Prefix(scope))) {
      flags.push_back(flag);
    }
  }
  std::sort(flags.begin(), flags.end(),
            [](const auto* a, const auto* b) { return a->Name() < b->Name(); });
  std::string out;
  for (const absl::CommandLineFlag* flag : flags) {
    std::string value = flag->DefaultValue();
    if (flag->IsOfType<std::string>()) value = absl::StrCat("\"", value, "\"");
    absl::StrAppend(&out, "  --", Dashed(PublicName(*flag, scope)), "=", value,
                    "\n", Wrap(flag->Help(), "      ", 78));
  }
  return out;
}

}  // namespace tandem
