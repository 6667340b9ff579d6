#include "engine/byte_level.h"

#include <array>
#include <cstdint>

#include "engine/utf8.h"

namespace tandem {
namespace {

bool StandsForItself(int b) {
  return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) ||
         (b >= 0xAE && b <= 0xFF);
}

struct Tables {
  Tables() {
    int next = 0x100;
    for (int b = 0; b < 256; ++b) {
      const char32_t cp = StandsForItself(b) ? b : next++;
      AppendUtf8(cp, &chars[b]);
      byte_of[cp] = static_cast<int16_t>(b);
    }
  }
  std::array<std::string, 256> chars;
  // Indexed by code point; -1 where the code point is not in the alphabet.
  std::array<int16_t, 0x144> byte_of = MakeUnset();

  static std::array<int16_t, 0x144> MakeUnset() {
    std::array<int16_t, 0x144> table;
    table.fill(-1);
    return table;
  }
};

const Tables& GetTables() {
  static const Tables* const tables = new Tables();
  return *tables;
}

}  // namespace

void AppendByteLevelChars(std::string_view bytes, std::string* out) {
  const Tables& tables = GetTables();
  for (unsigned char b : bytes) out->append(tables.chars[b]);
}

bool AppendByteLevelBytes(std::string_view token, std::string* out) {
  const Tables& tables = GetTables();
  const size_t original = out->size();
  size_t pos = 0;
  while (pos < token.size()) {
    char32_t cp = 0;
    pos += DecodeUtf8Char(token, pos, &cp);
    if (cp >= tables.byte_of.size() || tables.byte_of[cp] < 0) {
      out->resize(original);
      return false;
    }
    out->push_back(static_cast<char>(tables.byte_of[cp]));
  }
  return true;
}

}  // namespace tandem
