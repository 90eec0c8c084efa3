// File: formats/csv.cc
#include <charconv>
#include <cmath>

#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "base/status_macros.h"
#include "formats/formats.h"
#include "formats/reader.h"

namespace alignd::formats {

using internal::Invalid;

absl::StatusOr<CsvTable> ParseCsv(absl::string_view text, const std::string& name,
                                  const CsvOptions& options) {
  CsvTable t;
  int64_t line_no = 0;
  t.columns = -1;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_no;
    if (options.header && line_no == 1) continue;
    absl::string_view sv = absl::StripAsciiWhitespace(line);
    if (sv.empty()) continue;
    const std::vector<absl::string_view> fields = absl::StrSplit(sv, options.delimiter);
    if (t.columns < 0) {
      t.columns = static_cast<int64_t>(fields.size());
    } else if (static_cast<int64_t>(fields.size()) != t.columns) {
      return Invalid(name, absl::StrCat("line ", line_no, " has ", fields.size(),
                                        " columns, expected ", t.columns, " (ragged rows)"));
    }
    for (size_t c = 0; c < fields.size(); ++c) {
      absl::string_view field = absl::StripAsciiWhitespace(fields[c]);
      float v = 0;
      const auto [ptr, ec] = std::from_chars(field.data(), field.data() + field.size(), v);
      if (ec != std::errc() || ptr != field.data() + field.size() || field.empty())
        return Invalid(name, absl::StrCat("line ", line_no, ", column ", c + 1, ": '",
                                          field.substr(0, 64), "' is not a number"));
      if (!std::isfinite(v))
        return Invalid(name, absl::StrCat("line ", line_no, ", column ", c + 1, ": value '",
                                          field.substr(0, 64), "' is not finite"));
      t.values.push_back(v);
    }
    ++t.rows;
  }
  if (t.rows == 0) return Invalid(name, "no data rows");
  return t;
}

absl::StatusOr<CsvTable> ReadCsv(const std::string& path, const CsvOptions& options) {
  ASSIGN_OR_RETURN(std::string text, internal::ReadAll(path));
  return ParseCsv(text, path, options);
}

}  // namespace alignd::formats
