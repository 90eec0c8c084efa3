// File: client/table.h
// -----------------------------------------------------------------------------
// A plain-text table for people: columns as wide as their widest cell (nothing is cut,
// so a name copied from a table is the whole name), two spaces between columns, numbers
// right-aligned.
#ifndef ALIGND_CLIENT_TABLE_H_
#define ALIGND_CLIENT_TABLE_H_

#include <string>
#include <vector>

namespace alignd::client {

class Table {
 public:
  // A header starting with '>' is right-aligned (the '>' is not printed).
  explicit Table(std::vector<std::string> headers);
  void AddRow(std::vector<std::string> cells);
  // Lines end with "\n"; `erase_to_eol` adds "\x1b[K" before each (a live terminal view).
  std::string Render(bool erase_to_eol = false) const;
  size_t rows() const { return rows_.size(); }

 private:
  std::vector<std::string> headers_;
  std::vector<bool> right_;
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace alignd::client

#endif  // ALIGND_CLIENT_TABLE_H_
