#include "engine/utf8.h"

#include <cstdint>

namespace tandem {
namespace {

// How a sequence's lead byte constrains it: its total length and the range
// its second byte must fall in (later bytes are always 0x80-0xBF).
struct LeadInfo {
  int length;  // 0: the byte cannot start a sequence
  uint8_t second_lo;
  uint8_t second_hi;
};

LeadInfo InfoForLead(uint8_t b) {
  if (b < 0x80) return {1, 0, 0};
  if (b >= 0xC2 && b <= 0xDF) return {2, 0x80, 0xBF};
  if (b == 0xE0) return {3, 0xA0, 0xBF};
  if (b == 0xED) return {3, 0x80, 0x9F};
  if (b >= 0xE1 && b <= 0xEF) return {3, 0x80, 0xBF};
  if (b == 0xF0) return {4, 0x90, 0xBF};
  if (b >= 0xF1 && b <= 0xF3) return {4, 0x80, 0xBF};
  if (b == 0xF4) return {4, 0x80, 0x8F};
  return {0, 0, 0};
}

// Examines the sequence starting at `pos`. Returns its length when it is a
// complete, valid character; otherwise returns 0 and sets `*bad_len` to the
// length of the maximal subpart to replace (>= 1), or to 0 when the input
// ended while the sequence was still well-formed.
size_t ScanChar(std::string_view s, size_t pos, size_t* bad_len) {
  const uint8_t lead = static_cast<uint8_t>(s[pos]);
  const LeadInfo info = InfoForLead(lead);
  if (info.length == 1) return 1;
  if (info.length == 0) {
    *bad_len = 1;
    return 0;
  }
  for (int k = 1; k < info.length; ++k) {
    if (pos + k >= s.size()) {
      *bad_len = 0;
      return 0;
    }
    const uint8_t b = static_cast<uint8_t>(s[pos + k]);
    const uint8_t lo = k == 1 ? info.second_lo : 0x80;
    const uint8_t hi = k == 1 ? info.second_hi : 0xBF;
    if (b < lo || b > hi) {
      *bad_len = k;
      return 0;
    }
  }
  return info.length;
}

}  // namespace

bool IsValidUtf8(std::string_view bytes) {
  size_t pos = 0;
  while (pos < bytes.size()) {
    size_t bad = 0;
    const size_t n = ScanChar(bytes, pos, &bad);
    if (n == 0) return false;
    pos += n;
  }
  return true;
}

size_t DecodeUtf8Char(std::string_view bytes, size_t pos, char32_t* cp) {
  const uint8_t b0 = static_cast<uint8_t>(bytes[pos]);
  if (b0 < 0x80) {
    *cp = b0;
    return 1;
  }
  const int n = b0 >= 0xF0 ? 4 : b0 >= 0xE0 ? 3 : 2;
  char32_t value = b0 & (0x7F >> n);
  for (int k = 1; k < n; ++k) {
    value = (value << 6) | (static_cast<uint8_t>(bytes[pos + k]) & 0x3F);
  }
  *cp = value;
  return n;
}

void AppendUtf8(char32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

size_t AppendCompleteUtf8Lossy(std::string_view bytes, std::string* out) {
  size_t pos = 0;
  while (pos < bytes.size()) {
    size_t bad = 0;
    const size_t n = ScanChar(bytes, pos, &bad);
    if (n > 0) {
      out->append(bytes.substr(pos, n));
      pos += n;
    } else if (bad > 0) {
      out->append(kReplacementChar);
      pos += bad;
    } else {
      break;  // incomplete at the end
    }
  }
  return pos;
}

void AppendUtf8Lossy(std::string_view bytes, std::string* out) {
  const size_t used = AppendCompleteUtf8Lossy(bytes, out);
  if (used < bytes.size()) out->append(kReplacementChar);
}

}  // namespace tandem
